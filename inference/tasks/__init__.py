"""One predictor per task: `PREDICTORS` is the table `inference.predictor.load_predictor` reads.

A new task adds its `inference/tasks/<task>.py` (a class satisfying `inference.predictor.Predictor`)
and one line here.
"""

from __future__ import annotations

from inference.predictor import Predictor
from inference.tasks.classify import ClassifyPredictor
from inference.tasks.denoise import DenoisePredictor
from inference.tasks.forecast import ForecastPredictor
from inference.tasks.rollout import RolloutPredictor

PREDICTORS: dict[str, type[Predictor]] = {
    ForecastPredictor.task: ForecastPredictor,
    ClassifyPredictor.task: ClassifyPredictor,
    DenoisePredictor.task: DenoisePredictor,
    RolloutPredictor.task: RolloutPredictor,
}
