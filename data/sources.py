"""The datasets shipped with Seer and how to split each one.

Files live in `data/datasets/` (gzip CSV, provenance in `data/datasets/SOURCE.md`). A dataset name
that is not in the catalogue is taken as a path to a CSV/Parquet file (wide or long) with the
70/10/20 chronological split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from data.protocols import Split, ett_split, ratio_split
from data.readers import read_series

DATASET_DIR = Path(__file__).resolve().parent / "datasets"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    file: str
    protocol: str  # "ett" | "ratio"
    minutes_per_step: int


CATALOGUE: dict[str, DatasetSpec] = {
    "ETTh1": DatasetSpec("ETTh1", "ETTh1.csv.gz", "ett", 60),
    "ETTh2": DatasetSpec("ETTh2", "ETTh2.csv.gz", "ett", 60),
    "ETTm1": DatasetSpec("ETTm1", "ETTm1.csv.gz", "ett", 15),
    "ETTm2": DatasetSpec("ETTm2", "ETTm2.csv.gz", "ett", 15),
}


def load_series(dataset: str) -> tuple[pl.DataFrame, DatasetSpec | None]:
    """The wide frame (`date` + variates) of a catalogue dataset or a file path."""
    spec = CATALOGUE.get(dataset)
    if spec is not None:
        return read_series(DATASET_DIR / spec.file), spec
    path = Path(dataset)
    if not path.exists():
        known = ", ".join(CATALOGUE)
        raise FileNotFoundError(f"unknown dataset {dataset!r}: not one of {known} and not an existing file")
    return read_series(path), None


def split_for(spec: DatasetSpec | None, n_rows: int, lookback: int) -> Split:
    if spec is not None and spec.protocol == "ett":
        return ett_split(n_rows, lookback, spec.minutes_per_step)
    return ratio_split(n_rows, lookback)
