"""What serving needs from a model of any task: the `Predictor` protocol, and one implementation per task.

A predictor wraps a model rebuilt from its bundle with the transform state training fitted. Its request
rules live here once: `validate` returns a `Reason` (what to fix, and where) or None, and the service only
maps a reason to a 4xx. `PREDICTORS` is the one table of tasks; `load_predictor` picks the class from the
bundle's task, so nothing that loads a bundle names a task or a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch

from inference.bundle import BundleError, read_meta
from inference.tasks.forecast import ForecastPredictor


@dataclass(frozen=True)
class Reason:
    """Why a request cannot be served, in words a client can act on.

    `field` is the dotted path of the request field at fault (`history.3`); `status` the HTTP status the
    service answers with (422: a value is wrong; 413: the request is too much work)."""

    message: str
    field: str
    status: int = 422


class Predictor(Protocol):
    """The serving side of a task (see `inference.tasks.<task>`)."""

    task: ClassVar[str]
    meta: dict[str, Any]

    @property
    def name(self) -> str: ...

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Predictor: ...

    def warm_up(self) -> None:
        """Predict once on the bundle's example input and check the answer (ValueError if wrong), so the
        first request is not the slow one and a broken version is refused before it serves."""
        ...

    def describe(self) -> dict[str, Any]:
        """The task's block of the model info (`GET /v1/models/{name}`)."""
        ...

    def pyfunc_predict(self, model_input: Any) -> Any:
        """The MLflow pyfunc `predict` (`inference.pyfunc_model`), on what MLflow passes in."""
        ...


PREDICTORS: dict[str, type[Any]] = {ForecastPredictor.task: ForecastPredictor}


def predictor_class(task: str) -> type[Any]:
    try:
        return PREDICTORS[task]
    except KeyError:
        raise BundleError(f"no predictor for task {task!r}; served tasks: {', '.join(PREDICTORS)}") from None


def load_predictor(path: str | Path, device: str | torch.device = "cpu") -> Any:
    """The predictor of the bundle at `path` (a bundle folder or an MLflow model directory), by its task."""
    _, meta = read_meta(path)
    return predictor_class(str(meta["task"])).load(path, device)
