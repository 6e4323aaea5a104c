"""The one Lightning system: wraps any registered model; the loss and the metrics come from its task's
objective (`training.tasks.objective_for(task)`, a `training.tasks.objective.Objective`).

Batches are the task's typed batches (`data.schemas`); the system reads only their `size`. Validation
and test metrics are accumulated over every batch of the epoch (the objective decides how) and logged
as `val_<name>` / `test_<name>` when the epoch ends; early stopping may watch any `val_<name>` the
objective gives this model (`monitors`).

In a data-parallel fit (`training.distributed`) every logged value is global: the metrics' states are
reduced across the processes when a metric is computed (torchmetrics), and the training loss is averaged
over every process's batches (`sync_dist`), so early stopping and the best weights decide alike everywhere.
"""

from __future__ import annotations

import copy
from typing import Any, cast

import lightning as L
import torch
from torch import nn
from torchmetrics import Metric

from data.schemas import Batch
from training.tasks import objective_for
from training.tasks.objective import SPLITS


class SeerSystem(L.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        *,
        task: str,
        lr: float,
        lr_decay: float = 0.5,
        lr_step: int = 1,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
    ):
        super().__init__()
        self.model = model
        self.task = task
        self.objective = objective_for(task)
        self.lr = lr
        self.lr_decay = lr_decay
        self.lr_step = lr_step
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        made = {split: self.objective.metrics(model, split) for split in SPLITS}
        self.metrics = nn.ModuleDict({f"{s}_{name}": m for s, ms in made.items() for name, m in ms.items()})
        self.metric_names = {split: tuple(ms) for split, ms in made.items()}

    @property
    def monitors(self) -> tuple[str, ...]:
        """What early stopping may watch for this model: the validation metrics it logs."""
        return tuple(f"val_{name}" for name in self.metric_names["val"])

    def split_metrics(self, split: str) -> dict[str, Metric]:
        """The accumulators of one split, by metric name."""
        return {name: cast(Metric, self.metrics[f"{split}_{name}"]) for name in self.metric_names[split]}

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss = self.objective.loss(self.model, batch)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=batch.size, sync_dist=True)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self.objective.update(self.model, batch, self.split_metrics("val"))

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self.objective.update(self.model, batch, self.split_metrics("test"))

    def _log_epoch(self, split: str, prog_bar: bool) -> None:
        for name, metric in self.split_metrics(split).items():
            # compute() already reduced the states of every process: the values agree, and sync_dist (a mean of
            # equal values) only says so to Lightning, which otherwise warns that an epoch value is not synced.
            self.log(f"{split}_{name}", metric.compute(), prog_bar=prog_bar, sync_dist=True)
            metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val", prog_bar=True)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test", prog_bar=False)

    def configure_optimizers(self) -> Any:
        make = torch.optim.AdamW if self.optimizer == "adamw" else torch.optim.Adam
        opt = make(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        # lr × decay every `lr_step` epochs (1: every epoch; StepLR(step, gamma) = lr_step=step, lr_decay=gamma)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: self.lr_decay ** (epoch // self.lr_step))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


class KeepBestWeights(L.Callback):
    """Keeps the best validation weights in memory and restores them when fitting ends.

    Does what a checkpoint + `ckpt_path="best"` would, without writing or unpickling a checkpoint.
    """

    def __init__(self, monitor: str):
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

    def state_dict(self) -> dict[str, Any]:
        """What a resumed fit needs (`training.checkpoint` writes `weights` as safetensors)."""
        return {"best": self.best, "best_epoch": self.best_epoch, "weights": self._state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best, self.best_epoch = state_dict["best"], int(state_dict["best_epoch"])
        self._state = state_dict["weights"]
