"""Pretraining corpus for an any-variate foundation model (Moirai-MoE), and held-out zero-shot series.

Shapes: T window steps (context C + prediction H), n variates of one sample, B batch, n_max the most
variates in a batch, L context length of an evaluation window, S evaluation series.

`PretrainCorpus` is a map-style dataset with a fixed epoch size. Item `i` of epoch `e` is drawn from
`np.random.default_rng([seed, e, i])`: a source by the mixture weights, a context length and a
horizon uniformly from their ranges, one member dataset of the source (uniformly, excluded members
left out), `1..max_variates`
distinct variates, and a uniformly placed window. Real datasets contribute only their train rows
(ETT: the 12-month train block `[0, 8640)` hourly / `[0, 34560)` 15-minute; weather and
exchange_rate: the first 70 %), in original units: the model is expected to scale each window
itself (instance normalisation over the observed context). Missing values (the weather sentinels)
stay NaN with `observed = False`.

Source names in a mixture: `ett` (ETTh1, ETTh2, ETTm1, ETTm2), any `data.series.sources.CATALOGUE` name,
`kernelsynth`, `seasonal` and `randomwalk` (`data.series.synthetic`, univariate series; a multi-variate sample stacks
distinct series of the pool). Synthetic pools have `n_synthetic` series of `synthetic_length` steps,
generated lazily (series `j` depends only on the seed and `j`) and cached per process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from data.series.sources import CATALOGUE, load_series, split_for
from data.series.synthetic import GENERATORS

DEFAULT_MIXTURE: dict[str, float] = {
    "ett": 0.3,
    "weather": 0.15,
    "exchange_rate": 0.1,
    "kernelsynth": 0.15,
    "seasonal": 0.15,
    "randomwalk": 0.15,
}
SOURCE_GROUPS: dict[str, tuple[str, ...]] = {"ett": ("ETTh1", "ETTh2", "ETTm1", "ETTm2")}
# The datasets kept out of pretraining for zero-shot evaluation.
ZERO_SHOT_EXCLUDE: tuple[str, ...] = ("weather", "exchange_rate")


def _known_source(name: str) -> bool:
    return name in SOURCE_GROUPS or name in CATALOGUE or name in GENERATORS


def _as_range(value: int | Sequence[int], what: str) -> tuple[int, int]:
    lo, hi = (value, value) if isinstance(value, int) else tuple(value)
    if not 1 <= lo <= hi:
        raise ValueError(f"{what} must be an int >= 1 or a range (lo, hi) with 1 <= lo <= hi, got {value!r}")
    return int(lo), int(hi)


@dataclass(frozen=True, kw_only=True)
class CorpusConfig:
    """What the pretraining corpus mixes and how it cuts windows.

    `sources` maps source names to mixture weights (renormalised after `exclude`; zero weights are
    dropped). `context_length` and `horizon` are an int or an inclusive range `(lo, hi)` sampled
    uniformly per item; a window longer than a series is shortened (context first, see
    `PretrainCorpus`). `n_synthetic` is the pool size of each synthetic source.
    """

    sources: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIXTURE))
    exclude: tuple[str, ...] = ()
    context_length: tuple[int, int] = (64, 512)
    horizon: tuple[int, int] = (16, 128)
    max_variates: int = 8
    n_synthetic: int = 256
    synthetic_length: int = 1024
    epoch_size: int = 10_000
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", dict(self.sources))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "context_length", _as_range(self.context_length, "context_length"))
        object.__setattr__(self, "horizon", _as_range(self.horizon, "horizon"))
        unknown = [n for n in (*self.sources, *self.exclude) if not _known_source(n)]
        if unknown:
            known = sorted({*SOURCE_GROUPS, *CATALOGUE, *GENERATORS})
            raise ValueError(f"unknown corpus sources {unknown}; use {known}")
        if any(not np.isfinite(w) or w < 0 for w in self.sources.values()):
            raise ValueError(f"mixture weights must be finite and >= 0, got {self.sources}")
        if not self.mixture():
            raise ValueError("no source with a positive weight is left after `exclude`")
        if self.max_variates < 1 or self.epoch_size < 1:
            raise ValueError("max_variates and epoch_size must be >= 1")
        if self.n_synthetic < 1 or self.synthetic_length < self.horizon[0] + 1:
            raise ValueError("need n_synthetic >= 1 and synthetic_length > the shortest horizon")

    def members(self, source: str) -> tuple[str, ...]:
        """The datasets a source draws from, less excluded ones (`ett` minus e.g. `ETTh2`)."""
        if source in self.exclude:
            return ()
        return tuple(m for m in SOURCE_GROUPS.get(source, (source,)) if m not in self.exclude)

    def mixture(self) -> dict[str, float]:
        """Normalised weights of the sources that take part (not excluded, weight > 0, members left)."""
        kept = {n: float(w) for n, w in self.sources.items() if w > 0 and self.members(n)}
        total = sum(kept.values())
        return {n: w / total for n, w in kept.items()}


@cache
def train_rows(dataset: str) -> np.ndarray:
    """The train rows `[T_train, N]` (float32, NaN where missing, read-only) of a catalogue dataset."""
    frame, spec = load_series(dataset)
    start, end = split_for(spec, frame.height, lookback=0).train
    values = frame.drop("date").to_numpy().astype(np.float32)[start:end]
    values.flags.writeable = False
    return values


class _SyntheticPool:
    """`n` univariate series of one generator, made on first use: `rows(start, end, idx) -> [T, k]`."""

    def __init__(self, generator: str, n: int, length: int, seed: int):
        self.generator, self.n, self.length, self.seed = generator, n, length, seed
        self._series: dict[int, np.ndarray] = {}

    def _get(self, j: int) -> np.ndarray:
        if j not in self._series:
            self._series[j] = GENERATORS[self.generator](1, self.length, self.seed, first=j)[0]
        return self._series[j]

    def rows(self, start: int, end: int, idx: Sequence[int]) -> np.ndarray:
        return np.stack([self._get(int(j))[start:end] for j in idx], axis=1)


class PretrainCorpus(Dataset):
    """Random (context + prediction) windows from the corpus mixture; `epoch_size` items per epoch.

    Item `i` is a dict:
      `target` float32 `[T, n]` (T = context_length + prediction_length, NaN where missing),
      `observed` bool `[T, n]`, `context_length` int, `prediction_length` int,
      `source` (mixture name), `dataset` (file or generator), `rows` (`(start, end)` rows of that
      dataset, absolute: train rows start at row 0), `variates` (column / pool indices, in the drawn order).

    Window lengths: with C and H drawn from their ranges and a series of `T_src` rows,
    `H = min(H, T_src - 1)` and `C = min(C, T_src - H)`.
    Synthetic pools depend on `config.seed` only, not on the epoch.
    """

    def __init__(self, config: CorpusConfig):
        self.config = config
        mixture = config.mixture()
        self.names: tuple[str, ...] = tuple(mixture)
        self.probs = np.array([mixture[n] for n in self.names])
        self.epoch = 0
        self._pools = {
            n: _SyntheticPool(n, config.n_synthetic, config.synthetic_length, config.seed)
            for n in self.names
            if n in GENERATORS
        }
        self._members = {n: config.members(n) for n in self.names}
        for name in self.names:  # load (and cache) the real train rows now, not inside the first batch
            for member in self._members[name]:
                if member in CATALOGUE:
                    train_rows(member)

    def set_epoch(self, epoch: int) -> None:
        """Draw a different (still deterministic) set of windows for each epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.config.epoch_size

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        c = self.config
        rng = np.random.default_rng([c.seed, self.epoch, int(i)])
        source = self.names[int(rng.choice(len(self.names), p=self.probs))]
        ctx = int(rng.integers(c.context_length[0], c.context_length[1] + 1))
        hor = int(rng.integers(c.horizon[0], c.horizon[1] + 1))
        if source in self._pools:
            pool = self._pools[source]
            dataset, n_rows, n_vars = source, pool.length, pool.n
        else:
            members = self._members[source]
            dataset = members[int(rng.integers(len(members)))]
            n_rows, n_vars = train_rows(dataset).shape
        hor = min(hor, n_rows - 1)
        ctx = min(ctx, n_rows - hor)
        k = int(rng.integers(1, min(c.max_variates, n_vars) + 1))
        idx = [int(j) for j in rng.choice(n_vars, size=k, replace=False)]
        start = int(rng.integers(0, n_rows - ctx - hor + 1))
        end = start + ctx + hor
        if source in self._pools:
            window = self._pools[source].rows(start, end, idx)
        else:
            window = np.array(train_rows(dataset)[start:end][:, idx])
        target = torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32))
        return {
            "target": target,
            "observed": ~torch.isnan(target),
            "context_length": ctx,
            "prediction_length": hor,
            "source": source,
            "dataset": dataset,
            "rows": (start, end),
            "variates": tuple(idx),
        }


