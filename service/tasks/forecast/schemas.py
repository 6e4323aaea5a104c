"""The forecast task's bodies: `POST /v1/models/{name}/forecast` request and response, and the forecast
block of the model info (flat beside the common fields of `service.schemas.ModelInfo`).

Shapes: L lookback, H horizon, N variates.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from service.schemas import ModelInfo, ModelRefOut


class ForecastRequest(BaseModel):
    """Parsed strictly: numbers are JSON numbers (never "1.5" or true), the horizon a JSON integer, and a
    field the schema does not name is refused by name. The examples in the OpenAPI are built from the
    served models' own (`service.docs`)."""

    model_config = ConfigDict(extra="forbid")

    # StrictFloat still takes a JSON integer (1 is 1.0), not a string or a boolean.
    history: list[list[StrictFloat | None]] = Field(
        description="L rows of N values (one per variate, in the model's variate order; any N up to max_variates "
        "for any-variate models), original units, oldest first; null marks a missing value where the model "
        "allows_missing (point models need finite numbers)"
    )
    timestamps: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None,
        description="L ISO-8601 timestamps, one per history row, at the model's step_seconds (evenly spaced for "
        "models without one); required when the model uses calendar features",
    )
    quantiles: list[StrictFloat] | None = Field(
        default=None,
        description="quantile levels strictly inside (0, 1), increasing, at most 20 (e.g. [0.1, 0.5, 0.9]); "
        "only probabilistic models accept them",
    )
    horizon: StrictInt | None = Field(
        default=None,
        ge=1,
        description="how many steps to return, at most the model's max_horizon (default: its horizon)",
    )


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


class ForecastModelInfo(ModelInfo):
    """A forecaster's model info: the common fields and its `ForecastPredictor.describe()` block."""

    task: Literal["forecast"] = Field(description="the task, which names the model's endpoint")
    lookback: int = Field(description="L: the history rows a request sends")
    horizon: int = Field(description="H: the steps a forecast gives by default")
    variates: list[str] = Field(description="the variates in the model's order; empty for any-variate models")
    freq: str = Field(description="calendar-feature frequency (t, h, d), empty when the model uses none")
    step_seconds: int | None = Field(description="seconds between rows; null when the model fixes none")
    uses_timestamps: bool = Field(description="whether `timestamps` are required (calendar features)")
    quantiles: bool = Field(default=False, description="whether the model serves quantile forecasts")
    probabilistic: bool = Field(default=False, description="same as `quantiles`: forecasts from sample paths")
    max_horizon: int = Field(description="the longest `horizon` a request may ask for")
    any_variates: bool = Field(default=False, description="a history may hold any number of variates")
    max_variates: int = Field(description="the most variates a history may hold (= len(variates) when fixed)")
    allows_missing: bool = Field(default=False, description="null/NaN in history marks a missing value")
    max_cost: float = Field(
        default=1.0,
        description="the most work one request may ask, in units of the model's reference request (its example "
        "input over the trained horizon); point models: every request costs 1. Probabilistic models: the work "
        "grows with horizon × (lookback + horizon/2) × (3 + N + N²/12); past it, 413",
    )
