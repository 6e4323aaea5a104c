"""Long runs survive an interruption: a checkpoint every epoch, `--resume`, and nothing unpickled.

A checkpoint is a folder, `checkpoints/<registered name>/last/` under the working directory (the root:
`SEER_CHECKPOINT_DIR`), rewritten after every epoch (a new folder renamed into place, so an
interruption while writing leaves the previous one whole):
  model.safetensors   the weights of the model being fitted
  best.safetensors    the best validation weights so far (`training.system.KeepBestWeights`), if any
  state.pt            the rest: epoch and logging-step counters, the optimizer's and LR schedule's state,
                      the callbacks' state (early stopping's count), torch's random state. Tensors and
                      plain Python values only: it is read with `torch.load(weights_only=True)`, which
                      refuses to build any other object, so a tampered file cannot run code.
Beside it, `run.json` names the MLflow run and holds the resolved recipe: `--resume` continues that
run (same run id, metrics appended) only if the model and data settings are the same.

`EpochCheckpoint` is the Lightning callback that writes them and restores a resumed fit (its own
restore, not Lightning's `ckpt_path`, whose loop restart re-runs the end of a saved epoch without
its validation metrics). `DurationEstimate` times the first training steps and says how long the run
should take on this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from safetensors.torch import load_file, save_file

WEIGHTS, BEST, STATE, RUN = "model.safetensors", "best.safetensors", "state.pt", "run.json"
BEST_KEY = "weights"  # the key of a callback state that holds weights (saved to best.safetensors)


def checkpoint_root() -> Path:
    """`SEER_CHECKPOINT_DIR`, else `./checkpoints`."""
    return Path(os.environ.get("SEER_CHECKPOINT_DIR") or Path.cwd() / "checkpoints")


def checkpoint_dir(name: str) -> Path:
    """Where the run registering `name` keeps its checkpoint."""
    return checkpoint_root() / name


def _tensors(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` (`weights`: the model's state dict; the rest tensors and plain values) as the folder
    `path`: written beside it, then renamed into place, so an interruption leaves the previous one whole."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = dict(state)
    save_file(_tensors(state.pop("weights")), str(tmp / WEIGHTS))
    callbacks = dict(state.get("callbacks") or {})
    for key, value in callbacks.items():
        if isinstance(value, dict) and isinstance(value.get(BEST_KEY), dict):
            save_file(_tensors(value[BEST_KEY]), str(tmp / BEST))
            callbacks[key] = {**value, BEST_KEY: BEST}
    state["callbacks"] = callbacks
    torch.save(state, tmp / STATE)
    old = path.with_name(path.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The state `save_checkpoint` wrote; `state.pt` is read with `weights_only=True` (no object is built)."""
    path = Path(path)
    if not (path / STATE).is_file() or not (path / WEIGHTS).is_file():
        raise FileNotFoundError(f"no checkpoint in {path} (expected {WEIGHTS} and {STATE})")
    state = torch.load(path / STATE, map_location="cpu", weights_only=True)
    state["weights"] = load_file(str(path / WEIGHTS))
    for key, value in (state.get("callbacks") or {}).items():
        if isinstance(value, dict) and value.get(BEST_KEY) == BEST:
            state["callbacks"][key] = {**value, BEST_KEY: load_file(str(path / BEST))}
    return state


# Callback settings a resumed run takes from its new recipe, not from the checkpoint.
KEEP_NEW = ("patience",)


class EpochCheckpoint(L.Callback):
    """Save the fit's state to `directory/last` once an epoch is wholly done: when the next one starts
    (its validation, early stopping, best weights and LR step behind it, its shuffle not yet drawn). The
    last epoch needs none: the fit is over.

    With `resume_from`, the fit starts where that checkpoint ends, restored when the fit starts (the
    optimizer exists then): weights, optimizer and LR-schedule state, the callbacks' state, torch's random
    state, and the epoch and logging-step counters; the next epoch then runs as it would have."""

    def __init__(self, directory: Path, resume_from: Path | None = None):
        self.directory = Path(directory)
        self.resume_from = resume_from
        self._first_epoch = 0
        self._resumed_rng: torch.Tensor | None = None

    @property
    def path(self) -> Path:
        return self.directory / "last"

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._resumed_rng = None
        if self.resume_from is not None:
            state = load_checkpoint(self.resume_from)
            _restore(trainer, pl_module, state)
            self._resumed_rng = state["torch_rng"]  # set when the epoch starts: the fit's set-up draws
        self._first_epoch = trainer.current_epoch  # a resumed fit's first state is saved already

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The random state is saved and set here, where the epoch's shuffle and dropout are still to be
        # drawn: the fit's own set-up draws from it between `on_fit_start` and the first epoch.
        if self._resumed_rng is not None:
            torch.set_rng_state(self._resumed_rng)
            self._resumed_rng = None
        if trainer.current_epoch > self._first_epoch and trainer.is_global_zero:  # one writer: every rank is alike
            save_checkpoint(self.path, {**_collect(trainer, pl_module), "torch_rng": torch.get_rng_state()})


