from signals.eeg_artifact.config import ARTConfig
from signals.eeg_artifact.model import ART

__all__ = ["ART", "ARTConfig"]
