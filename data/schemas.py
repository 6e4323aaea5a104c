"""The contract between data and training: typed batches and what a DataModule offers besides them.

Shapes: B batch, L lookback, H horizon, N variates, F calendar features, k plotted variates.

A dataset yields one window per item (`ForecastWindow`); `ForecastBatch.collate` stacks windows of one
shape into a batch. Batches are plain (mutable) dataclasses of tensors because Lightning moves those to
the device field by field (`lightning_utilities.apply_to_collection` refuses frozen dataclasses).
Every DataModule a recipe builds is a `SeerDataModule`: `training.run` sizes the model, writes the
bundle's transform and example, and plots through it without knowing which data it is.
A new task adds its window, batch and example here, next to the forecast ones.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Protocol, TypeVar

import lightning as L
import numpy as np
import polars as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

T = TypeVar("T")


class Batch(Protocol):
    """What the training system reads of any batch (the rest is the task objective's)."""

    @property
    def size(self) -> int: ...


class SeerDataModule(L.LightningDataModule, ABC):
    """A LightningDataModule whose loaders yield typed batches, plus what a run needs besides fitting.

    Data-parallel fits (several processes, `training.distributed`) give every process its own shard. Plain
    map-style loaders (a dataset, a batch size, shuffled or not) are sharded by Lightning, which swaps their
    sampler for a `DistributedSampler`. A DataModule whose loaders batch with their own samplers says
    `shards_by_rank = True` and shards every loader itself, by `shard()` (`rank_share`, `RankBatches`);
    training then leaves its loaders as they are."""

    shards_by_rank: ClassVar[bool] = False

    @abstractmethod
    def setup(self, stage: str | None = None) -> None:
        """Read and prepare the data; idempotent (the run calls it first, Lightning again)."""

    def loader(self, part: str) -> DataLoader:
        """The loader of one split ("train" shuffles; "val" and "test" keep every window, in order)."""
        raise NotImplementedError(f"{type(self).__name__} has no loader; override loader() or the *_dataloader hooks")

    def shard(self) -> tuple[int, int]:
        """(rank, world size) of this process in the fit or test that asks for a loader; (0, 1) outside one."""
        trainer = self.trainer
        return (int(trainer.global_rank), int(trainer.world_size)) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train")

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")

    @abstractmethod
    def model_dims(self) -> dict[str, int]:
        """The model config's fields that the data fixes (e.g. lookback, horizon, variates)."""

    @abstractmethod
    def transform_state(self, model: nn.Module) -> dict[str, Any]:
        """The bundle's transform: what serving needs to turn requests into the model's inputs."""

    @abstractmethod
    def example_input(self) -> dict[str, Any]:
        """A request-shaped example stored in the bundle (warm-up, docs)."""

    @abstractmethod
    def signature_example(self) -> Any:
        """The input example MLflow logs with the model (and infers its signature from)."""

    @abstractmethod
    def evaluation_example(self) -> Any:
        """The example the task objective plots after a run (e.g. a `ForecastExample`)."""


def run_seed() -> int:
    """The run's seed, the same in every process: `L.seed_everything` exports it as `PL_GLOBAL_SEED` (Lightning's
    own `DistributedSampler` is seeded from it too)."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def rank_share(items: Sequence[T], rank: int, world: int, *, even: bool) -> list[T]:
    """Process `rank`'s share of `items`: every `world`-th item from position `rank`, so the shares are disjoint
    and together hold every item once. `even`: every share has ⌈n / world⌉ items, the short ones topped up from
    the start of `items` as `DistributedSampler` does (training: every process must take the same number of
    steps, or one waits for a gradient exchange the others never start); else shares differ by one at most."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside a world of {world}")
    n = len(items)
    if not even or n == 0:
        return list(items[rank::world])
    return [items[p % n] for p in range(rank, math.ceil(n / world) * world, world)]


