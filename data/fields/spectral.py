"""Pseudo-spectral solvers on a periodic box, in torch: 1D viscous Burgers, 2D Navier–Stokes in vorticity
form (Kolmogorov flow) and 3D Navier–Stokes in rotational form (forced homogeneous isotropic turbulence).

Equations (ν viscosity, P the Leray projection I − k kᵀ/|k|², every quadratic product dealiased):

* Burgers 1D: ∂u/∂t = −½ ∂x(u²) + ν ∂²u/∂x².
* NS 2D, vorticity ω = ∂x v − ∂y u, stream function −∇²ψ = ω, u = (∂y ψ, −∂x ψ):
  ∂ω/∂t = −u·∇ω + ν∇²ω − α ω + f, with Kolmogorov forcing f = −F k_f cos(k_f y) (the curl of the
  velocity forcing F sin(k_f y) x̂) and an optional linear drag α.
* NS 3D, rotational form: ∂u/∂t = P(u × ω) + ν∇²u + f, ω = ∇ × u (the gradient of the pressure and of
  ½|u|² is what P removes). Forcing holds the energy injection rate at ε: f̂ = ε/(2 E_f) û on the
  forced modes, where E_f is their energy (`lowk`: shells 0 < |k| ≤ k_f; `linear`: every mode, which is
  Lundgren's linear forcing with the coefficient set by ε).

Discretisation: Fourier–Galerkin with the 2/3 rule (modes with |m_i| ≥ n_i/3 are zeroed on every
product, so the truncated system is alias-free and, without viscosity or forcing, conserves energy
exactly in space). Time: classical RK4 in integrating-factor (Lawson) form, so the linear term
−νk² − α is integrated exactly and only the advective CFL limits dt (`cfl_dt`).

Conventions: FFTs use `norm="forward"`, so a coefficient is the mode's amplitude whatever the grid
(mean(u²) = Σ_k w_k |û_k|², w = 2 for the half-spectrum's interior modes, 1 on its edge planes). Wavenumbers
are physical, k = 2π m / L for integer m. Physical fields are channels-last: `u[..., X, (Y, (Z)), V]`, V
velocity components (V = 1 for Burgers). Spectral states are channels-first: 3D `[..., 3, X, Y, Z//2+1]`,
2D vorticity `[..., X, Y//2+1]`, 1D `[..., X//2+1]`. Shapes: X, Y, Z grid points, K wavenumber shells.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

FORCINGS = ("none", "lowk", "linear")


class SpectralGrid:
    """A periodic box of `shape` points per axis (1–3 axes, even, ≥ 4) and side `length`, with its
    wavenumbers, the 2/3-rule mask and the half-spectrum weights, on one dtype and device."""

    def __init__(
        self,
        shape: tuple[int, ...],
        length: float = 2 * math.pi,
        *,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
    ) -> None:
        if not 1 <= len(shape) <= 3 or any(n < 4 or n % 2 for n in shape):
            raise ValueError(f"grid shape must be 1-3 even sizes >= 4, got {shape}")
        if not length > 0:
            raise ValueError(f"box length must be positive, got {length}")
        self.shape, self.length, self.dtype, self.device = tuple(shape), float(length), dtype, torch.device(device)
        self.ndim = len(shape)
        self.dims = tuple(range(-self.ndim, 0))
        self.dx = tuple(self.length / n for n in shape)
        ints = []  # integer wavenumbers m per axis, broadcastable over the half spectrum [X, Y, Z//2+1]
        for axis, n in enumerate(shape):
            last = axis == self.ndim - 1
            m = torch.fft.rfftfreq(n, 1.0 / n) if last else torch.fft.fftfreq(n, 1.0 / n)
            view = [1] * self.ndim
            view[axis] = -1
            ints.append(m.to(device=self.device, dtype=dtype).reshape(view))
        self.m = tuple(ints)
        self.k = tuple(m * (2 * math.pi / self.length) for m in ints)
        self.k2 = sum(k**2 for k in self.k) * torch.ones((), dtype=dtype, device=self.device)
        self.spectral_shape = tuple(self.k2.shape)
        self.shell = torch.sqrt(sum(m**2 for m in ints) * torch.ones_like(self.k2))  # |m|, integer units
        keep = torch.ones(self.spectral_shape, dtype=torch.bool, device=self.device)
        for m, n in zip(ints, shape, strict=True):
            keep = keep & (m.abs() < n / 3)  # 3 K < n: a product's aliases land outside the kept band
        self.dealias = keep.to(dtype)
        last_m, n_last = ints[-1], shape[-1]
        self.weights = torch.where((last_m == 0) | (last_m == n_last // 2), 1.0, 2.0) * torch.ones_like(self.k2)

    def fft(self, u: Tensor) -> Tensor:
        """Physical `[..., X, Y, Z]` (trailing `ndim` axes) → half spectrum `[..., X, Y, Z//2+1]`."""
        return torch.fft.rfftn(u, dim=self.dims, norm="forward")

    def ifft(self, u_hat: Tensor) -> Tensor:
        """Half spectrum `[..., X, Y, Z//2+1]` → physical `[..., X, Y, Z]` (real)."""
        return torch.fft.irfftn(u_hat, s=self.shape, dim=self.dims, norm="forward")

    def mean_product(self, a_hat: Tensor, b_hat: Tensor) -> Tensor:
        """Box mean of a·b from the half spectra (Parseval), summed over the trailing `ndim` axes."""
        return (self.weights * (a_hat.conj() * b_hat).real).sum(dim=self.dims)

    def coordinates(self, axis: int) -> Tensor:
        """Grid points along `axis`, 0, dx, ..., length − dx, broadcastable over the physical grid."""
        x = torch.arange(self.shape[axis], dtype=self.dtype, device=self.device) * self.dx[axis]
        view = [1] * self.ndim
        view[axis] = -1
        return x.reshape(view)


def project(u_hat: Tensor, grid: SpectralGrid) -> Tensor:
    """Leray projection of a velocity spectrum `[..., V, *spectral]` (V = ndim): û − k (k·û)/|k|²."""
    k2 = torch.where(grid.k2 > 0, grid.k2, 1.0)
    comps = u_hat.unbind(-1 - grid.ndim)
    div = sum(k * c for k, c in zip(grid.k, comps, strict=True)) / k2
    return torch.stack([c - k * div for k, c in zip(grid.k, comps, strict=True)], dim=-1 - grid.ndim)


class SpectralEquation(ABC):
    """One PDE on a `SpectralGrid`: ∂ŝ/∂t = `linear` · ŝ + `nonlinear`(ŝ), the linear rate per mode (≤ 0)."""

    grid: SpectralGrid
    linear: Tensor

    @abstractmethod
    def nonlinear(self, state: Tensor) -> Tensor:
        """The explicit part of the right-hand side (advection, forcing), dealiased, same shape as `state`."""

    @abstractmethod
    def velocity(self, state: Tensor) -> Tensor:
        """The physical velocity `[..., X, (Y, (Z)), V]` of a spectral state."""

    @abstractmethod
    def state_from_velocity(self, u: Tensor) -> Tensor:
        """The spectral state of a physical velocity `[..., X, (Y, (Z)), V]` (dealiased, mean-free velocity
        is not required; for the NS equations it is projected onto divergence-free fields)."""

    def energy(self, state: Tensor) -> Tensor:
        """Kinetic energy per unit volume ½ mean|u|², shape `[...]`."""
        return 0.5 * velocity_energy_sum(self._velocity_hat(state), self.grid)

    def _velocity_hat(self, state: Tensor) -> Tensor:
        """Velocity spectrum `[..., V, *spectral]`."""
        return self.grid.fft(torch.movedim(self.velocity(state), -1, -1 - self.grid.ndim))


def velocity_energy_sum(u_hat: Tensor, grid: SpectralGrid) -> Tensor:
    """mean|u|² from a velocity spectrum `[..., V, *spectral]`, shape `[...]`."""
    return grid.mean_product(u_hat, u_hat).sum(-1)


class Burgers1D(SpectralEquation):
    """Viscous Burgers ∂u/∂t = −½ ∂x(u²) + ν ∂²u/∂x²; state û `[..., X//2+1]`."""

    def __init__(self, grid: SpectralGrid, nu: float) -> None:
        if grid.ndim != 1 or nu < 0:
            raise ValueError(f"Burgers1D needs a 1D grid and nu >= 0, got {grid.ndim}D and nu={nu}")
        self.grid, self.nu = grid, float(nu)
        self.linear = -self.nu * grid.k2

    def nonlinear(self, state: Tensor) -> Tensor:
        u = self.grid.ifft(state)
        return -0.5j * self.grid.k[0] * self.grid.fft(u * u) * self.grid.dealias

    def velocity(self, state: Tensor) -> Tensor:
        return self.grid.ifft(state)[..., None]

    def state_from_velocity(self, u: Tensor) -> Tensor:
        return self.grid.fft(u[..., 0]) * self.grid.dealias


class NavierStokes2D(SpectralEquation):
    """2D incompressible NS in vorticity form with Kolmogorov forcing; state ω̂ `[..., X, Y//2+1]`.

    `forcing_amplitude` F and `forcing_wavenumber` k_f (an integer number of periods in the box) set the
    velocity forcing F sin(2π k_f y / L) x̂; `drag` α is a linear damping of the vorticity.
    """

    def __init__(
        self,
        grid: SpectralGrid,
        nu: float,
        *,
        drag: float = 0.0,
        forcing_amplitude: float = 0.0,
        forcing_wavenumber: int = 4,
    ) -> None:
        if grid.ndim != 2 or nu < 0 or drag < 0:
            raise ValueError(f"NavierStokes2D needs a 2D grid, nu >= 0, drag >= 0; got {grid.ndim}D, {nu}, {drag}")
        if not 0 < forcing_wavenumber < min(grid.shape) / 3:
            raise ValueError(f"forcing wavenumber {forcing_wavenumber} must be in (0, n/3) for grid {grid.shape}")
        self.grid, self.nu, self.drag = grid, float(nu), float(drag)
        self.linear = -self.nu * grid.k2 - self.drag
        kf = 2 * math.pi * forcing_wavenumber / grid.length
        y = grid.coordinates(1).expand(grid.shape)
        self.forcing = grid.fft(-forcing_amplitude * kf * torch.cos(kf * y)) * grid.dealias  # [X, Y//2+1]
        self._inv_k2 = torch.where(grid.k2 > 0, 1.0 / torch.where(grid.k2 > 0, grid.k2, 1.0), 0.0)

    def _uv_hat(self, w_hat: Tensor) -> tuple[Tensor, Tensor]:
        psi = w_hat * self._inv_k2
        kx, ky = self.grid.k
        return 1j * ky * psi, -1j * kx * psi

    def nonlinear(self, state: Tensor) -> Tensor:
        g, (kx, ky) = self.grid, self.grid.k
        u_hat, v_hat = self._uv_hat(state)
        advection = g.ifft(u_hat) * g.ifft(1j * kx * state) + g.ifft(v_hat) * g.ifft(1j * ky * state)
        return -g.fft(advection) * g.dealias + self.forcing

    def velocity(self, state: Tensor) -> Tensor:
        u_hat, v_hat = self._uv_hat(state)
        return torch.stack([self.grid.ifft(u_hat), self.grid.ifft(v_hat)], dim=-1)

    def state_from_velocity(self, u: Tensor) -> Tensor:
        kx, ky = self.grid.k
        u_hat, v_hat = self.grid.fft(u[..., 0]), self.grid.fft(u[..., 1])
        return (1j * kx * v_hat - 1j * ky * u_hat) * self.grid.dealias

    def energy(self, state: Tensor) -> Tensor:
        return 0.5 * self.grid.mean_product(state, state * self._inv_k2)


class NavierStokes3D(SpectralEquation):
    """3D incompressible NS in rotational form, with energy-injecting forcing; state û `[..., 3, X, Y, Z//2+1]`.

    `forcing`: `none`, `lowk` (modes with 0 < |m| ≤ `k_forcing`) or `linear` (every mode), each injecting
    power `epsilon` exactly (f̂ = ε/(2 E_f) û on the forced modes).
    """

    def __init__(
        self, grid: SpectralGrid, nu: float, *, forcing: str = "none", epsilon: float = 0.1, k_forcing: float = 2.0
    ) -> None:
        if grid.ndim != 3 or nu < 0:
            raise ValueError(f"NavierStokes3D needs a 3D grid and nu >= 0, got {grid.ndim}D and nu={nu}")
        if forcing not in FORCINGS or epsilon < 0:
            raise ValueError(f"forcing must be one of {FORCINGS} with epsilon >= 0, got {forcing!r}, {epsilon}")
        self.grid, self.nu, self.forcing, self.epsilon = grid, float(nu), forcing, float(epsilon)
        self.linear = -self.nu * grid.k2
        band = (grid.shell > 0) & (grid.shell <= k_forcing) if forcing == "lowk" else grid.shell > 0
        self.forced = (band & (grid.dealias > 0)).to(grid.dtype)  # [X, Y, Z//2+1]

    def curl_hat(self, u_hat: Tensor) -> Tensor:
        """Vorticity spectrum i k × û, `[..., 3, X, Y, Z//2+1]`."""
        kx, ky, kz = self.grid.k
        ux, uy, uz = u_hat.unbind(-4)
        return 1j * torch.stack([ky * uz - kz * uy, kz * ux - kx * uz, kx * uy - ky * ux], dim=-4)

    def nonlinear(self, state: Tensor) -> Tensor:
        g = self.grid
        u, w = g.ifft(state), g.ifft(self.curl_hat(state))  # [..., 3, X, Y, Z]
        (ux, uy, uz), (wx, wy, wz) = u.unbind(-4), w.unbind(-4)
        lamb = torch.stack([uy * wz - uz * wy, uz * wx - ux * wz, ux * wy - uy * wx], dim=-4)  # u × ω
        rhs = project(g.fft(lamb) * g.dealias, g)
        if self.forcing != "none" and self.epsilon > 0:
            forced = state * self.forced
            e_forced = 0.5 * velocity_energy_sum(forced, g)  # [...]
            rhs = rhs + forced * (self.epsilon / (2 * e_forced.clamp_min(1e-30)))[..., None, None, None, None]
        return rhs

    def velocity(self, state: Tensor) -> Tensor:
        return torch.movedim(self.grid.ifft(state), -4, -1)

    def state_from_velocity(self, u: Tensor) -> Tensor:
        return project(self.grid.fft(torch.movedim(u, -1, -4)), self.grid) * self.grid.dealias

    def energy(self, state: Tensor) -> Tensor:
        return 0.5 * velocity_energy_sum(state, self.grid)

    def enstrophy(self, state: Tensor) -> Tensor:
        """½ mean|ω|², shape `[...]`; without forcing dE/dt = −2ν · enstrophy."""
        return 0.5 * velocity_energy_sum(self.curl_hat(state), self.grid)

    def dissipation(self, state: Tensor) -> Tensor:
        """Viscous dissipation rate 2ν · enstrophy, shape `[...]`."""
        return 2 * self.nu * self.enstrophy(state)


class RK4Stepper:
    """Classical RK4 in integrating-factor (Lawson) form with a fixed step `dt`: with E = exp(L dt/2),
    a = N(s), b = N(E(s + dt/2 a)), c = N(E s + dt/2 b), d = N(E² s + dt E c),
    s' = E² s + dt/6 (E² a + 2E (b + c) + d). Exact for the linear part, 4th order overall."""

    def __init__(self, equation: SpectralEquation, dt: float) -> None:
        if not dt > 0 or not math.isfinite(dt):
            raise ValueError(f"time step must be positive and finite, got {dt}")
        self.equation, self.dt = equation, float(dt)
        self.half = torch.exp(equation.linear * (dt / 2))
        self.full = self.half * self.half

    def step(self, state: Tensor) -> Tensor:
        """One step of `dt`; `state` has the equation's spectral shape (any leading batch axes)."""
        n, dt, e1, e2 = self.equation.nonlinear, self.dt, self.half, self.full
        a = n(state)
        b = n(e1 * (state + 0.5 * dt * a))
        c = n(e1 * state + 0.5 * dt * b)
        d = n(e2 * state + dt * e1 * c)
        return e2 * state + (dt / 6) * (e2 * a + 2 * e1 * (b + c) + d)

    def advance(self, state: Tensor, steps: int) -> Tensor:
        """`steps` steps of `dt` (no progress bar; the generator wraps this with one)."""
        for _ in range(steps):
            state = self.step(state)
        return state


