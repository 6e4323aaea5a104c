"""Windows of consecutive flows and the DataModule of a flow dataset (a classify recipe's data).

A window ends at its target flow and holds the W-1 flows recorded just before it, oldest first (the
official FlowTransformer window: `X.iloc[i - W + 1 : i + 1]`), labelled by the target. Windows are cut
inside one split part only: the first W-1 targets of a part get windows left-padded (`pad_mask`)
instead of borrowing flows from the part before, so no window holds flows of two splits.

Every flow of every part is a target (test windows are never dropped). Class imbalance, per
`ClassifyDataConfig.balance`: `weights` gives each training window the loss weight (n / (K·n_k))^power
of its class k (normalised to mean 1 over the training windows); `sampler` draws training windows with
those probabilities instead (power 1 = class-balanced batches, FlowTransformer's 50/50 batches for two
classes) and weight 1; `none` neither. Training windows are also shortened at random
(`truncate_prob`: a random number of the oldest flows padded out) so the model learns the short
windows it meets at the start of a split or of a request.

Shapes: T flows, F features per flow, W window, B batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler, WeightedRandomSampler

from core.config import check_choice
from data.flows.readers import TARGET, benign_class, with_target
from data.flows.sources import CATALOGUE, load_flows
from data.flows.transform import SCALINGS, FlowTransform
from data.schemas import ClassifyBatch, ClassifyExample, RankBatches, SeerDataModule, run_seed

EXAMPLE_ROWS = 100_000  # test flows the run's figures are made from, at most


def window_rows(targets: np.ndarray, start: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices [B, W] of the windows ending at `targets` (rows of a part that begins at `start`) and
    their pad mask [B, W] (True where the window reaches before `start`; those indices point at the
    target itself, so any gather stays in bounds)."""
    offsets = np.arange(-window + 1, 1)  # [W]: oldest first, the target last
    rows = targets[:, None] + offsets[None, :]  # [B, W]
    pad = rows < start
    return np.where(pad, targets[:, None], rows), pad


