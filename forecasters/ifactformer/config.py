"""IFactFormer-m configuration. Defaults are the official code's (huiyu-2002/IFactFormer-m
`configs/IFactFormer.yml` and `libs/`): width 96, 5 heads × 96 value dims (query/key dims 3 × 96 per
head, `kernel_multiplier=3`), one shared block iterated 10 times, no softmax, kernel scale 1, RoPE at
1/min_freq = 64 × the physical coordinate, Gaussian Fourier features of scale 8, one step of the
3 velocity components in and out on the 32×33×16 channel-flow grid of size 4π × 2 × 4π/3
(`main.ipynb`: `size_lst`, `length`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core.config import ConfigMixin, check_choice, check_fraction, check_positive


@dataclass(frozen=True, kw_only=True)
class IFactFormerConfig(ConfigMixin):
    n_components: int = 3  # V: field components in and out (u, v, w)
    grid: tuple[int, ...] = (32, 33, 16)  # X, Y(, Z): the grid every input must have (2 or 3 axes)
    domain: tuple[float, ...] = (4 * math.pi, 2.0, 4 * math.pi / 3)  # physical length of each axis
    width: int = 96  # D: channels of the latent field
    n_heads: int = 5  # H
    head_dim: int = 96  # C: value dims per head
    kernel_multiplier: int = 3  # query/key dims per head = kernel_multiplier × head_dim
    n_iterations: int = 10  # K: times the one shared block is applied (u ← u + block(u) / K)
    variant: str = "m"  # "m": axis integrals in parallel, concatenated; "o": chained (the original)
    rff_scale: float = 8.0  # std of the fixed Gaussian Fourier feature matrix for positions
    rope_scale: float = 64.0  # RoPE angle = rope_scale × coordinate × base^(−2i/R) (official 1/min_freq)
    kernel_scale: float = 1.0  # K = kernel_scale · q kᵀ (official: 1 without softmax, multiplier ≤ 4)
    dropout: float = 0.0  # dropout on the kernel matrices (the official LowRankKernel option; 0 there)

    def __post_init__(self) -> None:
        # JSON gives lists back; the dataclass stays hashable and comparable with tuples.
        object.__setattr__(self, "grid", tuple(int(n) for n in self.grid))
        object.__setattr__(self, "domain", tuple(float(x) for x in self.domain))
        name = type(self).__name__
        check_positive(self, "n_components", "width", "n_heads", "head_dim", "kernel_multiplier", "n_iterations")
        if len(self.grid) not in (2, 3):
            raise ValueError(f"{name}.grid must have 2 or 3 axes, got {self.grid}")
        if min(self.grid) < 2:
            raise ValueError(f"{name}.grid needs at least 2 points per axis, got {self.grid}")
        if len(self.domain) != len(self.grid) or min(self.domain) <= 0:
            raise ValueError(f"{name}.domain must give one positive length per grid axis, got {self.domain}")
        if self.width % 2 or (self.width // 2) % self.n_components:
            raise ValueError(
                f"{name}.width/2 must be a multiple of n_components (the lift is grouped per component), "
                f"got width {self.width}, n_components {self.n_components}"
            )
        if (self.kernel_multiplier * self.head_dim) % 2:
            raise ValueError(f"{name}: query/key dims kernel_multiplier × head_dim must be even (RoPE pairs)")
        check_choice(self, "variant", ("m", "o"))
        check_fraction(self, "dropout")
        for field in ("rff_scale", "rope_scale", "kernel_scale"):
            if not getattr(self, field) > 0:
                raise ValueError(f"{name}.{field} must be > 0, got {getattr(self, field)}")

    @property
    def n_axes(self) -> int:
        return len(self.grid)

    @classmethod
    def tiny(cls, **overrides: Any) -> IFactFormerConfig:
        """A ~16k-parameter model on an 8×6×4 grid for tests and `--smoke` runs. A `grid`
        override without a `domain` gets a 2π-periodic box with that many axes."""
        base: dict[str, Any] = dict(
            grid=(8, 6, 4), width=24, n_heads=2, head_dim=8, kernel_multiplier=2, n_iterations=3, rff_scale=1.0
        )
        base.update(overrides)
        if "domain" not in overrides:
            base["domain"] = (2 * math.pi,) * len(base["grid"])
        return cls(**base)
