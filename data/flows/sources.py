"""The flow datasets shipped with Seer and how each is split (files in `data/flows/datasets/`,
provenance and licenses in `data/flows/datasets/SOURCE.md`).

Splits are by file and by position, never by random rows, so a window (the target flow and the flows
recorded before it) never holds flows of two splits:
- `nsl-kdd`: the standard pair: train on KDDTrain+_20Percent (its first 90 % of rows; the last 10 % are
  the validation rows), test on KDDTest+ (a separate file with 17 attack types train never has).
- `nf-bot-iot-v2`: one file, 70/10/20 consecutive blocks in file order (the NF-v2 files hold no
  timestamps; this reduced file was down-sampled class by class, so file order is the only order).
A name that is not in the catalogue is a path to a flow file (NetFlow v2 CSV/Parquet, or NSL-KDD
`.txt`), split 70/10/20 the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from data.flows.formats import NETFLOW_V2, NSL_KDD, FlowFormat
from data.flows.readers import read_flows, sniff_format

DATASET_DIR = Path(__file__).resolve().parent / "datasets"


@dataclass(frozen=True)
class FlowSplit:
    """Row ranges `[start, end)` of the dataset's frame; a window only ever holds rows of one range."""

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]

    def part(self, name: str) -> tuple[int, int]:
        if name not in ("train", "val", "test"):
            raise ValueError(f"split part must be train, val or test, got {name!r}")
        return tuple(getattr(self, name))  # type: ignore[return-value]


@dataclass(frozen=True)
class FlowDataset:
    """A catalogue entry: its format, files (read and concatenated in this order), and the split."""

    name: str
    format: FlowFormat
    files: tuple[str, ...]
    labels: str  # the default label mode of recipes on it


CATALOGUE: dict[str, FlowDataset] = {
    "nsl-kdd": FlowDataset("nsl-kdd", NSL_KDD, ("KDDTrain+_20Percent.txt.gz", "KDDTest+.txt.gz"), "binary"),
    "nf-bot-iot-v2": FlowDataset("nf-bot-iot-v2", NETFLOW_V2, ("NF-BoT-IoT-v2_reduced.csv.gz",), "attack"),
}


def ratio_split(n_rows: int, train: float = 0.7, test: float = 0.2) -> FlowSplit:
    """Consecutive blocks in file order: train, val, test."""
    n_train, n_test = int(n_rows * train), int(n_rows * test)
    if min(n_train, n_rows - n_train - n_test, n_test) < 1:
        raise ValueError(f"{n_rows} flows are too few for a {train:.0%}/{1 - train - test:.0%}/{test:.0%} split")
    return FlowSplit(train=(0, n_train), val=(n_train, n_rows - n_test), test=(n_rows - n_test, n_rows))


def load_flows(dataset: str, max_rows: int = 0) -> tuple[pl.DataFrame, FlowFormat, FlowSplit]:
    """The dataset's flows as one frame (rows in file order, files one after the other), its format and
    its split. `max_rows` > 0 keeps the first `max_rows` rows of each split part (smoke runs)."""
    entry = CATALOGUE.get(dataset)
    if entry is None:
        fmt = sniff_format(dataset)
        frame = read_flows(dataset, fmt)
        split = ratio_split(frame.height)
    elif len(entry.files) == 2:  # a train file and a test file: validation is the train file's last 10 %
        fmt = entry.format
        train, test = (read_flows(DATASET_DIR / f, fmt) for f in entry.files)
        n_fit = int(train.height * 0.9)
        frame = pl.concat([train, test], how="vertical")
        split = FlowSplit(train=(0, n_fit), val=(n_fit, train.height), test=(train.height, frame.height))
    else:
        fmt = entry.format
        frame = pl.concat([read_flows(DATASET_DIR / f, fmt) for f in entry.files], how="vertical")
        split = ratio_split(frame.height)
    if max_rows > 0:
        parts = [frame.slice(a, min(max_rows, b - a)) for a, b in (split.train, split.val, split.test)]
        sizes = [p.height for p in parts]
        frame = pl.concat(parts, how="vertical")
        split = FlowSplit(
            train=(0, sizes[0]), val=(sizes[0], sizes[0] + sizes[1]), test=(sizes[0] + sizes[1], sum(sizes))
        )
    return frame, fmt, split