def cfl_number(equation: SpectralEquation, state: Tensor, dt: float) -> float:
    """Advective Courant number dt · max over the grid of Σ_i |u_i| / dx_i (the largest over the batch)."""
    u = equation.velocity(state).abs()
    rate = sum(u[..., i] / dx for i, dx in enumerate(equation.grid.dx))
    return float(dt * torch.as_tensor(rate).max())


def cfl_dt(equation: SpectralEquation, state: Tensor, cfl: float = 0.5, dt_max: float = math.inf) -> float:
    """The step giving Courant number `cfl` for `state` (at most `dt_max`). RK4 on the dealiased
    spectrum is stable up to about 1.3 per axis; 0.5 leaves room for the flow to speed up."""
    rate = cfl_number(equation, state, 1.0)
    return min(dt_max, cfl / rate) if rate > 0 else dt_max


def fourier_interpolate(state: Tensor, grid: SpectralGrid, x: Tensor) -> Tensor:
    """A 1D field's Fourier series `[..., X//2+1]` evaluated at arbitrary points `x [Q]` (measured from the
    grid's first point, any real value), exact for the band-limited field: `[..., Q]`."""
    if grid.ndim != 1:
        raise ValueError(f"fourier_interpolate is for 1D grids, got {grid.ndim}D")
    phase = torch.exp(1j * grid.k[0][None, :] * x.to(device=grid.device, dtype=grid.dtype)[:, None])  # [Q, X//2+1]
    return ((state[..., None, :] * phase).real * grid.weights).sum(-1)


