"""A user's own file: frequency inferred from the timestamps (with a clear error when it cannot be), the
calendar features each frequency calls for, wide files with their own column names and long files,
the split stated, and the data module a file recipe trains on."""

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from data.series.calendar import (
    MONTH_SECONDS,
    FrequencyError,
    add_months,
    future_dates,
    infer_frequency,
    n_features,
    time_features,
)
from data.series.protocols import describe_split, fit_lookback, ratio_split
from data.series.readers import DataFormatError, find_date_column, to_wide
from data.series.user import describe_file
from data.series.windows import ForecastDataConfig, ForecastDataModule

STORES = ["north", "south", "east", "west", "online", "outlet", "wholesale"]


def weekly_frame(n: int = 260, text_column: bool = True) -> pl.DataFrame:
    t = np.arange(n)
    rng = np.random.default_rng(0)
    cols = {s: 10 + np.sin(2 * np.pi * t / 52 + i) + 0.1 * rng.standard_normal(n) for i, s in enumerate(STORES)}
    frame = pl.DataFrame({"week": [(date(2019, 1, 6) + timedelta(weeks=int(k))).isoformat() for k in t], **cols})
    return frame.with_columns(pl.lit("EUR").alias("currency")) if text_column else frame


def stamps(start: datetime, step: timedelta, n: int) -> list[datetime]:
    return [start + step * k for k in range(n)]


@pytest.mark.parametrize(
    ("step", "freq", "label"),
    [
        (timedelta(seconds=30), "s", "every 30 seconds"),
        (timedelta(minutes=1), "t", "minutely"),
        (timedelta(minutes=15), "t", "every 15 minutes"),
        (timedelta(hours=1), "h", "hourly"),
        (timedelta(days=1), "d", "daily"),
        (timedelta(weeks=1), "w", "weekly"),
        (timedelta(weeks=2), "w", "every 2 weeks"),
    ],
)
def test_regular_steps_give_their_frequency_and_calendar(step, freq, label):
    f = infer_frequency(stamps(datetime(2021, 3, 1), step, 50))
    assert (f.freq, f.step_seconds, f.label, f.gaps) == (freq, int(step.total_seconds()), label, 0)
    assert time_features(stamps(datetime(2021, 3, 1), step, 5), f.freq).shape == (5, n_features(freq))


def test_calendar_months_quarters_and_years():
    month_ends = [add_months(datetime(2019, 1, 31), k) for k in range(30)]
    assert [d.day for d in month_ends[:3]] == [31, 28, 31]  # Jan 31 → Feb 28 → Mar 31
    monthly = infer_frequency(month_ends)
    assert (monthly.freq, monthly.step_seconds, monthly.label) == ("m", MONTH_SECONDS, "monthly")
    assert future_dates(month_ends[-1], monthly.step_seconds, 2) == [datetime(2021, 7, 31), datetime(2021, 8, 31)]
    firsts = [add_months(datetime(2020, 1, 1), 3 * k) for k in range(12)]
    quarterly = infer_frequency(firsts)
    assert (quarterly.step_seconds, quarterly.label) == (3 * MONTH_SECONDS, "quarterly")
    assert future_dates(firsts[-1], quarterly.step_seconds, 1) == [datetime(2023, 1, 1)]
    yearly = infer_frequency([datetime(2000 + k, 6, 15) for k in range(10)])
    assert yearly.label == "yearly"


def test_gaps_are_counted_not_refused():
    days = stamps(datetime(2022, 1, 3), timedelta(days=1), 40)
    business = [d for d in days if d.weekday() < 5]  # weekends missing: steps of 1 and 3 days
    f = infer_frequency(business)
    assert (f.freq, f.step_seconds) == ("d", 86_400) and f.gaps == 5


@pytest.mark.parametrize(
    ("dates", "message"),
    [
        ([datetime(2020, 1, 1), datetime(2020, 1, 2)], "at least 3 timestamps"),
        ([datetime(2020, 1, 1), datetime(2020, 1, 1, 1), datetime(2020, 1, 1, 1)], "row 2 .* repeats"),
        ([datetime(2020, 1, 2), datetime(2020, 1, 3), datetime(2020, 1, 1)], "goes back in time"),
        (
            [datetime(2020, 1, 1), datetime(2020, 1, 1, 1), datetime(2020, 1, 1, 2), datetime(2020, 1, 1, 2, 37)],
            r"irregular timestamps: the usual step is 1:00:00 .*\(0:37:00 ×1\); resample",
        ),
        (stamps(datetime(2020, 1, 1), timedelta(milliseconds=500), 10), "sub-second"),
    ],
)
def test_timestamps_without_a_frequency_are_a_clear_error(dates, message):
    with pytest.raises(FrequencyError, match=message):
        infer_frequency(dates)


