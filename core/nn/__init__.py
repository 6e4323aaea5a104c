"""nn.Modules over `core.ops`: every Seer model reaches attention and norms through these."""

from core.nn.attention import MultiHeadAttention
from core.nn.encoder import TransformerEncoder, TransformerEncoderLayer
from core.nn.moe import MoEFeedForward
from core.nn.norm import LayerNorm, RMSNorm, SeriesNorm
from core.nn.probsparse import ProbSparseAttention
from core.nn.rope import RotaryEmbedding

__all__ = [
    "MultiHeadAttention",
    "MoEFeedForward",
    "ProbSparseAttention",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "SeriesNorm",
    "LayerNorm",
    "RMSNorm",
    "RotaryEmbedding",
]
