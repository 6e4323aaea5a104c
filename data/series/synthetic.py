"""Synthetic pretraining series: KernelSynth (Gaussian-process priors), a seasonal/trend mixture and
random walks (prices, rates, levels).

Shapes: N series, T steps (`length`). Both generators return float32 `[N, T]` and are deterministic
under `seed`; series `i` depends only on `(seed, i, T)` (child `i` of `SeedSequence(seed)`), so
`generate_*(n, T, seed)[k:] == generate_*(n - k, T, seed, first=k)`: a pool can be built lazily,
one series at a time.

KernelSynth follows Ansari et al., "Chronos: Learning the Language of Time Series" (2024), Alg. 1:
draw `j ~ U{1, .., J}` kernels (with replacement) from a fixed bank, fold them left to right with a
random `+` or `×`, and draw one series from the zero-mean GP with that covariance on the grid
`x = linspace(0, 1, T)`. The bank mirrors the Chronos one (sklearn `ExpSineSquared`, `DotProduct`,
`RBF`, `RationalQuadratic`, `WhiteKernel`, `ConstantKernel` with their default hyper-parameters
unless listed), with two changes: periodic kernels are given in *steps*, so a period-24 kernel
repeats exactly every 24 rows whatever `T` is (Chronos divides by the fixed length 1024 instead), and
the periods add 144 (a day of 10-minute steps) to the Chronos list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import reduce

import numpy as np
import torch

# Common seasonalities, in steps: hourly day/half-day/quarter-day and their weeks, 10-minute days,
# daily week/month/year (+ halves), weekly month/half-year/year, monthly, quarterly, yearly decade.
SEASONAL_PERIODS: tuple[int, ...] = (
    24, 48, 96, 168, 336, 672, 144, 7, 14, 30, 60, 365, 730, 4, 26, 52, 6, 12, 40, 10,
)  # fmt: skip

DEFAULT_LENGTH = 1024
MAX_KERNELS = 5
# The seasonal generator: the chance of a random-walk trend, and of 0/1/2/3 seasonal components.
RANDOM_WALK_P = 0.6
N_SEASONAL_P = (0.3, 0.3, 0.2, 0.2)
KINDS = ("periodic", "linear", "rbf", "rq", "white", "constant")


@dataclass(frozen=True)
class Kernel:
    """One covariance function of the bank, evaluated on `x = linspace(0, 1, T)`.

    `param` by kind: `periodic` period in steps (length scale 1); `linear` sigma_0 of
    `sigma_0² + x·x'`; `rbf` length scale; `rq` alpha (length scale 1); `white` noise level
    (diagonal only); `constant` the constant.
    """

    kind: str
    param: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kernel kind {self.kind!r}; use one of {KINDS}")
        if self.kind in ("periodic", "rbf", "rq") and self.param <= 0:
            raise ValueError(f"{self.kind} kernel needs a positive parameter, got {self.param}")

    def matrix(self, length: int) -> np.ndarray:
        """Covariance `[T, T]` (float64) on `length` equally spaced points of [0, 1]."""
        return self.evaluate(*_grid(length))

    def evaluate(self, x: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Covariance `[T, T]` from the grid `x [T]` and its distances `d = |x_i - x_j| [T, T]`."""
        length = len(x)
        if self.kind == "linear":
            return self.param**2 + np.outer(x, x)
        if self.kind == "white":
            return self.param * np.eye(length)
        if self.kind == "constant":
            return np.full((length, length), float(self.param))
        if self.kind == "periodic":
            period = self.param / max(length - 1, 1)  # steps → grid units
            return np.exp(-2.0 * np.sin(np.pi * d / period) ** 2)
        if self.kind == "rbf":
            return np.exp(-0.5 * (d / self.param) ** 2)
        return (1.0 + d**2 / (2.0 * self.param)) ** (-self.param)  # rq


def _grid(length: int) -> tuple[np.ndarray, np.ndarray]:
    """`x = linspace(0, 1, T)` and the distance matrix `|x_i - x_j|` `[T, T]`."""
    x = np.linspace(0.0, 1.0, length)
    return x, np.abs(x[:, None] - x[None, :])


