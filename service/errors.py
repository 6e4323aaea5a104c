"""The error contract: every client mistake is a 4xx `{"detail": message, "field": ...}`, never a 500.

`BodyLimitMiddleware` bounds the request body before anything parses it: a declared
`Content-Length` over the limit is refused at once, and a chunked/undeclared body is counted while it
is read.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.middleware import context, note_error, send_json

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """A request the service refuses, with the status, a message that says what to fix, and the field."""

    def __init__(
        self, status_code: int, detail: str, field: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.field = field
        self.headers = headers


def error_response(status_code: int, detail: str, field: str | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(status_code=status_code, content={"detail": detail, "field": field, **extra})


def _field(loc: tuple[Any, ...] | list[Any]) -> str | None:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or None


def _error_field(err: dict[str, Any]) -> str | None:
    return None if err.get("type") == "json_invalid" else _field(err.get("loc", ()))


def _readable(err: dict[str, Any]) -> str:
    """One pydantic error as a sentence that names the field."""
    if err.get("type") == "json_invalid":
        pos = err.get("loc", ("body",))[-1]
        where = f" at char {pos}" if isinstance(pos, int) else ""
        return f"request body is not valid JSON ({err.get('ctx', {}).get('error', 'decode error')}{where})"
    field = _field(err.get("loc", ()))
    msg = str(err.get("msg", "invalid value"))
    if err.get("type") == "missing":
        return f"{field} is required"
    return f"{field}: {msg}" if field else f"request body: {msg}"


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    first = errors[0] if errors else {}
    detail = "; ".join(_readable(e) for e in errors[:3]) + (f"; and {len(errors) - 3} more" if len(errors) > 3 else "")
    # The raw input is left out: echoing a 2 MiB body (or a NaN, which JSON cannot carry) helps nobody.
    simple = [{"field": _error_field(e), "message": _readable(e)} for e in errors[:20]]
    note_error(request.scope, detail)
    return error_response(422, detail or "invalid request", _error_field(first), errors=simple)


async def _service_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    note_error(request.scope, exc.detail)
    response = error_response(exc.status_code, exc.detail, exc.field)
    response.headers.update(exc.headers or {})
    return response


async def _http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    note_error(request.scope, detail)
    return JSONResponse(status_code=exc.status_code, content={"detail": detail, "field": None}, headers=exc.headers)


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    """A bug, not a client mistake: logged with its traceback; the client gets the id to quote."""
    request_id = context(request.scope).get("request_id")
    note_error(request.scope, f"{type(exc).__name__}: {exc}")
    log.exception("request %s failed", request_id, exc_info=exc)
    detail = f"internal error; quote request id {request_id} when reporting it"
    response = error_response(500, detail, None, request_id=request_id)
    # Sent by Starlette's outermost ServerErrorMiddleware, past RequestContextMiddleware: add the id here.
    response.headers["X-Request-ID"] = str(request_id)
    return response


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _unexpected_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(ServiceError, _service_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` with 413, before the app reads or parses them.

    Paths matching `streamed` (routes that read their body as it arrives and bound it themselves) pass
    through untouched: buffering them here would hold a large upload whole in memory."""

    def __init__(self, app: ASGIApp, max_bytes: int, streamed: Sequence[re.Pattern[str]] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.streamed = tuple(streamed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(p.fullmatch(scope.get("path", "")) for p in self.streamed):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await self._refuse(scope, send, 400, "Content-Length is not an integer")
                return
            if size > self.max_bytes:
                await self._refuse(scope, send, 413, self._too_large(f"{size} bytes"))
                return
        # Read the body here (the app would buffer it anyway), counting, then replay it to the app.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away: let the app see it
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, send, 413, self._too_large(f"more than {self.max_bytes} bytes"))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)

    def _too_large(self, got: str) -> str:
        return f"request body too large: {got}, the limit is {self.max_bytes} bytes (SEER_MAX_BODY_BYTES)"

    @staticmethod
    async def _refuse(scope: Scope, send: Send, status: int, detail: str) -> None:
        note_error(scope, detail)
        # Close the connection: the unread rest of the body must not be taken for the next request.
        await send_json(send, status, {"detail": detail, "field": None}, [(b"connection", b"close")])


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
