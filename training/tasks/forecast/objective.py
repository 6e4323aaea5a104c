"""The forecast objective: loss, metrics, what early stopping watches and the plot, on `ForecastBatch`es.

- Loss: a `core.registry.ProbabilisticForecaster` (e.g. Moirai-MoE) trains on its own `loss(x, y)` (the
  negative log-likelihood of its predictive distribution, plus any auxiliary term); every other model
  trains on the MSE of its point forecast `model(x, x_mark, y_mark)`.
- Metrics: MSE and MAE of the point forecast, accumulated over every element of every window (so the
  test figure is the protocol's exact mean, not a mean of batch means); NaN targets (missing values,
  padding) are left out. Probabilistic models also get `nll`: the mean over windows of `loss(x, y)`
  without the model's `core.registry.AuxiliaryLoss` term (`aux_loss_weight × aux_loss()`, the
  load-balancing loss of a learned MoE router), so it stays a likelihood. The test split also counts
  its windows (`test_windows`).
- A batch with `loc`/`scale` is in original units (corpus pretraining mixes datasets in their own
  units; the model scales each window itself): MSE/MAE are taken on `(value - loc) / scale` — for the
  corpus' held-out windows the statistics of each dataset's train split, i.e. the units of the dataset
  recipes' metrics. Batches without them are already scaled (the protocol's train-fitted scaler).
- Early stopping may watch `val_mse`, `val_mae` or (probabilistic models) `val_nll`; default `val_mse`.
- Plot: forecast vs truth on the data's example window, in original units, through the serving
  predictor rebuilt from the bundle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError, Metric, SumMetric

from core.registry import AuxiliaryLoss, ProbabilisticForecaster
from data.schemas import ForecastBatch, ForecastExample
from inference.tasks.forecast import ForecastPredictor
from training.tasks.forecast.plots import forecast_figure


@dataclass(frozen=True)
class ForecastObjective:
    task: str = "forecast"
    monitors: tuple[str, ...] = ("val_mse", "val_mae", "val_nll")
    default_monitor: str = "val_mse"

    def metrics(self, model: nn.Module, split: str) -> dict[str, Metric]:
        out: dict[str, Metric] = {"mse": MeanSquaredError(), "mae": MeanAbsoluteError()}
        if isinstance(model, ProbabilisticForecaster):
            out["nll"] = MeanMetric()
        if split == "test":
            out["windows"] = SumMetric()
        return out

    def loss(self, model: nn.Module, batch: ForecastBatch) -> torch.Tensor:
        if isinstance(model, ProbabilisticForecaster):
            return model.loss(batch.x, batch.y)
        return F.mse_loss(model(batch.x, batch.x_mark, batch.y_mark), batch.y)

    def nll(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """A probabilistic model's `loss(x, y)` less its auxiliary term (see the module docstring)."""
        if not isinstance(model, ProbabilisticForecaster):
            raise TypeError(f"{type(model).__name__} has no likelihood")
        loss = model.loss(x, y)
        if isinstance(model, AuxiliaryLoss) and model.aux_loss_weight:
            loss = loss - model.aux_loss_weight * model.aux_loss()
        return loss

    def update(self, model: nn.Module, batch: ForecastBatch, metrics: Mapping[str, Metric]) -> None:
        pred, y = model(batch.x, batch.x_mark, batch.y_mark), batch.y
        if batch.loc is not None and batch.scale is not None:  # original units: the dataset's standard units
            pred, y = (pred - batch.loc) / batch.scale, (y - batch.loc) / batch.scale
        keep = ~torch.isnan(y)  # every observed element of every window counts
        metrics["mse"].update(pred[keep], y[keep])
        metrics["mae"].update(pred[keep], y[keep])
        if "nll" in metrics:
            metrics["nll"].update(self.nll(model, batch.x, batch.y).detach().float(), weight=batch.size)
        if "windows" in metrics:
            metrics["windows"].update(batch.size)

    def bundle_meta(self, model: nn.Module) -> dict[str, Any]:
        """`probabilistic: true` for models that serve quantiles (`inference.tasks.forecast` reads it)."""
        return {"probabilistic": True} if isinstance(model, ProbabilisticForecaster) else {}

    def figures(self, bundle: Path, example: ForecastExample) -> dict[str, Figure]:
        p = ForecastPredictor.load(bundle)
        stamps = None
        if p.uses_timestamps and example.timestamps is not None:
            stamps = [[datetime.fromisoformat(s) for s in example.timestamps]]
        pred = p.predict(example.history[None], stamps)[0]
        fig = forecast_figure(example.history, example.truth, pred, example.names, f"{p.name}: {example.title}")
        return {"plots/forecast_vs_truth.png": fig}


FORECAST_OBJECTIVE = ForecastObjective()
