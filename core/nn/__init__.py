"""nn.Modules over `core.ops`: every Seer model reaches attention and norms through these."""

from core.nn.attention import MultiHeadAttention
from core.nn.encoder import TransformerEncoder, TransformerEncoderLayer
from core.nn.norm import SeriesNorm

__all__ = ["MultiHeadAttention", "TransformerEncoder", "TransformerEncoderLayer", "SeriesNorm"]
