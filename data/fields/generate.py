"""Turbulence datasets from our own solver (`data.fields.spectral`), reproducible from a seed.

A trajectory starts from a random solenoidal velocity with the spectrum E(k) ∝ k⁴ exp(−2 (k/k_p)²) and
a given energy, runs `spinup_steps` solver steps to reach the forced flow's statistically steady state,
then keeps a snapshot every `save_every` steps, optionally filtered and sampled on a coarser grid (the
IFactFormer data: 64³ DNS filtered to 16³–32³). Trajectory i depends only on `(seed, i)` and the
physical parameters: child i of `numpy.random.SeedSequence(seed)` seeds a CPU torch generator, and the
initial field is drawn on the CPU in float64 whatever the device the solver then runs on.

Files are compressed `.npz` with three arrays: `u [N, T, X, Y, (Z), V]` float32 (channels-last velocity,
V = 2 or 3; the 2D Kolmogorov velocity is derived from the solver's vorticity), `t [T]` float64 (time
since the initial field) and `params`, a JSON string holding the whole `FieldGenConfig` (grid, viscosity,
dt, forcing, filter, seed, snapshot interval, spin-up). `read_fields` checks every one of these and
answers a bad file with a `FieldFileError` (a ValueError) that says what is wrong.

CLI: `python -m data.fields.generate --kind hit3d --grid 64 --filter-to 16 --trajectories 2 --steps 100
--seed 0 --out hit.npz` (`--steps` is the number of snapshots per trajectory; see `--help`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from data.fields.spectral import (
    FORCINGS,
    NavierStokes2D,
    NavierStokes3D,
    RK4Stepper,
    SpectralEquation,
    SpectralGrid,
    cfl_number,
    filter_field,
    project,
)

KINDS = ("hit3d", "kolmogorov2d")
MAX_FILE_BYTES = 2 * 2**30  # a dataset file larger than this is refused before it is opened
MAX_ARRAY_BYTES = 8 * 2**30  # ... and so is one whose arrays would decompress to more than this
FIELD_KEYS = ("params", "t", "u")

# Per-kind physical defaults. hit3d: at 64³ (k_max = 21 after dealiasing) ν = 0.01 and ε = 0.1 give
# k_max η ≈ 1.2, resolved DNS; from E = 0.5 the energy settles near 0.6 once the dissipation reaches ε,
# at t ≈ 20 (2000 steps), where dt = 0.01 keeps the Courant number near 0.45.
# kolmogorov2d: velocity forcing sin(4y) of amplitude 1 with drag 0.1 and ν = 0.01 on 64², a chaotic flow
# (energy 0.56-0.77 over 30 time units, spectrum down 7 decades at the cutoff); max|u| ≈ 3.7 puts dt = 0.01
# at Courant ≈ 0.75, so the preset halves it.
PRESETS: dict[str, dict[str, Any]] = {
    "hit3d": {"nu": 0.01, "dt": 0.01, "initial_energy": 0.5, "k_peak": 3.0, "spinup_steps": 2000},
    "kolmogorov2d": {"nu": 0.01, "dt": 0.005, "initial_energy": 0.5, "k_peak": 4.0, "spinup_steps": 2000},
}


_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "int": int,
    "float": (int, float),
    "str": str,
    "int | None": (int, type(None)),
}


class FieldFileError(ValueError):
    """A file that is not a valid fields dataset; the message names the file and the problem."""


@dataclass(frozen=True, kw_only=True)
class FieldGenConfig:
    """Every parameter of one generated dataset (stored in the file as `params`).

    Physical units: the box side is 2π, so integer wavenumbers are physical ones. `grid` DNS points per
    axis; `filter_to` the stored grid (None: the DNS grid); `snapshots` T per trajectory, one every
    `save_every` steps of `dt` after `spinup_steps`; `max_cfl` stops a run whose Courant number exceeds it;
    `precision` the solver's float type (the device is not recorded: CPU and GPU agree to rounding only).
    hit3d: `forcing` (`lowk`/`linear`/`none`), `epsilon` injected power, `k_forcing` forced shells.
    kolmogorov2d: `forcing_amplitude` F and `forcing_wavenumber` k_f of F sin(k_f y) x̂, linear `drag`.
    """

    kind: str = "hit3d"
    grid: int = 64
    filter_to: int | None = 16
    filter_kind: str = "sharp"
    trajectories: int = 1
    snapshots: int = 100
    save_every: int = 10
    spinup_steps: int = 1000
    dt: float = 0.01
    nu: float = 0.01
    forcing: str = "lowk"
    epsilon: float = 0.1
    k_forcing: float = 2.0
    forcing_amplitude: float = 1.0
    forcing_wavenumber: int = 4
    drag: float = 0.1
    k_peak: float = 3.0
    initial_energy: float = 0.5
    seed: int = 0
    max_cfl: float = 1.0
    precision: str = "float64"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # params may come from a file: types are checked, not trusted
            value, kind = getattr(self, f.name), _FIELD_TYPES.get(str(f.type))
            if isinstance(value, bool) or (kind is not None and not isinstance(value, kind)):
                raise ValueError(f"{f.name} must be {f.type}, got {type(value).__name__} {value!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.grid < 8 or self.grid % 2:
            raise ValueError(f"grid must be an even number >= 8, got {self.grid}")
        if self.filter_to is not None and (self.filter_to < 4 or self.filter_to % 2 or self.filter_to > self.grid):
            raise ValueError(f"filter_to must be even, >= 4 and <= grid {self.grid}, got {self.filter_to}")
        if self.filter_kind not in ("sharp", "gaussian") or self.forcing not in FORCINGS:
            raise ValueError(f"filter_kind sharp|gaussian and forcing in {FORCINGS}; got {self.filter_kind!r}")
        counts = {"trajectories": self.trajectories, "snapshots": self.snapshots, "save_every": self.save_every}
        if any(v < 1 for v in counts.values()) or self.spinup_steps < 0:
            raise ValueError(f"counts must be >= 1 and spinup_steps >= 0, got {counts}, {self.spinup_steps}")
        positive = {"dt": self.dt, "max_cfl": self.max_cfl, "k_peak": self.k_peak, "energy": self.initial_energy}
        if not all(math.isfinite(v) and v > 0 for v in positive.values()):
            raise ValueError(f"these must be positive and finite: {positive}")
        if self.precision not in ("float32", "float64"):
            raise ValueError(f"precision must be float32 or float64, got {self.precision!r}")
        if min(self.nu, self.epsilon, self.drag) < 0:
            raise ValueError(f"nu, epsilon, drag must be >= 0, got {self.nu}, {self.epsilon}, {self.drag}")

    @property
    def ndim(self) -> int:
        return 3 if self.kind == "hit3d" else 2

    @property
    def stored_grid(self) -> int:
        return self.grid if self.filter_to is None else self.filter_to

    def field_shape(self) -> tuple[int, ...]:
        """The stored `u` shape `[N, T, X, Y, (Z), V]`."""
        return (self.trajectories, self.snapshots, *(self.stored_grid,) * self.ndim, self.ndim)

    def times(self) -> np.ndarray:
        """Snapshot times `[T]` since the initial field."""
        steps = self.spinup_steps + self.save_every * np.arange(self.snapshots)
        return steps * self.dt

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> FieldGenConfig:
        """The config from its dict; unknown keys are an error, missing ones take the defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown generation parameters {unknown}")
        return cls(**params)

    @classmethod
    def for_kind(cls, kind: str, **overrides: Any) -> FieldGenConfig:
        """The kind's physical defaults (`PRESETS`), then `overrides`."""
        if kind not in PRESETS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        return cls(**{"kind": kind, **PRESETS[kind], **overrides})