def _field_grid(u: Tensor, length: float) -> SpectralGrid:
    """The grid of a channels-last velocity `[..., X, (Y, (Z)), V]`, whose V components set the dimension."""
    d = u.shape[-1]
    if not 1 <= d <= 3 or u.ndim < d + 1:
        raise ValueError(f"expected a velocity [..., X, (Y, (Z)), V] with V = 1..3 axes, got shape {tuple(u.shape)}")
    return SpectralGrid(tuple(u.shape[-1 - d : -1]), length, dtype=u.dtype, device=u.device)


def energy(u: Tensor) -> Tensor:
    """Kinetic energy ½ mean|u|² of a velocity `[..., X, (Y, (Z)), V]`, shape `[...]`."""
    d = u.shape[-1]
    return 0.5 * (u * u).sum(-1).mean(dim=tuple(range(-d, 0)))


def energy_spectrum(u: Tensor, length: float = 2 * math.pi) -> Tensor:
    """Shell-summed energy spectrum of a velocity `[..., X, (Y, (Z)), V]`: `[..., K]`, E[k] the energy of the
    modes with round(|m|) = k (integer wavenumbers, K = largest shell + 1); Σ_k E[k] = `energy(u)`."""
    grid = _field_grid(u, length)
    u_hat = grid.fft(torch.movedim(u, -1, -1 - grid.ndim))  # [..., V, *spectral]
    density = 0.5 * (grid.weights * (u_hat.real**2 + u_hat.imag**2)).sum(-1 - grid.ndim)  # [..., *spectral]
    shells = torch.round(grid.shell).long().flatten()
    flat = density.flatten(start_dim=density.ndim - grid.ndim)  # [..., M]
    out = torch.zeros((*flat.shape[:-1], int(shells.max()) + 1), dtype=u.dtype, device=u.device)
    return out.index_add_(-1, shells, flat)


