"""Helpers the service tests share: 4xx checks, concurrent posting over ASGI, batch metrics, and (from
`tests.inference.forecast_bundles`) the tiny bundles and their request bodies. Imported as
`tests.service.service_fixtures` (not a test module)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.inference.forecast_bundles import START, H, L, N, hourly_stamps, make_bundle, point_history

__all__ = ["START", "H", "L", "N", "assert_4xx", "batch_stats", "hourly_stamps", "make_bundle", "point_history"]

FORECAST = "/v1/models/{}/forecast"


def assert_4xx(r: Any, status: int, *needles: str, field: str | None = None) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    for needle in needles:
        assert needle in body["detail"], body
    if field is not None:
        assert body["field"] == field, body
    return str(body["detail"])


async def post_all(app: Any, requests: list[tuple[str, Any]], headers: dict[str, str] | None = None) -> list[Any]:
    """POST every (model, body) at once to its forecast endpoint; a str body is sent raw."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # a 500 is an answer to check
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as client:

        async def one(name: str, payload: Any) -> httpx.Response:
            if isinstance(payload, str):
                hdrs = {"content-type": "application/json"}
                return await client.post(FORECAST.format(name), content=payload, headers=hdrs)
            return await client.post(FORECAST.format(name), json=payload)

        return list(await asyncio.gather(*(one(name, payload) for name, payload in requests)))


def batch_stats(app: Any, model: str) -> tuple[float, float]:
    """(batches run, requests in them) for `model` from the app's own registry."""
    registry = app.state.metrics.registry
    count = registry.get_sample_value("seer_batch_size_count", {"model": model}) or 0.0
    total = registry.get_sample_value("seer_batch_size_sum", {"model": model}) or 0.0
    return count, total
