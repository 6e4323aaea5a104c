"""Informer configuration. Defaults are the official code's (zhouhaoyi/Informer2020 `main_informer.py`);
recipes override what the official scripts (original protocol) or TSLib (today's protocol) change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config import ConfigMixin, check_positive


@dataclass(frozen=True, kw_only=True)
class InformerConfig(ConfigMixin):
    lookback: int = 96  # encoder input steps (seq_len)
    horizon: int = 96  # forecast steps (pred_len)
    label_len: int = 48  # known steps that start the decoder input (the "start token"); <= lookback
    n_variates: int = 7  # N: series forecast jointly (enc_in = dec_in = c_out)
    n_marks: int = 4  # F: calendar (timeF) features embedded by a Linear; 0 disables them
    d_model: int = 512
    n_heads: int = 8
    e_layers: int = 2
    d_layers: int = 1
    d_ff: int = 2048
    factor: int = 5  # ProbSparse sampling factor c: c·⌈ln L⌉ sampled keys and active queries
    dropout: float = 0.05
    activation: str = "gelu"
    attn: str = "prob"  # encoder and decoder self-attention: "prob" (ProbSparse) or "full"
    distil: bool = True  # self-attention distilling between encoder layers (halves the length)
    mix: bool = True  # the official decoder's "mix" reshape of its self-attention output
    mix_encoder: bool = False  # the same reshape in the encoder's ProbSparse layers (as TSLib's Informer does)
    sample_seed: int = 0  # key-sampling seed in eval mode (training draws from the global RNG)
    attn_impl: str = "auto"  # core.ops dispatch: auto | triton | reference

    def __post_init__(self) -> None:
        positive = ("lookback", "horizon", "n_variates", "d_model", "n_heads", "e_layers", "d_layers", "d_ff", "factor")
        check_positive(self, *positive)
        if self.n_marks < 0:
            raise ValueError("InformerConfig.n_marks must be >= 0")
        if not 0 <= self.label_len <= self.lookback:
            raise ValueError(f"label_len must be in [0, lookback={self.lookback}], got {self.label_len}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} must be divisible by n_heads {self.n_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.activation not in ("gelu", "relu"):
            raise ValueError(f"activation must be 'gelu' or 'relu', got {self.activation!r}")
        if self.attn not in ("prob", "full"):
            raise ValueError(f"attn must be 'prob' or 'full', got {self.attn!r}")
        if self.attn_impl not in ("auto", "triton", "reference"):
            raise ValueError(f"attn_impl must be auto|triton|reference, got {self.attn_impl!r}")

    def encoder_lengths(self) -> list[int]:
        """Token count entering each encoder layer: distilling's MaxPool(3, 2, pad 1) gives ⌊(L−1)/2⌋+1."""
        lengths = [self.lookback]
        for _ in range(self.e_layers - 1):
            lengths.append((lengths[-1] - 1) // 2 + 1 if self.distil else lengths[-1])
        return lengths

    @classmethod
    def tiny(cls, **overrides) -> InformerConfig:
        """A few-thousand-parameter model for tests and `--smoke` runs."""
        base: dict[str, Any] = dict(
            lookback=16, horizon=8, label_len=8, n_variates=3, n_marks=2, d_model=16, n_heads=2, d_ff=32, factor=2
        )
        base.update(overrides)
        return cls(**base)