def _coarse_modes(u_hat: Tensor, fine: SpectralGrid, coarse: tuple[int, ...]) -> Tensor:
    """The half spectrum `[..., *fine spectral]` restricted to the modes a `coarse` grid holds."""
    for axis, (n_f, n_c) in enumerate(zip(fine.shape, coarse, strict=True)):
        last = axis == fine.ndim - 1
        m = torch.arange(n_c // 2 + 1) if last else torch.fft.fftfreq(n_c, 1.0 / n_c).long()
        u_hat = u_hat.index_select(axis - fine.ndim, (m % n_f).to(u_hat.device))
    return u_hat


def filter_field(
    u: Tensor,
    coarse: int | tuple[int, ...],
    *,
    kind: str = "sharp",
    width: float | None = None,
    cutoff: float | None = None,
    length: float = 2 * math.pi,
) -> Tensor:
    """Filter a velocity `[..., X, (Y, (Z)), V]` and sample it on a coarser grid: `[..., *coarse, V]`.

    `kind="sharp"`: keep the modes with |m| < `cutoff` (integer wavenumbers, a sphere; default half the
    smallest coarse size, the coarse Nyquist). `kind="gaussian"`: multiply by exp(−|k|² Δ² / 24), Δ = `width`
    (default twice the coarse spacing, physical units), then apply the same sphere so that the coarse grid
    carries the result without aliasing. A field band-limited inside the sphere comes back exactly at the
    coarse points (`u[..., ::r, ::r, ::r, :]` for a ratio r).
    """
    grid = _field_grid(u, length)
    shape = (coarse,) * grid.ndim if isinstance(coarse, int) else tuple(coarse)
    if len(shape) != grid.ndim or any(c % 2 or c < 4 or c > n for c, n in zip(shape, grid.shape, strict=True)):
        raise ValueError(f"coarse grid {shape} must be even sizes >= 4 and <= the fine grid {grid.shape}")
    if kind not in ("sharp", "gaussian"):
        raise ValueError(f"filter kind must be 'sharp' or 'gaussian', got {kind!r}")
    k_c = min(shape) / 2 if cutoff is None else float(cutoff)
    if not 0 < k_c <= min(shape) / 2:
        raise ValueError(f"cutoff {k_c} must be in (0, {min(shape) / 2}] for the coarse grid {shape}")
    kernel = (grid.shell < k_c).to(u.dtype)
    if kind == "gaussian":
        delta = 2 * length / min(shape) if width is None else float(width)
        kernel = kernel * torch.exp(-grid.k2 * delta**2 / 24)
    u_hat = _coarse_modes(grid.fft(torch.movedim(u, -1, -1 - grid.ndim)) * kernel, grid, shape)
    out = torch.fft.irfftn(u_hat, s=shape, dim=grid.dims, norm="forward")  # [..., V, *coarse]
    return torch.movedim(out, -1 - grid.ndim, -1)
