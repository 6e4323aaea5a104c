"""MLflow tracking and registration: where runs go, what they record, how models are registered."""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from lightning.pytorch.loggers import MLFlowLogger
from mlflow import MlflowClient
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

# Logged as code: MLflow runs this file to load the model (located, not imported: importing it registers
# the model with MLflow as a side effect).
PYFUNC_FILE = Path(str(importlib.util.find_spec("inference.pyfunc_model").origin))  # type: ignore[union-attr]
CHAMPION = "champion"


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI`, else the embedded default: SQLite in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def git_commit() -> str:
    """The source commit: `SEER_GIT_COMMIT` (set in images, which carry no .git), else `git`."""
    if os.environ.get("SEER_GIT_COMMIT"):
        return os.environ["SEER_GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def pip_requirements() -> list[str]:
    """Explicit requirements (inference by MLflow costs seconds and guesses)."""
    import numpy
    import pandas
    import polars
    import safetensors
    import torch

    return [
        f"mlflow=={mlflow.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
        f"numpy=={numpy.__version__}",
        f"pandas=={pandas.__version__}",
        f"polars=={polars.__version__}",
        f"safetensors=={safetensors.__version__}",
    ]


@contextmanager
def _without_type_hint_advice() -> Iterator[None]:
    """MLflow advises type hints on `predict` each time it loads the model file (twice per logging); the
    model is logged as code with an explicit signature, so the advice is noise. A warnings filter cannot
    drop it (MLflow wraps the call in its own `simplefilter("once")`), so it is left out where it is shown."""
    shown = warnings.showwarning

    def show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        if "Add type hints to the `predict` method" not in str(message):
            shown(message, category, *args, **kwargs)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


def log_and_register(
    bundle_dir: Path, registered_name: str, example: Any = None, *, claim_champion: bool = True
) -> tuple[str, bool]:
    """Log the bundle as a pyfunc model in the active run and register it.

    Returns (version, became_champion): `@champion` is set only when the name has no champion yet,
    and never with `claim_champion=False` (then no alias is touched). An array `example` ([L, N], an
    any-variate model) gets the signature "float64 tensor of shape (-1, -1)", not the example's width.
    """
    signature = None
    if isinstance(example, np.ndarray):
        signature = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float64), (-1, -1))]))
    with _without_type_hint_advice():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_FILE),
            artifacts={"bundle": str(bundle_dir)},
            pip_requirements=pip_requirements(),
            registered_model_name=registered_name,
            input_example=example,
            signature=signature,
        )
    version = str(info.registered_model_version)
    if not claim_champion:
        return version, False
    client = MlflowClient()
    try:
        client.get_model_version_by_alias(registered_name, CHAMPION)
        return version, False
    except mlflow.exceptions.MlflowException:
        client.set_registered_model_alias(registered_name, CHAMPION, version)
        return version, True


def run_tags(recipe_name: str, model: str, dataset: str, kernels: dict[str, str], device: str) -> dict[str, str]:
    return {
        "seer.recipe": recipe_name,
        "seer.model": model,
        "seer.dataset": dataset,
        "seer.kernels": ",".join(f"{k}={v}" for k, v in sorted(kernels.items())) or "none",
        "seer.device": device,
        "seer.host": platform.node(),
        "mlflow.source.git.commit": git_commit(),
    }


class PrefixedMLFlowLogger(MLFlowLogger):
    """An MLFlowLogger that writes every metric as `<prefix><name>` (e.g. a recipe's `warmup_` stage), so
    two trainers can log into one run without mixing their curves."""

    def __init__(self, prefix: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.metric_prefix = prefix

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        super().log_metrics({f"{self.metric_prefix}{k}": v for k, v in metrics.items()}, step)
