"""The FastAPI app: `create_app(settings)` builds it; models load and warm up in `lifespan`.

Liveness (`/healthz`) is apart from readiness (`/readyz`): the process is alive as soon as it answers;
it is ready once every model in `SEER_MODELS` is loaded and warmed. A ref that cannot be loaded makes
startup raise `RuntimeError` naming the ref (the process exits instead of serving half its models).
A background task swaps in new versions of `NAME@ALIAS` refs as their aliases move (`service.reload`).
The routes: ops and model info (`service.routes`), then one router per task from the task table
(`service.tasks.TASKS`), then the operator's (`service.admin`). Predictions go through a model's two
micro-batchers, light and heavy requests apart (`service.batcher`, `service.lanes`); every request passes
`RequestContextMiddleware` (request id, auth, metrics, access log), CORS when `SEER_CORS_ORIGINS` names
origins (off otherwise), and then the body limit. The OpenAPI's request examples are the served models'
own (`service.docs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware

from service.admin import admin
from service.batcher import MicroBatcher
from service.docs import install_openapi
from service.errors import BodyLimitMiddleware, install_error_handlers
from service.lanes import HEAVY, BatcherPool, Gate
from service.metrics import Metrics
from service.middleware import RequestContextMiddleware
from service.reload import Reloader
from service.routes import models_router, router
from service.settings import Settings
from service.store import ModelStore
from service.task import Job, ServiceTask, run_by_task
from service.tasks import TASKS


def batcher_factory(
    settings: Settings, tasks: dict[str, ServiceTask], metrics: Metrics
) -> Callable[[str, str, Gate], MicroBatcher[Job[Any], Any]]:
    """How the pool makes a model's batcher for a lane: light ones micro-batch, heavy ones take one
    request per batch (so that it is stopped or paused on its own) and start it at once."""

    def make(name: str, lane: str, gate: Gate) -> MicroBatcher[Job[Any], Any]:
        sizes, seconds = metrics.batch_size.labels(name), metrics.batch_latency.labels(name)

        def on_batch(n: int, took: float) -> None:
            sizes.observe(n)
            seconds.observe(took)

        heavy = lane == HEAVY
        return MicroBatcher(
            run_batch=partial(run_by_task, tasks),
            max_batch=1 if heavy else settings.max_batch_size,
            max_wait_s=0.0 if heavy else settings.max_wait_ms / 1000.0,
            max_queue=settings.max_queue,
            on_batch=on_batch,
            name=name,
            gate=gate,
            heavy=heavy,
        )

    return make


def add_middleware(
    app: FastAPI, settings: Settings, metrics: Metrics, store: ModelStore, tasks: dict[str, ServiceTask]
) -> None:
    """Innermost first: the body limit (tasks' streamed upload routes keep their own), CORS (only where
    SEER_CORS_ORIGINS names origins), then the request context (id, auth, metrics, access log), which sees
    every response, the 413s included."""
    streamed = [
        re.compile("[^/]+".join(re.escape(part) for part in re.split(r"\{[^/}]*\}", path)))
        for task in tasks.values()
        for path in task.streamed
    ]
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, streamed=streamed)
    if settings.origins():  # off unless configured: no page on another origin may call the service
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.origins(),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics,
        is_model=lambda name: store.get(name) is not None,
        api_key=settings.key,
        log_requests=settings.log_requests,
    )


def create_app(
    settings: Settings | None = None, store: ModelStore | None = None, *, freeze_gc: bool = False
) -> FastAPI:
    """The service. `settings` defaults to the environment; `store` may come pre-filled (tests, embedding).

    Startup loads every ref in `settings.models` into the store and warms it up; it raises
    `RuntimeError` naming the ref when one cannot be loaded, and when there is nothing to serve.
    `freeze_gc` (for a serving process, not for tests that build many apps) moves everything alive after
    startup out of the garbage collector's view: the ~430k objects that torch, MLflow and the model
    leave behind made each full collection a 450 ms pause in the middle of requests (measured on 2 cores).
    """
    settings = settings if settings is not None else Settings()
    refs = settings.model_refs()
    tasks = dict(TASKS)  # read when the app is made: a task registered by then is served
    store = store if store is not None else ModelStore(settings.tracking_uri, settings.device, tasks=tasks)
    store.expect(refs)
    metrics = Metrics(store, lambda: batchers.depths())
    batchers: BatcherPool[Job[Any], Any] = BatcherPool(batcher_factory(settings, tasks, metrics))
    reloader = Reloader(
        store,
        refs,
        settings.reload_interval_s,
        settings.reload_backoff_max_s,
        on_swap=lambda name: metrics.reloads.labels(name).inc(),
        on_refuse=lambda name: metrics.reload_failures.labels(name).inc(),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        todo = [r for r in refs if store.get(r.name) is None]
        if todo:
            await run_in_threadpool(store.load_all, todo)  # loading is blocking I/O + torch
        if not store.names():
            raise RuntimeError("no models to serve: set SEER_MODELS (e.g. SEER_MODELS=etth1@champion)")
        if freeze_gc:
            gc.collect()
            gc.freeze()
        # Hot reload: watches NAME@ALIAS refs (none: nothing to do); SEER_RELOAD_INTERVAL_S=0 turns polling off.
        watching = reloader.watches and settings.reload_interval_s > 0
        task = asyncio.create_task(reloader.run(), name="seer-reload") if watching else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            reloader.close()
            batchers.close()

    app = FastAPI(
        title="Seer",
        description="Predictions over HTTP from models registered in MLflow; one endpoint per task.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.batchers = batchers
    app.state.metrics = metrics
    app.state.reloader = reloader
    app.state.tasks = tasks
    install_error_handlers(app)
    install_openapi(app, tasks, store)
    app.include_router(router)
    app.include_router(models_router(tasks))
    for task in tasks.values():
        app.include_router(task.router)
    app.include_router(admin)
    add_middleware(app, settings, metrics, store, tasks)
    return app
