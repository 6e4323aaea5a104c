"""The HTTP service: FastAPI app factory, settings from `SEER_*`, the model store.

The modules here are generic (typed on `inference.predictor.Predictor`); each task's schemas, route and
batch function live in `service/tasks/<task>/`, listed in the one table `service.tasks.TASKS`.
Imports `inference` (bundles, predictors) and `data`, never `training`, `seer` or a model family.
"""

from service.app import create_app
from service.settings import Settings

__all__ = ["Settings", "create_app"]
