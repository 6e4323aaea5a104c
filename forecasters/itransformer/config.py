"""iTransformer configuration. Defaults are the official code's (thuml/iTransformer `run.py`);
the ETT recipes override `d_model`/`d_ff` as the official scripts do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config import ConfigMixin, check_positive


@dataclass(frozen=True, kw_only=True)
class ITransformerConfig(ConfigMixin):
    lookback: int = 96  # L: input steps; each variate's whole lookback becomes one token
    horizon: int = 96  # H: forecast steps
    n_variates: int = 7  # N: series forecast jointly
    n_marks: int = 4  # F: calendar features, each added as an extra token (0 disables them)
    d_model: int = 512
    n_heads: int = 8
    e_layers: int = 2
    d_ff: int = 2048
    dropout: float = 0.1
    activation: str = "gelu"
    use_norm: bool = True  # per-variate instance normalisation of the lookback window
    attn_impl: str = "auto"  # core.ops dispatch: auto | triton | reference

    def __post_init__(self) -> None:
        check_positive(self, "lookback", "horizon", "n_variates", "d_model", "n_heads", "e_layers", "d_ff")
        if self.n_marks < 0:
            raise ValueError("ITransformerConfig.n_marks must be >= 0")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} must be divisible by n_heads {self.n_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.activation not in ("gelu", "relu"):
            raise ValueError(f"activation must be 'gelu' or 'relu', got {self.activation!r}")
        if self.attn_impl not in ("auto", "triton", "reference"):
            raise ValueError(f"attn_impl must be auto|triton|reference, got {self.attn_impl!r}")

    @classmethod
    def tiny(cls, **overrides) -> ITransformerConfig:
        """A few-thousand-parameter model for tests and `--smoke` runs."""
        base: dict[str, Any] = dict(
            lookback=16, horizon=8, n_variates=3, n_marks=2, d_model=16, n_heads=2, e_layers=1, d_ff=32
        )
        base.update(overrides)
        return cls(**base)
