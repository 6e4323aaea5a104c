"""The outermost layer of every request: request id, bearer auth (`/v1/*`, `/admin/*`), metrics, a JSON log line.

Pure ASGI (no `BaseHTTPMiddleware`): it costs a few microseconds per request and never buffers a body.
Auth is checked here, before the body is read or parsed, so an unauthenticated client cannot make the
service parse 2 MiB of JSON; whether the caller may see internal details (`trusted`: it sent the token,
or no key is set and it is on loopback) is kept for the routes. `X-Request-ID` is honoured when it is a
plain token (letters, digits, `._:-`, at most 128), else one is generated; it is echoed in the response
and in the log line.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import Metrics

access_log = logging.getLogger("service.access")

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
OPEN_PATHS_NOTE = "/healthz, /readyz, /metrics and the API docs need no token"
PROTECTED = ("/v1/", "/admin/")  # behind the bearer token when SEER_API_KEY is set


def context(scope: Scope) -> dict[str, Any]:
    """This request's context (request id; error handlers add `error`), shared through the ASGI scope."""
    ctx: dict[str, Any] = scope.setdefault("seer", {})
    return ctx


def loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def trusted(scope: Scope) -> bool:
    """Whether the caller may see internal details (error texts, paths): with SEER_API_KEY set, a caller
    that sent the token; without one, a client on the loopback interface (the host itself)."""
    authorized = context(scope).get("authorized")
    if authorized is not None:
        return bool(authorized)
    return loopback((scope.get("client") or (None, 0))[0])


def note_error(scope: Scope, detail: str) -> None:
    """Record why a request was refused, for its log line."""
    context(scope)["error"] = detail


async def send_json(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps(body).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": payload})


class RequestContextMiddleware:
    """Request id, auth, request metrics and the access log, around everything else."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        is_model: Callable[[str], bool],
        api_key: str = "",
        log_requests: bool = True,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.is_model = is_model
        self.api_key = api_key.encode()
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        given, authorization = None, b""
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                given = value
            elif key == b"authorization":
                authorization = value
        request_id = given.decode() if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
        ctx = context(scope)
        ctx["request_id"] = request_id
        ctx["authorized"] = self._authorized(authorization) if self.api_key else None  # see `trusted`
        status = 500  # unless a response starts: the app raised before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            if self.api_key and scope["path"].startswith(PROTECTED) and not ctx["authorized"]:
                detail = (
                    "missing or wrong bearer token: send the header `Authorization: Bearer <SEER_API_KEY>`; "
                    + OPEN_PATHS_NOTE
                )
                note_error(scope, detail)
                body = {"detail": detail, "field": "Authorization"}
                await send_json(send_with_id, 401, body, [(b"www-authenticate", b"Bearer")])
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, status, time.perf_counter() - start)

    def _authorized(self, header: bytes) -> bool:
        if not header:
            return False
        scheme, _, token = header.partition(b" ")
        # Constant-time comparison: the time taken says nothing about how much of the token matched.
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.api_key)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        endpoint = str(getattr(route, "path", "unmatched"))
        name = (scope.get("path_params") or {}).get("name")
        # Only served names become label values: a client must not be able to mint new time series.
        model = "" if name is None else name if self.is_model(name) else "unknown"
        self.metrics.observe_request(model, endpoint, scope["method"], status, seconds)
        if self.log_requests and access_log.isEnabledFor(logging.INFO):
            ctx = context(scope)
            line = {
                "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                "level": "error" if status >= 500 else "info",
                "request_id": ctx.get("request_id"),
                "method": scope["method"][:16],
                "path": scope["path"][:200],
                "endpoint": endpoint,
                "model": model or None,
                "status": status,
                "duration_ms": round(seconds * 1000.0, 3),
                "client": (scope.get("client") or ("", 0))[0],
            }
            if "error" in ctx:
                line["error"] = str(ctx["error"])[:500]
            access_log.info(json.dumps(line))
