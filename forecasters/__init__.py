"""Forecasting models. `REGISTRY` maps a model name to its spec; the training system, the bundle
loader and the conformance suite all go through it, so a new model is one folder + one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from forecasters.informer.config import InformerConfig
from forecasters.informer.model import Informer
from forecasters.itransformer.config import ITransformerConfig
from forecasters.itransformer.model import ITransformer
from forecasters.moirai_moe.config import MoiraiMoEConfig
from forecasters.moirai_moe.model import MoiraiMoE

TASKS = ("forecast", "denoise", "classify", "rollout")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str
    config_cls: type[Any]
    model_cls: type[nn.Module]
    paper: str

    def build(self, config: Any) -> nn.Module:
        if isinstance(config, dict):
            config = self.config_cls.from_dict(config)
        if not isinstance(config, self.config_cls):
            raise TypeError(f"{self.name} needs a {self.config_cls.__name__}, got {type(config).__name__}")
        return self.model_cls(config)


REGISTRY: dict[str, ModelSpec] = {
    "informer": ModelSpec(
        name="informer",
        task="forecast",
        config_cls=InformerConfig,
        model_cls=Informer,
        paper="Zhou et al., Informer: Beyond Efficient Transformer for Long Sequence Time-Series Forecasting, "
        "AAAI 2021",
    ),
    "itransformer": ModelSpec(
        name="itransformer",
        task="forecast",
        config_cls=ITransformerConfig,
        model_cls=ITransformer,
        paper="Liu et al., iTransformer: Inverted Transformers Are Effective for Time Series Forecasting, ICLR 2024",
    ),
    "moirai_moe": ModelSpec(
        name="moirai_moe",
        task="forecast",
        config_cls=MoiraiMoEConfig,
        model_cls=MoiraiMoE,
        paper="Liu et al., Moirai-MoE: Empowering Time Series Foundation Models with Sparse Mixture of Experts, "
        "arXiv:2410.10469, 2024",
    ),
}


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(REGISTRY))}") from None
