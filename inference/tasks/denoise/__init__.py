"""The denoise task's predictor (`predictor.py`) and its request type and rules (`request.py`)."""

from inference.tasks.denoise.predictor import DenoisePredictor
from inference.tasks.denoise.request import MAX_CHANNELS, MAX_WINDOWS, DenoiseInput, DenoiseOutput

__all__ = ["MAX_CHANNELS", "MAX_WINDOWS", "DenoiseInput", "DenoiseOutput", "DenoisePredictor"]
