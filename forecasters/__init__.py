"""Forecasting models: of series (task `forecast`) and of flow fields (task `rollout`). `SPECS` lists them for
`inference.registry`, which assembles the registry of all families; a new model is one folder plus
one entry here.
"""

from __future__ import annotations

from typing import Any

import torch

from core.registry import ModelSpec
from forecasters.fno import FNO, FNOConfig
from forecasters.ifactformer import IFactFormer, IFactFormerConfig
from forecasters.informer.config import InformerConfig
from forecasters.informer.model import Informer
from forecasters.itransformer.config import ITransformerConfig
from forecasters.itransformer.model import ITransformer
from forecasters.moirai_moe.config import MoiraiMoEConfig
from forecasters.moirai_moe.model import MoiraiMoE


def forecast_inputs(config: Any, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """`(x [B, L, N], x_mark [B, L, F], y_mark [B, H, F])`: a scaled history and its calendar marks
    (F = config.n_marks, in [-0.5, 0.5) like `data.series.calendar`)."""
    x = torch.randn(batch, config.lookback, config.n_variates, generator=generator)
    x_mark = torch.rand(batch, config.lookback, config.n_marks, generator=generator) - 0.5
    y_mark = torch.rand(batch, config.horizon, config.n_marks, generator=generator) - 0.5
    return x, x_mark, y_mark


def rollout_inputs(config: Any, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """`(u [B, *grid, V],)`: a unit-scale random field on the model's grid (rollout models take fields
    normalised per component by the task's transform)."""
    return (torch.randn(batch, *config.grid, config.n_components, generator=generator),)


SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="informer",
        task="forecast",
        config_cls=InformerConfig,
        model_cls=Informer,
        paper="Zhou et al., Informer: Beyond Efficient Transformer for Long Sequence Time-Series Forecasting, "
        "AAAI 2021",
        example_inputs=forecast_inputs,
    ),
    ModelSpec(
        name="itransformer",
        task="forecast",
        config_cls=ITransformerConfig,
        model_cls=ITransformer,
        paper="Liu et al., iTransformer: Inverted Transformers Are Effective for Time Series Forecasting, ICLR 2024",
        example_inputs=forecast_inputs,
    ),
    ModelSpec(
        name="moirai_moe",
        task="forecast",
        config_cls=MoiraiMoEConfig,
        model_cls=MoiraiMoE,
        paper="Liu et al., Moirai-MoE: Empowering Time Series Foundation Models with Sparse Mixture of Experts, "
        "arXiv:2410.10469, 2024",
        example_inputs=forecast_inputs,
    ),
    ModelSpec(
        name="ifactformer",
        task="rollout",
        config_cls=IFactFormerConfig,
        model_cls=IFactFormer,
        paper="Yang, Wang & Wang, Implicit factorized transformer approach to fast prediction of turbulent channel "
        "flows, Sci. China Phys. Mech. Astron. 69, 214606 (2026), arXiv:2412.18840",
        example_inputs=rollout_inputs,
    ),
    ModelSpec(
        name="fno",
        task="rollout",
        config_cls=FNOConfig,
        model_cls=FNO,
        paper="Li et al., Fourier Neural Operator for Parametric Partial Differential Equations, ICLR 2021",
        example_inputs=rollout_inputs,
    ),
)
