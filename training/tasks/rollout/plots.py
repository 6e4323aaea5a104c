"""The rollout run's figures (matplotlib, headless): field slices truth vs prediction vs error at a few
rollout steps, and energy spectra truth vs prediction.

Inputs are trajectories `[S + 1, *grid, V]` in physical units, the initial state first. A 3D field is shown
by its mid-plane in the last axis. Shapes: S steps, X/Y(/Z) grid, V components, K shells.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from data.fields.spectral import energy_spectrum  # noqa: E402


def shown_steps(steps: int, count: int = 3) -> list[int]:
    """Up to `count` distinct steps from 1 to `steps`, the first and the last among them."""
    return sorted({int(round(s)) for s in np.linspace(1, steps, count)}) if steps >= 1 else []


def plane(field: np.ndarray, component: int) -> np.ndarray:
    """[*grid, V] -> [X, Y]: one component, a 3D field cut at the middle of its last axis."""
    f = field[..., component]
    return f[..., f.shape[-1] // 2] if f.ndim == 3 else f


def slices_figure(truth: np.ndarray, pred: np.ndarray, components: list[str], dt: float, title: str):
    """Rows: a few rollout steps; columns: truth, prediction, error, of the first component."""
    steps = shown_steps(len(truth) - 1)
    fig, axes = plt.subplots(len(steps), 3, figsize=(10, 3.0 * len(steps)), squeeze=False)
    for row, s in zip(axes, steps, strict=True):
        t, p = plane(truth[s], 0), plane(pred[s], 0)
        lim = float(np.nanmax(np.abs(t))) or 1.0
        for ax, img, name in zip(row, (t, p, p - t), ("truth", "prediction", "error"), strict=True):
            im = ax.imshow(img.T, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_title(f"{components[0]} {name}, step {s} (t = {s * dt:.3g})", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(im, ax=list(row), shrink=0.8)
    fig.suptitle(title, fontsize=10)
    return fig


def spectra_figure(truth: np.ndarray, pred: np.ndarray, dt: float, title: str):
    """Shell energy spectra E(k) of truth (solid) and prediction (dashed) at a few steps, log-log."""
    steps = shown_steps(len(truth) - 1)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for i, s in enumerate(steps):
        color = f"C{i}"
        for field, style, who in ((truth[s], "-", "truth"), (pred[s], "--", "prediction")):
            e = energy_spectrum(torch.from_numpy(np.asarray(field, dtype=np.float64))).numpy()
            k = np.arange(len(e))
            keep = (k >= 1) & (k < min(truth.shape[1:-1]) // 2) & np.isfinite(e) & (e > 0)
            ax.loglog(k[keep], e[keep], style, color=color, label=f"{who}, step {s} (t = {s * dt:.3g})")
    ax.set_xlabel("k (shell)")
    ax.set_ylabel("E(k)")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
