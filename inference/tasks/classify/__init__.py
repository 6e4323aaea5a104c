"""The classify task's predictor (`predictor.py`), its request type and rules (`request.py`), and the
streaming scoring of whole files (`bulk.py`)."""

from inference.tasks.classify.predictor import CHUNK, DEFAULT_MAX_FLOWS, ClassifyPredictor
from inference.tasks.classify.request import MAX_TEXT, ClassifyInput, ClassifyOutput

__all__ = ["CHUNK", "DEFAULT_MAX_FLOWS", "MAX_TEXT", "ClassifyInput", "ClassifyOutput", "ClassifyPredictor"]
