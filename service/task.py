"""What a task plugs into the service (`ServiceTask`), and the jobs its requests become.

`service.tasks.TASKS` lists one `ServiceTask` per served task: its router (mounted under `/v1`, behind
the bearer token), its request/response schemas, its model info schema, and its batch function. A
request is parsed and validated by the model's predictor before it may join a batch, so a bad one cannot
spoil its batch-mates; it then waits in the model's micro-batcher as a `Job` (the `LoadedModel` it was
validated against + the predictor's parsed input). `run_by_task` is the batchers' one batch function:
it hands each task its own jobs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import APIRouter
from pydantic import BaseModel

from inference.predictor import Cancelled, Refused
from service.errors import ServiceError
from service.schemas import ModelInfo
from service.store import LoadedModel

I = TypeVar("I")  # noqa: E741  (a task's parsed input)
O = TypeVar("O")  # noqa: E741  (a predictor's output for one input)
R = TypeVar("R")  # one response body


@dataclass(frozen=True)
class Job(Generic[I]):
    """One validated request, ready to join a batch: answered by the version that validated it."""

    model: LoadedModel
    input: I


@dataclass(frozen=True)
class ServiceTask:
    """One task's part of the service. `router` is made with `service.deps.V1` (under `/v1`, behind the
    bearer token); `path` is its endpoint (`/v1/models/{name}/<task>`); `run_batch(jobs)` answers jobs of
    this task with one response body or one exception each."""

    name: str  # = the predictor's `task`
    path: str
    router: APIRouter
    request: type[BaseModel]
    response: type[BaseModel]
    info: type[ModelInfo]
    run_batch: Callable[[list[Job[Any]]], list[Any]]
    # Path templates of routes that read their body as it arrives (a file upload scored in chunks) and
    # bound it themselves: the generic body limit neither buffers these bodies nor applies
    # SEER_MAX_BODY_BYTES to them, so a large upload is never held whole in memory.
    streamed: tuple[str, ...] = ()

    def endpoint(self, model: str) -> str:
        return f"POST {self.path.format(name=model)}"


def run_jobs(jobs: list[Job[Any]], answer: Callable[[Job[Any], Any], R]) -> list[R | Exception]:
    """Blocking (a batcher's worker thread): each job's predictor output turned into its response by
    `answer`, or its exception (a `Refused` input becomes its 4xx).

    Jobs normally share one model; after a hot swap the queue can hold two versions, and each job is
    answered by the version that validated it: one `predict_batch` call per version. Whatever fails still
    fails one job alone: a `predict_batch` that raises is called again per job, an `answer` that raises
    is that job's exception.
    """
    groups: dict[int, list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault(id(job.model), []).append(i)
    out: dict[int, R | Exception] = {}
    for idx in groups.values():
        results = _predict(jobs[idx[0]].model, [jobs[i].input for i in idx])
        for i, result in zip(idx, results, strict=True):
            out[i] = _error(result) if isinstance(result, Exception) else _answer(answer, jobs[i], result)
    return [out[i] for i in range(len(jobs))]


def _predict(model: LoadedModel, inputs: list[Any]) -> list[Any]:
    """`predict_batch`; if it raises (a bug, or one input it cannot take), once more per input, so that
    only the input at fault fails. Not when the work was cancelled: nobody waits for any of it."""
    try:
        results = model.predictor.predict_batch(inputs)
    except Cancelled as e:
        return [e] * len(inputs)
    except Exception as e:
        if len(inputs) == 1:
            return [e]
        return [_predict(model, [inp])[0] for inp in inputs]
    if len(results) != len(inputs):  # a broken predictor: nobody can tell which answer is whose
        bug = RuntimeError(f"predict_batch gave {len(results)} answers for {len(inputs)} inputs")
        return [bug] * len(inputs)
    return list(results)


def _answer(answer: Callable[[Job[Any], Any], R], job: Job[Any], result: Any) -> R | Exception:
    try:
        return answer(job, result)
    except Exception as e:  # a bug in the task's answer for this output: this job's alone
        return e


def _error(e: Exception) -> Exception:
    if isinstance(e, Refused):
        return ServiceError(e.reason.status, e.reason.message, e.reason.field)
    return e


def run_by_task(tasks: Mapping[str, ServiceTask], jobs: list[Job[Any]]) -> list[Any]:
    """The batchers' batch function: each task's jobs to its own `run_batch` (a hot swap may change the
    task a name serves, so a queue can hold jobs of two tasks), answers back in order."""
    groups: dict[str, list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault(job.model.predictor.task, []).append(i)
    out: dict[int, Any] = {}
    for task, idx in groups.items():
        out.update(zip(idx, tasks[task].run_batch([jobs[i] for i in idx]), strict=True))
    return [out[i] for i in range(len(jobs))]
