"""Figures logged with each run (matplotlib, headless)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def forecast_figure(history: np.ndarray, truth: np.ndarray, forecast: np.ndarray, variates: list[str], title: str):
    """history [L, N], truth/forecast [H, N]: one panel per variate (at most 4, the last ones)."""
    show = list(range(len(variates)))[-4:]
    fig, axes = plt.subplots(len(show), 1, figsize=(9, 2.2 * len(show)), sharex=True, squeeze=False)
    l, h = len(history), len(truth)
    for ax, j in zip(axes[:, 0], show, strict=True):
        ax.plot(range(l), history[:, j], color="0.4", lw=1, label="history")
        ax.plot(range(l, l + h), truth[:, j], color="tab:blue", lw=1.2, label="truth")
        ax.plot(range(l, l + h), forecast[:, j], color="tab:orange", lw=1.2, label="forecast")
        ax.axvline(l - 0.5, color="0.7", ls="--", lw=0.8)
        ax.set_ylabel(variates[j])
    axes[0, 0].legend(loc="upper left", fontsize=8, ncol=3)
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    return fig