def class_weights(labels: np.ndarray, n_classes: int, power: float) -> np.ndarray:
    """(n / (K·n_k))^power per class, normalised so the mean over `labels` is 1; classes absent from
    `labels` get 0 (they have no window to weigh)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    w = np.zeros(n_classes)
    seen = counts > 0
    w[seen] = (len(labels) / (n_classes * counts[seen])) ** power
    return w / (w[labels].mean() if len(labels) else 1.0)


class FlowWindows(Dataset):
    """The windows of one split part `[start, end)`; indexed by a list of positions (a whole batch at
    once: the loader's sampler is a `BatchSampler`), it returns one `ClassifyBatch`."""

    def __init__(
        self,
        flows: torch.Tensor,  # [T, F] encoded flows of the whole frame
        labels: torch.Tensor,  # [T] class indices
        start: int,
        end: int,
        window: int,
        weights: torch.Tensor | None = None,  # [K] loss weight per class; None: 1
        truncate_prob: float = 0.0,
    ):
        if not 0 <= start <= end <= len(flows):
            raise ValueError(f"window range [{start}, {end}) outside the {len(flows)} flows")
        self.flows, self.labels, self.start, self.end, self.window = flows, labels, start, end, window
        self.weights, self.truncate_prob = weights, truncate_prob

    def __len__(self) -> int:
        return self.end - self.start

    def __getitem__(self, positions: list[int] | int) -> ClassifyBatch:
        pos = np.atleast_1d(np.asarray(positions, dtype=np.int64))
        if len(pos) and (pos.min() < 0 or pos.max() >= len(self)):
            raise IndexError(f"window positions must be in [0, {len(self)})")
        targets = self.start + pos  # [B]
        rows, pad = window_rows(targets, self.start, self.window)  # [B, W]
        pad_mask = torch.from_numpy(pad)
        if self.truncate_prob > 0:
            cut = torch.rand(len(pos)) < self.truncate_prob  # windows to shorten
            keep = torch.randint(1, self.window + 1, (len(pos), 1))  # flows each keeps, the target included
            short = torch.arange(self.window)[None, :] < self.window - keep  # [B, W]
            pad_mask = pad_mask | (short & cut[:, None])
        label = self.labels[targets]
        weight = torch.ones(len(pos)) if self.weights is None else self.weights[label]
        return ClassifyBatch(
            flows=self.flows[torch.from_numpy(rows)],  # [B, W, F]
            pad_mask=pad_mask,
            label=label,
            weight=weight.float(),
        )


def _as_is(batch: Any) -> Any:
    """The loader's collate: `FlowWindows` makes whole batches itself."""
    return batch


@dataclass(frozen=True, kw_only=True)
class ClassifyDataConfig:
    """One flow dataset, encoded with a transform fit on its train rows, cut into windows per split."""

    uses_corpus: ClassVar[bool] = False

    dataset: str = "nsl-kdd"  # catalogue name or a flow file path
    labels: str = ""  # binary | attack (NetFlow v2) | category (NSL-KDD); "": the catalogue's default
    window: int = 8
    top_k: int = 32  # categorical values kept per feature; the rest are "other"
    scaling: str = "log"  # numeric features: log (FlowTransformer's log min-max) | quantile (the train CDF)
    batch_size: int = 128
    balance: str = "weights"  # none | weights | sampler
    balance_power: float = 0.5  # 1: fully class-balanced; 0: as the data is
    truncate_prob: float = 0.1
    max_rows: int = 0  # > 0: the first max_rows flows of each split part only (smoke runs)
    num_workers: int = 0
    # A bundle's fitted transform (`for_bundle`): used as it is instead of fitting one (not a recipe setting).
    fitted: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.window < 1 or self.top_k < 1 or self.batch_size < 1:
            raise ValueError("window, top_k and batch_size must be >= 1")
        check_choice(self, "balance", ("none", "weights", "sampler"))
        check_choice(self, "scaling", SCALINGS)
        if not 0.0 <= self.balance_power <= 1.0 or not 0.0 <= self.truncate_prob <= 1.0:
            raise ValueError("balance_power and truncate_prob must be in [0, 1]")

    @property
    def lookback(self) -> int:
        """The flows a window reads (`DataSpec`'s input length)."""
        return self.window

    @property
    def horizon(self) -> int:
        """One label per window: its last flow's."""
        return 1

    @property
    def label_mode(self) -> str:
        if self.labels:
            return self.labels
        entry = CATALOGUE.get(self.dataset)
        return entry.labels if entry is not None else "binary"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "fitted"}

    def describe(self) -> str:
        """What training reads, in a person's words (`seer train` prints it)."""
        entry = CATALOGUE.get(self.dataset)
        split = (
            "train file (last 10 % validates) / test file"
            if entry is not None and len(entry.files) == 2
            else "70/10/20 % by position in the file"
        )
        where = "shipped" if entry is not None else "file"
        return (
            f"data: {self.dataset} ({where}), {self.label_mode} labels, split {split}; windows of {self.window} flows "
            f"ending at each flow, {self.scaling}-scaled numbers, top {self.top_k} values per categorical feature, "
            f"balance {self.balance}"
        )

    def datamodule(self, corpus: Any = None) -> ClassifyDataModule:
        if corpus is not None:
            raise ValueError(f"{self.dataset}: flow data takes no pretraining corpus")
        return ClassifyDataModule(self)

    def for_bundle(self, transform: Mapping[str, Any]) -> ClassifyDataConfig:
        """This data encoded with a bundle's own fitted transform (its window, label mode, levels), to test it."""
        return replace(
            self,
            window=int(transform["window"]),
            labels=str(transform["labels"]),
            top_k=int(transform["top_k"]),
            scaling=str(transform.get("scaling", "log")),
            fitted=dict(transform),
        )


