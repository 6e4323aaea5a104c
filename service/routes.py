"""The routes every service has: ops (`/healthz`, `/readyz`, `/metrics`, always open) and the model list
and info under `/v1` (behind the bearer token when `SEER_API_KEY` is set). Each task's own endpoint is in
`service/tasks/<task>/routes.py`. Every error a client can cause is declared in OpenAPI with its
`ErrorBody`, so the schema is the whole contract.

Model info is the common fields (`service.schemas.ModelInfo`) and the task's block
(`Predictor.describe()`), flat: `GET /v1/models/{name}` answers the info schema of the model's task, and
in OpenAPI its response is the union of the served tasks' info schemas, told apart by `task`.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, create_model

from service.deps import V1, ModelDep, StoreDep, errors
from service.metrics import CONTENT_TYPE
from service.middleware import trusted
from service.schemas import Health, ModelInfo, Readiness
from service.store import LoadedModel
from service.task import ServiceTask

router = APIRouter()


@router.get("/healthz", response_model=Health, tags=["ops"])
async def healthz() -> Health:
    """Liveness: 200 while the process can answer at all."""
    return Health()


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}}, tags=["ops"])
async def readyz(store: StoreDep, request: Request) -> Any:
    """Readiness: 200 once every configured model is loaded and warmed, else 503 with each model's status.

    A new version refused by hot reload leaves readiness at 200 (the old version serves); `reload` says so.
    Error texts (paths, hosts, exception messages) only for a trusted caller (the bearer token; without
    SEER_API_KEY, the host itself); everyone else sees the states without them.
    """
    status = store.status()
    reloader = getattr(request.app.state, "reloader", None)
    details = reloader.details() if reloader is not None and reloader.watches else None
    if not trusted(request.scope):
        status, details = _redacted(status, details)
    if store.ready:
        body = Readiness(ready=True, models=status, reload=details)
    else:
        detail = "no models configured" if not status else "not all models are loaded"
        body = Readiness(ready=False, models=status, detail=detail, reload=details)
    content = body.model_dump(exclude={"reload"} if details is None else None)
    return JSONResponse(status_code=200 if body.ready else 503, content=content)


def _redacted(
    status: dict[str, str], details: dict[str, dict[str, Any]] | None
) -> tuple[dict[str, str], dict[str, dict[str, Any]] | None]:
    """Readiness without the error texts: `failed`, `unreachable`, a refused version and a problem's
    presence stay; the why (which names paths, hosts and internals) goes."""
    hidden = "details for authenticated callers"
    status = {name: s.split(":", 1)[0] for name, s in status.items()}
    if details is None:
        return status, None
    out: dict[str, dict[str, Any]] = {}
    for name, entry in details.items():
        entry = dict(entry)
        entry["tracking"] = str(entry["tracking"]).split(":", 1)[0]
        if "refused" in entry:
            entry["refused"] = {"version": entry["refused"]["version"], "error": hidden}
        if "problem" in entry:
            entry["problem"] = hidden
        out[name] = entry
    return status, out


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}},
    tags=["ops"],
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests and latency per model and endpoint, batch sizes, queue depth, versions."""
    body = request.app.state.metrics.render()
    return Response(content=body, media_type=CONTENT_TYPE)


def model_info(m: LoadedModel, tasks: Mapping[str, ServiceTask], with_example: bool = True) -> ModelInfo:
    """The common fields and the predictor's `describe()` block, as its task's info schema."""
    p = m.predictor
    served = tasks.get(p.task)
    schema = served.info if served is not None else ModelInfo
    example = p.meta.get("example_input") or None
    common = {
        "name": m.name,
        "version": m.version,
        "alias": m.alias,
        "task": p.task,
        "model": str(p.meta["model"]),
        "source": m.source,
        "metrics": p.meta.get("metrics"),
        "example_input": example if with_example else None,
    }
    return schema.model_validate({**common, **p.describe()})


def info_schema(tasks: Mapping[str, ServiceTask]) -> Any:
    """The info schema of the served tasks: one task's, or their union told apart by `task`."""
    schemas = [t.info for t in tasks.values()] or [ModelInfo]
    if len(schemas) == 1:
        return schemas[0]
    return Annotated[functools.reduce(operator.or_, schemas), Field(discriminator="task")]


def models_router(tasks: Mapping[str, ServiceTask]) -> APIRouter:
    """`GET /v1/models` and `GET /v1/models/{name}`, with the info schemas of `tasks`."""
    info = info_schema(tasks)
    listing: type[BaseModel] = create_model("ModelList", models=(list[info], ...))  # type: ignore[valid-type]
    api = APIRouter(**V1)

    @api.get("/models", response_model=listing, tags=["models"])
    async def list_models(store: StoreDep) -> Any:
        return listing(models=[model_info(m, tasks, with_example=False) for m in store.models()])

    @api.get("/models/{name}", response_model=info, responses=errors(404), tags=["models"])
    async def get_model_info(model: ModelDep) -> Any:
        return model_info(model, tasks)

    return api
