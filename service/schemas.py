"""Request and response bodies (DESIGN §7). Extra response fields are additions; the listed ones hold.

Shapes: L lookback, H horizon, N variates.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field


class ModelRefOut(BaseModel):
    """Which model version answered."""

    name: str
    version: str


class ForecastRequest(BaseModel):
    history: list[list[float | None]] = Field(
        description="L rows of N values (one per variate, in the model's variate order; any N up to max_variates "
        "for any-variate models), original units, oldest first; null marks a missing value where the model "
        "allows_missing (point models need finite numbers)"
    )
    timestamps: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None,
        description="L ISO-8601 timestamps, one per history row; required when the model uses calendar features",
    )
    quantiles: list[float] | None = Field(
        default=None,
        description="quantile levels strictly inside (0, 1), increasing, at most 20 (e.g. [0.1, 0.5, 0.9]); "
        "only probabilistic models accept them",
    )
    horizon: int | None = Field(
        default=None,
        ge=1,
        description="how many steps to return, at most the model's max_horizon (default: its horizon)",
    )

    model_config = {
        "json_schema_extra": {
            "examples": [{"history": [[1.0, 2.0, 3.0]] * 4, "timestamps": ["2024-01-01T00:00:00"] * 4}]
        }
    }


class ForecastResponse(BaseModel):
    forecast: list[list[float]] = Field(
        description="H rows of N values, original units; for probabilistic models the median of the sample paths"
    )
    timestamps: list[str] | None = Field(
        default=None, description="the H timestamps after the last given one (null when none were given)"
    )
    quantiles: dict[str, list[list[float]]] | None = Field(
        default=None,
        description='requested level as a decimal string (e.g. "0.1") -> H×N forecast; null when none were asked',
    )
    model: ModelRefOut


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str | None = None
    task: str
    model: str = Field(description="the architecture (registry key), e.g. itransformer")
    lookback: int
    horizon: int
    variates: list[str] = Field(description="the variates in the model's order; empty for any-variate models")
    freq: str = Field(description="calendar-feature frequency (t, h, d), empty when the model uses none")
    step_seconds: int | None = Field(description="seconds between rows; null when the model fixes none")
    uses_timestamps: bool
    quantiles: bool = Field(default=False, description="whether the model serves quantile forecasts")
    probabilistic: bool = Field(default=False, description="same as `quantiles`: forecasts from sample paths")
    max_horizon: int = Field(description="the longest `horizon` a request may ask for")
    any_variates: bool = Field(default=False, description="a history may hold any number of variates")
    max_variates: int = Field(description="the most variates a history may hold (= len(variates) when fixed)")
    allows_missing: bool = Field(default=False, description="null/NaN in history marks a missing value")
    source: str
    metrics: dict[str, Any] | None = None
    example_input: dict[str, Any] | None = Field(default=None, description="a valid forecast request body")


class ModelList(BaseModel):
    models: list[ModelInfo]


class ErrorBody(BaseModel):
    detail: str = Field(description="what went wrong and what to send instead")
    field: str | None = Field(default=None, description="the request field at fault, dotted (history.3.1)")
    errors: list[dict[str, Any]] | None = Field(default=None, description="every validation error, when several")


class Readiness(BaseModel):
    ready: bool
    models: dict[str, str] = Field(description="per model: ready, pending or failed: <why>")
    detail: str | None = None
    reload: dict[str, dict[str, Any]] | None = Field(
        default=None,
        description="hot reload, per registry model (absent when none is watched): served `version`, `alias`, "
        "`status`, `tracking` (ok or unreachable: <why>), `last_check`, and `refused` ({version, error}) "
        "while the alias points at a version that failed to load or warm up",
    )


class ReloadReport(BaseModel):
    models: dict[str, dict[str, Any]] = Field(
        description="per watched model: `action` (unchanged, swapped, refused, refused earlier, unreachable, "
        "skipped), the `version` served after the check, and `previous`, `refused` or `error` where they apply"
    )
    tracking: str = Field(description="ok, or unreachable: <why>")


class Health(BaseModel):
    status: str = "ok"
