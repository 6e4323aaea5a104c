"""The denoise task's bodies: `POST /v1/models/{name}/denoise` request and response, and the denoise block
of the model info (flat beside the common fields of `service.schemas.ModelInfo`).

Shapes: N channels, T samples.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat

from inference.tasks.denoise import MAX_CHANNELS
from service.schemas import ModelInfo, ModelRefOut


class DenoiseRequest(BaseModel):
    """Parsed strictly: numbers are JSON numbers (never "1.5" or true), and a field the schema does not name
    is refused by name. The predictor then checks the shapes, rate, montage, values and work."""

    model_config = ConfigDict(extra="forbid")

    sfreq: StrictFloat = Field(description="sampling rate of `data` in Hz (any rate: the service resamples)")
    channels: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        max_length=MAX_CHANNELS,
        description="one label per data row (10-10 names, any case; EEGLAB/EDF spellings such as `Fp1.`, "
        "`EEG Fp1-REF`, `T3` are understood); at least half of the model's `channels` must be among them",
    )
    data: list[list[StrictFloat]] = Field(description="N rows (one per channel) of T samples, µV unless `unit` says")
    unit: Literal["uV", "µV", "mV", "V"] | None = Field(default=None, description="the unit of `data` (default µV)")

    model_config["json_schema_extra"] = {
        "examples": [{"sfreq": 256.0, "channels": ["Fp1", "Fp2", "Cz"], "data": [[1.0, -2.0], [0.5, 3.0], [2.0, 1.0]]}]
    }


class DenoiseResponse(BaseModel):
    data: list[list[float]] = Field(
        description="N rows of T samples in the request's channel order, rate and unit: cleaned for `cleaned` "
        "channels, band-passed only for `uncleaned` ones; average reference, band-limited to the model's band"
    )
    channels: list[str] = Field(description="the request's channel labels, in its order")
    sfreq: float = Field(description="the request's rate (the answer is at the same rate and length)")
    cleaned: list[str] = Field(description="channels the model cleaned (those on its template)")
    uncleaned: list[str] = Field(description="channels returned band-passed only: not on the template, or eye channels")
    model: ModelRefOut


class DenoiseModelInfo(ModelInfo):
    """A denoiser's model info: the common fields and its `DenoisePredictor.describe()` block."""

    task: Literal["denoise"] = Field(description="the task, which names the model's endpoint")
    channels: list[str] = Field(description="the model's channel template, in its order")
    sfreq: float = Field(description="the model's rate in Hz (requests at other rates are resampled)")
    window: int = Field(description="samples per model window (long requests are windowed and stitched)")
    window_s: float = Field(description="seconds per model window")
    band: list[float] = Field(description="[low, high] Hz of the band-pass every request goes through")
    line_freq: float | None = Field(default=None, description="mains frequency notched (null: none)")
    reference: str = Field(description="the reference of the answer (average)")
    units: str = Field(description="the unit of `data` unless a request says otherwise")
    min_seconds: float = Field(description="the shortest request")
    max_seconds: float = Field(description="the longest request (its work bound)")
    max_channels: int = Field(description="the most channels one request may hold")
    min_present_channels: int = Field(description="template channels a request must hold (others interpolated)")
    max_cost: float = Field(description="the most work one request may ask, in model windows")
