"""The MLflow pyfunc model of every Seer bundle, logged as code ("models from code"): nothing is pickled.

MLflow runs this file at load time; it rebuilds the model from the bundle artifact (`config.json` +
`weights.safetensors`) through the predictor of the bundle's task (`inference.predictor`), the same code
the Seer service uses, so `mlflow models serve` and `seer serve` give the same numbers. What `predict`
accepts and returns is the task's (`<TaskPredictor>.pyfunc_predict`; forecast: a history DataFrame,
dict or [L, N] array in, a DataFrame of H rows out).
"""

from __future__ import annotations

import mlflow
from mlflow.pyfunc import PythonModel

from inference.predictor import load_predictor


class SeerModel(PythonModel):
    def load_context(self, context) -> None:
        self.predictor = load_predictor(context.artifacts["bundle"])

    # No type hints on predict: MLflow would try to derive a schema from them (and warn).
    def predict(self, context, model_input, params=None):
        return self.predictor.pyfunc_predict(model_input)


mlflow.models.set_model(SeerModel())
