"""Polars readers for flow-record files, checked against their format (`data.flows.formats`).

`read_flows(path, fmt)` gives one frame per file, rows in file order (the order windows follow): the
format's feature columns with their types checked (numbers where numbers belong, no missing values in
what the model uses) and, for labelled files, the label columns. `with_target(frame, fmt, labels)` adds
`target`, the class name of each flow under a label mode. Problems raise `DataFormatError` naming the
file and the columns at fault.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from data.flows.formats import NETFLOW_V2, NSL_KDD, NSL_KDD_CATEGORIES, FlowFormat
from data.series.readers import DataFormatError

TARGET = "target"  # the class-name column `with_target` adds


def sniff_format(path: str | Path) -> FlowFormat:
    """NetFlow v2 for a CSV/Parquet whose header holds the NetFlow v2 features; NSL-KDD for a headerless
    `.txt` (the dataset's own layout)."""
    name = Path(path).name.lower()
    if name.endswith((".txt", ".txt.gz")):
        return NSL_KDD
    if name.endswith((".csv", ".csv.gz", ".parquet", ".pq")):
        return NETFLOW_V2
    raise DataFormatError(
        f"{path}: unsupported flow file (use .csv, .csv.gz or .parquet for NetFlow v2, .txt for NSL-KDD)"
    )


def read_flows(path: str | Path, fmt: FlowFormat | None = None) -> pl.DataFrame:
    """The file as a checked frame: the format's features (+ label columns when present), file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"flow file not found: {path}")
    fmt = fmt or sniff_format(path)
    try:
        if path.name.lower().endswith((".parquet", ".pq")):
            frame = pl.read_parquet(path)
        elif fmt.has_header:
            frame = pl.read_csv(path, infer_schema_length=None, schema_overrides=_text(fmt))
        else:
            names = [*fmt.features, *fmt.label_columns]
            frame = pl.read_csv(path, has_header=False, new_columns=names, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError) as e:
        raise DataFormatError(f"{path}: cannot read it as {fmt.name} flows: {e}") from e
    return check_frame(frame, fmt, where=str(path))


def _text(fmt: FlowFormat) -> dict[str, pl.DataType]:
    return {c: pl.Utf8() for c in fmt.string_features}


def check_frame(frame: pl.DataFrame, fmt: FlowFormat, where: str = "flows") -> pl.DataFrame:
    """`frame` reduced to the format's columns in order, or `DataFormatError` naming every missing column,
    every used feature that is not numeric where it must be, and every used feature with missing values."""
    missing = [c for c in fmt.used if c not in frame.columns]
    if missing:
        raise DataFormatError(f"{where}: missing {fmt.name} feature columns {missing}")
    numeric_only = [c for c in fmt.used if c not in fmt.string_features]
    wrong = [c for c in numeric_only if not frame.schema[c].is_numeric()]
    if wrong:
        raise DataFormatError(
            f"{where}: columns {wrong} must hold numbers, found {[str(frame.schema[c]) for c in wrong]}"
        )
    nulls = [c for c in fmt.used if frame[c].null_count()]
    if nulls:
        raise DataFormatError(f"{where}: missing values in {nulls}")
    floats = [c for c in numeric_only if frame.schema[c].is_float()]
    bad = [c for c in floats if not frame[c].is_finite().all()]
    if bad:
        raise DataFormatError(f"{where}: NaN or infinite values in {bad}")
    keep = [c for c in fmt.known_columns if c in frame.columns]
    return frame.select(keep)


def with_target(frame: pl.DataFrame, fmt: FlowFormat, labels: str) -> pl.DataFrame:
    """`frame` plus `target`, the class name of each flow: `binary` gives benign/attack; `attack` (NetFlow
    v2) the `Attack` column as it is; `category` (NSL-KDD) dos/probe/r2l/u2r/normal."""
    if labels not in fmt.labels:
        raise ValueError(f"{fmt.name} flows have label modes {fmt.labels}, not {labels!r}")
    if fmt.class_column not in frame.columns:
        raise DataFormatError(f"these {fmt.name} flows have no {fmt.class_column!r} column: a labelled file is needed")
    name = frame[fmt.class_column].cast(pl.Utf8)
    if labels == "binary":
        target = pl.when(name == fmt.benign).then(pl.lit("benign")).otherwise(pl.lit("attack"))
        return frame.with_columns(target.alias(TARGET))
    if labels == "category":
        unknown = sorted(set(name.unique().to_list()) - set(NSL_KDD_CATEGORIES))
        if unknown:
            raise DataFormatError(f"NSL-KDD attacks {unknown} have no category; known: {sorted(NSL_KDD_CATEGORIES)}")
        return frame.with_columns(name.replace_strict(NSL_KDD_CATEGORIES).alias(TARGET))
    return frame.with_columns(name.alias(TARGET))


def benign_class(fmt: FlowFormat, labels: str) -> str:
    """The class name of normal traffic under a label mode."""
    if labels == "binary":
        return "benign"
    return NSL_KDD_CATEGORIES[fmt.benign] if labels == "category" else fmt.benign
