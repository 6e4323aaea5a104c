"""The classify task's bodies: `POST /v1/models/{name}/classify` request and response, and the classify
block of the model info (flat beside the common fields of `service.schemas.ModelInfo`).

Shapes: W' flows in a request, K classes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from service.schemas import ModelInfo, ModelRefOut

FieldName = Annotated[str, Field(max_length=64)]
# A JSON scalar, taken as sent (no coercion): which type a field needs is the model's, and its predictor
# refuses a wrong one by name ("flows[3].IN_BYTES must be a number, got bool True"). null counts as missing.
FlowValue = StrictInt | StrictFloat | StrictBool | Annotated[StrictStr, Field(max_length=256)] | None


class ClassifyRequest(BaseModel):
    """Parsed strictly (numbers are JSON numbers, unknown top-level fields refused); the flows' own
    fields are checked against the model's flow format by its predictor."""

    model_config = ConfigDict(extra="forbid")

    flows: list[dict[FieldName, FlowValue]] = Field(
        description="flow records in the order they were recorded, each an object of feature -> value (the "
        "model's `features` and `categorical_features`; other columns of its `format`, such as addresses and "
        "labels, are accepted and ignored); at most the model's `max_flows`. Each flow is scored with the "
        "window of the `window` flows ending at it, from this request (the first ones have shorter windows)"
    )


class FlowPrediction(BaseModel):
    label: str = Field(description="the most probable class")
    probability: float = Field(description="its probability")
    attack_score: float = Field(description="1 - P(benign class): the score an alarm threshold is set on")
    scores: dict[str, float] = Field(description="class -> probability, every class of the model")


class ClassifyResponse(BaseModel):
    predictions: list[FlowPrediction] = Field(description="one per flow of the request, in order")
    model: ModelRefOut


class ClassifyModelInfo(ModelInfo):
    """A flow classifier's model info: the common fields and its `ClassifyPredictor.describe()` block."""

    task: Literal["classify"] = Field(description="the task, which names the model's endpoint")
    window: int = Field(description="W: flows per window (the scored flow and the W-1 before it)")
    format: str = Field(description="the flow-record format the model reads: netflow-v2 or nsl-kdd")
    features: list[str] = Field(description="numeric fields every flow must carry (JSON numbers)")
    categorical_features: list[str] = Field(
        description="categorical fields every flow must carry; a value the model never saw counts as 'other'"
    )
    classes: list[str] = Field(description="the classes, in the order of the model's outputs")
    benign_class: str = Field(description="the class of normal traffic")
    labels: str = Field(description="how the classes were made: binary, attack or category")
    max_flows: int = Field(description="the most flows one request may hold (the bulk endpoint takes files)")
    max_cost: float = Field(description="max_flows in units of the reference request (512 flows)")
