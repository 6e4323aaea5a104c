"""Operator routes: `POST /admin/reload` checks every watched `NAME@ALIAS` ref now (see `service.reload`).

With `SEER_API_KEY` set it needs the bearer token, as `/v1/*` does (checked in `service.middleware`).
Without a key it answers only clients on the loopback interface (127.0.0.0/8, ::1) and gives others a
403: an unauthenticated service must not let any client that can reach it make it download models.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from service.errors import ServiceError
from service.middleware import trusted
from service.reload import Reloader
from service.schemas import ErrorBody, ReloadReport

admin = APIRouter(prefix="/admin", tags=["ops"])


async def require_admin(request: Request) -> None:
    """The token is checked by the middleware when a key is set; without one, loopback clients only."""
    if not trusted(request.scope):
        raise ServiceError(
            403,
            "POST /admin/reload is open only to loopback clients when SEER_API_KEY is not set; "
            "set SEER_API_KEY and send `Authorization: Bearer <SEER_API_KEY>`, or call it from the host itself",
        )


_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "SEER_API_KEY is set and the bearer token is missing or wrong"},
    403: {"model": ErrorBody, "description": "SEER_API_KEY is not set and the client is not on loopback"},
}


@admin.post("/reload", response_model=ReloadReport, responses=_RESPONSES, dependencies=[Depends(require_admin)])
async def reload_now(request: Request) -> ReloadReport:
    """Check every watched registry alias now and swap in new versions; per model, what happened.

    Local refs (NAME=PATH) are not watched. Waits for a check already under way, then runs its own.
    """
    reloader: Reloader = request.app.state.reloader
    report = await reloader.check()
    return ReloadReport(models=report, tracking=reloader.tracking)
