"""The denoise run's figure: raw vs cleaned EEG on the frontal channels (matplotlib, headless)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from data.eeg.channels import FRONTAL  # noqa: E402


def denoise_figure(
    noisy: np.ndarray, cleaned: np.ndarray, reference: np.ndarray | None, channels: list[str], sfreq: float, title: str
):
    """noisy/cleaned/reference [N, T] in µV: one panel per frontal channel (at most 4; the first channels when
    none is frontal), the raw input, the model's output and the ICA-cleaned reference."""
    show = [i for i, c in enumerate(channels) if c in FRONTAL][:4] or list(range(min(4, len(channels))))
    fig, axes = plt.subplots(len(show), 1, figsize=(10, 2.2 * len(show)), sharex=True, squeeze=False)
    t = np.arange(noisy.shape[1]) / sfreq
    for ax, i in zip(axes[:, 0], show, strict=True):
        ax.plot(t, noisy[i], color="0.55", lw=0.8, label="raw")
        if reference is not None:
            ax.plot(t, reference[i], color="tab:green", lw=0.8, ls="--", label="ICA-cleaned")
        ax.plot(t, cleaned[i], color="tab:blue", lw=1.0, label="model")
        ax.set_ylabel(f"{channels[i]} (µV)")
    axes[0, 0].legend(loc="upper right", fontsize=8, ncol=3)
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("s")
    fig.tight_layout()
    return fig
