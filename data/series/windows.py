"""Sliding windows over a scaled series, and the LightningDataModule that builds them (a dataset recipe's data).

Shapes: T rows, N variates, F calendar features, L lookback, H horizon.
A window starting at row s has input rows [s, s+L) and target rows [s+L, s+L+H); a split `[a, b)`
yields `b - a - L - H + 1` windows, all of them (test windows are never dropped). Loaders yield
`data.schemas.ForecastBatch`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from data.scalers import StandardScaler
from data.schemas import ForecastBatch, ForecastExample, ForecastWindow, SeerDataModule
from data.series.calendar import infer_frequency, infer_step_seconds, n_features, time_features
from data.series.protocols import Split, describe_split, fit_lookback
from data.series.sources import CATALOGUE, load_series, split_for
from data.series.user import describe_file

if TYPE_CHECKING:
    from data.series.corpus import CorpusConfig


class WindowDataset(Dataset):
    """Windows `ForecastWindow(x [L,N], x_mark [L,F], y [H,N], y_mark [H,F])` over rows `[start, end)`."""

    def __init__(self, values: np.ndarray, marks: np.ndarray, lookback: int, horizon: int, start: int, end: int):
        if not 0 <= start <= end <= len(values):
            raise ValueError(f"window range [{start}, {end}) outside the {len(values)} rows")
        self.values = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))  # [T, N]
        self.marks = torch.from_numpy(np.ascontiguousarray(marks, dtype=np.float32))  # [T, F]
        self.lookback, self.horizon, self.start = lookback, horizon, start
        self.n = max(0, end - start - lookback - horizon + 1)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> ForecastWindow:
        if not 0 <= i < self.n:
            raise IndexError(i)
        s = self.start + i
        m = s + self.lookback
        e = m + self.horizon
        return ForecastWindow(x=self.values[s:m], x_mark=self.marks[s:m], y=self.values[m:e], y_mark=self.marks[m:e])


@dataclass(frozen=True, kw_only=True)
class ForecastDataConfig:
    """One dataset under its protocol split, scaled with a scaler fit on its train rows."""

    uses_corpus: ClassVar[bool] = False  # a dataset recipe has no pretraining corpus

    dataset: str = "ETTh1"  # catalogue name or a CSV/Parquet path
    lookback: int = 96
    horizon: int = 96
    batch_size: int = 32
    calendar_freq: str = "h"  # "" disables calendar features
    variates: tuple[str, ...] = ()  # empty: every non-date column
    num_workers: int = 0

    def __post_init__(self) -> None:
        if self.lookback < 1 or self.horizon < 1:
            raise ValueError("lookback and horizon must be >= 1")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.calendar_freq:
            n_features(self.calendar_freq)  # validates the name

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_file(
        cls, path: str, horizon: int, lookback: int, targets: Sequence[str] = (), calendar: bool = True, **kw: Any
    ) -> ForecastDataConfig:
        """A user's file (`data.series.user.describe_file`): its series (`targets` or every numeric
        column), the calendar features of its inferred frequency (none with `calendar=False`), and
        `lookback`, or less where the file is short (`data.series.protocols.fit_lookback`)."""
        summary = describe_file(path, targets)
        return cls(
            dataset=str(path),
            lookback=fit_lookback(summary.rows, horizon, lookback),
            horizon=horizon,
            calendar_freq=summary.frequency.freq if calendar else "",
            variates=summary.variates,
            **kw,
        )

    def describe(self) -> str:
        """What training reads, in a person's words: the file's series and frequency, and the split."""
        if self.dataset in CATALOGUE:
            spec = CATALOGUE[self.dataset]
            protocol = "ETT 12/4/4 months" if spec.protocol == "ett" else "70/10/20 % by time"
            return f"data: {self.dataset} (shipped), split {protocol}; lookback {self.lookback}, horizon {self.horizon}"
        summary = describe_file(self.dataset, self.variates)
        frame, _ = load_series(self.dataset)
        split = split_for(None, summary.rows, self.lookback)
        return (
            f"{summary.describe()}\nsplit 70/10/20 % by time, lookback {self.lookback}, horizon {self.horizon}: "
            f"{describe_split(split, frame['date'].to_list(), self.lookback, self.horizon)}"
        )

    def datamodule(self, corpus: CorpusConfig | None = None) -> ForecastDataModule:
        if corpus is not None:
            raise ValueError(f"{self.dataset}: a dataset's data takes no pretraining corpus")
        return ForecastDataModule(self)

    def for_bundle(self, transform: Mapping[str, Any]) -> ForecastDataConfig:
        """This data shaped like a bundle's transform (its lookback, horizon and variates), to test it."""
        return replace(
            self,
            lookback=int(transform["lookback"]),
            horizon=int(transform["horizon"]),
            variates=tuple(transform["variates"]),
        )


