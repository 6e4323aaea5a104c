"""Polars readers for wide (`date` + one column per variate) and long (`unique_id, ds, y`) frames.

Both shapes end up as one wide frame with a datetime column named `date` and one float column per
variate, sorted by time; tensors are only made at the loader edge (`data.series.windows`). A user's
wide file may name its timestamp column otherwise (`date_column=""` finds it: `find_date_column`) and
hold text columns (`numeric_only=True` leaves them out).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

LONG_COLUMNS = ("unique_id", "ds", "y")
# Timestamp column names tried, in order, when a wide file has no `date` column (case-insensitive).
DATE_NAMES = ("date", "ds", "datetime", "timestamp", "time", "period", "week", "month", "day", "year")


class DataFormatError(ValueError):
    """The file exists but is not a frame Seer can read; the message says what to fix."""


def read_frame(path: str | Path) -> pl.DataFrame:
    """Read CSV (optionally gzip-compressed) or Parquet into a polars frame."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return pl.read_parquet(path)
    if name.endswith((".csv", ".csv.gz", ".txt", ".txt.gz")):
        # read_csv decompresses gzip itself; scan_csv cannot, and these files are small.
        return pl.read_csv(path, try_parse_dates=False, infer_schema_length=10_000)
    raise DataFormatError(f"{path}: unsupported file type (use .csv, .csv.gz or .parquet)")


def _parse_dates(col: pl.Series) -> pl.Series:
    if col.dtype in (pl.Datetime, pl.Date):
        return col.cast(pl.Datetime("us"))
    text = col.cast(pl.Utf8)
    parsed = pl.Series(col.name, [None] * len(col), dtype=pl.Datetime("us"))
    # ISO first (with or without seconds), then the slash style of e.g. exchange_rate (`1990/1/1 0:00`).
    for fmt in (None, "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d"):
        try:
            parsed = text.str.to_datetime(fmt, strict=False, time_unit="us")
        except pl.exceptions.ComputeError:  # no format could be inferred
            continue
        if parsed.null_count() == col.null_count():
            break
    if parsed.null_count():
        bad = col.filter(parsed.is_null()).head(3).to_list()
        raise DataFormatError(f"column {col.name!r}: cannot parse timestamps such as {bad}")
    return parsed


def is_long(frame: pl.DataFrame) -> bool:
    """A long frame: one row per (series, time), columns `unique_id, ds, y`."""
    return all(c in frame.columns for c in LONG_COLUMNS)


def _parses_as_dates(col: pl.Series) -> bool:
    if col.dtype in (pl.Datetime, pl.Date):
        return True
    if col.dtype != pl.Utf8:
        return False
    try:
        _parse_dates(col.head(50))
    except DataFormatError:
        return False
    return True


def find_date_column(frame: pl.DataFrame) -> str:
    """The timestamp column of a wide frame: `date`, else the first column named like one of
    `DATE_NAMES` (any case), else the first column if it holds dates or date strings."""
    lower = {c.lower(): c for c in reversed(frame.columns)}
    for name in DATE_NAMES:
        if name in lower:
            return lower[name]
    if frame.columns and _parses_as_dates(frame[frame.columns[0]]):
        return frame.columns[0]
    raise DataFormatError(
        f"no timestamp column among {frame.columns[:8]}: name it 'date' (one column per series beside it) "
        f"or give a long file with columns {', '.join(LONG_COLUMNS)}"
    )


def to_wide(frame: pl.DataFrame, date_column: str = "date", numeric_only: bool = False) -> pl.DataFrame:
    """Normalise a wide or long frame to `date` + float variates, sorted by time.

    A long frame (`unique_id, ds, y`) is pivoted so each `unique_id` becomes one variate column (sorted
    by id). `date_column=""` finds the timestamp column (`find_date_column`); `numeric_only` leaves text
    columns out instead of refusing them.
    """
    if is_long(frame):
        frame = frame.with_columns(_parse_dates(frame["ds"]).alias("ds"))
        dup = frame.select(pl.struct("unique_id", "ds").is_duplicated().any()).item()
        if dup:
            raise DataFormatError("long frame has duplicate (unique_id, ds) rows")
        frame = frame.with_columns(pl.col("unique_id").cast(pl.Utf8))
        wide = frame.pivot(on="unique_id", index="ds", values="y").rename({"ds": "date"})
        ids = sorted(c for c in wide.columns if c != "date")  # one order whatever the rows' order
        return wide.select("date", *ids).sort("date").with_columns(pl.exclude("date").cast(pl.Float64))
    date_column = date_column or find_date_column(frame)
    if date_column not in frame.columns:
        raise DataFormatError(
            f"expected a wide frame with a {date_column!r} column or a long frame with columns "
            f"{', '.join(LONG_COLUMNS)}; got columns {frame.columns[:8]}"
        )
    frame = frame.with_columns(_parse_dates(frame[date_column]).alias(date_column))
    if date_column != "date":
        frame = frame.rename({date_column: "date"})
    values = [c for c in frame.columns if c != "date"]
    non_numeric = [c for c in values if not frame[c].dtype.is_numeric()]
    if non_numeric and numeric_only:
        frame, values = frame.drop(non_numeric), [c for c in values if c not in non_numeric]
    elif non_numeric:
        raise DataFormatError(f"non-numeric variate columns: {non_numeric}")
    return frame.sort("date").with_columns(pl.col(values).cast(pl.Float64))


def read_series(path: str | Path, date_column: str = "date", numeric_only: bool = False) -> pl.DataFrame:
    """`read_frame` + `to_wide`: the one call loaders use."""
    return to_wide(read_frame(path), date_column=date_column, numeric_only=numeric_only)
