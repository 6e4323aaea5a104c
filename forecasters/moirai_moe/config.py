"""Moirai-MoE configuration. Defaults are the paper's *small* model (Liu et al. 2024, Table 6; the
released `Salesforce/moirai-moe-1.0-R-small`): 6 layers, d_model 384, 6 heads of 64, 32 SwiGLU
experts of width 512, top-2, patch size 16, token-cluster (centroid) routing. `cpu()` is the 4-layer
d_model 128 / 8-expert model for CPU training; `tiny()` is the test model.

`lookback`, `horizon`, `n_variates` and `n_marks` are the fields the training system ties to the
data (`config.replace(...)`). The model itself takes any number of variates and any history length
in `forecast_samples`/`quantiles`/`loss`; `forward` (the served point forecast) checks `lookback`.
Calendar features are not used (`n_marks` is accepted and ignored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config import ConfigMixin, check_positive
from core.ops.rope.reference import rope_rotary_dims

ROUTERS = ("centroid", "learned")
IMPLS = ("auto", "triton", "reference")


@dataclass(frozen=True, kw_only=True)
class MoiraiMoEConfig(ConfigMixin):
    lookback: int = 512  # L: context steps given to `forward`
    horizon: int = 96  # H: steps `forward` forecasts (<= max_horizon)
    n_variates: int = 7  # N: the data's variates (the model itself takes any N)
    n_marks: int = 4  # calendar features: accepted for the training system, not used
    patch_size: int = 16  # P: steps per token (non-overlapping patches)
    d_model: int = 384  # D
    n_layers: int = 6
    n_heads: int = 6
    n_experts: int = 32  # E
    top_k: int = 2  # experts per token
    d_expert: int = 512  # hidden width of each SwiGLU expert
    d_ff: int | None = None  # hidden width of the dense SwiGLU (`dense=True`); None = top_k·d_expert
    router: str = "centroid"  # "centroid" (Moirai-MoE's token clusters) | "learned" (a trained Linear)
    dense: bool = False  # a dense SwiGLU instead of the MoE: the warm-up model whose states give centroids
    rope_fraction: float = 0.5  # share of each head's dims rotated by the patch index
    rope_base: float = 10000.0
    dropout: float = 0.0  # on the attention and feed-forward residual branches
    max_horizon: int = 1024  # the longest horizon the model will decode (a serving bound)
    normal_scale: float = 1e-3  # the fixed scale of the mixture's Normal component (scaled units)
    num_samples: int = 100  # default sample paths for `forecast_samples` / `quantiles`
    aux_loss_weight: float = 0.01  # load-balancing loss coefficient (learned router only)
    scale_eps: float = 1e-5  # instance scaling: scale = sqrt(var + scale_eps)
    # Training loss without look-ahead in the scaling: a training window is scaled by the statistics of
    # a random prefix of its context (at least this fraction of the context's patches) and only patches
    # after that prefix are scored; in eval mode the prefix is the whole context (the forecast NLL).
    # None: full-context statistics and every next patch scored, context patches included; their
    # statistics then include the values being predicted, which teaches a pull back to the context mean.
    scale_prefix: float | None = 0.5
    attn_impl: str = "auto"  # core.ops dispatch for attention: auto | triton | reference
    moe_impl: str = "auto"  # core.ops dispatch for the experts: auto | triton | reference

    def __post_init__(self) -> None:
        positive = (
            "lookback",
            "horizon",
            "n_variates",
            "patch_size",
            "d_model",
            "n_layers",
            "n_heads",
            "n_experts",
            "top_k",
            "d_expert",
            "max_horizon",
            "num_samples",
        )
        check_positive(self, *positive)
        if self.n_marks < 0:
            raise ValueError("MoiraiMoEConfig.n_marks must be >= 0")
        if self.d_ff is not None and self.d_ff < 1:
            raise ValueError(f"MoiraiMoEConfig.d_ff must be >= 1 or None, got {self.d_ff}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} must be divisible by n_heads {self.n_heads}")
        rope_rotary_dims(self.d_model // self.n_heads, self.rope_fraction)  # ValueError on a bad fraction
        if self.rope_base <= 0:
            raise ValueError(f"rope_base must be > 0, got {self.rope_base}")
        if self.top_k > self.n_experts:
            raise ValueError(f"top_k {self.top_k} must be <= n_experts {self.n_experts}")
        if self.router not in ROUTERS:
            raise ValueError(f"router must be one of {ROUTERS}, got {self.router!r}")
        if self.horizon > self.max_horizon:
            raise ValueError(f"horizon {self.horizon} exceeds max_horizon {self.max_horizon}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.normal_scale > 0:
            raise ValueError(f"normal_scale must be > 0, got {self.normal_scale}")
        if self.aux_loss_weight < 0:
            raise ValueError(f"aux_loss_weight must be >= 0, got {self.aux_loss_weight}")
        if self.scale_prefix is not None and not 0.0 < self.scale_prefix <= 1.0:
            raise ValueError(f"scale_prefix must be in (0, 1] or None, got {self.scale_prefix}")
        if not self.scale_eps > 0:
            raise ValueError(f"scale_eps must be > 0, got {self.scale_eps}")
        for name in ("attn_impl", "moe_impl"):
            if getattr(self, name) not in IMPLS:
                raise ValueError(f"{name} must be auto|triton|reference, got {getattr(self, name)!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def dense_width(self) -> int:
        """Hidden width of the dense SwiGLU: `d_ff`, else the MoE's activated width top_k·d_expert."""
        return self.d_ff if self.d_ff is not None else self.top_k * self.d_expert

    @classmethod
    def small(cls, **overrides) -> MoiraiMoEConfig:
        """The paper's Moirai-MoE-Small (the defaults): 6 layers, D 384, 32 experts of width 512, top-2."""
        return cls(**overrides)

    @classmethod
    def cpu(cls, **overrides) -> MoiraiMoEConfig:
        """A CPU-trainable model: 4 layers, D 128, 4 heads, 8 experts of width 256, top-2, patch 16."""
        base: dict[str, Any] = dict(d_model=128, n_layers=4, n_heads=4, n_experts=8, d_expert=256)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def tiny(cls, **overrides) -> MoiraiMoEConfig:
        """A few-thousand-parameter model for tests and `--smoke` runs (learned router, 4 experts)."""
        base: dict[str, Any] = dict(
            lookback=32,
            horizon=16,
            n_variates=3,
            n_marks=2,
            patch_size=8,
            d_model=16,
            n_layers=2,
            n_heads=2,
            n_experts=4,
            top_k=2,
            d_expert=16,
            router="learned",
            max_horizon=64,
            num_samples=8,
        )
        base.update(overrides)
        return cls(**base)
