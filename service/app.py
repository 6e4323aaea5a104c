"""The FastAPI app: `create_app(settings)` builds it; models load and warm up in `lifespan`.

Liveness (`/healthz`) is apart from readiness (`/readyz`): the process is alive as soon as it answers;
it is ready once every model in `SEER_MODELS` is loaded and warmed. A ref that cannot be loaded makes
startup raise `RuntimeError` naming the ref (the process exits instead of serving half its models).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from service.errors import BodyLimitMiddleware, ServiceError, install_error_handlers
from service.forecast import check_request, run_forecast
from service.schemas import ErrorBody, ForecastRequest, ForecastResponse, Health, ModelInfo, ModelList, Readiness
from service.settings import Settings
from service.store import LoadedModel, ModelStore

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "unknown model"},
    413: {"model": ErrorBody, "description": "request body too large"},
    422: {"model": ErrorBody, "description": "the request does not fit the model; `detail` says what to send"},
}


def get_store(request: Request) -> ModelStore:
    store: ModelStore = request.app.state.store
    return store


StoreDep = Annotated[ModelStore, Depends(get_store)]


def get_model(name: str, store: StoreDep) -> LoadedModel:
    model = store.get(name)
    if model is None:
        known = ", ".join(store.names()) or "none loaded yet"
        raise ServiceError(404, f"unknown model {name!r}; this service serves: {known}", "name")
    return model


ModelDep = Annotated[LoadedModel, Depends(get_model)]


def model_info(m: LoadedModel, with_example: bool = True) -> ModelInfo:
    p = m.predictor
    return ModelInfo(
        name=m.name,
        version=m.version,
        alias=m.alias,
        task=str(p.meta["task"]),
        model=str(p.meta["model"]),
        lookback=p.lookback,
        horizon=p.horizon,
        variates=p.variates,
        freq=p.calendar_freq,
        step_seconds=p.step_seconds,
        uses_timestamps=p.uses_timestamps,
        source=m.source,
        metrics=p.meta.get("metrics"),
        example_input=(p.example_input or None) if with_example else None,
    )


router = APIRouter()


@router.get("/healthz", response_model=Health, tags=["ops"])
async def healthz() -> Health:
    """Liveness: 200 while the process can answer at all."""
    return Health()


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}}, tags=["ops"])
async def readyz(store: StoreDep) -> Any:
    """Readiness: 200 once every configured model is loaded and warmed, else 503 with each model's status."""
    status = store.status()
    if store.ready:
        return Readiness(ready=True, models=status)
    detail = "no models configured" if not status else "not all models are loaded"
    body = Readiness(ready=False, models=status, detail=detail)
    return JSONResponse(status_code=503, content=body.model_dump())


@router.get("/v1/models", response_model=ModelList, tags=["models"])
async def list_models(store: StoreDep) -> ModelList:
    return ModelList(models=[model_info(m, with_example=False) for m in store.models()])


@router.get("/v1/models/{name}", response_model=ModelInfo, responses={404: _ERRORS[404]}, tags=["models"])
async def get_model_info(model: ModelDep) -> ModelInfo:
    return model_info(model)


@router.post("/v1/models/{name}/forecast", response_model=ForecastResponse, responses=_ERRORS, tags=["forecast"])
async def forecast(req: ForecastRequest, model: ModelDep) -> ForecastResponse:
    """Forecast the next H steps of every variate from the last L, in original units."""
    history, stamps = check_request(model, req)
    # Inference is blocking torch work: run it in a worker thread so the event loop keeps serving.
    return await run_in_threadpool(run_forecast, model, history, stamps)


def create_app(settings: Settings | None = None, store: ModelStore | None = None) -> FastAPI:
    """The service. `settings` defaults to the environment; `store` may come pre-filled (tests, embedding).

    Startup loads every ref in `settings.models` into the store and warms it up; it raises
    `RuntimeError` naming the ref when one cannot be loaded, and when there is nothing to serve.
    """
    settings = settings if settings is not None else Settings()
    refs = settings.model_refs()
    store = store if store is not None else ModelStore(tracking_uri=settings.tracking_uri, device=settings.device)
    store.expect(refs)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        todo = [r for r in refs if store.get(r.name) is None]
        if todo:
            await run_in_threadpool(store.load_all, todo)  # loading is blocking I/O + torch
        if not store.names():
            raise RuntimeError("no models to serve: set SEER_MODELS (e.g. SEER_MODELS=etth1@champion)")
        yield

    app = FastAPI(
        title="Seer",
        description="Forecasts over HTTP from models registered in MLflow.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    install_error_handlers(app)
    app.include_router(router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app
