"""Corpus pretraining data for any-variate forecasters (e.g. Moirai-MoE): fixed-shape batches over the
pretraining corpus (`data.series.corpus.PretrainCorpus`) and held-out validation and test windows — a
corpus recipe's data (`PretrainDataConfig`, `PretrainDataModule`).

Shapes: B batch, L context steps (= the model's lookback), H horizon, n variates of a batch.

Batches are `data.schemas.ForecastBatch(x [B, L, n], x_mark [B, L, 0], y [B, H, n], y_mark [B, H, 0])`
in each dataset's original units (the model scales every series of a window from its observed context
itself; calendar features are empty: the corpus mixes sampling rates). NaN marks a missing value.
Held-out (val/test) batches also carry `loc`/`scale` [B, 1, n]: the statistics the metrics
standardise with (the forecast objective in `training.tasks`), see below.

Fixed L and H. The recipe fixes L (= the model's lookback, what `forward` and serving take) and H.
The corpus' context and horizon ranges are clipped to them (`corpus_for`), so it never draws more;
a shorter context (a series shorter than L + H) is left-padded with NaN and a shorter horizon
right-padded with NaN — the alignment of `data.series.corpus.collate` with C_max = L, H_max = H. The model
treats NaN context as unobserved and leaves NaN targets out of its likelihood; the metrics skip them.

Variates. Items have 1..`max_variates` variates. Padding a batch to its widest item is not an option:
a padded variate has no observed context (which the model's instance scaling rejects), and in
any-variate attention every token of a window attends to every variate, so even a masked filler
variate would change the real ones' forecasts. So each batch holds windows with the *same* n:
`VariateBatchSampler` reads each item's n once per epoch (an item is a deterministic function of
(seed, epoch, index) and costs ~0.2 ms once the synthetic pools exist), groups the epoch's shuffled
items by n, cuts every group into batches of B (a group's last batch may be smaller: every item
counts, and a small epoch still yields batches) and shuffles the batches. All n occur in proportion
to the corpus draw and nothing is padded across variates. A window with a variate whose context has
no observed value is left out of the epoch (the model cannot scale it); with the shipped data that
needs L <= 34 (the longest weather gap).

Validation and test. The corpus draws from the *train* rows only, so early stopping needs held-out
data: `eval_windows` windows per real dataset taking part in the mixture (excluded datasets such as
the zero-shot ones stay out), evenly spaced over that dataset's val split (test split for the test
set) under its protocol (ETT 12/4/4 months, others 70/10/20), each window L + H rows whose first
target row lies inside the split. Every variate of the dataset is scored, in groups of at most
`max_variates` (contiguous columns, as even as possible: weather's 21 → 3 × 7). Windows are batched by
n like the training items, in a fixed order, and all are kept. Early stopping watches their NLL
(`val_nll`); MSE/MAE of the point forecast are scored after standardising with each dataset's
train-split mean and standard deviation per variate (NaN-aware; std 1 for a constant variate), the
units of the dataset recipes' metrics (raw units would let weather's hPa and ppm dominate; each
window's own context statistics blow up on flat contexts, e.g. days without rain). A mixture without
real datasets (synthetic only) is validated on corpus items drawn with another seed (fresh synthetic
series), standardised by each window's own statistics.

Data-parallel fits (`training.distributed`). Every process draws the same epoch permutation and keeps its
share of it (every `world`-th item from its rank), groups and batches only those, and takes the same number
of batches as every other process (`n_batches` from the share's size), so no process waits on a gradient
exchange the others never start; `batch_size` is then the batch of each process. Held-out windows are
shared out the same way inside each group of n, every window scored by exactly one process (the metrics
add up across processes).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from core.registry import ProbabilisticForecaster
from data.schemas import ForecastBatch, ForecastExample, ForecastWindow, SeerDataModule, rank_share
from data.series.corpus import CorpusConfig, PretrainCorpus
from data.series.sources import CATALOGUE, load_series, split_for

log = logging.getLogger("seer.data")


@dataclass(frozen=True, kw_only=True)
class PretrainDataConfig:
    """The fixed batch shape of corpus pretraining and the held-out windows (the recipe's `data`)."""

    calendar_freq: ClassVar[str] = ""  # no calendar features: the corpus mixes sampling rates
    uses_corpus: ClassVar[bool] = True  # the recipe's `corpus` is what the windows are drawn from

    dataset: str = "corpus"  # always "corpus" (what `seer recipes` and the run tags show)
    lookback: int = 512  # L: context steps of every window (= the model's lookback)
    horizon: int = 64  # H: forecast steps of every window (scored, and the served point forecast)
    batch_size: int = 32
    eval_windows: int = 16  # held-out windows per real dataset, for each of the val and test splits
    example_dataset: str = "ETTh1"  # the stored example input: its last test window ...
    example_variates: int = 3  # ... of its first this many variates, in original units
    num_workers: int = 0

    def __post_init__(self) -> None:
        for name in ("lookback", "horizon", "batch_size", "eval_windows", "example_variates"):
            if getattr(self, name) < 1:
                raise ValueError(f"PretrainDataConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_workers < 0:
            raise ValueError("num_workers must be >= 0")
        if self.dataset != "corpus":
            raise ValueError(
                f"a corpus recipe's data.dataset is always 'corpus' (got {self.dataset!r}); "
                "its datasets are set by corpus.sources and corpus.exclude"
            )
        if self.example_dataset not in CATALOGUE:
            raise ValueError(f"example_dataset must be one of {', '.join(CATALOGUE)}, got {self.example_dataset!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def datamodule(self, corpus: CorpusConfig | None = None) -> PretrainDataModule:
        if corpus is None:
            raise ValueError("corpus windows need the recipe's pretraining corpus")
        return PretrainDataModule(self, corpus)

    def for_bundle(self, transform: Mapping[str, Any]) -> PretrainDataConfig:
        """These windows shaped like a bundle's transform (its lookback and horizon), to test it."""
        return dataclasses.replace(self, lookback=int(transform["lookback"]), horizon=int(transform["horizon"]))


def corpus_for(data: PretrainDataConfig, corpus: CorpusConfig) -> CorpusConfig:
    """The corpus with its context and horizon ranges clipped to the fixed L and H."""
    (c_lo, c_hi), (h_lo, h_hi) = corpus.context_length, corpus.horizon
    return dataclasses.replace(
        corpus,
        context_length=(min(c_lo, data.lookback), min(c_hi, data.lookback)),
        horizon=(min(h_lo, data.horizon), min(h_hi, data.horizon)),
    )


def has_observed_context(x: torch.Tensor) -> bool:
    """x [L, n]: every variate has at least one observed (non-NaN) value."""
    return bool((~torch.isnan(x)).any(dim=0).all())


def corpus_window(
    x: torch.Tensor, y: torch.Tensor, loc: torch.Tensor | None = None, scale: torch.Tensor | None = None
) -> ForecastWindow:
    """x [L, n], y [H, n] (+ loc, scale [1, n]) as a window with no calendar features (F = 0)."""
    return ForecastWindow(
        x=x, x_mark=x.new_zeros(x.shape[0], 0), y=y, y_mark=y.new_zeros(y.shape[0], 0), loc=loc, scale=scale
    )


def window_stats(values: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """NaN-aware per-variate mean and (population) standard deviation of rows `[T, n]`, each [1, n]
    float32; std 1 where a variate is constant or has fewer than one observed value (loc 0 then)."""
    observed = ~np.isnan(values)
    count = observed.sum(axis=0)
    safe = np.where(observed, values, 0.0)
    loc = safe.sum(axis=0) / np.maximum(count, 1)
    var = (np.where(observed, values - loc, 0.0) ** 2).sum(axis=0) / np.maximum(count, 1)
    std = np.sqrt(var)
    std = np.where((std < 1e-12) | (count == 0), 1.0, std)
    return torch.from_numpy(loc.astype(np.float32)[None]), torch.from_numpy(std.astype(np.float32)[None])


class CorpusWindows(Dataset):
    """Corpus items as fixed-shape windows: key `(epoch, i)` -> `ForecastWindow` (x [L, n], y [H, n]).

    The epoch travels in the key, so a worker process (which holds its own copy of the corpus)
    draws exactly the item the batch sampler grouped."""

    def __init__(self, corpus: PretrainCorpus, lookback: int, horizon: int):
        self.corpus, self.lookback, self.horizon = corpus, lookback, horizon

    def __len__(self) -> int:
        return len(self.corpus)

    def __getitem__(self, key: tuple[int, int]) -> ForecastWindow:
        epoch, i = key
        self.corpus.set_epoch(epoch)
        item = self.corpus[i]
        target, c, h = item["target"], int(item["context_length"]), int(item["prediction_length"])
        n = target.shape[1]
        x = torch.full((self.lookback, n), float("nan"))
        y = torch.full((self.horizon, n), float("nan"))
        keep_c, keep_h = min(c, self.lookback), min(h, self.horizon)
        x[self.lookback - keep_c :] = target[c - keep_c : c]
        y[:keep_h] = target[c : c + keep_h]
        return corpus_window(x, y)

    def n_variates(self, epoch: int, i: int) -> int | None:
        """The item's n, or None when some variate has no observed context (the window is skipped)."""
        x = self[(epoch, i)].x
        return int(x.shape[1]) if has_observed_context(x) else None


class EpochSampler(Sampler[int]):
    """The order of one epoch's corpus items (a permutation seeded by (seed, epoch)); in a data-parallel fit,
    process `rank`'s share of it (`rank_share`: every `world`-th item from position `rank`).

    Lightning calls `set_epoch` on a batch sampler's `sampler` before every epoch."""

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True, *, rank: int = 0, world: int = 1):
        self.size, self.seed, self.shuffle, self.epoch = size, seed, shuffle, 0
        self.rank, self.world = rank, world

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size) if self.shuffle else None
        items = range(self.size) if order is None else [int(i) for i in order]
        return iter(rank_share(items, self.rank, self.world, even=False))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.world))


class VariateBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of `(epoch, index)` keys whose items all have the same number of variates.

    Per epoch: every item's n is read (`n_variates(epoch, i)`, None = skip the item), the sampler's
    order is grouped by n, each group cut into batches of `batch_size` (its last partial batch dropped
    with `drop_last`), and the batches shuffled (seeded by (seed, epoch)). Computed once per epoch.

    `n_batches` fixes the epoch's length: the grouping makes the natural count vary from epoch to epoch,
    and Lightning reads a batch sampler's length once, then validates when the batch index reaches it,
    so an epoch one batch short would end without validation (seen: the MoE runs validated on only
    some epochs). With `n_batches`, partial batches go first when the epoch is too long, and randomly
    chosen batches repeat when it is too short (many skipped items)."""

    def __init__(
        self,
        sampler: EpochSampler,
        n_variates: Callable[[int, int], int | None],
        batch_size: int,
        *,
        drop_last: bool = False,
        seed: int = 0,
        n_batches: int | None = None,
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if n_batches is not None and n_batches < 1:
            raise ValueError("n_batches must be >= 1")
        self.sampler, self.n_variates, self.batch_size = sampler, n_variates, batch_size
        self.drop_last, self.seed, self.n_batches = drop_last, seed, n_batches
        self.skipped = 0  # items of the current epoch left out (no observed context for some variate)
        self._cache: tuple[int, list[list[tuple[int, int]]]] | None = None

    def batches(self) -> list[list[tuple[int, int]]]:
        epoch = self.sampler.epoch
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        groups: dict[int, list[int]] = {}
        skipped = 0
        for i in self.sampler:
            n = self.n_variates(epoch, i)
            if n is None:
                skipped += 1
                continue
            groups.setdefault(n, []).append(i)
        batches = [
            [(epoch, i) for i in idx[s : s + self.batch_size]]
            for _, idx in sorted(groups.items())
            for s in range(0, len(idx), self.batch_size)
            if not (self.drop_last and len(idx) - s < self.batch_size)
        ]
        rng = np.random.default_rng([self.seed, epoch, 1])
        batches = [batches[j] for j in rng.permutation(len(batches))]
        if self.n_batches is not None and batches:
            batches.sort(key=lambda b: len(b) < self.batch_size)  # stable: full batches first, shuffled
            top_up = rng.integers(0, len(batches), size=max(0, self.n_batches - len(batches)))
            batches = batches[: self.n_batches] + [batches[j] for j in top_up]
            batches = [batches[j] for j in rng.permutation(len(batches))]
        self.skipped = skipped
        if skipped:
            log.info("corpus epoch %d: %d windows skipped (a variate with no observed context)", epoch, skipped)
        self._cache = (epoch, batches)
        return batches

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return self.n_batches if self.n_batches is not None else len(self.batches())


class HeldoutWindows(Dataset):
    """A fixed list of windows (x [L, n], y [H, n], loc [1, n], scale [1, n]) with their dataset names."""

    def __init__(self, windows: list[ForecastWindow], names: list[str]):
        self.windows, self.names = windows, names

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, j: int) -> ForecastWindow:
        return self.windows[j]

    def batches(self, batch_size: int, rank: int = 0, world: int = 1) -> list[list[int]]:
        """Every window, batched by n in a fixed order (first appearance of each n); in a data-parallel fit
        process `rank`'s share of each group (`rank_share`), so each window is scored by one process only."""
        groups: dict[int, list[int]] = {}
        for j, window in enumerate(self.windows):
            groups.setdefault(int(window.x.shape[1]), []).append(j)
        shares = [rank_share(idx, rank, world, even=False) for idx in groups.values()]
        return [idx[s : s + batch_size] for idx in shares for s in range(0, len(idx), batch_size)]


