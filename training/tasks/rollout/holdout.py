"""The rollout task's retraining holdout: fresh field datasets, their last test samples, rollout errors.

1. Fresh data: every fields dataset (`.npz` of `data.fields.generate`) the pattern matches, read and
   validated together (`data.fields.windows.read_trajectories`: one grid, one snapshot spacing); the
   challenger trains on a folder holding copies of them, which the recipe's data reads as its `dataset`.
2. Holdout: the last `count` samples of the test trajectories under the challenger's split (the recipe's
   `n_val`/`n_test`, `eval_steps`, `eval_hop`, `stride`): states the challenger never trained or
   early-stopped on. More than fit is an error that says how many do.
3. Scores: both models roll out each sample's initial state over `eval_steps` steps in physical units
   through their serving predictors (`RolloutPredictor.roll`; a rollout that diverges scores
   `metrics.CAP`); `rel_l2` (mean over the steps), `rel_l2_last` (the last step) and `spectrum_error`
   (log spectrum error at the last step), averaged over the samples (lower is better; definitions in
   `training.tasks.rollout.metrics`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from data.fields.windows import RolloutDataConfig, Trajectories, read_trajectories, split_trajectories
from training.tasks.holdout import FreshData, HoldoutWindows, match_files
from training.tasks.rollout.metrics import capped, rel_l2, spectrum_error

if TYPE_CHECKING:
    from inference.tasks.rollout import RolloutPredictor
    from training.recipes import Recipe


@dataclass(frozen=True)
class FieldHoldout:
    """The holdout payload: the data settings both models are scored with and the samples' (trajectory, start)."""

    data: RolloutDataConfig
    samples: list[tuple[int, int]]


def test_samples(trajectories: Trajectories, data: RolloutDataConfig) -> list[tuple[int, int]]:
    """(trajectory, start) of every test sample of these trajectories under the data's split, in order."""
    parts = split_trajectories(len(trajectories.items), data.n_val, data.n_test)
    span = data.stride * data.eval_steps
    return [(i, s) for i in parts["test"] for s in range(0, len(trajectories.items[i]) - span, data.eval_hop)]


def _grid(meta: dict[str, Any]) -> tuple[tuple[int, ...], float]:
    t = meta["transform"]
    return tuple(int(n) for n in t["grid"]), float(t["dt"])


@dataclass(frozen=True)
class RolloutHoldout:
    """`training.tasks.holdout.Holdout` for rollout models (see the module docstring)."""

    task: str = "rollout"
    metrics: tuple[str, ...] = ("rel_l2", "rel_l2_last", "spectrum_error")

    def read(self, pattern: str) -> FreshData:
        files = [f for f in match_files(pattern) if f.suffix.lower() == ".npz"]
        if not files:
            raise FileNotFoundError(f"no fields datasets (.npz) match {pattern!r}")
        data = read_trajectories(files)  # FieldFileError (a ValueError) names the file
        shape = "x".join(str(n) for n in data.items[0].shape[1:-1])
        describe = {"files": str(len(files)), "trajectories": str(len(data.items)), "grid": shape}
        return FreshData(files=files, rows=sum(len(t) for t in data.items), payload=data, describe=describe)

    def write(self, fresh: FreshData, directory: Path, stem: str) -> Path:
        folder = directory / stem
        folder.mkdir(parents=True, exist_ok=True)
        for f in fresh.files:
            shutil.copy2(f, folder / f.name)
        return folder

    def windows(self, fresh: FreshData, recipe: Recipe, count: int) -> HoldoutWindows:
        if not isinstance(recipe.data, RolloutDataConfig):
            raise ValueError(f"recipe {recipe.name} has no rollout data section ({type(recipe.data).__name__})")
        data = replace(recipe.data, dataset=",".join(str(f) for f in fresh.files))
        samples = test_samples(fresh.payload, data)
        if count > len(samples):
            raise ValueError(
                f"holdout_windows={count} does not fit in the fresh test trajectories: {len(samples)} samples of "
                f"{data.eval_steps} steps fit; lower holdout_windows or add trajectories"
            )
        describe = {"eval_steps": str(data.eval_steps), "stride": str(data.stride)}
        return HoldoutWindows(count=count, payload=FieldHoldout(data, samples[-count:]), describe=describe)

    def incomparable(self, champion: RolloutPredictor, challenger: RolloutPredictor) -> str | None:
        (g1, dt1), (g2, dt2) = _grid(champion.meta), _grid(challenger.meta)
        if g1 != g2 or not np.isclose(dt1, dt2):
            return (
                f"steps fields on grid {list(g1)} by dt {dt1:g}, the challenger on {list(g2)} by dt {dt2:g}: "
                "not comparable on one holdout"
            )
        return None

    def score(self, predictor: RolloutPredictor, fresh: FreshData, windows: HoldoutWindows) -> dict[str, float]:
        held: FieldHoldout = windows.payload
        trajectories: Trajectories = fresh.payload
        grid, _ = _grid(predictor.meta)
        if tuple(trajectories.items[0].shape[1:-1]) != grid:
            raise ValueError(f"the fresh data's grid {trajectories.items[0].shape[1:-1]} is not the model's {grid}")
        d = held.data
        u = np.stack([trajectories.items[i][s] for i, s in held.samples])  # [W, *grid, V]
        truth = np.stack([trajectories.items[i][s + d.stride :: d.stride][: d.eval_steps] for i, s in held.samples])
        rolled = predictor.roll(u.astype(np.float64), d.eval_steps, [1] * len(u))  # a diverged row: its step
        nan = np.full(truth.shape[1:], np.nan)
        pred = torch.from_numpy(np.stack([r if isinstance(r, np.ndarray) else nan for r in rolled]))
        target = torch.from_numpy(truth.astype(np.float64))  # [W, S, *grid, V]
        err = capped(rel_l2(pred, target, axes=u.ndim - 1))  # [W, S]
        return {
            "rel_l2": float(err.mean()),
            "rel_l2_last": float(err[:, -1].mean()),
            "spectrum_error": float(spectrum_error(pred[:, -1], target[:, -1]).mean()),
        }


ROLLOUT_HOLDOUT = RolloutHoldout()
