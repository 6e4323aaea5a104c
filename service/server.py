"""Run the service with uvicorn: `serve(...)` for `seer serve`, `python -m service.server` for containers."""

from __future__ import annotations

from typing import Any

import uvicorn

from service.app import create_app
from service.settings import Settings


def serve(models: str, host: str, port: int, tracking_uri: str | None = None) -> None:
    """Serve `models` (comma-separated NAME@ALIAS / NAME=PATH refs) on host:port until interrupted.

    Other settings (body limit, device) come from the environment; `tracking_uri` defaults to
    `MLFLOW_TRACKING_URI`. A bad ref fails here (settings validation) or at startup (loading).
    """
    overrides: dict[str, Any] = {"models": models, "host": host, "port": port}
    if tracking_uri is not None:
        overrides["tracking_uri"] = tracking_uri
    settings = Settings(**overrides)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


def main() -> None:
    """Everything from the environment (`SEER_MODELS`, `SEER_HOST`, `SEER_PORT`, ...): one process per domain."""
    settings = Settings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


if __name__ == "__main__":
    main()
