"""What serving needs from a model of any task: the `Predictor` protocol, `Reason`, and `load_predictor`.

A predictor wraps a model rebuilt from its bundle with the transform state training fitted. Its request
rules live there once: `parse` turns a request (the task's plain input type, or the raw JSON-like mapping)
into a validated input or the `Reason` it cannot be served, `validate` is the same without the input,
and `predict_batch` trusts what `parse` accepted. The service only maps a reason to a 4xx.
`inference.tasks.PREDICTORS` is the one table of tasks; `load_predictor` picks the class from the
bundle's task, so nothing that loads a bundle names a task or a model.

Two optional abilities, for a server that must bound the work of each request:
- `CostModel` (`cost(parsed)`, `max_cost`, `too_costly`): a predictor whose requests differ in work
  tells what one costs, in units of its model's reference request; `request_cost` reads it (1.0 and no
  refusal for a predictor without the ability, whose requests all cost about the same).
- checkpoints: `add_checkpoints(model)` makes every call of the model's top modules a point where the
  work can stop (`Cancelled`, when everyone waiting for it has gone) or pause (to let more urgent work
  of the same model run first); the caller says which with `work_scope`. Without a scope they do nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import torch
from torch import nn

from inference.bundle import BundleError, load_bundle, read_meta


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


@runtime_checkable
class CostModel(Protocol):
    """Optional: a predictor whose requests differ in work (e.g. with their size or how far ahead they ask).

    `cost(parsed)` is the work of one input `parse` accepted, in units of the model's reference request
    (its default request: 1.0), from the input's shape alone (deterministic, cheap); `max_cost` the most
    one request may cost (the bundle's metadata, or the task's default); `too_costly(parsed, cost)` the
    `Reason` (status 413) a request past it gets, saying what to make smaller."""

    @property
    def max_cost(self) -> float: ...

    def cost(self, parsed: Any) -> float: ...

    def too_costly(self, parsed: Any, cost: float) -> Reason: ...


def request_cost(predictor: Any, parsed: Any) -> tuple[float, Reason | None]:
    """(the input's cost, the refusal when it is over the predictor's bound); (1.0, None) for predictors
    without a `CostModel`."""
    if not isinstance(predictor, CostModel):
        return 1.0, None
    cost = float(predictor.cost(parsed))
    return cost, predictor.too_costly(parsed, cost) if cost > predictor.max_cost else None


class Cancelled(Exception):
    """Raised at a checkpoint when the work's `work_scope` says nobody waits for it any more."""


@dataclass(frozen=True)
class _Scope:
    cancelled: Callable[[], bool]
    pause: Callable[[], None] | None


_current = threading.local()  # the scope of the work running in this thread


@contextlib.contextmanager
def work_scope(cancelled: Callable[[], bool], pause: Callable[[], None] | None = None) -> Iterator[None]:
    """Within it, in this thread, each checkpoint raises `Cancelled` once `cancelled()` is true and else
    calls `pause()` (which may block while more urgent work runs)."""
    previous = getattr(_current, "scope", None)
    _current.scope = _Scope(cancelled, pause)
    try:
        yield
    finally:
        _current.scope = previous


def checkpoint() -> None:
    """Stop (`Cancelled`) or pause here if this thread's `work_scope` says so; nothing outside a scope."""
    scope: _Scope | None = getattr(_current, "scope", None)
    if scope is None:
        return
    if scope.cancelled():
        raise Cancelled("nobody waits for this prediction any more (timed out or disconnected)")
    if scope.pause is not None:
        scope.pause()


def _checkpoint_hook(module: nn.Module, args: Any) -> None:
    checkpoint()


CHECKPOINT_DEPTH = 2  # the model, its parts and their parts (blocks of a stack): a check per layer call


def add_checkpoints(model: nn.Module, depth: int = CHECKPOINT_DEPTH) -> None:
    """A checkpoint before every call of `model` and of its submodules down to `depth` (not deeper: a
    forward pre-hook takes the slower call path, and a check per layer is fine-grained enough)."""
    todo = [(model, 0)]
    while todo:
        module, level = todo.pop()
        module.register_forward_pre_hook(_checkpoint_hook)
        if level < depth:
            todo.extend((child, level + 1) for child in module.children())


def predictor_class(task: str) -> type[Predictor]:
    """The predictor class of `task`, from the table in `inference.tasks`."""
    # Imported here, not at the top: the task modules import `Reason` from this module.
    from inference.tasks import PREDICTORS

    try:
        return PREDICTORS[task]
    except KeyError:
        raise BundleError(f"no predictor for task {task!r}; tasks with a predictor: {', '.join(PREDICTORS)}") from None


B = TypeVar("B", bound="BundledPredictor")


class BundledPredictor:
    """What every task's predictor shares: a model rebuilt from a bundle (`model`, `meta`), loaded only when
    the bundle is of the predictor's task. Subclasses are dataclasses with `model` and `meta` fields."""

    task: ClassVar[str]
    model: nn.Module
    meta: dict[str, Any]

    @classmethod
    def load(cls: type[B], path: str | Path, device: str | torch.device = "cpu") -> B:
        model, meta = load_bundle(path, device)
        if meta["task"] != cls.task:
            raise BundleError(f"{meta['name']} is a {meta['task']} model, not a {cls.task} model")
        return cls(model=model, meta=meta)  # type: ignore[call-arg]

    @property
    def name(self) -> str:
        return str(self.meta["name"])


def load_predictor(path: str | Path, device: str | torch.device = "cpu") -> Predictor:
    """The predictor of the bundle at `path` (a bundle folder or an MLflow model directory), by its task."""
    _, meta = read_meta(path)
    return predictor_class(str(meta["task"])).load(path, device)