def collate(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Pad a list of corpus items into one batch, the forecast start aligned at step `C_max`.

    Sample b sits at steps `[C_max - C_b, C_max + H_b)` and variates `[0, n_b)`; everything else is
    padding (NaN, unobserved). Returns
      `target` float32 `[B, C_max + H_max, n_max]`, `observed` bool (same shape),
      `variate_mask` bool `[B, n_max]` (real variates), `time_mask` bool `[B, C_max + H_max]` (real
      steps), `prediction_mask` bool `[B, C_max + H_max]` (steps to forecast),
      `context_length`, `prediction_length` int64 `[B]`, and lists `source`, `dataset`, `rows`,
      `variates`.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    ctx = torch.tensor([int(b["context_length"]) for b in batch], dtype=torch.long)
    hor = torch.tensor([int(b["prediction_length"]) for b in batch], dtype=torch.long)
    n_var = [int(b["target"].shape[1]) for b in batch]
    c_max, h_max, n_max = int(ctx.max()), int(hor.max()), max(n_var)
    size = c_max + h_max
    target = torch.full((len(batch), size, n_max), float("nan"), dtype=torch.float32)
    observed = torch.zeros((len(batch), size, n_max), dtype=torch.bool)
    variate_mask = torch.zeros((len(batch), n_max), dtype=torch.bool)
    time_mask = torch.zeros((len(batch), size), dtype=torch.bool)
    prediction_mask = torch.zeros((len(batch), size), dtype=torch.bool)
    for b, item in enumerate(batch):
        c, h, n = int(ctx[b]), int(hor[b]), n_var[b]
        if item["target"].shape[0] != c + h:
            raise ValueError(f"item {b}: target has {item['target'].shape[0]} steps, expected {c} + {h}")
        lo, hi = c_max - c, c_max + h
        target[b, lo:hi, :n] = item["target"]
        observed[b, lo:hi, :n] = item["observed"]
        variate_mask[b, :n] = True
        time_mask[b, lo:hi] = True
        prediction_mask[b, c_max:hi] = True
    out: dict[str, Any] = {
        "target": target,
        "observed": observed,
        "variate_mask": variate_mask,
        "time_mask": time_mask,
        "prediction_mask": prediction_mask,
        "context_length": ctx,
        "prediction_length": hor,
    }
    for key in ("source", "dataset", "rows", "variates"):
        if all(key in item for item in batch):
            out[key] = [item[key] for item in batch]
    return out


@dataclass(frozen=True)
class HeldoutSeries:
    """Zero-shot evaluation windows of one dataset, one univariate series per (variate, window).

    S = n_variates × n_windows, ordered variate-major, windows oldest first.
    `context` float32 `[S, L]`, `target` float32 `[S, H]`, `variate` names `[S]`,
    `rows` int64 `[S, 2]` = `(context start, target end)` rows of the file, `season` the seasonal
    period in steps (for seasonal naive and MASE), `test_rows` the test split `[start, end)`.
    """

    dataset: str
    context: np.ndarray
    target: np.ndarray
    variate: tuple[str, ...]
    rows: np.ndarray
    season: int
    test_rows: tuple[int, int]


def heldout_series(
    name: str, context_length: int, horizon: int, n_windows: int, stride: int | None = None
) -> HeldoutSeries:
    """The last `n_windows` (context, horizon) windows of the TEST split of a catalogue dataset.

    Forecast windows end at `test_end - j·stride` (j = 0..n_windows-1) with `stride = horizon` by
    default, so forecast windows do not overlap (rolling evaluation as in GIFT-Eval); pass
    `stride = context_length + horizon` for wholly disjoint windows. Every row a window touches,
    context included, lies in the test split (ETT: `[11520, 14400)` / `[46080, 57600)`; others: the
    last 20 %); ValueError if they do not fit. Missing values stay NaN.
    Seasons: ETTh 24, ETTm 96, weather 144, exchange_rate 7 (`DatasetSpec.season_length`).
    """
    spec = CATALOGUE.get(name)
    if spec is None:
        raise ValueError(f"unknown dataset {name!r}; use one of {', '.join(CATALOGUE)}")
    if min(context_length, horizon, n_windows) < 1:
        raise ValueError("context_length, horizon and n_windows must be >= 1")
    stride = horizon if stride is None else stride
    if stride < 1:
        raise ValueError("stride must be >= 1")
    frame, _ = load_series(name)
    test_start, test_end = split_for(spec, frame.height, lookback=0).test
    first_start = test_end - (n_windows - 1) * stride - horizon - context_length
    if first_start < test_start:
        raise ValueError(
            f"{n_windows} windows of {context_length} + {horizon} steps (stride {stride}) need "
            f"{test_end - first_start} rows; the {name} test split has {test_end - test_start}"
        )
    variates = [col for col in frame.columns if col != "date"]
    values = frame.select(variates).to_numpy().astype(np.float32)  # [T, N]
    ends = [test_end - j * stride for j in reversed(range(n_windows))]
    ctx, tgt, names, rows = [], [], [], []
    for v, col in enumerate(variates):
        for end in ends:
            split = end - horizon
            ctx.append(values[split - context_length : split, v])
            tgt.append(values[split:end, v])
            names.append(col)
            rows.append((split - context_length, end))
    return HeldoutSeries(
        dataset=name,
        context=np.stack(ctx),
        target=np.stack(tgt),
        variate=tuple(names),
        rows=np.array(rows, dtype=np.int64),
        season=spec.season_length,
        test_rows=(test_start, test_end),
    )
