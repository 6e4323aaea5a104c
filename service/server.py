"""Run the service with uvicorn: `serve(...)` for `seer serve`, `python -m service.server` for containers.

Request logs are JSON lines on stdout from the `service.access` logger (one per request, with its
`X-Request-ID`); uvicorn's own access log is off since it would say the same thing less usefully.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import torch
import uvicorn

from service.app import create_app
from service.settings import Settings


def configure_access_log() -> None:
    """`service.access` writes its JSON lines as they are (no level/name prefix), to stdout only."""
    access = logging.getLogger("service.access")
    if not any(getattr(h, "_seer_access", False) for h in access.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._seer_access = True  # type: ignore[attr-defined]
        access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False


def configure_service_log() -> None:
    """The service's own events (model loads, hot reload swaps and refusals, tracking server state) on
    stderr at INFO, beside uvicorn's lines."""
    logger = logging.getLogger("service")
    logger.setLevel(logging.INFO)
    if logging.getLogger().handlers:  # `seer serve` configured the root logger already: propagate there
        return
    if not any(getattr(h, "_seer_service", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler._seer_service = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def run(settings: Settings) -> None:
    """Serve until interrupted. Sets torch's intra-op threads first (process-wide, so not in `create_app`):
    with one thread per core, the spinning OpenMP workers starve the event loop that parses requests; on
    2 cores a 96 × 7 forecaster forward went from 0.8 ms (1 thread) to 35 ms (2 threads) under load."""
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    configure_access_log()
    configure_service_log()
    uvicorn.run(
        create_app(settings, freeze_gc=True), host=settings.host, port=settings.port, log_level="info", access_log=False
    )


def serve(models: str, host: str, port: int, tracking_uri: str | None = None) -> None:
    """Serve `models` (comma-separated NAME@ALIAS / NAME=PATH refs) on host:port until interrupted.

    Other settings (body limit, batching, timeout, API key, device) come from the environment;
    `tracking_uri` defaults to `MLFLOW_TRACKING_URI`. A bad ref or setting fails here (validation) or at
    startup (loading).
    """
    overrides: dict[str, Any] = {"models": models, "host": host, "port": port}
    if tracking_uri is not None:
        overrides["tracking_uri"] = tracking_uri
    run(Settings(**overrides))


def main() -> None:
    """Everything from the environment (`SEER_MODELS`, `SEER_HOST`, `SEER_PORT`, ...): one process per domain."""
    run(Settings())


if __name__ == "__main__":
    main()
