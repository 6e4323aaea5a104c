from forecasters.informer.config import InformerConfig
from forecasters.informer.model import Informer

__all__ = ["Informer", "InformerConfig"]
