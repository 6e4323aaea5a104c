"""What serving needs from a model of any task: the `Predictor` protocol, `Reason`, and `load_predictor`.

A predictor wraps a model rebuilt from its bundle with the transform state training fitted. Its request
rules live there once: `parse` turns a request (the task's plain input type, or the raw JSON-like mapping)
into a validated input or the `Reason` it cannot be served, `validate` is the same without the input,
and `predict_batch` trusts what `parse` accepted. The service only maps a reason to a 4xx.
`inference.tasks.PREDICTORS` is the one table of tasks; `load_predictor` picks the class from the
bundle's task, so nothing that loads a bundle names a task or a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch

from inference.bundle import BundleError, read_meta


@dataclass(frozen=True)
class Reason:
    """Why a request cannot be served, in words a client can act on.

    `field` is the dotted path of the request field at fault (`history.3`); `status` the HTTP status the
    service answers with (422: a value is wrong; 413: the request is too much work)."""

    message: str
    field: str
    status: int = 422


class Refused(ValueError):
    """A `Reason` as an exception: raised by a predictor's checked array API, returned per input by
    `predict_batch` when one input cannot be answered (its batch-mates still are)."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.message)
        self.reason = reason


class Predictor(Protocol):
    """The serving side of a task (one implementation per task in `inference.tasks`).

    What the generic service uses: `task` and `name` to route and report, `meta` (the bundle's config)
    for the model info, `load` + `warm_up` to bring a version in, `parse`/`validate` before a request
    may join a batch, `predict_batch` on what `parse` accepted, `describe` for the task's block of the
    model info, and `pyfunc_predict` for `mlflow models serve`.
    """

    task: ClassVar[str]
    meta: dict[str, Any]

    @property
    def name(self) -> str: ...

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Predictor: ...

    def parse(self, request: Any) -> Any:
        """The request (the task's input type, or a mapping of its JSON fields) as the task's validated
        input, or the first `Reason` it cannot be served."""
        ...

    def validate(self, request: Any) -> Reason | None:
        """`parse` without the input: None when the request can be served."""
        ...

    def predict_batch(self, inputs: Sequence[Any]) -> list[Any]:
        """Blocking: one output (or one exception; `Refused` for a client's mistake) per input accepted by
        `parse`, in order; one input that fails never fails the others."""
        ...

    def warm_up(self) -> None:
        """Predict once on the bundle's example input and check the answer (ValueError if wrong), so the
        first request is not the slow one and a broken version is refused before it serves."""
        ...

    def describe(self) -> dict[str, Any]:
        """The task's block of the model info (`GET /v1/models/{name}`): flat JSON-able fields."""
        ...

    def pyfunc_predict(self, model_input: Any) -> Any:
        """The MLflow pyfunc `predict` (`inference.pyfunc_model`), on what MLflow passes in."""
        ...


def predictor_class(task: str) -> type[Predictor]:
    """The predictor class of `task`, from the table in `inference.tasks`."""
    # Imported here, not at the top: the task modules import `Reason` from this module.
    from inference.tasks import PREDICTORS

    try:
        return PREDICTORS[task]
    except KeyError:
        raise BundleError(f"no predictor for task {task!r}; tasks with a predictor: {', '.join(PREDICTORS)}") from None


def load_predictor(path: str | Path, device: str | torch.device = "cpu") -> Predictor:
    """The predictor of the bundle at `path` (a bundle folder or an MLflow model directory), by its task."""
    _, meta = read_meta(path)
    return predictor_class(str(meta["task"])).load(path, device)
