"""Tiny IFactFormer-m rollout bundles the rollout tests share, and flow fields to send them. Imported as
`tests.inference.rollout_bundles` (not a test module).

The transform is the rollout contract's, with a mean and std far from (0, 1) so that a predictor that
forgets to normalise (or to undo it) gives visibly different numbers. Bounds are small so that each rule
can be reached cheaply: max_steps 50, max_cost 40 steps of the grid, at most 10 fields per answer.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forecasters.ifactformer import IFactFormer, IFactFormerConfig
from inference.bundle import save_bundle

GRID_2D, GRID_3D = (8, 8), (6, 6, 6)
MEAN, STD = [0.5, -0.2, 0.1], [2.0, 0.5, 1.5]
MAX_STEPS, COST_STEPS, MAX_FIELDS = 50, 40, 10
DT = 0.05
BLOW_UP = 1e4  # output weights scaled by this: the tiny model's field grows ~500× per step and turns NaN at step 9


def flow(grid: tuple[int, ...] = GRID_2D, seed: int = 0) -> np.ndarray:
    """[*grid, V] a smooth periodic velocity field in physical units (a Taylor–Green-like vortex + noise)."""
    rng = np.random.default_rng(seed)
    axes = np.meshgrid(*(np.linspace(0, 2 * math.pi, n, endpoint=False) for n in grid), indexing="ij")
    V = len(grid)
    base = [np.sin(axes[0] + k) * np.cos(axes[1] - k) for k in range(V)]
    u = np.stack(base, axis=-1) * np.asarray(STD[:V]) + np.asarray(MEAN[:V])
    return u + 0.1 * rng.standard_normal(u.shape)


def make_rollout_bundle(
    directory: Path, *, grid: tuple[int, ...] = GRID_2D, name: str = "ifactformer-test", blow_up: float = 1.0
) -> Path:
    """A tiny IFactFormer-m bundle (random weights, seeded) on `grid` with V = len(grid) components."""
    torch.manual_seed(0)
    V = len(grid)
    cfg = IFactFormerConfig.tiny(grid=grid, n_components=V)
    model = IFactFormer(cfg)
    if blow_up != 1.0:
        with torch.no_grad():
            model.proj_out.weight.mul_(blow_up)
            model.proj_out.bias.mul_(blow_up)
    points = math.prod(grid)
    transform: dict[str, Any] = {
        "grid": list(grid),
        "components": ["u", "v", "w"][:V],
        "mean": MEAN[:V],
        "std": STD[:V],
        "dt": DT,
        "domain": [2 * math.pi] * V,
        "max_steps": MAX_STEPS,
        "max_cost": points * COST_STEPS,
        "max_response_points": points * MAX_FIELDS,
        "dataset": "test",
        "generation": {"seed": 0},
    }
    meta = {
        "name": name,
        "model": "ifactformer",
        "task": "rollout",
        "model_config": cfg.to_dict(),
        "transform": transform,
        "example_input": {"field": np.round(flow(grid), 4).tolist(), "steps": 2},
        "metrics": {"test_rel_l2_step1": 0.1, "test_rel_l2_step10": 0.3},
    }
    return save_bundle(directory, model, meta)
