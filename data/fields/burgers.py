"""1D viscous Burgers: the shipped reference data (`datasets/`, provenance in `datasets/SOURCE.md`) and
our spectral solver run on the same problems.

* `burgers_reference()`: Raissi et al.'s `burgers_shock.mat` (PINNs), a high-accuracy solution of
  u_t + u u_x = ν u_xx with ν = 0.01/π, u(x, 0) = −sin(πx), u(±1, t) = 0, on 256 points of x ∈ [−1, 1] and
  100 times t = 0, 0.01, ..., 0.99; a shock forms at x = 0 near t = 1/π.
* `solve_raissi_burgers()`: the same problem with `data.fields.spectral.Burgers1D` on the periodic box
  [−1, 1). The odd initial condition stays odd under Burgers, so the periodic solution is zero at
  x = ±1 and equals the Dirichlet one; it is evaluated on the reference points by its Fourier series.
* `neuralop_burgers(split)`: the neuraloperator mini Burgers set (ν = 0.01, 16 points, 17 times with
  y[:, 0] = x), 800 train / 400 test trajectories, the external benchmark for the rollout surrogates.
* `solve_neuralop_burgers(x)`: the numerical-solver baseline on that set, our solver started from the
  16-point initial condition (Fourier-interpolated). The files do not state the domain or the times; the
  solution matches on the periodic unit interval with y[:, j] at t = j/16 (relative L2 1.6e-2 on the test
  set, the error of the lost sub-grid initial modes; 2π-periodic or other end times give 0.2-0.5).

Shapes: B trajectories, T times, X points.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
import torch

from data.fields.spectral import Burgers1D, RK4Stepper, SpectralGrid, fourier_interpolate

DATASETS = Path(__file__).resolve().parent / "datasets"
RAISSI_FILE = "burgers_shock.mat.gz"
RAISSI_SHA256 = "f4d11e6798b8d29b6829984952b04adcc470d9bf70dd7e56c7985cd8e316c4bf"  # of the decompressed .mat
RAISSI_NU = 0.01 / math.pi
NEURALOP_LENGTH, NEURALOP_TIMES = 1.0, np.linspace(0.0, 1.0, 17)  # inferred, see the module docstring
NEURALOP_SPLITS = {"train": ("neuralop_burgers_train_16.npz", 800), "test": ("neuralop_burgers_test_16.npz", 400)}
MAX_FILE_BYTES = 64 * 2**20


@dataclass(frozen=True)
class BurgersReference:
    """The Raissi reference: points `x [X]`, times `t [T]`, solution `u [T, X]` (float64), viscosity `nu`."""

    x: np.ndarray
    t: np.ndarray
    u: np.ndarray
    nu: float = RAISSI_NU


def _read_bounded(path: Path) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{path}: {path.stat().st_size} bytes, more than the {MAX_FILE_BYTES} allowed")
    return path.read_bytes()


def burgers_reference(path: str | Path | None = None) -> BurgersReference:
    """Read `burgers_shock.mat` (gzip or plain; default the shipped copy, checked against its SHA-256)."""
    path = DATASETS / RAISSI_FILE if path is None else Path(path)
    raw = _read_bounded(path)
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    if path == DATASETS / RAISSI_FILE and hashlib.sha256(raw).hexdigest() != RAISSI_SHA256:
        raise ValueError(f"{path}: decompressed SHA-256 differs from the published {RAISSI_SHA256}")
    try:
        mat = scipy.io.loadmat(io.BytesIO(raw))
        x, t, usol = (np.asarray(mat[k], dtype=np.float64) for k in ("x", "t", "usol"))
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise ValueError(f"{path}: not a Burgers reference .mat with x, t, usol ({exc})") from exc
    x, t = x.ravel(), t.ravel()
    if usol.shape != (x.size, t.size) or not all(np.isfinite(a).all() for a in (x, t, usol)):
        raise ValueError(f"{path}: usol {usol.shape} must be [x {x.size}, t {t.size}] and finite")
    return BurgersReference(x=x, t=t, u=np.ascontiguousarray(usol.T))


def solve_burgers(
    u0: torch.Tensor, nu: float, times: np.ndarray, *, dt: float, length: float = 2.0
) -> tuple[torch.Tensor, SpectralGrid]:
    """Spectral states `[..., T, X//2+1]` of Burgers at `times` (≥ 0, non-decreasing, multiples of `dt`)
    from `u0 [..., X]` on a periodic grid of side `length`, with the grid they live on."""
    grid = SpectralGrid((u0.shape[-1],), length, dtype=u0.dtype, device=u0.device)
    eq = Burgers1D(grid, nu)
    stepper = RK4Stepper(eq, dt)
    state, now, out = eq.state_from_velocity(u0[..., None]), 0, []
    for when in times:
        target = int(round(float(when) / dt))
        if target < now or abs(target * dt - float(when)) > 1e-9 * max(1.0, float(when)):
            raise ValueError(f"times must be non-decreasing multiples of dt={dt}, got {when}")
        state, now = stepper.advance(state, target - now), target
        out.append(state)
    return torch.stack(out, dim=-2), grid


def solve_raissi_burgers(reference: BurgersReference, n: int = 2048, dt: float = 5e-4) -> np.ndarray:
    """Our solution of the Raissi problem on `n` periodic points of [−1, 1), at the reference's times and
    points: `[T, X]` float64, comparable with `reference.u`."""
    grid_x = -1.0 + 2.0 * torch.arange(n, dtype=torch.float64) / n
    states, grid = solve_burgers(-torch.sin(math.pi * grid_x), reference.nu, reference.t, dt=dt, length=2.0)
    points = torch.as_tensor(reference.x, dtype=torch.float64) + 1.0  # measured from the grid's first point
    return fourier_interpolate(states, grid, points).numpy()


def neuralop_burgers(split: str, path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """The neuraloperator mini Burgers `split` ("train"/"test"): initial conditions `x [B, X]`, trajectories
    `y [B, T, X]` (T = 17, y[:, 0] = x; score on y[:, 1:]) as float64, and the viscosity."""
    if split not in NEURALOP_SPLITS:
        raise ValueError(f"split must be one of {tuple(NEURALOP_SPLITS)}, got {split!r}")
    name, rows = NEURALOP_SPLITS[split]
    path = DATASETS / name if path is None else Path(path)
    try:
        with np.load(io.BytesIO(_read_bounded(path)), allow_pickle=False) as z:
            x, y, visc = (np.asarray(z[k], dtype=np.float64) for k in ("x", "y", "visc"))
    except (ValueError, KeyError, OSError) as exc:
        raise ValueError(f"{path}: not a neuralop Burgers .npz with x, y, visc ({exc})") from exc
    ok = x.ndim == 2 and y.shape == (x.shape[0], y.shape[1], x.shape[1]) and visc.size == 1
    if not ok or (path == DATASETS / name and x.shape[0] != rows):
        raise ValueError(f"{path}: shapes x {x.shape}, y {y.shape}, visc {visc.shape} are not [B, X], [B, T, X], [1]")
    if not (np.isfinite(x).all() and np.isfinite(y).all() and np.array_equal(y[:, 0], x)):
        raise ValueError(f"{path}: values must be finite with y[:, 0] equal to x")
    return x, y, float(visc.ravel()[0])


def solve_neuralop_burgers(x: np.ndarray, nu: float = 0.01, *, n: int = 64, substeps: int = 40) -> np.ndarray:
    """The solver baseline for neuralop Burgers: from initial conditions `x [B, X]` (X even, ≤ n), solve on `n`
    points (the initial condition Fourier-interpolated) with `substeps` RK4 steps per output interval, and
    sample back: `[B, 17, X]` float64, comparable with `y`. n = 64 is converged (n = 512 gives the same
    error); n = X is the under-resolved coarse solver (relative L2 4.0e-2 against 1.6e-2 at X = 16)."""
    u0 = torch.as_tensor(x, dtype=torch.float64)
    points = u0.shape[-1]
    if points % 2 or n % points:
        raise ValueError(f"n={n} must be a multiple of the even number of points {points}")
    coarse = torch.fft.rfft(u0, norm="forward")
    fine = torch.zeros((*coarse.shape[:-1], n // 2 + 1), dtype=coarse.dtype)
    fine[..., : points // 2] = coarse[..., : points // 2]  # the Nyquist mode of the samples is ambiguous: dropped
    u_fine = torch.fft.irfft(fine, n=n, norm="forward")
    dt = float(NEURALOP_TIMES[1] - NEURALOP_TIMES[0]) / substeps
    states, grid = solve_burgers(u_fine, nu, NEURALOP_TIMES, dt=dt, length=NEURALOP_LENGTH)
    return grid.ifft(states)[..., :: n // points].numpy()
