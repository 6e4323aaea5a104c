"""`seer train ...` as the command line runs it (`seer.cli.main`, the arguments of this script), with one
observer added to every fit: `DrawnWindows` writes, per process, which training windows the process drew.

Run as a script by tests/training/test_distributed.py; Lightning's launcher starts the second process by
running this script again with the same arguments (and `LOCAL_RANK=1`), so both processes carry the observer.
`SEER_DDP_CASE_OUT` names the folder the records go to.
"""

import json
import os
import sys
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

import training.run
from seer.cli import main


class DrawnWindows(L.Callback):
    """Records the indices of the training windows this process drew, and checks that each batch it trained
    on holds exactly those windows (the batch's inputs against the dataset's windows at those indices).

    The indices are read from the loader's sampler (after Lightning's `set_epoch`, its order is fixed for the
    epoch); the batch check is what makes them the windows actually trained on."""

    def __init__(self, out: Path):
        self.out = out
        self.drawn: list[int] = []
        self.matches: list[bool] = []
        self._order: list[int] = []

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._order = [int(i) for i in _loader(trainer).sampler]

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch, batch_idx: int) -> None:
        size = int(_loader(trainer).batch_size or 0)
        idx = self._order[batch_idx * size : (batch_idx + 1) * size]
        windows = _loader(trainer).dataset
        expected = torch.stack([windows[i].x for i in idx])
        self.matches.append(bool(torch.equal(batch.x.cpu(), expected)))
        self.drawn.extend(idx)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        record = {
            "rank": trainer.global_rank,
            "world": trainer.world_size,
            "drawn": self.drawn,
            "matches": self.matches,
            "train_windows": len(_loader(trainer).dataset),  # type: ignore[arg-type]
        }
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def _loader(trainer: L.Trainer) -> DataLoader:
    loader = trainer.train_dataloader
    assert isinstance(loader, DataLoader), type(loader)
    return loader


def _observed(train):
    def run(recipe, **kwargs):
        out = Path(os.environ["SEER_DDP_CASE_OUT"])
        return train(recipe, **{**kwargs, "callbacks": [*(kwargs.get("callbacks") or []), DrawnWindows(out)]})

    return run


if __name__ == "__main__":
    training.run.train = _observed(training.run.train)  # the command imports it from training.run when it runs
    sys.exit(main(sys.argv[1:]))
