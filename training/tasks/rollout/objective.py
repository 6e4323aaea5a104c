"""The rollout objective: loss, metrics, what early stopping watches and the plots, on `RolloutBatch`es.

- The model maps normalised fields one step forward: v = (u − mean)/std, v ← model(v), u = v·std + mean
  (mean/std [V] from the batch: the training trajectories' per-component normalisation). Losses and
  metrics are taken in physical units, as the official IFactFormer-m training does.
- Loss: the relative L2 error (the official `LpLoss.rel`, `training.tasks.rollout.metrics.rel_l2`) of each
  of the K target steps of the model's own K-step unroll, averaged over steps and samples; K = 1 is the
  official one-step loss. How the gradient runs through the unroll is the batch's `pushforward` (the data
  section's, `data.fields.windows.RolloutDataConfig.pushforward`):
  * True (the default): the pushforward trick of Brandstetter, Worrall & Welling (Message Passing Neural
    PDE Solvers, ICLR 2022, §2.3): the input of every step after the first is the model's previous
    prediction taken as data (detached), so each step is trained as a one-step map on the distribution the
    model itself produces in a rollout, and no gradient runs back through the earlier steps. Their code
    keeps the loss of the last step only and draws the unroll length at random; here every step's loss is
    kept, so the clean one-step pair (the official loss) is always in it. The default because the paper
    proposes it as the cheap way to train for rollout stability: each gradient is one model application
    deep, with no product of K step Jacobians to backpropagate through.
  * False: full backpropagation through all K steps.
- Metrics over every sample of the split, each rolled out over the split's horizon S (`eval_steps`):
  `rel_l2` (mean over the S steps), `rel_l2_step1`, `rel_l2_last` (step S), `spectrum_error` (log10 energy
  spectrum error at step S, decades), `stable_steps` (steps before a blow-up, S when none); the test split
  also counts its samples (`samples`). A blown-up rollout's errors are capped (`metrics.CAP`) so they stay
  finite.
- Early stopping may watch `val_rel_l2` (default), `val_rel_l2_step1`, `val_rel_l2_last` or
  `val_spectrum_error` (lower is better).
- Plots: field slices (truth, prediction, error at a few steps) and energy spectra (truth vs prediction) of
  the data's evaluation trajectory, predicted through the serving predictor rebuilt from the saved bundle
  (`inference.tasks.rollout`), so the figures show what the service returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn
from torchmetrics import MeanMetric, Metric, SumMetric

from core.registry import RolloutModel
from data.schemas import RolloutBatch, RolloutExample
from inference.tasks.rollout import RolloutPredictor
from training.tasks.rollout.metrics import capped, rel_l2, spectrum_error, steps_until_blowup
from training.tasks.rollout.plots import slices_figure, spectra_figure

METRICS = ("rel_l2", "rel_l2_step1", "rel_l2_last", "spectrum_error", "stable_steps")


def unroll(model: nn.Module, batch: RolloutBatch, steps: int, *, pushforward: bool) -> torch.Tensor:
    """The model's `steps`-step prediction from `batch.u`, physical units: [B, steps, *grid, V]. With
    `pushforward` every step's input is detached (no gradient through the earlier steps)."""
    v = (batch.u - batch.mean) / batch.std  # [B, *grid, V]
    out = []
    for k in range(steps):
        v = model(v.detach() if pushforward and k else v)
        out.append(v)
    return torch.stack(out, dim=1) * batch.std + batch.mean


def rollout(model: nn.Module, batch: RolloutBatch, steps: int) -> torch.Tensor:
    """Evaluation rollout without a graph, physical units: [B, steps, *grid, V]."""
    with torch.no_grad():
        if isinstance(model, RolloutModel):
            v = model.rollout((batch.u - batch.mean) / batch.std, steps)
            return v * batch.std + batch.mean
        return unroll(model, batch, steps, pushforward=True)


def rollout_loss(model: nn.Module, batch: RolloutBatch) -> torch.Tensor:
    """Mean over samples and the K target steps of the relative L2 error of the K-step unroll."""
    pred = unroll(model, batch, batch.steps, pushforward=batch.pushforward)
    return rel_l2(pred, batch.target, axes=batch.u.ndim - 1).mean()


@dataclass(frozen=True)
class RolloutObjective:
    task: str = "rollout"
    monitors: tuple[str, ...] = ("val_rel_l2", "val_rel_l2_step1", "val_rel_l2_last", "val_spectrum_error")
    default_monitor: str = "val_rel_l2"

    def metrics(self, model: nn.Module, split: str) -> dict[str, Metric]:
        out: dict[str, Metric] = {name: MeanMetric() for name in METRICS}
        if split == "test":
            out["samples"] = SumMetric()
        return out

    def loss(self, model: nn.Module, batch: RolloutBatch) -> torch.Tensor:
        return rollout_loss(model, batch)

    def update(self, model: nn.Module, batch: RolloutBatch, metrics: Mapping[str, Metric]) -> None:
        pred = rollout(model, batch, batch.steps)  # [B, S, *grid, V]
        err = capped(rel_l2(pred, batch.target, axes=batch.u.ndim - 1))  # [B, S]
        values = {
            "rel_l2": err.mean(1),
            "rel_l2_step1": err[:, 0],
            "rel_l2_last": err[:, -1],
            "spectrum_error": spectrum_error(pred[:, -1], batch.target[:, -1]),
            "stable_steps": steps_until_blowup(pred, batch.u),
        }
        for name, value in values.items():
            metrics[name].update(value.float())
        if "samples" in metrics:
            metrics["samples"].update(batch.size)

    def bundle_meta(self, model: nn.Module) -> dict[str, Any]:
        return {}

    def figures(self, bundle: Path, example: RolloutExample) -> dict[str, Figure]:
        p = RolloutPredictor.load(bundle)
        steps = len(example.truth) - 1
        (rolled,) = p.roll(example.truth[:1].astype(np.float64), steps, [1])
        title = f"{p.name}: {example.title}"
        if isinstance(rolled, int):  # diverged: the predictor keeps no field of that rollout
            title += f", diverged at step {rolled}"
            rolled = np.full((steps, *example.truth.shape[1:]), np.nan)
        pred = np.concatenate([example.truth[:1], rolled])  # [S + 1, *grid, V], the initial state first
        return {
            "plots/rollout_slices.png": slices_figure(example.truth, pred, example.components, example.dt, title),
            "plots/energy_spectra.png": spectra_figure(example.truth, pred, example.dt, title),
        }


ROLLOUT_OBJECTIVE = RolloutObjective()
