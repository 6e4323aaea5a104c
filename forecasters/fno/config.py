"""FNO configuration (Li et al., ICLR 2021; the reference scripts `fourier_2d.py`/`fourier_3d.py` of
neuraloperator/neuraloperator's first release: 4 Fourier layers, GELU, lifting fc0, projection
fc1 → 128 → fc2, grid coordinates appended to the input). The defaults put the model on the
IFactFormer-m grid (32×33×16, 3 components) at a similar size: width 16, modes (6, 6, 4) give
1,183,411 parameters against IFactFormer-m's 1,163,187."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config import ConfigMixin, check_positive


@dataclass(frozen=True, kw_only=True)
class FNOConfig(ConfigMixin):
    n_components: int = 3  # V: field components in and out
    grid: tuple[int, ...] = (32, 33, 16)  # X, Y(, Z): the grid every input must have (2 or 3 axes)
    modes: tuple[int, ...] = (6, 6, 4)  # Fourier modes kept per axis (each sign on all but the last axis)
    width: int = 16  # D: channels of the Fourier layers
    n_layers: int = 4
    projection: int = 128  # hidden width of the projection fc1 -> fc2
    grid_features: bool = True  # append the normalised coordinates in [0, 1] to the input (Li et al.)

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", tuple(int(n) for n in self.grid))
        object.__setattr__(self, "modes", tuple(int(m) for m in self.modes))
        name = type(self).__name__
        check_positive(self, "n_components", "width", "n_layers", "projection")
        if len(self.grid) not in (2, 3):
            raise ValueError(f"{name}.grid must have 2 or 3 axes, got {self.grid}")
        if len(self.modes) != len(self.grid) or min(self.modes) < 1:
            raise ValueError(f"{name}.modes must give one count >= 1 per grid axis, got {self.modes}")
        # Modes of either sign on the full axes must not overlap (m <= N/2); the last axis is a real FFT
        # with N//2 + 1 frequencies, all non-negative.
        limits = tuple(n // 2 for n in self.grid[:-1]) + (self.grid[-1] // 2 + 1,)
        if any(m > lim for m, lim in zip(self.modes, limits, strict=True)):
            raise ValueError(f"{name}.modes {self.modes} exceed what grid {self.grid} resolves: at most {limits}")

    @property
    def n_axes(self) -> int:
        return len(self.grid)

    @classmethod
    def tiny(cls, **overrides: Any) -> FNOConfig:
        """A ~9k-parameter model on an 8×6×4 grid for tests and `--smoke` runs. A `grid`
        override without `modes` keeps 2 modes per axis."""
        base: dict[str, Any] = dict(grid=(8, 6, 4), width=8, n_layers=2, projection=16)
        base.update(overrides)
        if "modes" not in overrides:
            base["modes"] = (2,) * len(base["grid"])
        return cls(**base)
