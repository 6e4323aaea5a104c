"""The forecast task's retraining holdout (training/tasks/forecast/holdout.py): fresh files combined into
one frame, holdout origins inside the challenger's test rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from tests.training.retrain_fixtures import sine_frame
from training.tasks.forecast.holdout import FORECAST_HOLDOUT, holdout_origins, load_fresh


def test_fresh_data_concatenates_dedups_later_file_wins_and_sorts(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    sine_frame(100).write_csv(d / "2024-01.csv")
    later = sine_frame(100, start=datetime(2024, 1, 1) + timedelta(hours=50)).with_columns(pl.col("a") + 100)
    later.write_parquet(d / "2024-02.parquet")
    long = sine_frame(20, start=datetime(2024, 1, 1) + timedelta(hours=150)).unpivot(
        index="date", variable_name="unique_id", value_name="y"
    )
    long.rename({"date": "ds"}).write_csv(d / "2024-03.csv")  # the long format mixes in
    frame, files = load_fresh(str(d / "2024-*"))
    assert [f.name for f in files] == ["2024-01.csv", "2024-02.parquet", "2024-03.csv"]
    assert frame.height == 170 and frame["date"].is_sorted() and frame["date"].n_unique() == 170
    assert frame["a"][49] == pytest.approx(np.sin(2 * np.pi * 49 / 24))  # only in the first file
    assert frame["a"][50] == pytest.approx(100.0)  # 2024-02 overrides 2024-01's row 50 (sin 0 = 0)
    with pytest.raises(FileNotFoundError, match="no data files match"):
        load_fresh(str(tmp_path / "nothing-*.csv"))
    sine_frame(10).rename({"b": "c"}).write_csv(d / "2024-04.csv")
    with pytest.raises(ValueError, match="same variates"):
        load_fresh(str(d / "*.csv"))


def test_holdout_origins_stay_inside_the_test_rows():
    origins = holdout_origins(600, lookback=24, horizon=8, windows=32)
    assert (origins.start, origins.stop - 1 + 8) == (600 - 8 - 31, 600)  # the last window ends on the last row
    assert len(holdout_origins(600, 24, 8, 113)) == 113  # targets from row 480 = the first test target
    with pytest.raises(ValueError, match="at most 113 windows"):
        holdout_origins(600, 24, 8, 114)


@dataclass
class Persistence:
    """A stand-in predictor: repeats the last row of each history."""

    horizon: int = 8
    lookback: int = 24
    variates: tuple[str, ...] = ("a", "b")
    name: str = "persistence"
    uses_timestamps: bool = False

    def predict(self, history, timestamps=None):
        return np.repeat(history[:, -1:], self.horizon, axis=1)  # [B, H, N]


def test_the_forecast_holdout_reads_writes_chooses_windows_and_scores(tmp_path):
    sine_frame(600).write_csv(tmp_path / "part-0.csv")
    fresh = FORECAST_HOLDOUT.read(str(tmp_path / "*.csv"))
    assert (fresh.rows, [f.name for f in fresh.files]) == (600, ["part-0.csv"])
    assert fresh.describe == {"first_date": "2024-01-01 00:00:00", "last_date": "2024-01-25 23:00:00"}
    recipe = SimpleNamespace(data=SimpleNamespace(lookback=24, horizon=8))
    windows = FORECAST_HOLDOUT.windows(fresh, recipe, 32)
    assert windows.payload == holdout_origins(600, 24, 8, 32) and windows.count == 32
    assert windows.describe == {"first_origin": "2024-01-24 09:00:00"}  # origin 561
    path = FORECAST_HOLDOUT.write(fresh, tmp_path, "job")
    assert path == tmp_path / "job.parquet" and pl.read_parquet(path).equals(fresh.payload)

    values = fresh.payload.select("a", "b").to_numpy()
    err = np.stack([values[o : o + 8] - values[o - 1] for o in windows.payload])
    scores = FORECAST_HOLDOUT.score(Persistence(), fresh, windows)
    assert scores == pytest.approx({"mse": float(np.mean(err**2)), "mae": float(np.mean(np.abs(err)))})
    assert set(scores) == set(FORECAST_HOLDOUT.metrics)
    with pytest.raises(ValueError, match=r"variates \['c'\] are not in the fresh data"):
        FORECAST_HOLDOUT.score(Persistence(variates=("a", "c")), fresh, windows)


def test_forecasters_of_another_horizon_or_variates_are_not_comparable():
    base = Persistence()
    assert FORECAST_HOLDOUT.incomparable(base, Persistence(variates=("b", "a"))) is None  # order does not matter
    assert FORECAST_HOLDOUT.incomparable(base, Persistence(horizon=4)).startswith("forecasts 8 steps, the challenger 4")
    assert "not comparable" in FORECAST_HOLDOUT.incomparable(base, Persistence(variates=("a",)))