@dataclass(frozen=True)
class CompositeKernel:
    """`terms[0] op[0] terms[1] op[1] ...` folded left to right; each op is `"+"` or `"*"`."""

    terms: tuple[Kernel, ...]
    ops: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.terms:
            raise ValueError("a composite kernel needs at least one term")
        if len(self.ops) != len(self.terms) - 1 or any(op not in "+*" or len(op) != 1 for op in self.ops):
            raise ValueError(f"need {len(self.terms) - 1} ops from '+'/'*', got {self.ops}")

    def matrix(self, length: int) -> np.ndarray:
        """Covariance `[T, T]`: sums and elementwise (Schur) products keep it positive semi-definite."""
        x, d = _grid(length)
        mats = [k.evaluate(x, d) for k in self.terms]
        pairs = zip(self.ops, mats[1:], strict=True)
        return reduce(lambda acc, om: acc + om[1] if om[0] == "+" else acc * om[1], pairs, mats[0])

    def __str__(self) -> str:
        out = f"{self.terms[0].kind}({self.terms[0].param:g})"
        for op, k in zip(self.ops, self.terms[1:], strict=True):
            out += f" {op} {k.kind}({k.param:g})"
        return out


def kernel_bank(periods: Sequence[int] = SEASONAL_PERIODS) -> tuple[Kernel, ...]:
    """The Chronos KernelSynth bank: periodic kernels for `periods`, then linear, RBF, RQ, white, constant."""
    bank = [Kernel("periodic", float(p)) for p in periods]
    bank += [Kernel("linear", s) for s in (0.0, 1.0, 10.0)]
    bank += [Kernel("rbf", ls) for ls in (0.1, 1.0, 10.0)]
    bank += [Kernel("rq", a) for a in (0.1, 1.0, 10.0)]
    bank += [Kernel("white", n) for n in (0.1, 1.0)]
    bank += [Kernel("constant", 1.0)]
    return tuple(bank)


KERNEL_BANK = kernel_bank()


def sample_kernel(
    rng: np.random.Generator, max_kernels: int = MAX_KERNELS, bank: Sequence[Kernel] = KERNEL_BANK
) -> CompositeKernel:
    """Alg. 1, lines 2-4: `j ~ U{1..J}` kernels from the bank (with replacement), random `+`/`×` between."""
    if max_kernels < 1:
        raise ValueError("max_kernels must be >= 1")
    j = int(rng.integers(1, max_kernels + 1))
    picks = rng.integers(0, len(bank), size=j)
    ops = tuple("+" if b else "*" for b in rng.integers(0, 2, size=j - 1))
    return CompositeKernel(tuple(bank[i] for i in picks), ops)


def sample_gp(
    kernel: Kernel | CompositeKernel, length: int, rng: np.random.Generator, jitter: float = 1e-6
) -> np.ndarray:
    """One draw `[T]` (float64) from GP(0, K) via Cholesky of `K + eps·I`.

    `eps` starts at `jitter × mean(diag K)` and grows ×10 up to four times when the factorisation
    fails (rank-deficient kernels such as `linear(0)` or `constant` need it); then LinAlgError. The
    factorisation runs in torch (float64): numpy's OpenBLAS LAPACK is up to 50× slower on a busy
    few-core machine, where it oversubscribes threads.
    """
    cov = torch.from_numpy(kernel.matrix(length))
    scale = float(cov.diagonal().mean()) or 1.0
    eye = torch.eye(length, dtype=cov.dtype)
    for attempt in range(5):
        chol, info = torch.linalg.cholesky_ex(cov + (jitter * 10**attempt) * scale * eye)
        if int(info) == 0:
            break
    else:
        raise np.linalg.LinAlgError(f"kernel {kernel} is not positive definite even with jitter")
    z = torch.from_numpy(rng.standard_normal(length))
    return (chol @ z).numpy()