class ClassifyDataModule(SeerDataModule):
    """Reads the flows, splits them by file/position, fits the transform on the train rows only.

    Its loaders batch with their own samplers, so in a data-parallel fit they shard themselves
    (`shards_by_rank`): each process draws the same epoch order (seeded by the run's seed and the epoch) and
    keeps its share: training batches evenly (every process the same number of steps), val/test windows
    each exactly once."""

    shards_by_rank = True

    def __init__(self, config: ClassifyDataConfig):
        super().__init__()
        self.config = config
        self._ready = False

    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        c = self.config
        frame, fmt, self.split = load_flows(c.dataset, c.max_rows)
        labels = c.label_mode
        self.frame = with_target(frame, fmt, labels)
        benign = benign_class(fmt, labels)
        names = self.frame[TARGET].unique().to_list()
        classes = ["benign", "attack"] if labels == "binary" else [benign, *sorted(n for n in names if n != benign)]
        a, b = self.split.train
        if c.fitted is not None:  # a bundle's transform: its levels, ranges and class order, not a new fit
            self.transform = FlowTransform.from_dict(dict(c.fitted))
        else:
            self.transform = FlowTransform.fit(
                self.frame.slice(a, b - a),
                fmt,
                top_k=c.top_k,
                classes=classes,
                benign=benign,
                window=c.window,
                scaling=c.scaling,
            )
        self.flows = torch.from_numpy(self.transform.encode(self.frame))  # [T, F]
        self.labels = torch.from_numpy(np.array(self.transform.class_index(self.frame[TARGET])))  # [T], writable
        train_labels = self.labels[a:b].numpy()
        self.class_weights = class_weights(train_labels, len(classes), c.balance_power)
        self._ready = True

    def dataset(self, part: str) -> FlowWindows:
        self.setup()
        start, end = self.split.part(part)
        train = part == "train"
        weights = torch.from_numpy(self.class_weights) if train and self.config.balance == "weights" else None
        truncate = self.config.truncate_prob if train else 0.0
        return FlowWindows(self.flows, self.labels, start, end, self.config.window, weights, truncate)

    def loader(self, part: str) -> DataLoader:
        data = self.dataset(part)
        c = self.config
        sampler: Any
        rank, world = self.shard()
        if world > 1:
            sampler = self._rank_batches(data, part, rank, world)
            return DataLoader(data, sampler=sampler, batch_size=None, collate_fn=_as_is, num_workers=c.num_workers)
        if part != "train":
            sampler = SequentialSampler(data)  # every window, in order
        elif c.balance == "sampler":
            p = self.class_weights[self.labels[data.start : data.end].numpy()]
            sampler = WeightedRandomSampler(p.tolist(), num_samples=len(data), replacement=True)
        else:
            sampler = RandomSampler(data)
        batches = BatchSampler(sampler, batch_size=c.batch_size, drop_last=False)
        return DataLoader(data, sampler=batches, batch_size=None, collate_fn=_as_is, num_workers=c.num_workers)

    def _rank_batches(self, data: FlowWindows, part: str, rank: int, world: int) -> RankBatches:
        """This process's batches of a data-parallel fit: training windows drawn as the one-process loader
        draws them (shuffled, or by class weight with `balance="sampler"`), from a generator every process
        seeds alike; val/test windows in order."""
        n, seed = len(data), run_seed()
        p = self.class_weights[self.labels[data.start : data.end].numpy()]

        def order(epoch: int) -> np.ndarray:
            if part != "train":
                return np.arange(n)
            rng = np.random.default_rng([seed, epoch])
            if self.config.balance == "sampler":
                return rng.choice(n, size=n, replace=True, p=p / p.sum())
            return rng.permutation(n)

        return RankBatches(order, n, self.config.batch_size, rank, world, even=part == "train")

    def model_dims(self) -> dict[str, int]:
        self.setup()
        t = self.transform
        return {
            "window": t.window,
            "n_numeric": len(t.numeric),
            "n_categorical": len(t.categorical),
            "n_levels": t.n_levels,
            "n_classes": len(t.classes),
        }

    def transform_state(self, model: nn.Module | None = None) -> dict[str, Any]:
        """The fitted transform (`FlowTransform.to_dict`), the label mode, the dataset and the class weights
        training used (for the record)."""
        self.setup()
        return {
            **self.transform.to_dict(),
            "labels": self.config.label_mode,
            "dataset": self.config.dataset,
            "class_weights": [round(float(w), 6) for w in self.class_weights],
            "balance": self.config.balance,
        }

    def _example_rows(self, n: int) -> list[dict[str, Any]]:
        start, end = self.split.test
        rows = self.frame.slice(start, min(n, end - start)).select(self.transform.features)
        return rows.to_dicts()

    def example_input(self) -> dict[str, Any]:
        """The first W test flows as a request body (`{"flows": [{feature: value}]}`, recorded values)."""
        self.setup()
        return {"flows": self._example_rows(self.config.window)}

    def signature_example(self) -> pd.DataFrame:
        """The example flows as MLflow's input example: one column per feature, numbers as float64 (so
        the logged schema takes integers and decimals alike)."""
        frame = pd.DataFrame(self.example_input()["flows"])
        text = set(self.transform.string_features)
        return frame.astype({c: "float64" for c in frame.columns if c not in text})

    def evaluation_example(self) -> ClassifyExample:
        """The test flows (at most EXAMPLE_ROWS, the first ones), recorded values and class names."""
        self.setup()
        start, end = self.split.test
        rows = self.frame.slice(start, min(EXAMPLE_ROWS, end - start))
        what = f"{self.config.dataset} test flows" + (f" (first {rows.height})" if rows.height < end - start else "")
        return ClassifyExample(frame=rows, classes=list(self.transform.classes), title=what)
