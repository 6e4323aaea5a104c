from signals.nids_flow.config import FlowTransformerConfig
from signals.nids_flow.model import FlowTransformer

__all__ = ["FlowTransformer", "FlowTransformerConfig"]