def random_velocity(
    shape: tuple[int, ...], *, k_peak: float, energy: float, generator: torch.Generator, length: float = 2 * math.pi
) -> Tensor:
    """A random divergence-free, dealiased, mean-free velocity `[*shape, V]` (V = len(shape)), float64 CPU,
    with the shell spectrum E(k) ∝ k⁴ exp(−2 (k/k_peak)²) (k in integer wavenumbers) and total `energy`."""
    grid = SpectralGrid(shape, length)
    d = grid.ndim
    noise = torch.randn((d, *shape), generator=generator, dtype=torch.float64)
    u_hat = grid.fft(noise) * grid.dealias * (grid.shell > 0)  # [V, *spectral]
    if d > 1:  # in 1D the only divergence-free field is a constant
        u_hat = project(u_hat, grid)
    shells = torch.round(grid.shell).long()
    density = 0.5 * grid.weights * (u_hat.abs() ** 2).sum(0)
    current = torch.zeros(int(shells.max()) + 1, dtype=torch.float64).index_add_(0, shells.flatten(), density.flatten())
    k = torch.arange(current.numel(), dtype=torch.float64)
    target = k**4 * torch.exp(-2 * (k / k_peak) ** 2)
    scale = torch.where(current > 0, torch.sqrt(target / current.clamp_min(1e-300)), 0.0)
    u_hat = u_hat * scale[shells]
    total = 0.5 * grid.mean_product(u_hat, u_hat).sum()
    if not total > 0:
        raise ValueError(f"no energy left in the dealiased band for k_peak={k_peak} on grid {shape}")
    u_hat = u_hat * torch.sqrt(energy / total)
    return torch.movedim(grid.ifft(u_hat), 0, -1)


