"""The classify task's retraining holdout: labelled flow files, the last flows, scores lower-is-better.

1. Fresh data: every file the pattern matches (sorted by name) is read as flows of one format (NetFlow
   v2 CSV/Parquet, or NSL-KDD `.txt`) and the files are concatenated in name order, rows in file order
   (flows have no timestamp to sort or deduplicate by). The challenger trains on them written as one
   file (Parquet for NetFlow v2, the NSL-KDD text layout otherwise), so the 70/10/20 split by position
   of a file dataset applies.
2. Holdout: the last `count` flows. They must lie in the challenger's test rows (its last 20 %), else
   the job fails before training and says how many fit. Each is scored with the window ending at it,
   made of holdout flows only (padded at the holdout's start), so no window reaches into the rows the
   challenger trained or early-stopped on.
3. Scores, each model through its own stored transform and label mode: `error` (1 - accuracy), `f1_gap`
   (1 - macro F1) and `benign_fpr` (benign flows flagged as attacks), lower is better.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from data.flows.formats import NSL_KDD, get_format
from data.flows.readers import TARGET, read_flows, sniff_format, with_target
from data.flows.sources import ratio_split
from data.series.readers import DataFormatError
from training.tasks.classify.metrics import matrix_score
from training.tasks.classify.objective import confusion_matrix
from training.tasks.holdout import FreshData, HoldoutWindows, match_files

if TYPE_CHECKING:
    from inference.tasks.classify import ClassifyPredictor
    from training.recipes import Recipe


def load_fresh(pattern: str) -> tuple[pl.DataFrame, str, list[Path]]:
    """Every matching file as one frame of flows (name order, then file order) and its format's name."""
    files = match_files(pattern)
    formats = {sniff_format(f).name for f in files}
    if len(formats) > 1:
        raise DataFormatError(f"files matching {pattern!r} mix flow formats {sorted(formats)}: use one format")
    fmt = sniff_format(files[0])
    frames = [read_flows(f, fmt) for f in files]
    columns = frames[0].columns
    for f, frame in zip(files, frames, strict=True):
        if frame.columns != columns:
            raise DataFormatError(f"{f} has columns {frame.columns}, {files[0]} has {columns}")
    if fmt.class_column not in columns:
        raise DataFormatError(f"{files[0]} has no {fmt.class_column!r} column: retraining needs labelled flows")
    return pl.concat(frames, how="vertical"), fmt.name, files


@dataclass(frozen=True)
class ClassifyHoldout:
    """`training.tasks.holdout.Holdout` for flow classifiers (see the module docstring)."""

    task: str = "classify"
    metrics: tuple[str, ...] = ("error", "f1_gap", "benign_fpr")

    def read(self, pattern: str) -> FreshData:
        frame, fmt, files = load_fresh(pattern)
        return FreshData(files=files, rows=frame.height, payload=(frame, fmt), describe={"format": fmt})

    def write(self, fresh: FreshData, directory: Path, stem: str) -> Path:
        frame, fmt = fresh.payload
        if fmt == NSL_KDD.name:  # the dataset's own headerless text layout, so it reads back as NSL-KDD
            path = directory / f"{stem}.txt"
            frame.write_csv(path, include_header=False)
            return path
        path = directory / f"{stem}.parquet"
        frame.write_parquet(path)
        return path

    def windows(self, fresh: FreshData, recipe: Recipe, count: int) -> HoldoutWindows:
        test_start = ratio_split(fresh.rows).test[0]  # the split `train()` uses for a flow file
        if count < 1 or fresh.rows - count < test_start:
            raise ValueError(
                f"holdout_windows={count} does not fit in the challenger's test rows: with {fresh.rows} flows, at "
                f"most {fresh.rows - test_start} (the last 20 %) are never trained on; lower holdout_windows or add "
                "data"
            )
        first = fresh.rows - count
        return HoldoutWindows(count=count, payload=range(first, fresh.rows), describe={"first_flow": str(first)})

    def incomparable(self, champion: ClassifyPredictor, challenger: ClassifyPredictor) -> str | None:
        if champion.classes != challenger.classes:
            return f"classifies {champion.classes}, the challenger {challenger.classes}: not comparable on one holdout"
        if champion.transform.format != challenger.transform.format:
            return f"reads {champion.transform.format} flows, the challenger {challenger.transform.format}"
        return None

    def score(self, predictor: ClassifyPredictor, fresh: FreshData, windows: HoldoutWindows) -> dict[str, float]:
        frame, fmt = fresh.payload
        if predictor.transform.format != fmt:
            raise ValueError(f"{predictor.name} reads {predictor.transform.format} flows, the fresh data is {fmt}")
        rows = windows.payload
        part = frame.slice(rows.start, len(rows))
        labels = str(predictor.meta["transform"].get("labels") or "binary")
        truth = predictor.transform.class_index(with_target(part, get_format(fmt), labels)[TARGET])
        pred = predictor.score_frame(part).argmax(axis=1)
        matrix = confusion_matrix(truth, pred, len(predictor.classes))
        return {name: matrix_score(matrix, name) for name in self.metrics}


CLASSIFY_HOLDOUT = ClassifyHoldout()
