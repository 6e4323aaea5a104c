"""Rollout recipes (task rollout): IFactFormer-m and its FNO baseline, trained identically on our own solver's
turbulence (`data.fields`), split by trajectory.

- `ifactformer-hit` / `fno-hit`: 3D forced homogeneous isotropic turbulence, 64³ DNS (ν = 0.01, ε = 0.1,
  dt = 0.01) sharp-filtered to 16³ (the IFactFormer papers train on filtered DNS), 8 trajectories (6 train,
  1 validation, 1 test) of 101 snapshots 0.1 time units apart after a spin-up of 20 time units; one model
  step = one snapshot. Generating it takes 3,000 solver steps per trajectory (0.27 s each on one CPU
  thread at 64³, so about 1.8 h for the 8 on CPU; `--set data.generate_device=cuda` on a GPU).
- `ifactformer-kolmogorov` / `fno-kolmogorov`: 2D Kolmogorov flow (sin 4y forcing, drag 0.1, ν = 0.01),
  64² DNS filtered to 32², 8 trajectories of 101 snapshots 0.1 time units apart: the cheap pair.
Both models of a pair get the same data, loss, schedule and epochs; only the model differs.
- Models: IFactFormer-m at the official defaults (width 96, 5 heads × 96, one block iterated 10 times;
  1,163,187 parameters in 3D, 803,234 in 2D), on a 2π box per axis. FNO sized to match: 3D width 17,
  5 modes per axis, 1,160,034 parameters (−0.3 %; isotropic modes for isotropic turbulence); 2D width
  20, 11 × 11 modes, 779,126 (−3 %).
- Training, the official schedule where the one training system allows it: lr 5e-4, batch 5, relative
  L2 loss (`training.tasks.rollout`), trained on 2-step pushforward unrolls (K = 2, the official one-step
  loss plus one pushforward step), scored on 10-step rollouts; AdamW (weight decay 0.01, torch's default
  as in the official code) with StepLR(5, 0.7), both models alike. Epochs: 10 by default (the paper trains 30:
  `--set trainer.max_epochs=30 --set trainer.patience=30`); patience = epochs, i.e. no early stopping, as
  the official loop keeps the best epoch without stopping. Two forward passes and one backward of
  IFactFormer-m on a batch of 5 at 16³ took 51 s on one busy CPU thread (FNO: 0.28 s); an epoch is 119
  such batches, so the 3D pair is a GPU recipe; the 2D pair has 4× fewer grid points.
`--smoke` (every recipe): the tiny models on a tiny dataset of the same kind (3D: 16³ DNS → 8³; 2D: 32² →
16²; 3 trajectories of 16 snapshots, a short spin-up), 2-step unrolls, 3-step scoring; seconds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from data.fields.generate import FieldGenConfig
from data.fields.windows import RolloutDataConfig
from forecasters.fno import FNOConfig
from forecasters.ifactformer import IFactFormerConfig
from training.recipes.recipe import Recipe, TrainerConfig

BOX = 2 * math.pi
TRAINER = TrainerConfig(
    max_epochs=10, patience=10, lr=5e-4, optimizer="adamw", weight_decay=0.01, lr_decay=0.7, lr_step=5, seed=2024
)

HIT = FieldGenConfig.for_kind(
    "hit3d", grid=64, filter_to=16, trajectories=8, snapshots=101, save_every=10, spinup_steps=2000, seed=0
)
KOLMOGOROV = FieldGenConfig.for_kind(
    "kolmogorov2d", grid=64, filter_to=32, trajectories=8, snapshots=101, save_every=20, spinup_steps=2000, seed=0
)
SMOKE_GEN = {
    "hit3d": dict(grid=16, filter_to=8, spinup_steps=100, save_every=5),
    "kolmogorov2d": dict(grid=32, filter_to=16, spinup_steps=100, save_every=10),
}


def data(generation: FieldGenConfig) -> RolloutDataConfig:
    return RolloutDataConfig(generation=generation, n_val=1, n_test=1, unroll=2, eval_steps=10, eval_hop=10)


def model_config(model: str, generation: FieldGenConfig) -> Any:
    """The model's config on the data's grid (the run ties grid and components to the data again)."""
    n, d = generation.stored_grid, generation.ndim
    if model == "ifactformer":
        return IFactFormerConfig(n_components=d, grid=(n,) * d, domain=(BOX,) * d)
    if d == 3:
        return FNOConfig(n_components=3, grid=(n,) * 3, modes=(5, 5, 5), width=17)
    return FNOConfig(n_components=2, grid=(n,) * 2, modes=(11, 11), width=20)


def tiny(recipe: Recipe) -> Recipe:
    """Tiny model on a tiny dataset of the same kind (module docstring); trainer limits come from `smoke`."""
    if not isinstance(recipe.data, RolloutDataConfig):
        raise TypeError(f"recipe {recipe.name}: the rollout smoke shrink needs rollout data")
    g = recipe.data.generation
    gen = dataclasses.replace(g, trajectories=3, snapshots=16, **SMOKE_GEN[g.kind])  # type: ignore[arg-type]
    smoke_data = dataclasses.replace(recipe.data, generation=gen, eval_steps=3, eval_hop=3, batch_size=4)
    grid = (gen.stored_grid,) * gen.ndim
    config = type(recipe.model_config).tiny(grid=grid, n_components=gen.ndim)
    return dataclasses.replace(recipe, model_config=config, data=smoke_data)


def rollout_recipe(model: str, flow: str, generation: FieldGenConfig, about: str) -> Recipe:
    name = f"{model}-{flow}"
    return Recipe(
        name=name,
        model=model,
        model_config=model_config(model, generation),
        data=data(generation),
        trainer=TRAINER,
        registered_name=name,
        description=about,
        tiny=tiny,
    )


def ifactformer_hit() -> Recipe:
    return rollout_recipe("ifactformer", "hit", HIT, "IFactFormer-m, official settings, forced HIT 64³ DNS -> 16³")


def fno_hit() -> Recipe:
    return rollout_recipe("fno", "hit", HIT, "FNO baseline (1.16 M), trained like ifactformer-hit")


def ifactformer_kolmogorov() -> Recipe:
    return rollout_recipe("ifactformer", "kolmogorov", KOLMOGOROV, "IFactFormer-m, 2D Kolmogorov flow 64² -> 32²")


def fno_kolmogorov() -> Recipe:
    return rollout_recipe("fno", "kolmogorov", KOLMOGOROV, "FNO baseline, trained like ifactformer-kolmogorov")


RECIPES: dict[str, Callable[[], Recipe]] = {
    "ifactformer-hit": ifactformer_hit,
    "fno-hit": fno_hit,
    "ifactformer-kolmogorov": ifactformer_kolmogorov,
    "fno-kolmogorov": fno_kolmogorov,
}