def make_equation(cfg: FieldGenConfig, *, device: str | torch.device = "cpu") -> SpectralEquation:
    """The solver for `cfg` on its DNS grid (box side 2π), in `cfg.precision`."""
    dtype = torch.float32 if cfg.precision == "float32" else torch.float64
    grid = SpectralGrid((cfg.grid,) * cfg.ndim, dtype=dtype, device=device)
    if cfg.kind == "hit3d":
        return NavierStokes3D(grid, cfg.nu, forcing=cfg.forcing, epsilon=cfg.epsilon, k_forcing=cfg.k_forcing)
    return NavierStokes2D(
        grid,
        cfg.nu,
        drag=cfg.drag,
        forcing_amplitude=cfg.forcing_amplitude,
        forcing_wavenumber=cfg.forcing_wavenumber,
    )


def trajectory_generator(seed: int, index: int) -> torch.Generator:
    """The CPU generator of trajectory `index`: child `index` of `SeedSequence(seed)`."""
    child = np.random.SeedSequence(seed).spawn(index + 1)[index]
    return torch.Generator().manual_seed(int(child.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)))


def _checked(eq: SpectralEquation, state: Tensor, cfg: FieldGenConfig, where: str) -> None:
    """Stop a run that blew up or outran its time step, with a message that says which and where."""
    courant = cfl_number(eq, state, cfg.dt)
    if not math.isfinite(courant) or courant > cfg.max_cfl:
        raise RuntimeError(
            f"{where}: Courant number {courant:.3g} exceeds max_cfl={cfg.max_cfl} (dt={cfg.dt}); lower dt or raise nu"
        )


