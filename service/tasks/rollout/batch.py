"""Rollout jobs answered in batches (off the event loop), one response body per job.

The predictor batches what it can (`RolloutPredictor.predict_batch`: requests of the same steps share
forward passes; one that diverges is refused alone); here each output becomes its `RolloutResponse`.
"""

from __future__ import annotations

from typing import Any

from inference.tasks.rollout import RolloutInput, RolloutOutput
from service.schemas import ModelRefOut
from service.task import Job, run_jobs
from service.tasks.rollout.schemas import RolloutResponse


def predict_batch(jobs: list[Job[Any]]) -> list[RolloutResponse | Exception]:
    """Blocking (call from a worker thread): one response (or one exception) per job."""
    return run_jobs(jobs, answer)


def answer(job: Job[RolloutInput], out: RolloutOutput) -> RolloutResponse:
    """One job's response; built without re-validating n × P × V floats (every field is made right here)."""
    model = job.model
    return RolloutResponse.model_construct(
        fields=out.fields.tolist(),
        steps=list(out.steps),
        dt=out.dt,
        model=ModelRefOut.model_construct(name=model.name, version=model.version),
    )
