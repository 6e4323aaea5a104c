"""Recipes: functions returning a typed, fully resolved training configuration.

`seer train RECIPE --set trainer.max_epochs=3 --set data.horizon=192` picks a recipe and applies
dotted overrides; MLflow logs the resolved result. Defaults follow the official code of each paper.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from data.windows import ForecastDataConfig
from forecasters import get_spec
from forecasters.informer import InformerConfig
from forecasters.itransformer import ITransformerConfig


@dataclass(frozen=True, kw_only=True)
class TrainerConfig:
    max_epochs: int = 10
    patience: int = 3  # early stopping on val MSE
    lr: float = 1e-4
    lr_decay: float = 0.5  # lr × decay after every epoch (the official "type1" schedule)
    seed: int = 2021
    accelerator: str = "auto"
    precision: str = "32-true"
    limit_train_batches: int | float = 1.0
    limit_val_batches: int | float = 1.0
    limit_test_batches: int | float = 1.0
    progress_bar: bool = True

    def __post_init__(self) -> None:
        if self.max_epochs < 1 or self.patience < 1:
            raise ValueError("max_epochs and patience must be >= 1")
        if self.lr <= 0:
            raise ValueError("lr must be > 0")


@dataclass(frozen=True, kw_only=True)
class Recipe:
    name: str
    model: str  # forecasters.REGISTRY key
    model_config: Any
    data: ForecastDataConfig
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    registered_name: str = ""  # MLflow registry name, "<model>-<dataset>"
    experiment: str = "seer"
    description: str = ""

    @property
    def task(self) -> str:
        return get_spec(self.model).task

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "registered_name": self.registered_name,
            "experiment": self.experiment,
            "model_config": self.model_config.to_dict(),
            "data": self.data.to_dict(),
            "trainer": dataclasses.asdict(self.trainer),
        }


# Width of iTransformer per (dataset, horizon) in the official scripts
# (thuml/iTransformer scripts/multivariate_forecasting/ETT/*.sh); d_ff equals d_model there.
ITRANSFORMER_ETT_WIDTH: dict[str, dict[int, int]] = {
    "ETTh1": {96: 256, 192: 256, 336: 512, 720: 512},
    "ETTh2": {96: 128, 192: 128, 336: 128, 720: 128},
    "ETTm1": {96: 128, 192: 128, 336: 128, 720: 128},
    "ETTm2": {96: 128, 192: 128, 336: 128, 720: 128},
}


def itransformer_ett(dataset: str, horizon: int = 96) -> Recipe:
    width = ITRANSFORMER_ETT_WIDTH[dataset].get(horizon, 256)
    return Recipe(
        name=f"itransformer-{dataset.lower()}",
        model="itransformer",
        model_config=ITransformerConfig(d_model=width, d_ff=width, n_heads=8, e_layers=2, dropout=0.1),
        data=ForecastDataConfig(dataset=dataset, lookback=96, horizon=horizon, batch_size=32, calendar_freq="h"),
        trainer=TrainerConfig(max_epochs=10, patience=3, lr=1e-4),
        registered_name=f"itransformer-{dataset.lower()}",
        description=f"iTransformer on {dataset}, lookback 96, official ETT settings",
    )


# Informer's two protocols. Both split ETT 12/4/4 months with the scaler fit on train rows.
# "today": the TSLib long-term-forecasting scripts (thuml/Time-Series-Library
#   scripts/long_term_forecast/ETT_script/Informer_ETT*.sh): lookback 96, label 48, factor 3,
#   dropout 0.1, up to 10 epochs — the setting every recent paper's Informer row comes from.
# "original": the official scripts (zhouhaoyi/Informer2020 scripts/ETT*.sh, multivariate "M"):
#   per horizon (lookback, label_len, factor), dropout 0.05, 6 epochs.
INFORMER_ORIGINAL: dict[str, dict[int, tuple[int, int, int]]] = {
    "ETTh1": {24: (48, 48, 3), 48: (96, 48, 5), 168: (168, 168, 5), 336: (168, 168, 5), 720: (336, 336, 5)},
    "ETTh2": {24: (48, 48, 5), 48: (96, 96, 5), 168: (336, 336, 5), 336: (336, 168, 5), 720: (720, 336, 5)},
    "ETTm1": {24: (672, 96, 5), 48: (96, 48, 5), 96: (384, 384, 5), 288: (672, 288, 5), 672: (672, 384, 5)},
}
INFORMER_DATASETS = ("ETTh1", "ETTh2", "ETTm1", "ETTm2")


def informer_ett(dataset: str, horizon: int | None = None, protocol: str = "today") -> Recipe:
    """Informer on an ETT set under `protocol` "today" (default horizon 96) or "original" (24)."""
    if protocol == "today":
        horizon = horizon or 96
        lookback, label_len, factor, dropout, epochs = 96, 48, 3, 0.1, 10
        suffix, source = "", "TSLib scripts (lookback 96, label 48, factor 3)"
    elif protocol == "original":
        table = INFORMER_ORIGINAL.get(dataset)
        if table is None:
            raise ValueError(f"no original-protocol Informer settings for {dataset}; have {sorted(INFORMER_ORIGINAL)}")
        horizon = horizon or min(table)
        if horizon not in table:
            raise ValueError(f"original protocol horizons for {dataset} are {sorted(table)}, got {horizon}")
        (lookback, label_len, factor), dropout, epochs = table[horizon], 0.05, 6
        suffix, source = "-original", f"official Informer2020 script (lookback {lookback}, label {label_len})"
    else:
        raise ValueError(f"protocol must be 'today' or 'original', got {protocol!r}")
    name = f"informer-{dataset.lower()}{suffix}"
    return Recipe(
        name=name,
        model="informer",
        model_config=InformerConfig(
            lookback=lookback, horizon=horizon, label_len=label_len, factor=factor, dropout=dropout
        ),
        data=ForecastDataConfig(dataset=dataset, lookback=lookback, horizon=horizon, batch_size=32, calendar_freq="h"),
        trainer=TrainerConfig(max_epochs=epochs, patience=3, lr=1e-4),
        registered_name=name,
        description=f"Informer on {dataset}, horizon {horizon}, {source}",
    )


RECIPES: dict[str, Callable[[], Recipe]] = {
    **{f"itransformer-{ds.lower()}": (lambda ds=ds: itransformer_ett(ds)) for ds in ITRANSFORMER_ETT_WIDTH},
    **{f"informer-{ds.lower()}": (lambda ds=ds: informer_ett(ds)) for ds in INFORMER_DATASETS},
    **{
        f"informer-{ds.lower()}-original": (lambda ds=ds: informer_ett(ds, protocol="original"))
        for ds in INFORMER_ORIGINAL
    },
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; available: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]()


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def apply_overrides(recipe: Recipe, overrides: list[str]) -> Recipe:
    """Apply `section.field=value` overrides (sections: model, data, trainer; or a top-level field)."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like section.field=value")
        key, raw = item.split("=", 1)
        value = _parse_value(raw)
        section, _, name = key.partition(".")
        attr = {"model": "model_config"}.get(section, section)
        if not name:
            if section not in {f.name for f in dataclasses.fields(recipe)}:
                raise ValueError(f"unknown recipe field {section!r}")
            recipe = dataclasses.replace(recipe, **{section: value})
            continue
        if attr not in ("model_config", "data", "trainer"):
            raise ValueError(f"unknown section {section!r} in {item!r}; use model., data. or trainer.")
        sub = getattr(recipe, attr)
        fields = {f.name for f in dataclasses.fields(sub)}
        if name not in fields:
            raise ValueError(f"{section} has no field {name!r}; fields: {', '.join(sorted(fields))}")
        if isinstance(getattr(sub, name), tuple) and isinstance(value, list):
            value = tuple(value)
        recipe = dataclasses.replace(recipe, **{attr: dataclasses.replace(sub, **{name: value})})
    return recipe


def smoke(recipe: Recipe) -> Recipe:
    """The recipe's tiny config for a few steps, same path end to end (demos and checks)."""
    tiny = type(recipe.model_config).tiny()
    return dataclasses.replace(
        recipe,
        model_config=tiny,
        trainer=dataclasses.replace(
            recipe.trainer, max_epochs=1, limit_train_batches=2, limit_val_batches=2, limit_test_batches=2
        ),
    )
