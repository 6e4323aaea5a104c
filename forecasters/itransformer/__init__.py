from forecasters.itransformer.config import ITransformerConfig
from forecasters.itransformer.model import ITransformer

__all__ = ["ITransformer", "ITransformerConfig"]
