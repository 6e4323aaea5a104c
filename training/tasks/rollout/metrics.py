"""Rollout metrics, on fields in physical units.

- Relative L2 per step (the official IFactFormer-m `LpLoss.rel`): ‖pred − truth‖₂ / ‖truth‖₂ over every grid
  point and component of one sample at one step.
- Energy-spectrum error: the mean over the resolved shells k = 1 .. ⌊min(grid)/2⌋ − 1 of
  |log10 E_pred(k) − log10 E_true(k)|, in decades (`data.fields.spectral.energy_spectrum`, shells of integer
  wavenumber; the filtered data hold no energy past the coarse Nyquist sphere, so those shells are left out).
  A log error weighs every scale alike, where a relative error of E(k) would see the energy-holding low k only.
- Stability: steps until blow-up, the number of steps before the first whose prediction is non-finite or
  holds more than `factor` (10) times a reference energy (the initial state's); the horizon when none does.

Shapes: B samples, S steps, X/Y(/Z) grid, V components (V = the grid's axes for a velocity), K shells.
"""

from __future__ import annotations

import torch

from data.fields.spectral import energy, energy_spectrum

BLOWUP_FACTOR = 10.0
CAP = 1e6  # a non-finite or huge error is reported as this, so a blown-up rollout keeps the mean finite


def rel_l2(pred: torch.Tensor, truth: torch.Tensor, axes: int) -> torch.Tensor:
    """‖pred − truth‖₂ / ‖truth‖₂ over the last `axes` dimensions (a field's grid axes and V):
    e.g. [B, S, *grid, V] with axes = len(grid) + 1 -> [B, S]."""
    dims = tuple(range(pred.ndim - axes, pred.ndim))
    return (pred - truth).pow(2).sum(dims).sqrt() / truth.pow(2).sum(dims).sqrt().clamp_min(1e-12)


def capped(x: torch.Tensor) -> torch.Tensor:
    """Non-finite values and values above `CAP` become `CAP`."""
    return torch.nan_to_num(x, nan=CAP, posinf=CAP, neginf=CAP).clamp_max(CAP)


def resolved_shells(grid: tuple[int, ...]) -> slice:
    """The shells every sphere of the grid holds in full: 1 .. min(grid)//2 − 1."""
    return slice(1, min(grid) // 2)


def spectrum_error(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Mean |log10 E_pred(k) − log10 E_true(k)| over the resolved shells: [B, *grid, V] pair -> [B] (decades)."""
    grid = tuple(truth.shape[1:-1])
    if truth.shape[-1] != len(grid):
        raise ValueError(
            f"the energy spectrum needs a velocity (V = {len(grid)} components), got V = {truth.shape[-1]}"
        )
    shells = resolved_shells(grid)
    e_pred = energy_spectrum(pred.double())[..., shells]  # [B, K]
    e_true = energy_spectrum(truth.double())[..., shells]
    floor = 1e-12 * e_true.sum(-1, keepdim=True).clamp_min(1e-300)
    err = (torch.log10(e_pred.clamp_min(0) + floor) - torch.log10(e_true + floor)).abs().mean(-1)
    return capped(err)


def steps_until_blowup(pred: torch.Tensor, reference: torch.Tensor, factor: float = BLOWUP_FACTOR) -> torch.Tensor:
    """pred [B, S, *grid, V], reference [B, *grid, V] (the initial state) -> [B] steps before the first blown
    step (non-finite, or energy > factor × the reference's), S when none."""
    e = energy(pred.double())  # [B, S]
    limit = factor * energy(reference.double())[:, None]  # [B, 1]
    blown = ~torch.isfinite(e) | (e > limit) | ~torch.isfinite(pred).flatten(2).all(-1)
    steps = pred.shape[1]
    first = torch.where(blown, torch.arange(steps, device=pred.device), steps).min(dim=1).values
    return first.to(torch.float64)