def generate_trajectory(cfg: FieldGenConfig, index: int, *, device: str = "cpu", bar: Any = None) -> np.ndarray:
    """Trajectory `index` of `cfg`: float32 `[T, X, Y, (Z), V]` on the stored grid. `bar` (a tqdm) is
    advanced once per solver step."""
    eq = make_equation(cfg, device=device)
    u0 = random_velocity(
        eq.grid.shape, k_peak=cfg.k_peak, energy=cfg.initial_energy, generator=trajectory_generator(cfg.seed, index)
    )
    state = eq.state_from_velocity(u0.to(device=device, dtype=eq.grid.dtype))
    stepper = RK4Stepper(eq, cfg.dt)
    out = np.empty(cfg.field_shape()[1:], dtype=np.float32)
    check_every = max(1, min(cfg.save_every, 50))
    for step in range(cfg.spinup_steps):
        state = stepper.step(state)
        if (step + 1) % check_every == 0:
            _checked(eq, state, cfg, f"trajectory {index}, spin-up step {step + 1}")
        if bar is not None:
            bar.update(1)
    for j in range(cfg.snapshots):
        if j:
            for _ in range(cfg.save_every):
                state = stepper.step(state)
                if bar is not None:
                    bar.update(1)
        _checked(eq, state, cfg, f"trajectory {index}, snapshot {j}")
        u = eq.velocity(state)
        if cfg.filter_to is not None and cfg.filter_to != cfg.grid:
            u = filter_field(u, cfg.filter_to, kind=cfg.filter_kind)
        out[j] = u.cpu().numpy()
    return out


def generate(cfg: FieldGenConfig, *, device: str = "cpu", progress: bool = True) -> np.ndarray:
    """All `cfg.trajectories` trajectories, float32 `[N, T, X, Y, (Z), V]`, with one progress bar."""
    steps = cfg.spinup_steps + cfg.save_every * (cfg.snapshots - 1)
    out = np.empty(cfg.field_shape(), dtype=np.float32)
    with tqdm(total=steps * cfg.trajectories, desc=f"{cfg.kind} {cfg.grid}", unit="step", disable=not progress) as bar:
        for i in range(cfg.trajectories):
            bar.set_postfix_str(f"trajectory {i + 1}/{cfg.trajectories}")
            out[i] = generate_trajectory(cfg, i, device=device, bar=bar)
    return out


@dataclass(frozen=True)
class FieldDataset:
    """A dataset read back: `u [N, T, X, Y, (Z), V]` float32, `t [T]` float64, and its `config`."""

    u: np.ndarray
    t: np.ndarray
    config: FieldGenConfig


