"""The bodies every task shares: model info, errors, readiness, reload reports.

Each task's request, response and model info block are in `service/tasks/<task>/schemas.py`; its
`<Task>ModelInfo` extends `ModelInfo` with the fields of `Predictor.describe()`, flat beside the common
ones. Extra response fields are additions; the listed ones hold.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ModelRefOut(BaseModel):
    """Which model version answered."""

    name: str
    version: str


class ModelInfo(BaseModel):
    """The fields every model has; each task's info schema adds its own block (`Predictor.describe()`)."""

    name: str = Field(description="the name it is served under (`/v1/models/{name}`)")
    version: str = Field(description="the registry version, or `local`")
    alias: str | None = Field(default=None, description="the registry alias followed, null for local models")
    task: str = Field(description="the task, which names the model's endpoint: POST /v1/models/{name}/{task}")
    model: str = Field(description="the architecture (registry key)")
    source: str = Field(description="where the weights came from: models:/NAME/VERSION or a local path")
    metrics: dict[str, Any] | None = Field(default=None, description="the test metrics logged at training")
    example_input: dict[str, Any] | None = Field(
        default=None, description="a valid request body for the model's endpoint (left out of the model list)"
    )


class ErrorBody(BaseModel):
    detail: str = Field(description="what went wrong and what to send instead")
    field: str | None = Field(default=None, description="the request field at fault, dotted (history.3.1)")
    errors: list[dict[str, Any]] | None = Field(default=None, description="every validation error, when several")


class Readiness(BaseModel):
    ready: bool
    models: dict[str, str] = Field(
        description="per model: ready, pending or failed: <why> (the why for a trusted caller only)"
    )
    detail: str | None = None
    reload: dict[str, dict[str, Any]] | None = Field(
        default=None,
        description="hot reload, per registry model (absent when none is watched): served `version`, `alias`, "
        "`status`, `tracking` (ok or unreachable: <why>), `last_check`, `refused` ({version, error}) "
        "while the alias points at a version that failed to load or warm up, and `problem` while the registry "
        "answers that this model's alias or version cannot be fetched. The why of each is shown only to a "
        "caller with the bearer token (without SEER_API_KEY: on the host itself)",
    )


class ReloadReport(BaseModel):
    models: dict[str, dict[str, Any]] = Field(
        description="per watched model: `action` (unchanged, swapped, refused, refused earlier, failed: "
        "the registry's answer about this model kept it from a check, unreachable, skipped), the `version` "
        "served after the check, and `previous`, `refused` or `error` where they apply"
    )
    tracking: str = Field(description="ok, or unreachable: <why>")


class Health(BaseModel):
    status: str = "ok"