class RankBatches(Sampler[list[int]]):
    """One process's batches of an epoch, for a DataModule that shards itself (`shards_by_rank`).

    `order(epoch)` is the epoch's order of all `size` indices, the same in every process (drawn from the run's
    seed and the epoch); this process keeps its share (`rank_share`) and cuts it into batches of `batch_size`.
    Lightning calls `set_epoch` before every epoch."""

    def __init__(
        self,
        order: Callable[[int], Sequence[int] | np.ndarray],
        size: int,
        batch_size: int,
        rank: int,
        world: int,
        *,
        even: bool,
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.order, self.size, self.batch_size = order, size, batch_size
        self.rank, self.world, self.even, self.epoch = rank, world, even, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        share = rank_share([int(i) for i in self.order(self.epoch)], self.rank, self.world, even=self.even)
        return iter([share[s : s + self.batch_size] for s in range(0, len(share), self.batch_size)])

    def __len__(self) -> int:
        share = math.ceil(self.size / self.world) if self.even else len(range(self.rank, self.size, self.world))
        return math.ceil(share / self.batch_size)


@dataclass(kw_only=True)
class ForecastWindow:
    """One window: x [L, N], x_mark [L, F], y [H, N], y_mark [H, F]; loc/scale [1, N] when the window is
    in original units and is scored after standardising with them (see `ForecastBatch`)."""

    x: torch.Tensor
    x_mark: torch.Tensor
    y: torch.Tensor
    y_mark: torch.Tensor
    loc: torch.Tensor | None = None
    scale: torch.Tensor | None = None


@dataclass(kw_only=True)
class ForecastBatch:
    """x [B, L, N] history, x_mark [B, L, F] its calendar features, y [B, H, N] the target, y_mark [B, H, F].

    NaN marks a missing value (in x: unobserved context; in y: left out of the loss and the metrics).
    `loc`/`scale` [B, 1, N] are None for windows already scaled (a dataset's train-fitted scaler); set, the
    windows are in original units (the corpus mixes datasets in their own units) and are scored on
    `(value - loc) / scale`."""

    x: torch.Tensor
    x_mark: torch.Tensor
    y: torch.Tensor
    y_mark: torch.Tensor
    loc: torch.Tensor | None = None
    scale: torch.Tensor | None = None

    @property
    def size(self) -> int:
        """B, the number of windows."""
        return int(self.x.shape[0])

    @classmethod
    def collate(cls, windows: Sequence[ForecastWindow]) -> ForecastBatch:
        """Windows of one shape (loc/scale on all or none) stacked along a new batch dimension."""
        if not windows:
            raise ValueError("a batch needs at least one window")
        names = [f.name for f in fields(ForecastWindow)]
        shapes = {tuple(None if t is None else tuple(t.shape) for t in (getattr(w, n) for n in names)) for w in windows}
        if len(shapes) != 1:
            raise ValueError(f"a batch needs windows of one shape, got {sorted(shapes, key=str)}")

        def stack(name: str) -> torch.Tensor:
            return torch.stack([getattr(w, name) for w in windows])

        first = windows[0]
        return cls(
            x=stack("x"),
            x_mark=stack("x_mark"),
            y=stack("y"),
            y_mark=stack("y_mark"),
            loc=None if first.loc is None else stack("loc"),
            scale=None if first.scale is None else stack("scale"),
        )


@dataclass(frozen=True, kw_only=True)
class ForecastExample:
    """The window a run's evaluation plot shows, in original units: history [L, k], its `timestamps`
    (ISO-8601, None when the data has no calendar), truth [H, k] and the k variate `names`."""

    history: np.ndarray
    truth: np.ndarray
    names: list[str]
    timestamps: list[str] | None
    title: str  # what the window is, e.g. "last test window"


@dataclass(kw_only=True)
class ClassifyBatch:
    """Windows of encoded flows (`data.flows`), each labelled by its last flow.

    flows [B, W, F]: the W flows up to and including the target, oldest first (F = numeric values, then
    categorical codes); pad_mask [B, W] bool: True where a window has no flow (left padding at the start
    of a split); label [B] long: the target flow's class index; weight [B]: the loss weight of each
    window (class weights for imbalance, 1 when the loader samples classes instead)."""

    flows: torch.Tensor
    pad_mask: torch.Tensor
    label: torch.Tensor
    weight: torch.Tensor

    @property
    def size(self) -> int:
        """B, the number of windows."""
        return int(self.flows.shape[0])


@dataclass(frozen=True, kw_only=True)
class ClassifyExample:
    """What a classify run's evaluation figures are made from: the test flows as recorded (`frame`, one
    row per flow, the model's raw feature columns plus `target`, the class name), the class names in
    the model's order and what the rows are (`title`)."""

    frame: pl.DataFrame
    classes: list[str]
    title: str


@dataclass(kw_only=True)
class DenoiseWindow:
    """One EEG pair: noisy and clean [N, T] in µV, how it was made (`kind`, an index into
    `data.eeg.pairs.KINDS`) and its SNR in dB (NaN where none was set: ICA pairs, artifact-free windows)."""

    noisy: torch.Tensor
    clean: torch.Tensor
    kind: int
    snr_db: float = float("nan")


@dataclass(kw_only=True)
class DenoiseBatch:
    """noisy [B, N, T] EEG with artifacts and its clean target [B, N, T] (µV); kind [B] (long) and snr_db [B]."""

    noisy: torch.Tensor
    clean: torch.Tensor
    kind: torch.Tensor
    snr_db: torch.Tensor

    @property
    def size(self) -> int:
        """B, the number of windows."""
        return int(self.noisy.shape[0])

    @classmethod
    def collate(cls, windows: Sequence[DenoiseWindow]) -> DenoiseBatch:
        """Windows of one shape stacked along a new batch dimension."""
        if not windows:
            raise ValueError("a batch needs at least one window")
        shapes = {(tuple(w.noisy.shape), tuple(w.clean.shape)) for w in windows}
        if len(shapes) != 1 or windows[0].noisy.shape != windows[0].clean.shape:
            raise ValueError(f"a batch needs noisy and clean windows of one shape, got {sorted(shapes)}")
        return cls(
            noisy=torch.stack([w.noisy for w in windows]),
            clean=torch.stack([w.clean for w in windows]),
            kind=torch.tensor([w.kind for w in windows], dtype=torch.long),
            snr_db=torch.tensor([w.snr_db for w in windows], dtype=torch.float32),
        )


@dataclass(frozen=True, kw_only=True)
class DenoiseExample:
    """The stretch a run's evaluation plot shows: noisy [N, T] (µV, preprocessed), its ICA-cleaned reference
    [N, T] (or None), the channel names and the rate."""

    noisy: np.ndarray
    reference: np.ndarray | None
    channels: list[str]
    sfreq: float
    title: str


@dataclass(kw_only=True)
class RolloutWindow:
    """One rollout sample in physical units: the state u [*grid, V] at a snapshot and target [K, *grid, V], the
    states 1..K model steps later (`data.fields.windows`)."""

    u: torch.Tensor
    target: torch.Tensor


@dataclass(kw_only=True)
class RolloutBatch:
    """u [B, *grid, V] the states at t and target [B, K, *grid, V] the states at t + 1..K model steps, both in
    physical units; mean/std [V] the per-component normalisation fitted on the training trajectories (the model
    maps (u − mean)/std one step forward); `pushforward` how a training loss over the K-step unroll takes its
    gradient (True: through the last model application of each step only; `training.tasks.rollout.objective`)."""

    u: torch.Tensor
    target: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    pushforward: bool = True

    @property
    def size(self) -> int:
        """B, the number of samples."""
        return int(self.u.shape[0])

    @property
    def steps(self) -> int:
        """K, the target steps of every sample."""
        return int(self.target.shape[1])

    @classmethod
    def collate(
        cls, windows: Sequence[RolloutWindow], *, mean: torch.Tensor, std: torch.Tensor, pushforward: bool = True
    ) -> RolloutBatch:
        """Windows of one shape stacked along a new batch dimension, with the data's normalisation."""
        if not windows:
            raise ValueError("a batch needs at least one window")
        shapes = {(tuple(w.u.shape), tuple(w.target.shape)) for w in windows}
        first = windows[0]
        if len(shapes) != 1 or tuple(first.target.shape[1:]) != tuple(first.u.shape):
            raise ValueError(f"a batch needs states u [*grid, V] and targets [K, *grid, V] of one shape, got {shapes}")
        return cls(
            u=torch.stack([w.u for w in windows]),
            target=torch.stack([w.target for w in windows]),
            mean=mean,
            std=std,
            pushforward=pushforward,
        )


@dataclass(frozen=True, kw_only=True)
class RolloutExample:
    """The trajectory stretch a rollout run's evaluation plots show, in physical units: `truth [S + 1, *grid, V]`
    (the initial state, then S model steps), the component names, the box lengths and the time per step."""

    truth: np.ndarray
    components: list[str]
    domain: list[float]
    dt: float
    title: str