def _collect(trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
    """Everything a fit needs to go on from the start of the current epoch."""
    callbacks = {}
    for cb in trainer.callbacks:  # type: ignore[attr-defined]
        state = cb.state_dict()
        if state:
            callbacks[cb.state_key] = state
    return {
        "epoch": trainer.current_epoch,
        "batches_that_stepped": trainer.fit_loop.epoch_loop._batches_that_stepped,
        "weights": pl_module.state_dict(),
        "optimizers": [opt.state_dict() for opt in trainer.optimizers],
        "lr_schedulers": [c.scheduler.state_dict() for c in trainer.lr_scheduler_configs],
        "callbacks": callbacks,
    }


def _restore(trainer: L.Trainer, pl_module: L.LightningModule, state: dict[str, Any]) -> None:
    pl_module.load_state_dict(state["weights"], strict=True)
    for opt, saved in zip(trainer.optimizers, state["optimizers"], strict=True):
        opt.load_state_dict(saved)
    for config, saved in zip(trainer.lr_scheduler_configs, state["lr_schedulers"], strict=True):
        config.scheduler.load_state_dict(saved)
    for cb in trainer.callbacks:  # type: ignore[attr-defined]
        saved = state["callbacks"].get(cb.state_key)
        if saved is not None:
            current = cb.state_dict()
            cb.load_state_dict({**saved, **{k: current[k] for k in KEEP_NEW if k in current}})
    epoch = int(state["epoch"])
    progress = trainer.fit_loop.epoch_progress  # a _Progress of _StartedTracker counters: all at `epoch`
    for counter in (progress.current, progress.total):
        counter.ready = counter.completed = epoch
        counter.started = counter.processed = epoch  # type: ignore[attr-defined]
    trainer.fit_loop.epoch_loop._batches_that_stepped = int(state["batches_that_stepped"])


def write_run_info(directory: Path, run_id: str, recipe: dict[str, Any]) -> None:
    """`run.json`: the MLflow run and the resolved recipe a `--resume` must match."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / RUN).write_text(json.dumps({"run_id": run_id, "recipe": recipe}, indent=2, default=str))


# Settings a resumed run may change: how long it may go on, and how it shows progress.
RESUMABLE_CHANGES = ("trainer.max_epochs", "trainer.patience", "trainer.progress_bar")


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def read_resumable(directory: Path, recipe: dict[str, Any]) -> tuple[str, Path]:
    """(MLflow run id, checkpoint path) of the interrupted run in `directory`; a ValueError says why it
    cannot continue with `recipe` (no checkpoint, or other settings)."""
    info_file, last = directory / RUN, directory / "last"
    if not info_file.is_file() or not (last / STATE).is_file():
        raise FileNotFoundError(f"nothing to resume: no checkpoint in {directory} (drop --resume to start afresh)")
    info = json.loads(info_file.read_text())
    before, now = (
        _flat(json.loads(json.dumps(info["recipe"], default=str))),
        _flat(json.loads(json.dumps(recipe, default=str))),
    )
    changed = sorted(
        k for k in before.keys() | now.keys() if before.get(k) != now.get(k) and k not in RESUMABLE_CHANGES
    )
    if changed:
        shown = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed[:4])
        raise ValueError(
            f"the checkpoint in {directory} was made with other settings ({shown}); resume with the same "
            "settings, or drop --resume to start afresh"
        )
    return str(info["run_id"]), last


def saved_epoch(last: Path) -> int:
    """How many epochs the checkpoint in `last` finished (the epoch a resumed fit starts at, 0-based)."""
    return int(torch.load(Path(last) / STATE, map_location="cpu", weights_only=True)["epoch"])


class DurationEstimate(L.Callback):
    """After the first `steps` training batches of a fit (the very first one, which pays for warm-up, not
    counted), say how long the fit should take: epochs × (training batches + validation batches at a
    third of a training batch's time), on this machine, at the speed just measured."""

    def __init__(self, label: str = "training", steps: int = 3, out: Any = None):
        self.label, self.steps = label, steps
        self.out = out
        self._t0: float | None = None
        self._seen = 0
        self.message = ""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if self.message or rank_zero_only.rank != 0:  # type: ignore[attr-defined]  # once: rank 0 of a data-parallel fit
            return
        self._seen += 1
        if self._seen == 1:
            self._t0 = time.perf_counter()
            return
        n_train = int(trainer.num_training_batches)
        if self._seen - 1 < min(self.steps, n_train - 1) or self._t0 is None:
            return
        per_batch = (time.perf_counter() - self._t0) / (self._seen - 1)
        n_val = int(sum(trainer.num_val_batches)) if trainer.num_val_batches else 0
        epoch_s = per_batch * (n_train + n_val / 3)
        epochs = int(trainer.max_epochs or 1) - trainer.current_epoch
        total = epoch_s * epochs
        plural = "s" if epochs != 1 else ""
        self.message = (
            f"expected duration of {self.label}: about {_span(total)} for at most {epochs} epoch{plural} "
            f"(~{_span(epoch_s)} per epoch of {n_train} batches, measured on this machine with "
            f"{torch.get_num_threads()} torch threads; early stopping may end it sooner)"
        )
        bar = trainer.progress_bar_callback
        if bar is not None:  # prints above the bar
            bar.print(self.message)
        else:
            print(self.message, file=self.out or sys.stdout, flush=True)


def _span(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
