"""`POST /v1/models/{name}/denoise` (JSON) and `POST /v1/models/{name}/denoise/file` (an EEG file).

JSON: the body is parsed strictly, then checked by the model's predictor (`DenoisePredictor.parse`: the
request rules live there once) before it may join the model's micro-batcher, so a bad request cannot
spoil its batch-mates; a refusal is the predictor's `Reason` as a 4xx.

File: the raw bytes of one EDF/EDF+, BDF or FIF file (`Content-Type: application/octet-stream`,
`?format=edf|bdf|fif`), within the service's body limit. It is read with MNE off the event loop (a file
MNE cannot read is a 422 naming the formats), its EEG and EOG channels go through the same rules and
batcher as a JSON request, and the answer is the cleaned recording as a FIF file (same channels, rate
and length; the `X-Seer-Cleaned` / `X-Seer-Uncleaned` headers list which channels the model cleaned).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from data.eeg.readers import RecordingError, fif_bytes, read_recording_bytes
from inference.predictor import Reason
from inference.tasks.denoise import DenoisePredictor
from service.deps import PREDICT_ERRORS, V1, body_doc, json_body, model_of, refused, submit
from service.errors import ServiceError
from service.store import LoadedModel
from service.task import Job
from service.tasks.denoise.schemas import DenoiseRequest, DenoiseResponse

TASK = DenoisePredictor.task
PATH = "/models/{name}/" + TASK
UPLOAD = "application/octet-stream"

router = APIRouter(**V1, tags=[TASK])  # under /v1, behind the bearer token


@router.post(PATH, response_model=DenoiseResponse, responses=PREDICT_ERRORS, openapi_extra=body_doc(DenoiseRequest))
async def denoise(
    model: Annotated[LoadedModel, Depends(model_of(TASK))],
    req: Annotated[DenoiseRequest, Depends(json_body(DenoiseRequest))],
    request: Request,
) -> Response:
    """Remove eye, muscle and other artifacts from multichannel EEG of any length, rate and montage.

    Validated here, then queued for the model's micro-batcher: concurrent requests share forward passes.
    """
    parsed = model.predictor.parse(dict(req))  # the JSON fields by name, not copied
    if isinstance(parsed, Reason):
        raise refused(parsed)
    result: DenoiseResponse = await submit(request, Job(model, parsed))
    return Response(content=result.model_dump_json(), media_type="application/json")


FILE_DOC = {
    "requestBody": {
        "required": True,
        "content": {UPLOAD: {"schema": {"type": "string", "format": "binary"}}},
        "description": "one EDF/EDF+, BDF or FIF file, as bytes",
    }
}


@router.post(
    PATH + "/file",
    responses={200: {"content": {UPLOAD: {}}, "description": "the cleaned recording as FIF"}, **PREDICT_ERRORS},
    response_class=Response,
    openapi_extra=FILE_DOC,
)  # fmt: skip
async def denoise_file(
    model: Annotated[LoadedModel, Depends(model_of(TASK))],
    request: Request,
    format: Annotated[Literal["edf", "bdf", "fif"], Query(description="the file's format")],
) -> Response:
    """Clean an EEG file: EDF/EDF+, BDF or FIF bytes in, the cleaned recording as FIF out."""
    media = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media != UPLOAD:
        raise ServiceError(415, f"send the file's bytes with `Content-Type: {UPLOAD}` (got {media or 'none'!r})")
    body = await request.body()
    try:
        rec = await run_in_threadpool(read_recording_bytes, body, f".{format}")
    except RecordingError as e:
        raise ServiceError(422, str(e), "body") from None
    channels = [*rec.channels, *rec.eog_channels]
    data = np.vstack([rec.data, rec.eog]) if rec.eog.size else rec.data
    parsed = model.predictor.parse({"sfreq": rec.sfreq, "channels": channels, "data": data})
    if isinstance(parsed, Reason):
        raise refused(parsed)
    result: DenoiseResponse = await submit(request, Job(model, parsed))
    cleaned = np.asarray(result.data)
    out = rec.replace(data=cleaned[: len(rec.channels)], eog=cleaned[len(rec.channels) :] if rec.eog.size else rec.eog)
    content = await run_in_threadpool(fif_bytes, out)
    headers = {
        "X-Seer-Cleaned": ",".join(result.cleaned)[:4000],
        "X-Seer-Uncleaned": ",".join(result.uncleaned)[:4000],
        "Content-Disposition": 'attachment; filename="cleaned_raw.fif"',
    }
    return Response(content=content, media_type=UPLOAD, headers=headers)
