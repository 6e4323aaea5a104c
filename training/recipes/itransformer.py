"""iTransformer recipes: `itransformer-<ett>`, one ETT dataset, lookback 96, the official settings; and
`FILE_RECIPES["itransformer"]`, the same settings on a user's file."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from data.series.windows import ForecastDataConfig
from forecasters.itransformer import ITransformerConfig
from training.recipes.recipe import Recipe, TrainerConfig

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


def itransformer_file(path: str, *, horizon: int, name: str, targets: tuple[str, ...] = ()) -> Recipe:
    """iTransformer on a user's file: lookback 96 (less for a short file), the calendar features of its
    frequency, the 70/10/20 split, and the official ETTh1 settings (width 256, 2 layers, 10 epochs)."""
    data = ForecastDataConfig.from_file(path, horizon, lookback=96, targets=targets, batch_size=32)
    return Recipe(
        name=name,
        model="itransformer",
        model_config=ITransformerConfig(d_model=256, d_ff=256, n_heads=8, e_layers=2, dropout=0.1),
        data=data,
        trainer=TrainerConfig(max_epochs=10, patience=3, lr=1e-4),
        registered_name=name,
        description=f"iTransformer on {path}, lookback {data.lookback}, horizon {horizon}",
    )


FILE_RECIPES = {"itransformer": itransformer_file}

RECIPES: dict[str, Callable[[], Recipe]] = {
    f"itransformer-{ds.lower()}": partial(itransformer_ett, ds) for ds in ITRANSFORMER_ETT_WIDTH
}
