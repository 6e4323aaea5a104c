"""The denoise objective: loss, metrics, what early stopping watches and the plot, on `DenoiseBatch`es.

- Loss: MSE between the model's output and the clean window, both divided by the noisy window's std
  (`training.tasks.denoise.metrics.normalised`), plus, for models with a `spectral_weight` > 0
  (`SpectralWeighted`), that weight times the mean absolute difference of the log periodograms.
- Metrics (per window, averaged over every window of the split; definitions in `metrics.py`): `rrmse_t`,
  `rrmse_s`, `cc`, `snr_db`, `snr_gain_db`, `mse`; the test split also counts its windows.
- Early stopping may watch `val_rrmse_t` (default), `val_rrmse_s` or `val_mse` (lower is better).
- Plot: raw vs cleaned frontal channels (and the ICA-cleaned reference) on the data's evaluation stretch,
  through the serving predictor rebuilt from the bundle, so the figure shows what the service returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn
from torchmetrics import MeanMetric, Metric, SumMetric

from data.schemas import DenoiseBatch, DenoiseExample
from inference.tasks.denoise import DenoisePredictor
from training.tasks.denoise.metrics import normalised, psd, window_metrics
from training.tasks.denoise.plots import denoise_figure

METRICS = ("rrmse_t", "rrmse_s", "cc", "snr_db", "snr_gain_db", "mse")


@runtime_checkable
class SpectralWeighted(Protocol):
    """A denoiser whose training loss adds a log-spectrum term with this weight."""

    @property
    def spectral_weight(self) -> float: ...


def spectral_term(pred: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Mean |log(PSD(pred) + ε) − log(PSD(clean) + ε)| over channels and frequencies."""
    return (torch.log(psd(pred) + 1e-6) - torch.log(psd(clean) + 1e-6)).abs().mean()


@dataclass(frozen=True)
class DenoiseObjective:
    task: str = "denoise"
    monitors: tuple[str, ...] = ("val_rrmse_t", "val_rrmse_s", "val_mse")
    default_monitor: str = "val_rrmse_t"

    def metrics(self, model: nn.Module, split: str) -> dict[str, Metric]:
        out: dict[str, Metric] = {name: MeanMetric() for name in METRICS}
        if split == "test":
            out["windows"] = SumMetric()
        return out

    def loss(self, model: nn.Module, batch: DenoiseBatch) -> torch.Tensor:
        _, clean, pred = normalised(batch.noisy, batch.clean, model(batch.noisy))
        loss = F.mse_loss(pred, clean)
        weight = model.spectral_weight if isinstance(model, SpectralWeighted) else 0.0
        if weight:
            loss = loss + weight * spectral_term(pred, clean)
        return loss

    def update(self, model: nn.Module, batch: DenoiseBatch, metrics: Mapping[str, Metric]) -> None:
        values = window_metrics(batch.noisy, batch.clean, model(batch.noisy))
        for name in METRICS:
            metrics[name].update(values[name].float())
        if "windows" in metrics:
            metrics["windows"].update(batch.size)

    def bundle_meta(self, model: nn.Module) -> dict[str, Any]:
        return {}

    def figures(self, bundle: Path, example: DenoiseExample) -> dict[str, Figure]:
        p = DenoisePredictor.load(bundle)
        cleaned = p.denoise(example.noisy, example.channels, example.sfreq)
        fig = denoise_figure(
            example.noisy, cleaned, example.reference, example.channels, example.sfreq, f"{p.name}: {example.title}"
        )
        return {"plots/denoised_vs_raw.png": fig}


DENOISE_OBJECTIVE = DenoiseObjective()
