"""Run the service with uvicorn: `serve(...)` for `seer serve`, `python -m service.server` for containers.

Request logs are JSON lines on stdout from the `service.access` logger (one per request, with its
`X-Request-ID`); uvicorn's own access log is off since it would say the same thing less usefully.

Slow clients are bounded here, since uvicorn bounds only idle keep-alive connections: a connection must
send its request line and headers within SEER_HEADER_TIMEOUT_S (of opening, or of the previous answer)
and the body within SEER_BODY_TIMEOUT_S of the headers, else it is closed (`GuardedH11Protocol`); idle
keep-alive connections close after SEER_KEEPALIVE_TIMEOUT_S, and past SEER_MAX_CONNECTIONS connections
(or requests in flight) new requests get a 503. In production a reverse proxy sits in front as well
(README, "Deploy"), buffering bodies and terminating TLS; these limits hold without one.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import h11
import torch
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

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


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with deadlines on reading a request: its headers within `header_timeout_s`
    (of the connection opening, or of the previous response on a keep-alive connection), its body within
    `body_timeout_s` of the headers; past one the connection is closed (the app, if it is reading the
    body, sees a disconnect). Set the two class attributes in a subclass (`guarded_protocol`)."""

    header_timeout_s = 10.0
    body_timeout_s = 30.0
    _deadline: asyncio.TimerHandle | None = None
    _phase: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._set_deadline(None)
        super().connection_lost(exc)

    def _watch(self) -> None:
        """Arm the deadline of what the client still owes: headers (IDLE), the body (SEND_BODY), or none."""
        state = self.conn.their_state
        phase = "headers" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None
        if phase != self._phase:
            self._set_deadline(phase)

    def _set_deadline(self, phase: str | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = phase
        if phase is not None and not self.transport.is_closing():
            seconds = self.header_timeout_s if phase == "headers" else self.body_timeout_s
            self._deadline = self.loop.call_later(seconds, self._expire, phase)

    def _expire(self, phase: str) -> None:
        self._deadline = None
        if self._phase == phase and not self.transport.is_closing():
            logging.getLogger("service").info("closing a connection that sent no complete request %s in time", phase)
            self.transport.close()


def guarded_protocol(header_timeout_s: float, body_timeout_s: float) -> type[GuardedH11Protocol]:
    attrs = {"header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s}
    return type("SeerH11Protocol", (GuardedH11Protocol,), attrs)


def uvicorn_config(settings: Settings, app: FastAPI | None = None) -> uvicorn.Config:
    """The server `seer serve` runs: the app on host:port, h11 with read deadlines, keep-alive timeout and
    connection cap from the settings (also what tests start in process)."""
    return uvicorn.Config(
        app if app is not None else create_app(settings, freeze_gc=True),
        host=settings.host,
        port=settings.port,
        http=guarded_protocol(settings.header_timeout_s, settings.body_timeout_s),
        timeout_keep_alive=max(1, round(settings.keepalive_timeout_s)),
        limit_concurrency=settings.max_connections,
        log_level="info",
        access_log=False,
    )


def run(settings: Settings) -> None:
    """Serve until interrupted. Sets torch's intra-op threads first (process-wide, so not in `create_app`):
    with one thread per core, the spinning OpenMP workers starve the event loop that parses requests; on
    2 cores a 96 × 7 forecaster forward went from 0.8 ms (1 thread) to 35 ms (2 threads) under load."""
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    configure_access_log()
    configure_service_log()
    server = uvicorn.Server(uvicorn_config(settings))
    server.run()
    if not server.started:  # as `uvicorn.run` does: startup failed (a model did not load), exit non-zero
        sys.exit(3)


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
