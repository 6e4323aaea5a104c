"""The rollout task's predictor (`predictor.py`) and its request type and rules (`request.py`)."""

from inference.tasks.rollout.predictor import RolloutPredictor
from inference.tasks.rollout.request import MAX_ABS_VALUE, RolloutInput, RolloutOutput

__all__ = ["MAX_ABS_VALUE", "RolloutInput", "RolloutOutput", "RolloutPredictor"]
