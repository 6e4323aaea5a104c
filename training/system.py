"""The one Lightning system: wraps any registered model; loss and metrics are chosen by task.

Forecast: batches are `(x [B,L,N], x_mark [B,L,F], y [B,H,N], y_mark [B,H,F])` on the scaled data;
loss MSE; metrics MSE and MAE accumulated over every element of every window (so the test figure is
the protocol's exact mean, not a mean of batch means).
"""

from __future__ import annotations

import copy

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanSquaredError


class SeerSystem(L.LightningModule):
    def __init__(self, model: nn.Module, *, task: str, lr: float, lr_decay: float = 0.5):
        super().__init__()
        if task != "forecast":
            raise ValueError(f"no training recipe for task {task!r} yet")
        self.model = model
        self.task = task
        self.lr = lr
        self.lr_decay = lr_decay
        self.metrics = nn.ModuleDict(
            {
                f"{split}_{name}": cls()
                for split in ("val", "test")
                for name, cls in (("mse", MeanSquaredError), ("mae", MeanAbsoluteError))
            }
        )
        self.test_windows = 0

    def forward(
        self, x: torch.Tensor, x_mark: torch.Tensor | None = None, y_mark: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.model(x, x_mark, y_mark)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, x_mark, y, y_mark = batch
        loss = F.mse_loss(self(x, x_mark, y_mark), y)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=x.shape[0])
        return loss

    def _eval_step(self, batch, split: str) -> None:
        x, x_mark, y, y_mark = batch
        pred, y = self(x, x_mark, y_mark).reshape(-1), y.reshape(-1)  # every element of every window counts
        self.metrics[f"{split}_mse"].update(pred, y)
        self.metrics[f"{split}_mae"].update(pred, y)
        if split == "test":
            self.test_windows += x.shape[0]

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        for name in ("mse", "mae"):
            metric = self.metrics[f"val_{name}"]
            self.log(f"val_{name}", metric.compute(), prog_bar=True)
            metric.reset()

    def on_test_epoch_start(self) -> None:
        self.test_windows = 0

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        for name in ("mse", "mae"):
            metric = self.metrics[f"test_{name}"]
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
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        value = float(value)
        if self.best is None or value < self.best:
            self.best, self.best_epoch = value, trainer.current_epoch
            self._state = copy.deepcopy({k: v.detach().cpu() for k, v in pl_module.state_dict().items()})

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._state is not None:
            pl_module.load_state_dict(self._state)
