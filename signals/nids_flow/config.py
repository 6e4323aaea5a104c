"""FlowTransformer configuration. Defaults are the official demo's (liamdm/FlowTransformer `main.py`:
window 8, `RecordLevelEmbed(64)`, `BasicTransformer(2 layers, 128 inner, 2 heads)`, an MLP of 128
with dropout 0.1, last-token head, categorical features top-32 encoded)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config import ConfigMixin, check_choice, check_fraction, check_positive

ENCODINGS = ("record", "categorical")  # record-level embedding | per-categorical-feature embeddings
BLOCKS = ("encoder", "causal")  # bidirectional encoder | GPT-style block with a causal mask
HEADS = ("last", "cls", "gap", "flatten")  # last token | CLS token | global average pooling | flatten


@dataclass(frozen=True, kw_only=True)
class FlowTransformerConfig(ConfigMixin):
    window: int = 8  # W: flows per window, the target flow last (the official code's window_size)
    n_numeric: int = 28  # numeric features per flow, log-scaled to ~[0, 1] by the data's transform
    n_categorical: int = 9  # categorical features per flow, each an integer code in [0, n_levels)
    n_levels: int = 33  # codes per categorical feature: 0 = "other" (unseen or rare), 1..k the top-k values
    n_classes: int = 2  # K: 2 = benign/attack; more for multi-class
    encoding: str = "record"
    embed_dim: int = 16  # per-feature width of the "categorical" encoding (the official `dimensions_per_feature`)
    d_model: int = 64
    n_heads: int = 2
    n_layers: int = 2
    d_ff: int = 128
    dropout: float = 0.1
    activation: str = "relu"
    block: str = "encoder"
    head: str = "last"
    positional: bool = False  # a learned embedding per window slot; the official code has none
    mlp: tuple[int, ...] = (128,)  # hidden sizes of the classifier after the head
    mlp_dropout: float = 0.1
    attn_impl: str = "auto"  # core.ops dispatch: auto | triton | reference

    def __post_init__(self) -> None:
        object.__setattr__(self, "mlp", tuple(int(m) for m in self.mlp))  # JSON gives a list back
        check_positive(self, "window", "n_levels", "embed_dim", "d_model", "n_heads", "n_layers", "d_ff")
        if self.n_numeric < 0 or self.n_categorical < 0 or self.n_numeric + self.n_categorical < 1:
            raise ValueError(
                f"FlowTransformerConfig needs at least one feature, got n_numeric={self.n_numeric}, "
                f"n_categorical={self.n_categorical}"
            )
        if self.n_classes < 2:
            raise ValueError(f"FlowTransformerConfig.n_classes must be >= 2, got {self.n_classes}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} must be divisible by n_heads {self.n_heads}")
        if any(m < 1 for m in self.mlp):
            raise ValueError(f"FlowTransformerConfig.mlp sizes must be >= 1, got {self.mlp}")
        check_choice(self, "encoding", ENCODINGS)
        check_choice(self, "block", BLOCKS)
        check_choice(self, "head", HEADS)
        check_choice(self, "activation", ("relu", "gelu"))
        check_choice(self, "attn_impl", ("auto", "triton", "reference"))
        check_fraction(self, "dropout")
        check_fraction(self, "mlp_dropout")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: `mlp` as a list, as it comes back from config.json."""
        return {**super().to_dict(), "mlp": list(self.mlp)}

    @property
    def n_features(self) -> int:
        """F: the width of one encoded flow (numeric values, then categorical codes)."""
        return self.n_numeric + self.n_categorical

    @classmethod
    def tiny(cls, **overrides: Any) -> FlowTransformerConfig:
        """A few-thousand-parameter model for tests and `--smoke` runs."""
        base: dict[str, Any] = dict(
            window=4, n_numeric=3, n_categorical=2, n_levels=5, n_classes=3, d_model=16, n_heads=2, n_layers=1,
            d_ff=32, embed_dim=4, mlp=(16,),
        )  # fmt: skip
        base.update(overrides)
        return cls(**base)
