"""The datasets shipped with Seer and how to split each one.

Files live in `data/series/datasets/` (gzip CSV, provenance in `data/series/datasets/SOURCE.md`). A dataset name
that is not in the catalogue is taken as a path to a CSV/Parquet file (wide or long) with the
70/10/20 chronological split.

Missing values: a catalogue entry may name sentinel values (`DatasetSpec.missing_values`) that
`load_series` turns into nulls (NaN once converted with `to_numpy()`). Only `weather` has any: its
sole sentinel is exactly `-9999.0` (81 cells: `OT` ×50, `max. PAR` ×30, `wv (m/s)` ×1, all in the
train and val rows; the next-lowest value in the file is `Tdew` −13.81 °C, so nothing else looks like
a marker). ETT and exchange_rate have no sentinels and load exactly as read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from data.series.protocols import Split, ett_split, ratio_split
from data.series.readers import read_series

DATASET_DIR = Path(__file__).resolve().parent / "datasets"


@dataclass(frozen=True)
class DatasetSpec:
    """A shipped dataset: its file, split protocol, sampling step and missing-value sentinels.

    `minutes_per_step` is the spacing of consecutive rows (60 for hourly, 1440 for daily); the ETT
    protocol converts its 30-day months into rows with it. `missing_values` are exact values that mean
    "not observed" and become nulls on load.
    """

    name: str
    file: str
    protocol: str  # "ett" | "ratio"
    minutes_per_step: int
    missing_values: tuple[float, ...] = ()

    @property
    def season_length(self) -> int:
        """Seasonal period in steps: one day for sub-daily data (24, 96, 144), one week (7) for daily.

        The daily choice for exchange_rate is a data decision, see `data/series/datasets/SOURCE.md`: its
        timestamps are consecutive calendar days (all seven weekdays, 1084 each) and the rows show a
        7-step cycle (unchanged-from-yesterday rows and |change| autocorrelation peak every 7 steps).
        """
        day = 24 * 60
        if self.minutes_per_step < day:
            return day // self.minutes_per_step
        return 7 if self.minutes_per_step == day else 1


CATALOGUE: dict[str, DatasetSpec] = {
    "ETTh1": DatasetSpec("ETTh1", "ETTh1.csv.gz", "ett", 60),
    "ETTh2": DatasetSpec("ETTh2", "ETTh2.csv.gz", "ett", 60),
    "ETTm1": DatasetSpec("ETTm1", "ETTm1.csv.gz", "ett", 15),
    "ETTm2": DatasetSpec("ETTm2", "ETTm2.csv.gz", "ett", 15),
    # Jena weather 2020 (Autoformer copy): 10-minute steps, -9999 sentinels (see the module docstring).
    "weather": DatasetSpec("weather", "weather.csv.gz", "ratio", 10, missing_values=(-9999.0,)),
    # LSTNet exchange rates, one row per (labelled) calendar day.
    "exchange_rate": DatasetSpec("exchange_rate", "exchange_rate.csv.gz", "ratio", 24 * 60),
}


def _mask_missing(frame: pl.DataFrame, missing_values: tuple[float, ...]) -> pl.DataFrame:
    """Nulls where a variate equals one of the sentinels; the `date` column is left alone."""
    if not missing_values:
        return frame
    values = [c for c in frame.columns if c != "date"]
    sentinels = list(missing_values)
    return frame.with_columns(
        pl.when(pl.col(c).is_in(sentinels)).then(None).otherwise(pl.col(c)).alias(c) for c in values
    )


def load_series(dataset: str) -> tuple[pl.DataFrame, DatasetSpec | None]:
    """The wide frame (`date` + variates) of a catalogue dataset or a file path.

    Sentinels listed in the catalogue entry are nulls in the returned frame; files given by path are
    returned as read, less their text columns (`data.series.readers.to_wide`, `numeric_only`).
    """
    spec = CATALOGUE.get(dataset)
    if spec is not None:
        return _mask_missing(read_series(DATASET_DIR / spec.file), spec.missing_values), spec
    path = Path(dataset)
    if not path.exists():
        known = ", ".join(CATALOGUE)
        raise FileNotFoundError(f"unknown dataset {dataset!r}: not one of {known} and not an existing file")
    # A user's file: its timestamp column found by name or content, text columns left out.
    return read_series(path, date_column="", numeric_only=True), None


def split_for(spec: DatasetSpec | None, n_rows: int, lookback: int) -> Split:
    """The protocol's row borders: ETT 12/4/4 months for ETT entries, 70/10/20 for everything else."""
    if spec is not None and spec.protocol == "ett":
        return ett_split(n_rows, lookback, spec.minutes_per_step)
    return ratio_split(n_rows, lookback)
