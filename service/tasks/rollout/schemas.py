"""The rollout task's bodies: `POST /v1/models/{name}/rollout` request and response, and the rollout block
of the model info (flat beside the common fields of `service.schemas.ModelInfo`).

Shapes: X, Y(, Z) grid points per axis, V components, S steps, n returned fields.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from service.schemas import ModelInfo, ModelRefOut

# A field on a 2D or a 3D grid: [X][Y][V] or [X][Y][Z][V] numbers. One type for both (the innermost level a
# number or a list of numbers) rather than a union of the two depths, whose other-depth branch answers one
# bad value with an error at every value of the field; it parses a 32×33×16×3 field (1 MB) as fast as the
# union (23-26 ms; a depth discriminator: 38-40 ms, measured). The predictor checks the exact shape.
FieldValues = list[list[list[StrictFloat | list[StrictFloat]]]]


class RolloutRequest(BaseModel):
    """Parsed strictly: numbers are JSON numbers (never "1.5" or true), steps and every JSON integers, and a
    field the schema does not name is refused by name. The predictor then checks the shape, the values and
    the work. The examples in the OpenAPI are the served models' own (`service.docs`)."""

    model_config = ConfigDict(extra="forbid")

    field: FieldValues = Field(
        description="the field on the model's grid, nested lists [X][Y]([Z])[V] (`grid` and `components` in the "
        "model info), physical units (the training data's), every value finite"
    )
    steps: StrictInt = Field(description="model steps to roll out, 1 to the model's max_steps (each dt long)")
    every: StrictInt | None = Field(
        default=None,
        description="return every k-th step's field (k, 2k, ... ≤ steps), 1 to steps (default 1: every step); "
        "keeps a long rollout's answer within the model's max_fields",
    )


class RolloutResponse(BaseModel):
    fields: list[FieldValues] = Field(
        description="the fields at `steps`, each [X][Y]([Z])[V] in physical units; never NaN: a rollout that "
        "diverges is a 422 naming the step"
    )
    steps: list[int] = Field(description="the step of each field (every, 2·every, ... ≤ steps)")
    dt: float = Field(description="simulated time per model step: field i is at time steps[i] × dt after the input")
    model: ModelRefOut


class RolloutModelInfo(ModelInfo):
    """A rollout model's info: the common fields and its `RolloutPredictor.describe()` block."""

    task: Literal["rollout"] = Field(description="the task, which names the model's endpoint")
    grid: list[int] = Field(description="grid points per axis [X, Y(, Z)]: a request's field has exactly this grid")
    components: list[str] = Field(description="the V field components, in the order of a field's last axis")
    dt: float = Field(description="simulated time per model step")
    domain: list[float] | None = Field(default=None, description="the box's length per axis (periodic)")
    max_steps: int = Field(description="the most steps one request may ask for")
    max_cost: float = Field(
        description="the most grid points × steps one request may cost (its work bound); past it, 413"
    )
    max_fields: int = Field(description="the most fields one answer may hold (steps // every); past it, 413")
    max_abs_value: float = Field(description="the largest |value| a field may hold")
    dataset: str | None = Field(default=None, description="the dataset the model was trained on")
