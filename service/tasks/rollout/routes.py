"""`POST /v1/models/{name}/rollout`: the rollout task's endpoint.

The body is parsed strictly, then checked by the model's predictor (`RolloutPredictor.parse`: the request
rules live there once) before it may join the model's micro-batcher, so a bad request cannot spoil its
batch-mates; a refusal is the predictor's `Reason` as a 4xx, and so is a rollout that diverges (422 naming
the step). The work bound (grid points × steps ≤ `max_cost`) is a 413 from `submit`; short rollouts are
micro-batched, long ones run in the model's heavy lane.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from inference.predictor import Reason
from inference.tasks.rollout import RolloutPredictor
from service.deps import PREDICT_ERRORS, V1, body_doc, json_body, model_of, refused, submit
from service.store import LoadedModel
from service.task import Job
from service.tasks.rollout.schemas import RolloutRequest, RolloutResponse

TASK = RolloutPredictor.task
PATH = "/models/{name}/" + TASK

router = APIRouter(**V1, tags=[TASK])  # under /v1, behind the bearer token


@router.post(PATH, response_model=RolloutResponse, responses=PREDICT_ERRORS, openapi_extra=body_doc(RolloutRequest))
async def rollout(
    model: Annotated[LoadedModel, Depends(model_of(TASK))],
    req: Annotated[RolloutRequest, Depends(json_body(RolloutRequest))],
    request: Request,
) -> Response:
    """Roll a flow field forward `steps` model steps (each `dt` of simulated time), physical units in and out.

    Validated here, then queued for the model's micro-batcher: concurrent requests of the same steps share
    forward passes.
    """
    parsed = model.predictor.parse(dict(req))  # the JSON fields by name, not copied
    if isinstance(parsed, Reason):
        raise refused(parsed)
    result: RolloutResponse = await submit(request, Job(model, parsed))
    return Response(content=result.model_dump_json(), media_type="application/json")
