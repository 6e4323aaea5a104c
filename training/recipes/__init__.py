"""Recipes: functions returning a typed, fully resolved training configuration.

`seer train RECIPE --set trainer.max_epochs=3 --set data.horizon=192` picks a recipe and applies
dotted overrides; MLflow logs the resolved result. Defaults follow the official code of each paper.

Two kinds of recipe: a dataset recipe (`data` a `ForecastDataConfig`: one dataset, its protocol split
and scaler) and a corpus-pretraining recipe (`corpus` set, `data` a `training.pretrain.
PretrainDataConfig`: batches from the pretraining mixture, early stopping on held-out val windows,
optionally a dense `warmup` for centroid routing). Override sections: model., data., trainer., and
corpus. / warmup. for corpus recipes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from data.series.corpus import DEFAULT_MIXTURE, ZERO_SHOT_EXCLUDE, CorpusConfig
from data.series.windows import ForecastDataConfig
from inference.registry import get_spec
from forecasters.informer import InformerConfig
from forecasters.itransformer import ITransformerConfig
from forecasters.moirai_moe import MoiraiMoEConfig
from training.pretrain import PretrainDataConfig, WarmupConfig

MONITORS = ("val_mse", "val_mae", "val_nll")  # what early stopping can watch (val_nll: probabilistic models)


@dataclass(frozen=True, kw_only=True)
class TrainerConfig:
    max_epochs: int = 10
    patience: int = 3  # early stopping on `monitor`
    lr: float = 1e-4
    lr_decay: float = 0.5  # lr × decay after every epoch (the official "type1" schedule)
    seed: int = 2021
    accelerator: str = "auto"
    precision: str = "32-true"
    limit_train_batches: int | float = 1.0
    limit_val_batches: int | float = 1.0
    limit_test_batches: int | float = 1.0
    progress_bar: bool = True
    monitor: str = "val_mse"  # early stopping and best weights: val_mse | val_mae | val_nll (probabilistic)
    gradient_clip_val: float | None = None  # clip the gradient norm (None: no clipping)

    def __post_init__(self) -> None:
        if self.max_epochs < 1 or self.patience < 1:
            raise ValueError("max_epochs and patience must be >= 1")
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {MONITORS}, got {self.monitor!r}")
        if self.gradient_clip_val is not None and self.gradient_clip_val <= 0:
            raise ValueError("gradient_clip_val must be > 0 or None")


@dataclass(frozen=True, kw_only=True)
class Recipe:
    name: str
    model: str  # forecasters.REGISTRY key
    model_config: Any
    data: ForecastDataConfig | PretrainDataConfig
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    registered_name: str = ""  # MLflow registry name, "<model>-<dataset>"
    experiment: str = "seer"
    description: str = ""
    corpus: CorpusConfig | None = None  # set: pretrain on the corpus mixture (data is a PretrainDataConfig)
    warmup: WarmupConfig | None = None  # dense warm-up for centroid routing (corpus recipes, router "centroid")

    def __post_init__(self) -> None:
        if (self.corpus is not None) != isinstance(self.data, PretrainDataConfig):
            raise ValueError("a corpus recipe needs data=PretrainDataConfig, and PretrainDataConfig needs a corpus")
        if self.warmup is not None and self.corpus is None:
            raise ValueError("warmup is for corpus recipes only")

    @property
    def task(self) -> str:
        return get_spec(self.model).task

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "model": self.model,
            "registered_name": self.registered_name,
            "experiment": self.experiment,
            "model_config": self.model_config.to_dict(),
            "data": self.data.to_dict(),
            "trainer": dataclasses.asdict(self.trainer),
        }
        if self.corpus is not None:
            out["corpus"] = dataclasses.asdict(self.corpus)
        if self.warmup is not None:
            out["warmup"] = self.warmup.to_dict()
        return out


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
        # TSLib's ProbAttention returns [B, H, L, E] and its AttentionLayer views that as [B, L, H·E]:
        # every ProbSparse layer "mixes", the encoder's too (Informer2020 mixes in the decoder only).
        mix_encoder = True
    elif protocol == "original":
        table = INFORMER_ORIGINAL.get(dataset)
        if table is None:
            raise ValueError(f"no original-protocol Informer settings for {dataset}; have {sorted(INFORMER_ORIGINAL)}")
        horizon = horizon or min(table)
        if horizon not in table:
            raise ValueError(f"original protocol horizons for {dataset} are {sorted(table)}, got {horizon}")
        (lookback, label_len, factor), dropout, epochs = table[horizon], 0.05, 6
        mix_encoder = False
        suffix, source = "-original", f"official Informer2020 script (lookback {lookback}, label {label_len})"
    else:
        raise ValueError(f"protocol must be 'today' or 'original', got {protocol!r}")
    name = f"informer-{dataset.lower()}{suffix}"
    return Recipe(
        name=name,
        model="informer",
        model_config=InformerConfig(
            lookback=lookback,
            horizon=horizon,
            label_len=label_len,
            factor=factor,
            dropout=dropout,
            mix_encoder=mix_encoder,
        ),
        data=ForecastDataConfig(dataset=dataset, lookback=lookback, horizon=horizon, batch_size=32, calendar_freq="h"),
        trainer=TrainerConfig(max_epochs=epochs, patience=3, lr=1e-4),
        registered_name=name,
        description=f"Informer on {dataset}, horizon {horizon}, {source}",
    )


# Moirai-MoE pretraining on the corpus (data.series.corpus): ETT, weather and exchange_rate train rows plus
# the KernelSynth, seasonal and random-walk generators, in DEFAULT_MIXTURE proportions. Every window has a fixed
# context L and horizon H (the served lookback and point horizon; sampled quantiles reach
# max_horizon); early stopping on the NLL of held-out windows of the val splits.
# "tiny": the CPU model (MoiraiMoEConfig.cpu(): 4 layers, D 128, 8 experts × 256, top-2; centroid
#   router after a one-epoch dense warm-up), L 256 (16 patches of 16), H 64 (4 patches). An epoch is
#   1600 windows (~54 batches of 32 once grouped by variate count); warm-up + 10 epochs take well under
#   an hour on 2 CPU cores (measured: forecasters/moirai_moe/README.md, "Training").
# "small": the paper's Small (6 layers, D 384, 32 experts × 512) for one GPU in bf16, L 512, H 64.
MOIRAI_WINDOW: dict[str, tuple[int, int]] = {"tiny": (256, 64), "small": (512, 64)}  # (L, H)


def moirai_moe(size: str = "tiny", zero_shot: bool = False) -> Recipe:
    """Moirai-MoE pretrained on the corpus mixture: `size` "tiny" (CPU) or "small" (GPU, the paper's
    Small); `zero_shot` keeps `ZERO_SHOT_EXCLUDE` (weather, exchange_rate) out of training and validation."""
    if size not in MOIRAI_WINDOW:
        raise ValueError(f"size must be one of {sorted(MOIRAI_WINDOW)}, got {size!r}")
    exclude = ZERO_SHOT_EXCLUDE if zero_shot else ()
    lookback, horizon = MOIRAI_WINDOW[size]
    window: dict[str, Any] = dict(context_length=(lookback, lookback), horizon=(horizon, horizon))
    if size == "tiny":
        model_config = MoiraiMoEConfig.cpu(router="centroid")
        data = PretrainDataConfig(lookback=lookback, horizon=horizon, batch_size=32, eval_windows=8)
        corpus = CorpusConfig(sources=dict(DEFAULT_MIXTURE), exclude=exclude, epoch_size=1_600, **window)
        warmup = WarmupConfig(epochs=3, centroid_batches=16)
        trainer = TrainerConfig(
            max_epochs=80, patience=8, lr=1e-3, lr_decay=0.97, monitor="val_nll", gradient_clip_val=1.0, seed=0
        )
        what = "CPU model (4 layers, D 128, 8 experts, top-2)"
    else:
        model_config = MoiraiMoEConfig.small(router="centroid")
        data = PretrainDataConfig(lookback=lookback, horizon=horizon, batch_size=128, eval_windows=64, num_workers=4)
        corpus = CorpusConfig(sources=dict(DEFAULT_MIXTURE), exclude=exclude, epoch_size=25_600, **window)
        warmup = WarmupConfig(epochs=2, centroid_batches=32)
        trainer = TrainerConfig(
            max_epochs=40,
            patience=5,
            lr=1e-3,
            lr_decay=0.93,
            monitor="val_nll",
            gradient_clip_val=1.0,
            seed=0,
            accelerator="gpu",
            precision="bf16-mixed",
        )
        what = "the paper's Small (6 layers, D 384, 32 experts × 512, top-2) on one GPU, bf16"
    name = f"moirai-moe-{size}" + ("-zeroshot" if zero_shot else "")
    held_out = f", {' and '.join(exclude)} held out for zero-shot evaluation" if exclude else ""
    return Recipe(
        name=name,
        model="moirai_moe",
        model_config=model_config,
        data=data,
        trainer=trainer,
        registered_name=name,
        description=f"Moirai-MoE pretrained on the corpus mixture: {what}, context {lookback}, "
        f"horizon {horizon}{held_out}",
        corpus=corpus,
        warmup=warmup,
    )


RECIPES: dict[str, Callable[[], Recipe]] = {
    **{f"itransformer-{ds.lower()}": (lambda ds=ds: itransformer_ett(ds)) for ds in ITRANSFORMER_ETT_WIDTH},
    **{f"informer-{ds.lower()}": (lambda ds=ds: informer_ett(ds)) for ds in INFORMER_DATASETS},
    **{
        f"informer-{ds.lower()}-original": (lambda ds=ds: informer_ett(ds, protocol="original"))
        for ds in INFORMER_ORIGINAL
    },
    "moirai-moe-tiny": lambda: moirai_moe("tiny"),
    "moirai-moe-tiny-zeroshot": lambda: moirai_moe("tiny", zero_shot=True),
    "moirai-moe-small": lambda: moirai_moe("small"),
    "moirai-moe-small-zeroshot": lambda: moirai_moe("small", zero_shot=True),
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


SECTIONS = ("model_config", "data", "trainer", "corpus", "warmup")


def apply_overrides(recipe: Recipe, overrides: list[str]) -> Recipe:
    """Apply `section.field=value` overrides (sections: model, data, trainer, and corpus, warmup for
    corpus recipes; or a top-level field)."""
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
        if attr not in SECTIONS:
            raise ValueError(
                f"unknown section {section!r} in {item!r}; use model., data., trainer., corpus. or warmup."
            )
        sub = getattr(recipe, attr)
        if sub is None:
            raise ValueError(f"recipe {recipe.name} has no {section} section")
        fields = {f.name for f in dataclasses.fields(sub)}
        if name not in fields:
            raise ValueError(f"{section} has no field {name!r}; fields: {', '.join(sorted(fields))}")
        if isinstance(getattr(sub, name), tuple) and isinstance(value, list):
            value = tuple(value)
        recipe = dataclasses.replace(recipe, **{attr: dataclasses.replace(sub, **{name: value})})
    return recipe


def smoke(recipe: Recipe) -> Recipe:
    """The recipe's tiny config for a few steps, same path end to end (demos and checks).

    Corpus recipes also get a tiny corpus epoch (32 windows of the tiny model's lookback and horizon,
    8 synthetic series per generator), 2 held-out windows per dataset, a one-epoch 2-batch warm-up, and
    keep their router (so `--set model.router=learned --smoke` smoke-tests the learned router)."""
    trainer = dataclasses.replace(
        recipe.trainer, max_epochs=1, limit_train_batches=2, limit_val_batches=2, limit_test_batches=2
    )
    if recipe.corpus is None or not isinstance(recipe.data, PretrainDataConfig):
        return dataclasses.replace(recipe, model_config=type(recipe.model_config).tiny(), trainer=trainer)
    tiny = type(recipe.model_config).tiny(router=recipe.model_config.router)
    corpus = dataclasses.replace(
        recipe.corpus,
        context_length=(tiny.lookback, tiny.lookback),
        horizon=(tiny.horizon, tiny.horizon),
        epoch_size=32,
        n_synthetic=8,
        synthetic_length=256,
    )
    data = dataclasses.replace(
        recipe.data, lookback=tiny.lookback, horizon=tiny.horizon, batch_size=8, eval_windows=2, num_workers=0
    )
    warmup = recipe.warmup and dataclasses.replace(
        recipe.warmup, epochs=1, limit_train_batches=2, centroid_batches=2, kmeans_iters=10
    )
    return dataclasses.replace(recipe, model_config=tiny, data=data, corpus=corpus, warmup=warmup, trainer=trainer)
