"""The FastAPI app: `create_app(settings)` builds it; models load and warm up in `lifespan`.

Liveness (`/healthz`) is apart from readiness (`/readyz`): the process is alive as soon as it answers;
it is ready once every model in `SEER_MODELS` is loaded and warmed. A ref that cannot be loaded makes
startup raise `RuntimeError` naming the ref (the process exits instead of serving half its models).
A background task swaps in new versions of `NAME@ALIAS` refs as their aliases move (`service.reload`).
The routes: ops and model info (`service.routes`), then one router per task from the task table
(`service.tasks.TASKS`), then the operator's (`service.admin`). Predictions go through one micro-batcher
per model (`service.batcher`); every request passes `RequestContextMiddleware` (request id, auth,
metrics, access log) and then the body limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from service.admin import admin
from service.batcher import BatcherPool, MicroBatcher
from service.errors import BodyLimitMiddleware, install_error_handlers
from service.metrics import Metrics
from service.middleware import RequestContextMiddleware
from service.reload import Reloader
from service.routes import models_router, router
from service.settings import Settings
from service.store import ModelStore
from service.task import Job, run_by_task
from service.tasks import TASKS


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
    batchers: BatcherPool[Job[Any], Any] = BatcherPool(lambda name: make_batcher(name))
    metrics = Metrics(store, batchers.depths)
    reloader = Reloader(
        store,
        refs,
        settings.reload_interval_s,
        settings.reload_backoff_max_s,
        on_swap=lambda name: metrics.reloads.labels(name).inc(),
        on_refuse=lambda name: metrics.reload_failures.labels(name).inc(),
    )

    def make_batcher(name: str) -> MicroBatcher[Job[Any], Any]:
        sizes, seconds = metrics.batch_size.labels(name), metrics.batch_latency.labels(name)

        def on_batch(n: int, took: float) -> None:
            sizes.observe(n)
            seconds.observe(took)

        return MicroBatcher(
            run_batch=partial(run_by_task, tasks),
            max_batch=settings.max_batch_size,
            max_wait_s=settings.max_wait_ms / 1000.0,
            max_queue=settings.max_queue,
            on_batch=on_batch,
            name=name,
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
    app.include_router(router)
    app.include_router(models_router(tasks))
    for task in tasks.values():
        app.include_router(task.router)
    app.include_router(admin)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(  # outermost: sees every response, the 413s above included
        RequestContextMiddleware,
        metrics=metrics,
        is_model=lambda name: store.get(name) is not None,
        api_key=settings.api_key,
        log_requests=settings.log_requests,
    )
    return app
