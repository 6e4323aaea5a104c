"""The one Lightning system: wraps any registered model; loss and metrics are chosen by task.

Forecast: batches are `(x [B,L,N], x_mark [B,L,F], y [B,H,N], y_mark [B,H,F])`.
- Loss: a model that defines `loss(x, y)` (a probabilistic model, e.g. Moirai-MoE: the negative
  log-likelihood of its predictive distribution, plus any auxiliary term) trains on that; every other
  model trains on the MSE of its point forecast `model(x, x_mark, y_mark)`.
- Metrics: MSE and MAE of the point forecast, accumulated over every element of every window (so the
  test figure is the protocol's exact mean, not a mean of batch means); NaN targets (missing values,
  padding) are left out. Probabilistic models also get `val_nll` / `test_nll`: the mean over windows
  of `loss(x, y)` without the model's auxiliary term (`aux_loss()` × `config.aux_loss_weight`, the
  load-balancing loss of a learned MoE router), so it stays a likelihood.
- A batch may carry two more tensors, `loc` and `scale` [B, 1, N], after the four: the windows are
  then in original units (corpus pretraining mixes datasets in their own units; the model scales each
  window itself) and MSE/MAE are taken on `(value - loc) / scale` — for the corpus' held-out windows
  the statistics of each dataset's train split, i.e. the units of the dataset recipes' metrics.
  Four-tensor batches are already scaled (the protocol's train-fitted scaler) and scored as they are.
"""

from __future__ import annotations

import copy
from typing import cast

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError, Metric


class SeerSystem(L.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        *,
        task: str,
        lr: float,
        lr_decay: float = 0.5,
    ):
        super().__init__()
        if task != "forecast":
            raise ValueError(f"no training recipe for task {task!r} yet")
        self.model = model
        self.task = task
        self.lr = lr
        self.lr_decay = lr_decay
        self.probabilistic = callable(getattr(model, "loss", None))
        kinds: list[tuple[str, type[Metric]]] = [("mse", MeanSquaredError), ("mae", MeanAbsoluteError)]
        if self.probabilistic:
            kinds.append(("nll", MeanMetric))
        self.metric_names = tuple(name for name, _ in kinds)
        self.metrics = nn.ModuleDict({f"{split}_{name}": cls() for split in ("val", "test") for name, cls in kinds})
        self.test_windows = 0

    def forward(
        self, x: torch.Tensor, x_mark: torch.Tensor | None = None, y_mark: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.model(x, x_mark, y_mark)

    def metric(self, name: str) -> Metric:
        """The accumulator `{split}_{mse|mae|nll}`."""
        return cast(Metric, self.metrics[name])

    def objective(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """A probabilistic model's own training loss `model.loss(x, y)` (NLL + auxiliary terms)."""
        return cast(torch.Tensor, self.model.loss(x, y))  # type: ignore[operator]

    def nll(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The model's `loss(x, y)` less its auxiliary term (see the module docstring)."""
        loss = self.objective(x, y)
        aux = getattr(self.model, "aux_loss", None)
        weight = float(getattr(getattr(self.model, "config", None), "aux_loss_weight", 0.0) or 0.0)
        if callable(aux) and weight:
            loss = loss - weight * aux()
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, x_mark, y, y_mark = batch[:4]
        loss = self.objective(x, y) if self.probabilistic else F.mse_loss(self(x, x_mark, y_mark), y)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=x.shape[0])
        return loss

    def _eval_step(self, batch, split: str) -> None:
        x, x_mark, y, y_mark, *norm = batch
        pred = self(x, x_mark, y_mark)
        y_scored = y
        if norm:  # original units: score in the units of the window's dataset statistics
            loc, scale = norm
            pred, y_scored = (pred - loc) / scale, (y - loc) / scale
        keep = ~torch.isnan(y_scored)  # every observed element of every window counts
        self.metric(f"{split}_mse").update(pred[keep], y_scored[keep])
        self.metric(f"{split}_mae").update(pred[keep], y_scored[keep])
        if self.probabilistic:
            self.metric(f"{split}_nll").update(self.nll(x, y).detach().float(), weight=x.shape[0])
        if split == "test":
            self.test_windows += x.shape[0]

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        for name in self.metric_names:
            metric = self.metric(f"val_{name}")
            self.log(f"val_{name}", metric.compute(), prog_bar=True)
            metric.reset()

    def on_test_epoch_start(self) -> None:
        self.test_windows = 0

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        for name in self.metric_names:
            metric = self.metric(f"test_{name}")
            self.log(f"test_{name}", metric.compute())
            metric.reset()
        self.log("test_windows", float(self.test_windows))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: self.lr_decay**epoch)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


class KeepBestWeights(L.Callback):
    """Keeps the best validation weights in memory and restores them when fitting ends.

    Does what a checkpoint + `ckpt_path="best"` would, without writing or unpickling a checkpoint.
    """

    def __init__(self, monitor: str = "val_mse"):
        self.monitor = monitor
        self.best: float | None = None
        self.best_epoch = -1
        self._state: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        logged = trainer.callback_metrics.get(self.monitor)
        if logged is None:
            return
        value = float(logged)
        if self.best is None or value < self.best:
            self.best, self.best_epoch = value, trainer.current_epoch
            self._state = copy.deepcopy({k: v.detach().cpu() for k, v in pl_module.state_dict().items()})

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._state is not None:
            pl_module.load_state_dict(self._state)
