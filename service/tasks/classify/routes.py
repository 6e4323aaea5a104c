"""The classify task's endpoints: `POST /v1/models/{name}/classify` (flows as JSON, here) and
`POST /v1/models/{name}/classify/bulk` (a file, streamed: `stream.py`).

JSON: the body is parsed strictly, then checked by the model's predictor (`ClassifyPredictor.parse`: the
rules live there once) before it may join the model's micro-batcher; a refusal is its `Reason` as a 4xx.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from inference.predictor import Reason
from inference.tasks.classify import ClassifyPredictor
from service.deps import PREDICT_ERRORS, V1, body_doc, json_body, model_of, refused, submit
from service.store import LoadedModel
from service.task import Job
from service.tasks.classify.schemas import ClassifyRequest, ClassifyResponse
from service.tasks.classify.stream import BULK_DOC, BULK_OK, classify_bulk

TASK = ClassifyPredictor.task
PATH = "/models/{name}/" + TASK

router = APIRouter(**V1, tags=[TASK])  # under /v1, behind the bearer token


@router.post(
    PATH,
    response_model=ClassifyResponse,
    responses=PREDICT_ERRORS,
    openapi_extra=body_doc(ClassifyRequest),
)
async def classify(
    model: Annotated[LoadedModel, Depends(model_of(TASK))],
    req: Annotated[ClassifyRequest, Depends(json_body(ClassifyRequest))],
    request: Request,
) -> Response:
    """Classify each flow with the window of flows ending at it (the flows before it in this request).

    Validated here, then queued for the model's micro-batcher: concurrent requests share forward passes."""
    parsed = model.predictor.parse({"flows": req.flows})
    if isinstance(parsed, Reason):
        raise refused(parsed)
    result: ClassifyResponse = await submit(request, Job(model, parsed))
    return Response(content=result.model_dump_json(), media_type="application/json")


router.add_api_route(
    PATH + "/bulk",
    classify_bulk,
    methods=["POST"],
    responses={**BULK_OK, **PREDICT_ERRORS},
    openapi_extra=BULK_DOC,
    summary="Classify every flow of a CSV or Parquet file, streaming the answers back",
)
