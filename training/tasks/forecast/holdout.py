"""The forecast task's retraining holdout: fresh wide frames, the last forecast windows, original units.

1. Fresh data: every file the pattern matches (sorted by name) is read and normalised to the wide frame
   (`date` + one column per variate; long `unique_id, ds, y` files too); they are concatenated,
   deduplicated by `date` (a later file in name order wins, so a correction file overrides) and sorted.
   The challenger trains on it written as one Parquet file (so the usual 70/10/20 chronological split
   applies).
2. Holdout: the last W forecast origins of the fresh data. With T rows and horizon H, origin
   o = T-H-W+1 .. T-H takes the `lookback` rows before o as history (each model its own lookback) and
   rows [o, o+H) as truth, so the last window ends on the last row. The holdout's targets must all lie
   in the challenger's test rows (its last 20 %), else the job fails before training and says how many
   windows fit.
3. Scores: each model forecasts the windows through `ForecastPredictor.predict`, with its own stored
   scaler, and is scored in ORIGINAL units (MSE/MAE over every element of every window). Each model's
   scaled test metrics are not comparable (different scalers, different test rows); these are.
   Large-valued variates weigh more, as they do in the units users see.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from data.series.readers import DataFormatError, read_series
from training.tasks.holdout import FreshData, HoldoutWindows, match_files

if TYPE_CHECKING:
    from inference.tasks.forecast import ForecastPredictor
    from training.recipes import Recipe

_CHUNK = 256  # windows per predict call: bounds the memory of one batch of histories


def load_fresh(pattern: str) -> tuple[pl.DataFrame, list[Path]]:
    """Every matching file as one wide frame: concatenated, deduplicated by date (later file wins), sorted."""
    files = match_files(pattern)
    frames = []
    for f in files:
        try:
            frames.append(read_series(f))
        except Exception as e:
            raise DataFormatError(f"{f}: {e}") from e
    columns = frames[0].columns
    for f, frame in zip(files, frames, strict=True):
        if set(frame.columns) != set(columns):
            raise DataFormatError(
                f"{f} has columns {frame.columns}, {files[0]} has {columns}: every file must hold the same variates"
            )
    frame = pl.concat([fr.select(columns) for fr in frames], how="vertical")
    frame = frame.unique(subset="date", keep="last", maintain_order=True).sort("date")
    nulls = [c for c in columns if frame[c].null_count()]
    if nulls:
        raise DataFormatError(f"missing values in {nulls} after combining {len(files)} file(s) matching {pattern!r}")
    return frame, files


def holdout_origins(n_rows: int, lookback: int, horizon: int, windows: int) -> range:
    """Forecast origins of the holdout: the last `windows` ones, all inside the challenger's test rows."""
    from data.series.protocols import ratio_split

    split = ratio_split(n_rows, lookback)  # the split `train()` uses for a file dataset
    first_test_target = split.test[0] + lookback
    origins = range(n_rows - horizon - windows + 1, n_rows - horizon + 1)
    if origins.start < first_test_target:
        fit = n_rows - horizon - first_test_target + 1
        raise ValueError(
            f"holdout_windows={windows} does not fit in the challenger's test rows: with {n_rows} rows and "
            f"horizon {horizon}, at most {max(fit, 0)} windows end inside the last {n_rows - first_test_target} "
            "rows; lower holdout_windows or add data"
        )
    return origins


def holdout_scores(predictor: ForecastPredictor, frame: pl.DataFrame, origins: range) -> dict[str, float]:
    """MSE and MAE in original units over every element of every holdout window."""
    missing = [v for v in predictor.variates if v not in frame.columns]
    if missing:
        raise ValueError(f"{predictor.name}: variates {missing} are not in the fresh data")
    lb, h = predictor.lookback, predictor.horizon
    if origins.start < lb:
        raise ValueError(f"{predictor.name}: lookback {lb} reaches before the first row of the fresh data")
    if origins.stop - 1 + h > len(frame):
        raise ValueError(f"{predictor.name}: horizon {h} runs past the last row of the fresh data")
    values = frame.select(predictor.variates).to_numpy().astype(np.float64)
    dates = frame["date"].to_list()
    sse = sae = 0.0
    count = 0
    starts = list(origins)
    for i in range(0, len(starts), _CHUNK):
        chunk = starts[i : i + _CHUNK]
        history = np.stack([values[o - lb : o] for o in chunk])  # [B, L, N]
        truth = np.stack([values[o : o + h] for o in chunk])  # [B, H, N]
        stamps = [dates[o - lb : o] for o in chunk] if predictor.uses_timestamps else None
        err = predictor.predict(history, stamps) - truth
        sse += float(np.square(err).sum())
        sae += float(np.abs(err).sum())
        count += err.size
    return {"mse": sse / count, "mae": sae / count}


@dataclass(frozen=True)
class ForecastHoldout:
    """`training.tasks.holdout.Holdout` for forecasters (see the module docstring)."""

    task: str = "forecast"
    metrics: tuple[str, ...] = ("mse", "mae")

    def read(self, pattern: str) -> FreshData:
        frame, files = load_fresh(pattern)
        span = {"first_date": str(frame["date"][0]), "last_date": str(frame["date"][-1])}
        return FreshData(files=files, rows=len(frame), payload=frame, describe=span)

    def write(self, fresh: FreshData, directory: Path, stem: str) -> Path:
        path = directory / f"{stem}.parquet"
        fresh.payload.write_parquet(path)
        return path

    def windows(self, fresh: FreshData, recipe: Recipe, count: int) -> HoldoutWindows:
        origins = holdout_origins(fresh.rows, recipe.data.lookback, recipe.data.horizon, count)
        first = {"first_origin": str(fresh.payload["date"][origins.start])}
        return HoldoutWindows(count=count, payload=origins, describe=first)

    def incomparable(self, champion: ForecastPredictor, challenger: ForecastPredictor) -> str | None:
        if champion.horizon != challenger.horizon:
            return (
                f"forecasts {champion.horizon} steps, the challenger {challenger.horizon}: not comparable on one "
                "holdout (register it under another model name)"
            )
        if sorted(champion.variates) != sorted(challenger.variates):
            return f"forecasts {champion.variates}, the challenger {challenger.variates}: not comparable"
        return None

    def score(self, predictor: ForecastPredictor, fresh: FreshData, windows: HoldoutWindows) -> dict[str, float]:
        return holdout_scores(predictor, fresh.payload, windows.payload)


FORECAST_HOLDOUT = ForecastHoldout()