def write_fields(path: str | Path, u: np.ndarray, cfg: FieldGenConfig) -> Path:
    """Write `u [N, T, X, Y, (Z), V]` with its times and `params` as a compressed `.npz` (atomically: a
    temporary file renamed into place). The shape must be `cfg.field_shape()`."""
    path = Path(path)
    if tuple(u.shape) != cfg.field_shape():
        raise ValueError(f"u has shape {tuple(u.shape)}, the config says {cfg.field_shape()}")
    params = np.array(json.dumps(cfg.to_dict(), sort_keys=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"  # a reader never sees half a file
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, u=u.astype(np.float32), t=cfg.times().astype(np.float64), params=params)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _member_header(zf: zipfile.ZipFile, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an `.npy` member, read from its header only (nothing is decompressed beyond it)."""
    with zf.open(f"{name}.npy") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    return tuple(shape), np.dtype(dtype)


def _open_checked(path: Path, max_array_bytes: int) -> dict[str, np.ndarray]:
    """The three arrays of a dataset file, after the container, the member names and sizes are checked."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = sorted(n.removesuffix(".npy") for n in zf.namelist())
            if names != sorted(FIELD_KEYS):
                raise FieldFileError(f"{path}: arrays {names}, expected exactly {list(FIELD_KEYS)}")
            headers = {name: _member_header(zf, name) for name in FIELD_KEYS}
            size = sum(math.prod(shape) * dtype.itemsize for shape, dtype in headers.values())
            if size > max_array_bytes:
                raise FieldFileError(f"{path}: arrays would take {size} bytes, more than the {max_array_bytes} allowed")
            arrays = {}
            for name in FIELD_KEYS:
                with zf.open(f"{name}.npy") as f:
                    arrays[name] = np.lib.format.read_array(f, allow_pickle=False)
            return arrays
    except FieldFileError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise FieldFileError(f"{path}: not a readable fields .npz ({type(exc).__name__}: {exc})") from exc


def read_fields(path: str | Path, *, max_array_bytes: int = MAX_ARRAY_BYTES) -> FieldDataset:
    """Read and validate a dataset written by `write_fields`: the file and array sizes are bounded, the
    arrays are exactly `params`, `t`, `u`; `params` is a valid `FieldGenConfig`; `u` has the shape it
    implies and a float dtype; `t` matches its times; every value is finite. Anything else raises a
    `FieldFileError` naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise FieldFileError(f"{path}: no such file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise FieldFileError(f"{path}: {path.stat().st_size} bytes, more than the {MAX_FILE_BYTES} allowed")
    arrays = _open_checked(path, max_array_bytes)
    raw = arrays["params"]
    if raw.shape != () or raw.dtype.kind != "U":
        raise FieldFileError(f"{path}: params must be one JSON string, got {raw.dtype} of shape {raw.shape}")
    try:
        params = json.loads(str(raw))
        if not isinstance(params, dict):
            raise ValueError(f"params is a JSON {type(params).__name__}, not an object")
        cfg = FieldGenConfig.from_dict(params)
    except (ValueError, TypeError) as exc:
        raise FieldFileError(f"{path}: bad params ({exc})") from exc
    u, t = arrays["u"], arrays["t"]
    if u.dtype.kind != "f" or tuple(u.shape) != cfg.field_shape():
        raise FieldFileError(f"{path}: u is {u.dtype} {tuple(u.shape)}, params imply float {cfg.field_shape()}")
    if t.shape != (cfg.snapshots,) or not np.allclose(t, cfg.times(), rtol=1e-12, atol=0):
        raise FieldFileError(f"{path}: t {t.shape} does not match the snapshot times the params imply")
    if not np.isfinite(u).all():
        raise FieldFileError(f"{path}: u holds {int((~np.isfinite(u)).sum())} non-finite values")
    return FieldDataset(u=u.astype(np.float32, copy=False), t=t.astype(np.float64), config=cfg)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data.fields.generate", description=__doc__.split("\n")[0])
    p.add_argument("--kind", choices=KINDS, default="hit3d")
    p.add_argument("--grid", type=int, default=64, help="DNS points per axis")
    p.add_argument("--filter-to", type=int, default=None, help="stored grid after filtering (default: DNS grid)")
    p.add_argument("--filter-kind", choices=("sharp", "gaussian"), default="sharp")
    p.add_argument("--trajectories", type=int, default=1)
    p.add_argument("--steps", type=int, default=100, help="snapshots per trajectory")
    p.add_argument("--save-every", type=int, default=10, help="solver steps between snapshots")
    p.add_argument("--spinup", type=int, default=None, help="solver steps before the first snapshot (default: preset)")
    p.add_argument("--dt", type=float, default=None, help="time step (default: the kind's preset)")
    p.add_argument("--nu", type=float, default=None, help="viscosity (default: the kind's preset)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", choices=("float32", "float64"), default="float64", help="solver float type")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, required=True)
    return p


def main(argv: Sequence[str] | None = None) -> FieldGenConfig:
    """Generate a dataset from the command line and write it to `--out`; returns the config used."""
    args = _parser().parse_args(argv)
    overrides = {"dt": args.dt, "nu": args.nu, "spinup_steps": args.spinup}
    cfg = FieldGenConfig.for_kind(
        args.kind,
        grid=args.grid,
        filter_to=args.filter_to,
        filter_kind=args.filter_kind,
        trajectories=args.trajectories,
        snapshots=args.steps,
        save_every=args.save_every,
        seed=args.seed,
        precision=args.precision,
        **{k: v for k, v in overrides.items() if v is not None},
    )
    start = time.perf_counter()
    u = generate(cfg, device=args.device)
    write_fields(args.out, u, cfg)
    print(f"wrote {args.out} u{list(u.shape)} in {time.perf_counter() - start:.1f} s")
    return cfg


if __name__ == "__main__":
    main()
