"""The model contract every family implements, owned by no family.

A family package (`forecasters`, `signals`) exports `SPECS`: one typed `ModelSpec` per model, naming
its task. `inference.registry` assembles the one registry of all families; every consumer looks models
up there by name (never by importing a family), filtered by task where it needs to.

Tasks and their tensor contracts (B batch, L lookback, H horizon, N variates/channels, T time,
F features, W flows per window, K classes, Q quantiles, X/Y/Z grid, V field components):
  forecast  x[B, L, N] (+ calendar marks [B, L, F], [B, H, F]) -> y[B, H, N]
  denoise   x[B, N, T] -> x_clean[B, N, T]
  classify  flows[B, W, F] -> logits[B, K]
  rollout   u[B, X, Y(, Z), V] -> u_next, and `rollout(u, steps)`

Optional abilities a model may have are `typing.Protocol`s below (runtime-checkable), so callers ask
`isinstance(model, ProbabilisticForecaster)` instead of probing attributes with `getattr`; the
conformance suite checks that a model claiming an ability really has it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

TASKS = ("forecast", "denoise", "classify", "rollout")


@runtime_checkable
class ModelConfig(Protocol):
    """What every `<Model>Config` offers (see `core.config.ConfigMixin`)."""

    def to_dict(self) -> dict[str, Any]: ...

    def replace(self, **changes: Any) -> Any: ...


@runtime_checkable
class ProbabilisticForecaster(Protocol):
    """A forecaster with a predictive distribution: it trains on its own `loss` (a negative
    log-likelihood, plus any auxiliary term) and serves `quantiles` up to `max_horizon`."""

    @property
    def max_horizon(self) -> int: ...

    def loss(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor: ...

    def quantiles(
        self,
        x: torch.Tensor,
        levels: Sequence[float],
        num_samples: int | None = None,
        generator: torch.Generator | None = None,
        horizon: int | None = None,
    ) -> torch.Tensor: ...


@runtime_checkable
class AuxiliaryLoss(Protocol):
    """A model whose `loss` adds `aux_loss_weight × aux_loss()` (e.g. a learned MoE router's
    load-balancing term); the likelihood alone is `loss − weight × aux_loss()`."""

    @property
    def aux_loss_weight(self) -> float: ...

    def aux_loss(self) -> torch.Tensor: ...


@runtime_checkable
class RolloutModel(Protocol):
    """A rollout model: one step `forward(u)` and an autoregressive `rollout(u, steps)`."""

    def rollout(self, u: torch.Tensor, steps: int) -> torch.Tensor: ...


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its name, task, config and module classes, and the paper it implements.

    `example_inputs(config, batch)` returns the positional inputs of `model(*inputs)` for a config
    (random, seeded by the caller's torch generator), so the conformance suite can run any model of any
    task without knowing its signature."""

    name: str
    task: str
    config_cls: type[Any]
    model_cls: type[nn.Module]
    paper: str
    example_inputs: Callable[[Any, int, torch.Generator], tuple[torch.Tensor, ...]] = field(compare=False)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"model {self.name!r}: unknown task {self.task!r}; tasks: {', '.join(TASKS)}")

    def config(self, config: Any) -> Any:
        """`config` as this model's config class (a dict is parsed strictly)."""
        if isinstance(config, dict):
            config = self.config_cls.from_dict(config)
        if not isinstance(config, self.config_cls):
            raise TypeError(f"{self.name} needs a {self.config_cls.__name__}, got {type(config).__name__}")
        return config

    def build(self, config: Any) -> nn.Module:
        return self.model_cls(self.config(config))
