"""MLflow pyfunc model, logged as code ("models from code"): nothing is pickled.

MLflow runs this file at load time; it rebuilds the model from the bundle artifact
(`config.json` + `weights.safetensors`) through `data.artifact.ForecastPredictor`, the same code the
Seer service uses, so `mlflow models serve` and `seer serve` give the same numbers.

Input: a DataFrame with one column per variate (L rows, original units) and, for models that use
calendar features, a `date` column; or a dict `{"history": [[..N] × L], "timestamps": [ISO × L]}`.
Any-variate models (no fixed variate names, e.g. corpus-pretrained Moirai-MoE) are logged with a
tensor signature of shape (-1, -1): they take an [L, N] array (any L, any N; NaN = missing; over
`mlflow models serve`: `{"inputs": [[..N] × L]}`). MLflow's schema check refuses a DataFrame for such
a signature; send `frame.to_numpy()`.
Output: a DataFrame of H rows, `date` (when known) + one column per variate.
"""

from __future__ import annotations

from datetime import datetime

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from data.artifact import ForecastPredictor


class SeerForecastModel(PythonModel):
    def load_context(self, context) -> None:
        self.predictor = ForecastPredictor.load(context.artifacts["bundle"])

    # No type hints on predict: MLflow would try to derive a schema from them (and warn).
    def predict(self, context, model_input, params=None):
        p = self.predictor
        if isinstance(model_input, np.ndarray):
            if model_input.ndim != 2:
                raise ValueError(f"expected an [L, N] array of history, got shape {model_input.shape}")
            history, stamps = model_input.astype(np.float64), None
            names = p.variates or [str(j) for j in range(history.shape[1])]
        elif isinstance(model_input, dict):
            history = np.asarray(model_input["history"], dtype=np.float64)
            stamps = model_input.get("timestamps")
            names = p.variates or [str(j) for j in range(history.shape[-1] if history.ndim else 0)]
        else:
            frame = pd.DataFrame(model_input)
            missing = [v for v in p.variates if v not in frame.columns]
            if missing:
                raise ValueError(f"input lacks variate columns {missing}; expected {p.variates}")
            columns = p.variates or [c for c in frame.columns if c != "date"]  # any-variate: all but date
            history = frame[columns].to_numpy(dtype=np.float64)
            names = [str(c) for c in columns]
            stamps = frame["date"].astype(str).tolist() if "date" in frame.columns else None
        timestamps = [[datetime.fromisoformat(str(s)) for s in stamps]] if stamps is not None else None
        forecast = p.predict(history[None], timestamps)[0]  # [H, N]
        out = pd.DataFrame(forecast, columns=names)
        if timestamps is not None:
            out.insert(0, "date", [d.isoformat() for d in p.future_timestamps(timestamps[0][-1])])
        return out


mlflow.models.set_model(SeerForecastModel())
