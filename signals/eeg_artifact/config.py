"""ART configuration. Defaults are the official code's (CNElab-Plus/ArtifactRemovalTransformer:
`tf_model.make_model(30, 30, N=2)` with d_model 128, d_ff 2048, 8 heads, dropout 0.1; 4 s windows at
256 Hz, i.e. 1,024 samples, over the 30 channels of its 10-20 template)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config import ConfigMixin, check_choice, check_fraction, check_positive


@dataclass(frozen=True, kw_only=True)
class ARTConfig(ConfigMixin):
    n_channels: int = 30  # N: EEG channels in the template order; the 1×1 convolutions mix all of them
    window: int = 1024  # T: samples per window (4 s at 256 Hz) = tokens; the longest input a call takes
    d_model: int = 128
    n_heads: int = 8
    e_layers: int = 2  # encoder layers
    d_layers: int = 2  # decoder layers
    d_ff: int = 2048
    dropout: float = 0.1
    activation: str = "relu"  # the official PositionwiseFeedForward
    decoder_causal: bool = True  # the decoder's self-attention sees only earlier samples (official mask)
    spectral_weight: float = 0.0  # weight of the log-spectrum term added to the MSE loss (0: MSE only)
    attn_impl: str = "auto"  # core.ops dispatch: auto | triton | reference

    def __post_init__(self) -> None:
        check_positive(self, "n_channels", "window", "d_model", "n_heads", "e_layers", "d_layers", "d_ff")
        if self.d_model % self.n_heads:
            raise ValueError(f"ARTConfig.d_model {self.d_model} must be divisible by n_heads {self.n_heads}")
        if self.d_model % 2:
            raise ValueError(f"ARTConfig.d_model must be even (sine/cosine positions), got {self.d_model}")
        check_fraction(self, "dropout")
        check_choice(self, "activation", ("relu", "gelu"))
        check_choice(self, "attn_impl", ("auto", "triton", "reference"))
        if self.spectral_weight < 0:
            raise ValueError(f"ARTConfig.spectral_weight must be >= 0, got {self.spectral_weight}")

    @classmethod
    def tiny(cls, **overrides: Any) -> ARTConfig:
        """A few-thousand-parameter model for tests and `--smoke` runs."""
        base: dict[str, Any] = dict(
            n_channels=4, window=32, d_model=16, n_heads=2, e_layers=1, d_layers=1, d_ff=32, dropout=0.1
        )
        base.update(overrides)
        return cls(**base)
