"""Fourier neural operator (task `rollout`), the rollout baseline; listed in `forecasters.SPECS`."""

from forecasters.fno.config import FNOConfig
from forecasters.fno.model import FNO

__all__ = ["FNO", "FNOConfig"]
