"""Classify jobs answered in batches (off the event loop), one response body per job.

The predictor scores every job's flows in shared forward passes (`ClassifyPredictor.predict_batch`);
here each output becomes its `ClassifyResponse`, except a chunk of a bulk upload (`BulkInput`), whose
probabilities go back as they are to the streaming route that queued it.

Shapes: W' flows of a request, K classes.
"""

from __future__ import annotations

from typing import Any

from inference.tasks.classify import ClassifyInput, ClassifyOutput
from service.schemas import ModelRefOut
from service.task import Job, run_jobs
from service.tasks.classify.schemas import ClassifyResponse, FlowPrediction


class BulkInput(ClassifyInput):
    """A chunk of a bulk upload: answered with its `ClassifyOutput`, not a response body."""


def predict_batch(jobs: list[Job[Any]]) -> list[ClassifyResponse | ClassifyOutput | Exception]:
    """Blocking (call from a worker thread): one response (or output, or exception) per job."""
    return run_jobs(jobs, answer)


def answer(job: Job[ClassifyInput], out: ClassifyOutput) -> ClassifyResponse | ClassifyOutput:
    if isinstance(job.input, BulkInput):
        return out
    model = job.model
    classes = model.predictor.classes  # type: ignore[attr-defined]
    probs = out.probabilities
    labels = [classes[k] for k in probs.argmax(axis=1).tolist()]
    # Built without re-validating: every field is made right here (as the forecast task's answers are).
    predictions = [
        FlowPrediction.model_construct(
            label=label, probability=max(row), attack_score=1.0 - row[0], scores=dict(zip(classes, row, strict=True))
        )
        for label, row in zip(labels, probs.tolist(), strict=True)
    ]
    return ClassifyResponse.model_construct(
        predictions=predictions, model=ModelRefOut.model_construct(name=model.name, version=model.version)
    )