def test_weekly_and_monthly_calendar_features_by_hand():
    w = time_features([datetime(2015, 1, 4), datetime(2015, 12, 31)], "w")  # ISO weeks 1 and 53
    np.testing.assert_allclose(w, [[3 / 30 - 0.5, -0.5], [30 / 30 - 0.5, 52 / 52 - 0.5]], atol=1e-6)
    m = time_features([datetime(2020, 1, 31), datetime(2020, 12, 1)], "m")
    np.testing.assert_allclose(m, [[-0.5], [0.5]], atol=1e-6)


def test_a_wide_file_with_its_own_column_names(tmp_path):
    path = tmp_path / "sales.csv"
    weekly_frame().write_csv(path)
    summary = describe_file(path)
    assert summary.variates == tuple(STORES) and summary.ignored == ("currency",) and not summary.long
    assert (summary.rows, summary.frequency.freq, summary.frequency.label) == (260, "w", "weekly")
    assert "weekly" in summary.describe() and "left out: currency" in summary.describe()
    assert describe_file(path, ("east", "west")).variates == ("east", "west")
    with pytest.raises(DataFormatError, match="no numeric series named \\['eats'\\]"):
        describe_file(path, ("eats",))
    with pytest.raises(DataFormatError, match="no timestamp column"):
        to_wide(pl.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}), date_column="")
    assert find_date_column(pl.DataFrame({"when": ["2020-01-01", "2020-01-02"], "x": [1, 2]})) == "when"


def test_a_long_parquet_with_several_series(tmp_path):
    t = np.arange(120)
    long = pl.concat(
        pl.DataFrame(
            {
                "unique_id": uid,
                "ds": [datetime(2023, 1, 1) + timedelta(days=int(k)) for k in t],
                "y": np.cos(t / 7 + i),
                "promo": 0,
            }
        )
        for i, uid in enumerate(["sku-1", "sku-2", "sku-3"])
    )
    path = tmp_path / "long.parquet"
    long.write_parquet(path)
    summary = describe_file(path)
    assert summary.long and summary.variates == ("sku-1", "sku-2", "sku-3") and summary.frequency.freq == "d"
    long.filter(~((pl.col("unique_id") == "sku-2") & (pl.col("ds") == datetime(2023, 2, 1)))).write_parquet(path)
    with pytest.raises(DataFormatError, match="missing or non-finite values in \\['sku-2'\\].*share their timestamps"):
        describe_file(path)


def test_lookback_fits_a_short_file_and_the_split_is_stated():
    assert fit_lookback(10_000, 96, 96) == 96
    assert fit_lookback(260, 8, 96) == 84  # half of the 182 training rows stay windows
    with pytest.raises(ValueError, match="too few for horizon 40.*at least 400 rows"):
        fit_lookback(260, 40, 96)
    split = ratio_split(260, 84)
    dates = stamps(datetime(2019, 1, 6), timedelta(weeks=1), 260)
    text = describe_split(split, dates, 84, 8)
    assert text.startswith("train rows 0-181 (2019-01-06") and "val rows 182-207" in text and "45 windows" in text


def test_the_data_module_of_a_weekly_file(tmp_path):
    path = tmp_path / "sales.csv"
    weekly_frame().write_csv(path)
    config = ForecastDataConfig.from_file(str(path), horizon=8, lookback=96)
    assert (config.lookback, config.calendar_freq, config.variates) == (84, "w", tuple(STORES))
    dm = ForecastDataModule(config)
    dm.setup()
    assert dm.step_seconds == 7 * 86_400 and dm.marks.shape == (260, 2) and dm.n_variates == 7
    assert len(dm.dataset("test")) == 45 and "split 70/10/20 % by time" in config.describe()
    ts = dm.example_input()["timestamps"]
    assert datetime.fromisoformat(ts[1]) - datetime.fromisoformat(ts[0]) == timedelta(weeks=1)


def test_missing_values_and_too_short_parts_are_refused(tmp_path):
    frame = weekly_frame(text_column=False)
    path = tmp_path / "holes.csv"
    frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 30).then(None).otherwise(pl.col("east")).alias("east")
    ).write_csv(path)
    with pytest.raises(ValueError, match="missing or non-finite values in east \\(1, first at 2019-08-04"):
        ForecastDataModule(ForecastDataConfig(dataset=str(path), lookback=8, horizon=4, calendar_freq="w")).setup()
    path = tmp_path / "ok.csv"
    frame.write_csv(path)
    with pytest.raises(ValueError, match="the val part .* holds no window"):
        ForecastDataModule(ForecastDataConfig(dataset=str(path), lookback=8, horizon=40, calendar_freq="w")).setup()
