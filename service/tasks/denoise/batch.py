"""Denoise jobs answered in batches (off the event loop), one response body per job.

The predictor batches what it can (`DenoisePredictor.predict_batch`: the windows of every request share
forward passes); here each output becomes its `DenoiseResponse`.
"""

from __future__ import annotations

from typing import Any

from inference.tasks.denoise import DenoiseInput, DenoiseOutput
from service.schemas import ModelRefOut
from service.task import Job, run_jobs
from service.tasks.denoise.schemas import DenoiseResponse


def predict_batch(jobs: list[Job[Any]]) -> list[DenoiseResponse | Exception]:
    """Blocking (call from a worker thread): one response (or one exception) per job."""
    return run_jobs(jobs, answer)


def answer(job: Job[DenoiseInput], out: DenoiseOutput) -> DenoiseResponse:
    """One job's response; built without re-validating N × T floats (every field is made right here)."""
    inp, model = job.input, job.model
    return DenoiseResponse.model_construct(
        data=out.data.tolist(),
        channels=list(inp.channels),
        sfreq=inp.sfreq,
        cleaned=out.cleaned,
        uncleaned=out.uncleaned,
        model=ModelRefOut.model_construct(name=model.name, version=model.version),
    )
