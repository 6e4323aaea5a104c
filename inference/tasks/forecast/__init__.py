"""The forecast task's predictor (`predictor.py`) and its request type and rules (`request.py`)."""

from inference.tasks.forecast.predictor import DEFAULT_MAX_VARIATES, MEDIAN, ForecastPredictor
from inference.tasks.forecast.request import MAX_QUANTILES, ForecastInput, ForecastOutput

__all__ = ["DEFAULT_MAX_VARIATES", "MAX_QUANTILES", "MEDIAN", "ForecastInput", "ForecastOutput", "ForecastPredictor"]
