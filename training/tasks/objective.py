"""The `Objective` protocol: what the one Lightning system (`training.system`) and `training.run` need to
know about a task.

An objective is stateless (one instance per task, in `training.tasks.OBJECTIVES`); the accumulators it
creates live in the system. Batches are the task's typed batches (`data.schemas`), e.g. a forecast
objective reads `ForecastBatch`; the evaluation example is what the task's DataModules return from
`evaluation_example()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
from matplotlib.figure import Figure
from torch import nn
from torchmetrics import Metric

SPLITS = ("val", "test")  # the evaluation splits; a metric `m` of split `s` is logged as `{s}_{m}`


class Objective(Protocol):
    @property
    def task(self) -> str: ...

    @property
    def monitors(self) -> tuple[str, ...]:
        """Every metric early stopping may watch for some model of the task (`val_<metric>`)."""
        ...

    @property
    def default_monitor(self) -> str:
        """What early stopping watches when the recipe does not say."""
        ...

    def metrics(self, model: nn.Module, split: str) -> dict[str, Metric]:
        """Fresh accumulators for one split ("val" | "test"), by metric name (logged as `{split}_{name}`);
        which ones may depend on the model (e.g. a likelihood for models that have one)."""
        ...

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """The differentiable training loss of one batch."""
        ...

    def update(self, model: nn.Module, batch: Any, metrics: Mapping[str, Metric]) -> None:
        """Accumulate one evaluation batch into the split's `metrics` (those `metrics()` made)."""
        ...

    def bundle_meta(self, model: nn.Module) -> dict[str, Any]:
        """Task fields the bundle's meta carries for this model (what serving needs to know of it)."""
        ...

    def figures(self, bundle: Path, example: Any) -> dict[str, Figure]:
        """The plots logged after a run, by artifact path, made from the saved bundle on the data's
        evaluation example."""
        ...
