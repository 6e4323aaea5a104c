import gzip
from datetime import datetime

import numpy as np
import polars as pl
import pytest

from data.scalers import StandardScaler
from data.schemas import ForecastBatch
from data.series.calendar import future_dates, n_features, time_features
from data.series.protocols import ett_split, ratio_split
from data.series.readers import DataFormatError, read_series, to_wide
from data.series.sources import DATASET_DIR, load_series
from data.series.windows import ForecastDataConfig, ForecastDataModule, WindowDataset


@pytest.fixture(scope="module")
def etth1():
    dm = ForecastDataModule(ForecastDataConfig(dataset="ETTh1", lookback=96, horizon=96))
    dm.setup()
    return dm


def test_ett_split_sizes_hourly_and_minute():
    s = ett_split(17420, lookback=96)
    assert s.train == (0, 8640)
    assert (s.val[1] - 8640, s.test[1] - 11520) == (2880, 2880)  # 12/4/4 months of rows
    assert s.val[0] == 8640 - 96 and s.test[0] == 11520 - 96  # windows start one lookback early
    m = ett_split(69680, lookback=96, minutes_per_step=15)
    assert m.train == (0, 34560) and m.val[1] == 46080 and m.test[1] == 57600
    with pytest.raises(ValueError, match="needs 14400 rows"):
        ett_split(1000, lookback=96)


def test_every_test_window_is_kept(etth1):
    # The figure the papers report: 2880 + 96 - 96 - 96 + 1 windows for L = H = 96.
    assert len(etth1.dataset("test")) == 2785
    assert len(etth1.dataset("train")) == 8640 - 96 - 96 + 1
    batches = list(etth1.test_dataloader())
    assert all(isinstance(b, ForecastBatch) and b.loc is None for b in batches)
    assert sum(b.size for b in batches) == 2785  # no drop_last


def test_scaler_fitted_on_train_rows_only(etth1):
    frame, _ = load_series("ETTh1")
    raw = frame.drop("date").to_numpy()
    np.testing.assert_allclose(etth1.scaler.mean, raw[:8640].mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(etth1.scaler.std, raw[:8640].std(axis=0), rtol=1e-10)
    assert not np.allclose(etth1.scaler.mean, raw.mean(axis=0))  # a full-series fit would leak
    scaled_train = etth1.values[:8640]
    np.testing.assert_allclose(scaled_train.mean(axis=0), 0, atol=1e-4)


def test_windows_at_the_edges(etth1):
    test = etth1.dataset("test")
    first = test[0]
    np.testing.assert_array_equal(first.y[0].numpy(), etth1.values[11520])  # first target = first test row
    last = test[len(test) - 1]
    np.testing.assert_array_equal(last.y[-1].numpy(), etth1.values[14399])  # last target = last test row
    assert last.x.shape == (96, 7) and last.y.shape == (96, 7)
    assert last.x_mark.shape == (96, 4) and last.y_mark.shape == (96, 4)
    with pytest.raises(IndexError):
        test[len(test)]
    tiny = WindowDataset(np.zeros((10, 2)), np.zeros((10, 0)), lookback=4, horizon=3, start=0, end=10)
    assert len(tiny) == 4
    empty = WindowDataset(np.zeros((5, 2)), np.zeros((5, 0)), lookback=4, horizon=3, start=0, end=5)
    assert len(empty) == 0


def test_ratio_split():
    s = ratio_split(1000, lookback=10)
    assert s.train == (0, 700) and s.test == (800 - 10, 1000) and s.val == (690, 800)


def test_scaler_round_trip_and_constant_column():
    x = np.array([[1.0, 5.0], [3.0, 5.0]])
    sc = StandardScaler.fit(x)
    np.testing.assert_allclose(sc.transform(x), [[-1, 0], [1, 0]])
    np.testing.assert_allclose(sc.inverse(sc.transform(x)), x, rtol=1e-6)
    again = StandardScaler.from_dict(sc.to_dict())
    np.testing.assert_array_equal(again.mean, sc.mean)


def test_calendar_features_hand_checked():
    # 2016-07-01 00:00 was a Friday, day 183 of a leap year.
    f = time_features([datetime(2016, 7, 1, 0, 0)], "h")[0]
    np.testing.assert_allclose(f, [-0.5, 4 / 6 - 0.5, -0.5, 182 / 365 - 0.5], atol=1e-6)
    assert n_features("t") == 5 and n_features("d") == 3
    with pytest.raises(ValueError, match="unknown calendar freq"):
        time_features([datetime(2020, 1, 1)], "weekly")
    assert future_dates(datetime(2020, 1, 1, 23), 3600, 2) == [datetime(2020, 1, 2, 0), datetime(2020, 1, 2, 1)]


def test_reader_wide_and_long(tmp_path):
    long = pl.DataFrame(
        {
            "unique_id": ["a", "b", "a", "b"],
            "ds": ["2020-01-01 01:00", "2020-01-01 00:00", "2020-01-01 00:00", "2020-01-01 01:00"],
            "y": [2.0, 3.0, 1.0, 4.0],
        }
    )
    wide = to_wide(long)
    assert wide.columns == ["date", "a", "b"]
    assert wide["a"].to_list() == [1.0, 2.0] and wide["b"].to_list() == [3.0, 4.0]
    p = tmp_path / "w.parquet"
    wide.write_parquet(p)
    assert read_series(p).equals(wide)
    with pytest.raises(DataFormatError, match="wide frame"):
        to_wide(pl.DataFrame({"x": [1.0]}))
    with pytest.raises(DataFormatError, match="cannot parse"):
        to_wide(pl.DataFrame({"date": ["not a date"], "x": [1.0]}))
    with pytest.raises(DataFormatError, match="duplicate"):
        to_wide(long.vstack(long.head(1)))


def test_shipped_data_matches_the_canonical_rows():
    with gzip.open(DATASET_DIR / "ETTh1.csv.gz", "rt") as f:
        header, first = f.readline().strip(), f.readline()
    assert header == "date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT" and first.startswith("2016-07-01 00:00:00,5.827")
    for name, rows in (("ETTh1", 17420), ("ETTh2", 17420), ("ETTm1", 69680), ("ETTm2", 69680)):
        frame, spec = load_series(name)
        assert frame.height == rows and frame.width == 8 and spec is not None


def test_transform_state_is_complete(etth1):
    state = etth1.transform_state()
    assert state["variates"] == ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    assert state["step_seconds"] == 3600 and state["calendar_freq"] == "h"
    assert len(state["scaler"]["mean"]) == 7
    ex = etth1.example_input()
    assert len(ex["history"]) == 96 and len(ex["timestamps"]) == 96