def _check_complete(raw: np.ndarray, variates: list[str], dates: Any) -> None:
    """A file's values must all be present: say which columns miss how many, and from when."""
    missing = ~np.isfinite(raw)  # [T, N]
    if not missing.any():
        return
    cols = [f"{v} ({int(missing[:, j].sum())}, first at {dates[int(np.argmax(missing[:, j]))]})"
            for j, v in enumerate(variates) if missing[:, j].any()]  # fmt: skip
    raise ValueError(
        f"missing or non-finite values in {', '.join(cols[:5])}: fill them (or pick other columns); "
        "a long file's series must share their timestamps"
    )


def _check_windows(split: Split, lookback: int, horizon: int) -> None:
    """Every part of the split must hold at least one window (early stopping and the test need them)."""
    for part in ("train", "val", "test"):
        if split.n_windows(part, lookback, horizon) < 1:
            start, end = getattr(split, part)
            raise ValueError(
                f"the {part} part (rows {start}-{end - 1}) holds no window of lookback {lookback} + horizon "
                f"{horizon}: use a shorter lookback (--set data.lookback=...) or horizon, or more rows"
            )


class ForecastDataModule(SeerDataModule):
    """Reads the series, applies the protocol split, fits the scaler on train rows only."""

    def __init__(self, config: ForecastDataConfig):
        super().__init__()
        self.config = config
        self._ready = False

    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        c = self.config
        frame, spec = load_series(c.dataset)
        variates = list(c.variates) or [col for col in frame.columns if col != "date"]
        missing = [v for v in variates if v not in frame.columns]
        if missing:
            raise ValueError(f"variates {missing} not in {c.dataset} (has {frame.columns[1:]})")
        raw = frame.select(variates).to_numpy().astype(np.float64)  # [T, N]
        if spec is None:  # a user's file: a point model needs every value (catalogue sentinels are documented)
            _check_complete(raw, variates, frame["date"])
        self.split: Split = split_for(spec, len(raw), c.lookback)
        _check_windows(self.split, c.lookback, c.horizon)
        self.scaler = StandardScaler.fit(raw[slice(*self.split.train)])
        self.values = self.scaler.transform(raw)  # [T, N] scaled with train statistics
        dates = frame["date"]
        self.marks = time_features(dates, c.calendar_freq) if c.calendar_freq else np.zeros((len(raw), 0), np.float32)
        self.dates = dates
        self.variates = variates
        # A file's step comes from its calendar (monthly steps are calendar months); catalogue data are regular.
        self.step_seconds = infer_frequency(dates).step_seconds if spec is None else infer_step_seconds(dates)
        self._ready = True

    @property
    def n_variates(self) -> int:
        self.setup()
        return len(self.variates)

    @property
    def n_marks(self) -> int:
        return n_features(self.config.calendar_freq) if self.config.calendar_freq else 0

    def dataset(self, part: str) -> WindowDataset:
        self.setup()
        start, end = getattr(self.split, part)
        return WindowDataset(self.values, self.marks, self.config.lookback, self.config.horizon, start, end)

    def loader(self, part: str) -> DataLoader:
        return DataLoader(
            self.dataset(part),
            batch_size=self.config.batch_size,
            shuffle=part == "train",
            drop_last=False,  # every window counts, in every split
            num_workers=self.config.num_workers,
            collate_fn=ForecastBatch.collate,
        )

    def model_dims(self) -> dict[str, int]:
        """The model config's sizes that the data fixes."""
        c = self.config
        return {"lookback": c.lookback, "horizon": c.horizon, "n_variates": self.n_variates, "n_marks": self.n_marks}

    def transform_state(self, model: nn.Module | None = None) -> dict[str, Any]:
        """What serving needs to reproduce training's inputs: scaler, variates, calendar, step (the
        same for every model)."""
        self.setup()
        return {
            "scaler": self.scaler.to_dict(),
            "variates": self.variates,
            "calendar_freq": self.config.calendar_freq,
            "step_seconds": self.step_seconds,
            "lookback": self.config.lookback,
            "horizon": self.config.horizon,
            "dataset": self.config.dataset,
        }

    def example_input(self) -> dict[str, Any]:
        """The last test window in original units, stored with the model for warm-up and docs."""
        self.setup()
        end = self.split.test[1]
        s = end - self.config.horizon - self.config.lookback
        raw = self.scaler.inverse(self.values[s : s + self.config.lookback])
        ts = [d.isoformat() for d in self.dates[s : s + self.config.lookback].to_list()]
        return {"history": raw.tolist(), "timestamps": ts}

    def signature_example(self) -> pd.DataFrame:
        """The example as MLflow's input example: a `date` column and one column per variate."""
        ex = self.example_input()
        frame = pd.DataFrame(ex["history"], columns=self.variates)
        frame.insert(0, "date", ex["timestamps"])
        return frame

    def evaluation_example(self) -> ForecastExample:
        """The last test window (history, timestamps, truth) in original units, for the run's plot."""
        ex = self.example_input()
        end = self.split.test[1]
        truth = self.scaler.inverse(self.values[end - self.config.horizon : end])
        history = np.asarray(ex["history"])
        return ForecastExample(
            history=history, truth=truth, names=self.variates, timestamps=ex["timestamps"], title="last test window"
        )
