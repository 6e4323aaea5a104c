"""What every route uses: the store and model dependencies, strict JSON bodies (JSON only: 415 for another
content type; unknown fields refused by name), the OpenAPI error table, and `submit`: a validated job
through its model's micro-batcher, within the model's bound on one request's work (413 past it; a heavy
one in the heavy lane), with its timeout, back-pressure, and its work dropped when its client goes away.

A task's route takes its model through `model_of(task)`: an unknown name is a 404 naming the served
models, and a model of another task a 404 naming that model's task and endpoint.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ValidationError

from inference.predictor import Reason, request_cost
from service.batcher import ClientGone, QueueFull
from service.errors import ServiceError
from service.lanes import HEAVY, LIGHT
from service.middleware import OPEN_PATHS_NOTE, note_error
from service.schemas import ErrorBody
from service.store import LoadedModel, ModelStore
from service.task import Job

B = TypeVar("B", bound=BaseModel)

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "malformed request framing (e.g. a non-integer Content-Length)"},
    401: {"model": ErrorBody, "description": "SEER_API_KEY is set and the bearer token is missing or wrong"},
    404: {"model": ErrorBody, "description": "unknown model, or a model of another task (`detail` names its endpoint)"},
    413: {
        "model": ErrorBody,
        "description": "request body too large (SEER_MAX_BODY_BYTES), or the request is more work than one "
        "request may ask of the model (`max_cost` in its info); `detail` says what to make smaller",
    },
    415: {"model": ErrorBody, "description": "the body is not sent as JSON (`Content-Type: application/json`)"},
    422: {"model": ErrorBody, "description": "the request does not fit the model; `detail` says what to send"},
    503: {"model": ErrorBody, "description": "the model's queue is full (SEER_MAX_QUEUE); retry shortly"},
    504: {"model": ErrorBody, "description": "not answered within SEER_REQUEST_TIMEOUT_S"},
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of these error statuses, each with its `ErrorBody`."""
    return {code: _ERRORS[code] for code in codes}


# What a task's prediction endpoint (a JSON body through `json_body`, then `submit`) can answer besides 200.
PREDICT_ERRORS = errors(400, 404, 413, 415, 422, 503, 504)


# Declares the bearer scheme in OpenAPI; the token itself is checked by RequestContextMiddleware, before
# the body is read, so an unauthenticated client gets its 401 without the service parsing anything.
bearer = HTTPBearer(auto_error=False, description=f"SEER_API_KEY, when set; {OPEN_PATHS_NOTE}")

# How every `/v1` router is made (`APIRouter(**V1)`): under the prefix, behind the bearer token, its 401
# declared. The prefix is the router's own, so request metrics label the full route template.
V1: dict[str, Any] = {"prefix": "/v1", "dependencies": [Depends(bearer)], "responses": errors(401)}


async def get_store(request: Request) -> ModelStore:  # async: a sync dependency costs a thread hop
    store: ModelStore = request.app.state.store
    return store


StoreDep = Annotated[ModelStore, Depends(get_store)]


async def get_model(name: str, store: StoreDep) -> LoadedModel:
    model = store.get(name)
    if model is None:
        known = ", ".join(store.names()) or "none loaded yet"
        raise ServiceError(404, f"unknown model {name!r}; this service serves: {known}", "name")
    return model


ModelDep = Annotated[LoadedModel, Depends(get_model)]


def model_of(task: str) -> Callable[..., Awaitable[LoadedModel]]:
    """The dependency of a `task` route: the model named in the path, if it is a model of `task`."""

    async def model_of_task(model: ModelDep, request: Request) -> LoadedModel:
        actual = model.predictor.task
        if actual != task:
            served = request.app.state.tasks.get(actual)
            where = served.endpoint(model.name) if served is not None else "no endpoint in this service"
            raise ServiceError(404, f"model {model.name} is a {actual} model: {where}", "name")
        return model

    return model_of_task


def is_json(content_type: str | None) -> bool:
    """`application/json` or a `+json` type, any parameters (charset) after it."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def json_body(schema: type[B]) -> Callable[[Request], Awaitable[B]]:
    """The dependency that parses the body as `schema` with pydantic-core in one pass (5× faster than
    `json.loads` + validation on a 96 × 7 history, measured); its errors go to the same 422 handler as
    FastAPI's own. A body sent as anything but JSON is a 415 before it is read: a browser page on another
    origin can send `text/plain` without asking (no CORS preflight), never `application/json`. Routes
    declare the body with `body_doc(schema)`, since FastAPI does not see it."""
    fields = ", ".join(schema.model_fields)

    async def parse_body(request: Request) -> B:
        if not is_json(request.headers.get("content-type")):
            got = request.headers.get("content-type") or "none"
            raise ServiceError(415, f"send the body as JSON with `Content-Type: application/json` (got {got[:80]!r})")
        try:
            return schema.model_validate_json(await request.body())
        except ValidationError as e:
            errs = e.errors(include_url=False, include_input=False)
            for err in errs:
                if err["type"] == "extra_forbidden":  # a typo, most likely: say what the fields are
                    err["msg"] = f"unknown field; the fields are {fields}"
            raise RequestValidationError([{**err, "loc": ("body", *err["loc"])} for err in errs]) from None

    return parse_body


def body_doc(schema: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` declaring a required JSON body of `schema` (parsed by `json_body`)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema.model_json_schema()}}}}


def refused(reason: Reason) -> ServiceError:
    """A predictor's reason as the 4xx the client gets."""
    return ServiceError(reason.status, reason.message, reason.field)


async def submit(request: Request, job: Job[Any]) -> Any:
    """Queue a validated job for its model's micro-batcher and wait for its own answer (or exception).

    413 when it costs more than the model allows one request (`inference.predictor.request_cost`); a job
    costing more than SEER_HEAVY_COST reference requests goes to the model's heavy lane. 504 past
    SEER_REQUEST_TIMEOUT_S, 503 (with Retry-After) when the queue is full; a client that disconnects
    gets nothing (499 in the log) and its work is dropped."""
    state = request.app.state
    settings = state.settings
    cost, too_much = request_cost(job.model.predictor, job.input)
    if too_much is not None:
        raise refused(too_much)
    batcher = state.batchers.get(job.model.name, HEAVY if cost > settings.heavy_cost else LIGHT)
    timeout = settings.request_timeout_s
    try:
        return await batcher.submit(job, timeout, disconnect=request.receive)
    except TimeoutError:
        raise ServiceError(
            504, f"no answer within {timeout:g} s (SEER_REQUEST_TIMEOUT_S); the service is overloaded, retry later"
        ) from None
    except QueueFull as e:
        raise ServiceError(503, f"{e}; retry shortly", headers={"Retry-After": "1"}) from None
    except ClientGone as e:
        note_error(request.scope, str(e))
        raise ServiceError(499, str(e)) from None