@cache
def dataset_values(name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """All rows `[T, N]` (float64, NaN where missing, read-only) and the variate names of a catalogue dataset."""
    frame, _ = load_series(name)
    names = tuple(c for c in frame.columns if c != "date")
    values = frame.select(names).to_numpy().astype(np.float64)
    values.flags.writeable = False
    return values, names


def variate_groups(n: int, max_variates: int) -> list[np.ndarray]:
    """Column indices 0..n-1 cut into ⌈n / max_variates⌉ contiguous groups of near-equal size."""
    return [g for g in np.array_split(np.arange(n), math.ceil(n / max_variates)) if len(g)]


def heldout_windows(
    dataset: str, part: str, lookback: int, horizon: int, n_windows: int, max_variates: int
) -> tuple[list[ForecastWindow], list[str]]:
    """Up to `n_windows` windows (x, y, loc, scale) of L + H rows, evenly spaced over the `part`
    ("val" | "test") split of a catalogue dataset (first target row inside the split), every variate
    scored in groups of at most `max_variates`; loc/scale are the dataset's train-split statistics of
    those variates. Windows with a variate that has no observed context are left out."""
    values, _ = dataset_values(dataset)
    split = split_for(CATALOGUE[dataset], len(values), lookback)
    loc, scale = window_stats(values[slice(*split.train)])
    start, end = getattr(split, part)
    last = end - lookback - horizon
    if last < start:
        return [], []
    starts = np.unique(np.linspace(start, last, num=min(n_windows, last - start + 1)).round().astype(int))
    windows: list[ForecastWindow] = []
    for s in starts:
        block = torch.from_numpy(np.ascontiguousarray(values[s : s + lookback + horizon], dtype=np.float32))
        for cols in variate_groups(block.shape[1], max_variates):
            x, y = block[:lookback, cols], block[lookback:, cols]
            if has_observed_context(x):
                windows.append(corpus_window(x.clone(), y.clone(), loc[:, cols].clone(), scale[:, cols].clone()))
    return windows, [dataset] * len(windows)


class PretrainDataModule(SeerDataModule):
    """Training batches from the corpus mixture, validation/test windows from the held-out splits; its batch
    samplers shard by rank themselves in a data-parallel fit (`shards_by_rank`)."""

    shards_by_rank = True

    def __init__(self, config: PretrainDataConfig, corpus: CorpusConfig):
        super().__init__()
        self.config = config
        self.corpus_config = corpus_for(config, corpus)
        self._ready = False

    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        c, cc = self.config, self.corpus_config
        self.corpus = PretrainCorpus(cc)
        self.windows = CorpusWindows(self.corpus, c.lookback, c.horizon)
        self.sampler, self.batch_sampler = self._train_batches(rank=0, world=1)
        self.heldout_datasets = tuple(
            m for source in cc.mixture() for m in cc.members(source) if m in CATALOGUE
        )  # the real datasets taking part; the zero-shot ones are excluded by `exclude`
        self.val_set = self._heldout("val", seed_offset=1)
        self.test_set = self._heldout("test", seed_offset=2)
        self._ready = True

    def _train_batches(self, rank: int, world: int) -> tuple[EpochSampler, VariateBatchSampler]:
        """Process `rank`'s epoch order and its batches; every process takes ⌈⌈size / world⌉ / B⌉ batches."""
        c, cc = self.config, self.corpus_config
        sampler = EpochSampler(len(self.corpus), seed=cc.seed, rank=rank, world=world)
        n_batches = math.ceil(math.ceil(len(self.corpus) / world) / c.batch_size)
        batches = VariateBatchSampler(
            sampler, self.windows.n_variates, c.batch_size, drop_last=False, seed=cc.seed, n_batches=n_batches
        )
        return sampler, batches

    def _heldout(self, part: str, seed_offset: int) -> HeldoutWindows:
        c, cc = self.config, self.corpus_config
        windows: list[ForecastWindow] = []
        names: list[str] = []
        for dataset in self.heldout_datasets:
            w, n = heldout_windows(dataset, part, c.lookback, c.horizon, c.eval_windows, cc.max_variates)
            windows += w
            names += n
        if not windows:  # synthetic-only mixture: fresh corpus items (another seed, so other series)
            size = c.eval_windows * max(1, len(cc.mixture()))
            other = CorpusWindows(
                PretrainCorpus(dataclasses.replace(cc, seed=cc.seed + seed_offset, epoch_size=size)),
                c.lookback,
                c.horizon,
            )
            for i in range(size):
                item = other[(0, i)]
                if has_observed_context(item.x):
                    windows.append(corpus_window(item.x, item.y, *window_stats(torch.cat([item.x, item.y]).numpy())))
                    names.append(str(other.corpus[i]["dataset"]))
        return HeldoutWindows(windows, names)

    @property
    def n_variates(self) -> int:
        """The most variates of a training window (the model itself takes any number)."""
        return self.corpus_config.max_variates

    @property
    def n_marks(self) -> int:
        return 0

    def train_dataloader(self) -> DataLoader:
        self.setup()
        rank, world = self.shard()
        return DataLoader(
            self.windows,
            batch_sampler=self.batch_sampler if world == 1 else self._train_batches(rank, world)[1],
            collate_fn=ForecastBatch.collate,
            num_workers=self.config.num_workers,
        )

    def _heldout_loader(self, windows: HeldoutWindows) -> DataLoader:
        return DataLoader(
            windows,
            batch_sampler=windows.batches(self.config.batch_size, *self.shard()),
            collate_fn=ForecastBatch.collate,
            num_workers=self.config.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return self._heldout_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        self.setup()
        return self._heldout_loader(self.test_set)

    def model_dims(self) -> dict[str, int]:
        """The model config's sizes that the data fixes; variates = the most a training window has (the
        model itself takes any number)."""
        c = self.config
        return {"lookback": c.lookback, "horizon": c.horizon, "n_variates": self.n_variates, "n_marks": self.n_marks}

    def transform_state(self, model: nn.Module) -> dict[str, Any]:
        """The bundle's transform: instance scaling inside the model, any variates, no calendar; quantiles
        reach the model's `max_horizon` (a point model: the horizon)."""
        max_horizon = model.max_horizon if isinstance(model, ProbabilisticForecaster) else self.config.horizon
        return {
            "kind": "instance",
            "scaler": None,
            "variates": None,
            "calendar_freq": "",
            "step_seconds": None,
            "lookback": self.config.lookback,
            "horizon": self.config.horizon,
            "max_horizon": int(max_horizon),
            "dataset": "corpus",
        }

    def example_window(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(history [L, k], truth [H, k], names) of the example dataset's last test window, original units."""
        c = self.config
        values, names = dataset_values(c.example_dataset)
        _, end = split_for(CATALOGUE[c.example_dataset], len(values), c.lookback).test
        k = min(c.example_variates, values.shape[1])
        s = end - c.horizon - c.lookback
        return values[s : s + c.lookback, :k].copy(), values[s + c.lookback : end, :k].copy(), list(names[:k])

    def example_input(self) -> dict[str, Any]:
        """`{"history": [[k values] × L]}`: no timestamps (the model uses no calendar)."""
        return {"history": self.example_window()[0].tolist()}

    def signature_example(self) -> np.ndarray:
        """The example as MLflow's input example: an [L, k] array, so the logged signature is a float64
        tensor of shape (-1, -1) (any length, any number of variates), not the example's column names."""
        return self.example_window()[0]

    def evaluation_example(self) -> ForecastExample:
        """The example dataset's last test window (history, truth) in original units, for the run's plot."""
        history, truth, names = self.example_window()
        title = f"{self.config.example_dataset} last test window"
        return ForecastExample(history=history, truth=truth, names=names, timestamps=None, title=title)
