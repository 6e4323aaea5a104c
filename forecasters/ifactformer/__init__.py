"""IFactFormer-m (task `rollout`): an implicit factorized transformer neural operator; listed in `forecasters.SPECS`."""

from forecasters.ifactformer.config import IFactFormerConfig
from forecasters.ifactformer.model import IFactFormer

__all__ = ["IFactFormer", "IFactFormerConfig"]
