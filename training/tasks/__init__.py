"""Per task, what training and retraining need to know about it; the one table of tasks.

- `OBJECTIVES[task]` (`training.tasks.objective.Objective`): the loss, the metrics, what early
  stopping monitors, the evaluation plots. The one Lightning system (`training.system`) takes it from
  the model's task; nothing generic branches on a task or a model.
- `HOLDOUTS[task]` (`training.tasks.holdout.Holdout`): how the retraining scheduler reads fresh data
  and scores champion and challenger on the same holdout.

A new task family adds `training/tasks/<task>/` and one line in each table.
"""

from __future__ import annotations

from training.tasks.classify.holdout import CLASSIFY_HOLDOUT
from training.tasks.classify.objective import CLASSIFY_OBJECTIVE
from training.tasks.denoise.holdout import DENOISE_HOLDOUT
from training.tasks.denoise.objective import DENOISE_OBJECTIVE
from training.tasks.forecast.holdout import FORECAST_HOLDOUT
from training.tasks.forecast.objective import FORECAST_OBJECTIVE
from training.tasks.holdout import Holdout
from training.tasks.objective import Objective
from training.tasks.rollout.holdout import ROLLOUT_HOLDOUT
from training.tasks.rollout.objective import ROLLOUT_OBJECTIVE

OBJECTIVES: dict[str, Objective] = {
    "forecast": FORECAST_OBJECTIVE,
    "classify": CLASSIFY_OBJECTIVE,
    "denoise": DENOISE_OBJECTIVE,
    "rollout": ROLLOUT_OBJECTIVE,
}
HOLDOUTS: dict[str, Holdout] = {
    "forecast": FORECAST_HOLDOUT,
    "classify": CLASSIFY_HOLDOUT,
    "denoise": DENOISE_HOLDOUT,
    "rollout": ROLLOUT_HOLDOUT,
}


def objective_for(task: str) -> Objective:
    try:
        return OBJECTIVES[task]
    except KeyError:
        raise ValueError(f"no training objective for task {task!r} yet; tasks: {', '.join(OBJECTIVES)}") from None


def holdout_for(task: str) -> Holdout:
    try:
        return HOLDOUTS[task]
    except KeyError:
        raise ValueError(f"no retraining holdout for task {task!r} yet; tasks: {', '.join(HOLDOUTS)}") from None
