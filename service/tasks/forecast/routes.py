"""`POST /v1/models/{name}/forecast`: the forecast task's endpoint.

The body is parsed strictly, then checked by the model's predictor (`ForecastPredictor.parse`: the
request rules live there once) before it may join the model's micro-batcher, so a bad request cannot
spoil its batch-mates; a refusal is the predictor's `Reason` as a 4xx.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from inference.predictor import Reason
from inference.tasks.forecast import ForecastPredictor
from service.deps import PREDICT_ERRORS, V1, body_doc, json_body, model_of, refused, submit
from service.store import LoadedModel
from service.task import Job
from service.tasks.forecast.schemas import ForecastRequest, ForecastResponse

TASK = ForecastPredictor.task
PATH = "/models/{name}/" + TASK

router = APIRouter(**V1, tags=[TASK])  # under /v1, behind the bearer token


@router.post(
    PATH,
    response_model=ForecastResponse,
    responses=PREDICT_ERRORS,
    openapi_extra=body_doc(ForecastRequest),
)
async def forecast(
    model: Annotated[LoadedModel, Depends(model_of(TASK))],
    req: Annotated[ForecastRequest, Depends(json_body(ForecastRequest))],
    request: Request,
) -> Response:
    """Forecast the next H steps of every variate from the last L, in original units.

    Validated here, then queued for the model's micro-batcher: concurrent requests share one forward pass.
    """
    parsed = model.predictor.parse(dict(req))  # the JSON fields by name, not copied
    if isinstance(parsed, Reason):
        raise refused(parsed)
    result: ForecastResponse = await submit(request, Job(model, parsed))
    # Serialized by pydantic-core directly: the response model's fields were built and checked already.
    return Response(content=result.model_dump_json(), media_type="application/json")