@contextmanager
def _single_threaded() -> Iterator[None]:
    """Run torch ops on one intra-op thread, restoring the previous setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _series_rngs(n_series: int, seed: int, first: int) -> list[np.random.Generator]:
    """Generators for series `first .. first + n - 1`: child `i` of `SeedSequence(seed)` for series i."""
    if n_series < 0 or first < 0:
        raise ValueError("n_series and first must be >= 0")
    return [np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(first + i,))) for i in range(n_series)]


def generate_kernelsynth(
    n_series: int, length: int = DEFAULT_LENGTH, seed: int = 0, max_kernels: int = MAX_KERNELS, *, first: int = 0
) -> np.ndarray:
    """KernelSynth series `first .. first + N - 1` as `[N, T]` (float32), one freshly composed kernel each.

    A composition whose covariance cannot be factorised or whose draw is not finite is redrawn
    (as Chronos does). Cost is one `T × T` kernel and Cholesky per series, run single-threaded (a
    `T ≤ 1024` factorisation gains nothing from threads, and on a busy machine loses a lot):
    about 10 ms at T = 256 and 50-200 ms at T = 1024. Parallelise across series if needed.
    """
    if length < 2:
        raise ValueError("length must be >= 2")
    out = np.empty((n_series, length), np.float32)
    with _single_threaded():
        for i, rng in enumerate(_series_rngs(n_series, seed, first)):
            while True:
                kernel = sample_kernel(rng, max_kernels)
                try:
                    y = sample_gp(kernel, length, rng)
                except np.linalg.LinAlgError:
                    continue
                if np.all(np.isfinite(y)) and np.all(np.abs(y) < np.finfo(np.float32).max):
                    out[i] = y
                    break
    return out


def _seasonal_series(rng: np.random.Generator, length: int) -> np.ndarray:
    """One trend + seasonal + noise (+ spikes, level shift) series `[T]` (float64)."""
    t = np.arange(length, dtype=np.float64)
    # Piecewise-linear trend: 0-3 change points, slopes in units of "level change over the series".
    n_knots = min(int(rng.integers(0, 4)), length - 2)
    knots = np.sort(rng.choice(np.arange(1, length - 1), size=n_knots, replace=False))
    slopes = rng.normal(0.0, 1.0, size=n_knots + 1) / length
    trend = rng.normal(0.0, 1.0) + slopes[0] * t
    for k, knot in enumerate(knots):
        trend += (slopes[k + 1] - slopes[k]) * np.maximum(t - knot, 0.0)
    # A stochastic trend (`RANDOM_WALK_P`): a random walk with a small drift (0.01 step sd: a drift of 0.1
    # made 70 % of a 320-step window's variance a straight line, a trend again), scaled to a sd of
    # 0.3-3 over the series (seasonal amplitudes are ~1). Prices, rates and levels move like this;
    # persistence is their best forecast, which a deterministic trend never teaches.
    if rng.random() < RANDOM_WALK_P:
        walk = np.cumsum(rng.normal(rng.normal(0.0, 0.01), 1.0, size=length))
        trend += walk * rng.uniform(0.3, 3.0) / max(float(np.std(walk)), 1e-8)
    # 0-3 seasonal components: mostly common periods, sometimes any period in [2, T/3].
    seasonal = np.zeros(length)
    for _ in range(int(rng.choice(4, p=N_SEASONAL_P))):
        usable = [p for p in SEASONAL_PERIODS if p <= length // 2]
        if usable and rng.random() < 0.7:
            period = float(rng.choice(usable))
        else:
            period = float(rng.integers(2, max(3, length // 3) + 1))
        amp = rng.lognormal(0.0, 0.5)
        phase = rng.uniform(0.0, 2 * np.pi)
        wave = np.sin(2 * np.pi * t / period + phase)
        if rng.random() < 0.4:  # a harmonic makes the shape non-sinusoidal (peaky or flat-topped)
            wave += rng.uniform(-0.5, 0.5) * np.sin(4 * np.pi * t / period + rng.uniform(0.0, 2 * np.pi))
        seasonal += amp * wave
    # Noise: AR(1) (phi in [0.1, 0.95)) or i.i.d. Gaussian, with a random signal-to-noise ratio.
    sigma = rng.uniform(0.05, 0.5)
    eps = rng.normal(0.0, sigma, size=length)
    if rng.random() < 0.5:
        phi = rng.uniform(0.1, 0.95)
        noise = np.empty(length)
        noise[0] = eps[0] / np.sqrt(1 - phi**2)
        for i in range(1, length):
            noise[i] = phi * noise[i - 1] + eps[i]
    else:
        noise = eps
    y = trend + seasonal + noise
    scale = float(np.std(y)) or 1.0
    if rng.random() < 0.3:  # a few isolated spikes
        where = rng.choice(length, size=min(int(rng.integers(1, 6)), length), replace=False)
        y[where] += rng.choice([-1.0, 1.0], size=len(where)) * rng.uniform(3.0, 8.0, size=len(where)) * scale
    if rng.random() < 0.2:  # one level shift
        at = int(rng.integers(1, length))
        y[at:] += rng.normal(0.0, 2.0) * scale
    return y


def _one_by_one(
    series: Callable[[np.random.Generator, int], np.ndarray], n_series: int, length: int, seed: int, first: int
) -> np.ndarray:
    """`[N, T]` float32 of `series(rng_i, T)` for series `first .. first + N - 1` (rng_i: `_series_rngs`)."""
    if length < 4:
        raise ValueError("length must be >= 4")
    out = np.empty((n_series, length), np.float32)
    for i, rng in enumerate(_series_rngs(n_series, seed, first)):
        out[i] = series(rng, length)
    return out


def generate_seasonal(n_series: int, length: int = DEFAULT_LENGTH, seed: int = 0, *, first: int = 0) -> np.ndarray:
    """Seasonal/trend/noise mixture series `first .. first + N - 1` as `[N, T]` (float32).

    Each series: a piecewise-linear trend (0-3 change points), 60 % of the time plus a random walk
    (`RANDOM_WALK_P`), 0-3 seasonal components (`N_SEASONAL_P`) with random periods (70 %
    from `SEASONAL_PERIODS`), amplitudes (log-normal) and phases, sometimes with a second harmonic;
    AR(1) or Gaussian noise; with probability 0.3 one to five spikes of 3-8 standard deviations and
    with probability 0.2 one level shift.
    """
    return _one_by_one(_seasonal_series, n_series, length, seed, first)


# The random-walk generator: chances of heavy-tailed shocks, GARCH volatility, AR(1) momentum in the
# increments, a geometric (price-like) walk, observation noise, and stale runs (repeated values).
WALK_P = {"student_t": 0.5, "garch": 0.4, "momentum": 0.3, "geometric": 0.3, "noise": 0.3, "stale": 0.3}


def _random_walk_series(rng: np.random.Generator, length: int) -> np.ndarray:
    """One integrated-process series `[T]` (float64): a price, rate or level, for which persistence
    (the last value) is the best or nearly the best point forecast at every horizon."""
    p = WALK_P
    if rng.random() < p["student_t"]:
        shocks = rng.standard_t(int(rng.integers(3, 11)), size=length)
    else:
        shocks = rng.standard_normal(length)
    shocks /= max(float(np.std(shocks)), 1e-8)
    if rng.random() < p["garch"]:  # GARCH(1,1) volatility clustering, unit long-run variance
        alpha = rng.uniform(0.03, 0.15)
        beta = rng.uniform(0.75, 0.97 - alpha)
        var, omega = 1.0, 1.0 - alpha - beta
        for i in range(length):
            shocks[i] *= np.sqrt(var)
            var = omega + alpha * shocks[i] ** 2 + beta * var
    steps = shocks + rng.normal(0.0, 0.03) * (rng.random() < 0.5)  # a drift in half the series
    if rng.random() < p["momentum"]:  # ARIMA(1,1,0): increments with a little autocorrelation
        phi = rng.uniform(-0.3, 0.3)
        for i in range(1, length):
            steps[i] += phi * steps[i - 1]
    level = np.cumsum(steps)
    if rng.random() < p["geometric"]:  # a price: exp of a walk whose range is 5-100 % in log terms
        level = np.exp(level * rng.uniform(0.05, 1.0) / max(float(np.ptp(level)), 1e-8))
    y = level * rng.lognormal(0.0, 1.0) + rng.normal(0.0, 3.0) * float(np.std(level))
    if rng.random() < p["noise"]:  # measurement noise: up to half a typical step
        y += rng.normal(0.0, rng.uniform(0.0, 0.5) * float(np.std(np.diff(y))), size=length)
    if rng.random() < p["stale"]:  # closed markets, stuck sensors: a value repeated for 1-3 steps
        for at in np.flatnonzero(rng.random(length) < rng.uniform(0.05, 0.3)):
            if at > 0:
                y[at : at + int(rng.integers(1, 4))] = y[at - 1]
    return y


def generate_randomwalk(n_series: int, length: int = DEFAULT_LENGTH, seed: int = 0, *, first: int = 0) -> np.ndarray:
    """Random-walk (integrated process) series `first .. first + N - 1` as `[N, T]` (float32).

    Each series integrates unit-variance shocks: Gaussian or Student-t (3-10 degrees of freedom),
    with GARCH(1,1) volatility clustering, a small drift in half of them, AR(1) momentum in the
    increments (ARIMA(1,1,0), phi in [-0.3, 0.3]) in some; some are geometric (exp of the walk, a
    price); then a random scale and offset, sometimes measurement noise and stale runs (a value
    repeated 1-3 steps). Probabilities in `WALK_P`. The KernelSynth bank has no non-stationary
    kernel but the linear one, and the seasonal generator mixes its walks with seasonality and noise;
    this source is where a model learns that the last value is the forecast of a price or a level.
    """
    return _one_by_one(_random_walk_series, n_series, length, seed, first)


GENERATORS = {"kernelsynth": generate_kernelsynth, "seasonal": generate_seasonal, "randomwalk": generate_randomwalk}
