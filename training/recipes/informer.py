"""Informer recipes: `informer-<ett>` (today's protocol, lookback 96) and `informer-<ett>-original`
(the official Informer scripts' protocol); `FILE_RECIPES["informer"]`: today's protocol on a user's file."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from data.series.windows import ForecastDataConfig
from forecasters.informer import InformerConfig
from training.recipes.recipe import Recipe, TrainerConfig

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


def informer_file(path: str, *, horizon: int, name: str, targets: tuple[str, ...] = ()) -> Recipe:
    """Informer on a user's file under today's protocol (TSLib): lookback 96 (less for a short file),
    the decoder's start token half the lookback (TSLib's label 48 of 96), factor 3, the calendar
    features of the file's frequency, the 70/10/20 split."""
    data = ForecastDataConfig.from_file(path, horizon, lookback=96, targets=targets, batch_size=32)
    config = InformerConfig(
        lookback=data.lookback,
        horizon=horizon,
        label_len=max(1, data.lookback // 2),
        factor=3,
        dropout=0.1,
        mix_encoder=True,
    )
    return Recipe(
        name=name,
        model="informer",
        model_config=config,
        data=data,
        trainer=TrainerConfig(max_epochs=10, patience=3, lr=1e-4),
        registered_name=name,
        description=f"Informer on {path}, lookback {data.lookback}, label {config.label_len}, horizon {horizon}",
    )


FILE_RECIPES = {"informer": informer_file}

RECIPES: dict[str, Callable[[], Recipe]] = {
    **{f"informer-{ds.lower()}": partial(informer_ett, ds) for ds in INFORMER_DATASETS},
    **{f"informer-{ds.lower()}-original": partial(informer_ett, ds, protocol="original") for ds in INFORMER_ORIGINAL},
}
