"""The denoise request and its rules, written once: `parse_request(predictor, request)` returns a validated
`DenoiseInput` or the first `Reason` the request cannot be served, with a message that says what to send.

The request: `{"sfreq": Hz, "channels": [N names], "data": [[T values] × N], "unit": "uV" | "mV" | "V"}`
(`unit` optional, default µV). Rules, in the order they are checked:
- `unit` one of uV, mV, V;
- `sfreq` a number in [MIN_SFREQ, MAX_SFREQ] Hz (any rate: the service resamples to the model's);
- `channels` 1..MAX_CHANNELS distinct labels of at most 64 characters; after name cleanup (case, dots,
  `EEG `/`-REF`, old 10-20 names) at least half of the model's template channels must be among them
  (the others are interpolated by spherical splines); the 4xx lists the expected and the missing ones;
- `data` N rows (one per channel) of T numbers each, all finite; T/sfreq between MIN_SECONDS and the
  model's `max_seconds` (MAX_WINDOWS windows: the work bound of one request);
- amplitudes that look like another unit are refused: a median |value| under 0.01 µV (volts sent as
  µV) or any |value| over 1e5 µV (100 mV is no EEG).

Shapes: N channels, T samples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from data.eeg.channels import ChannelMapError, match_channels
from inference.predictor import Reason, Refused

if TYPE_CHECKING:
    from inference.tasks.denoise.predictor import DenoisePredictor

MIN_SFREQ, MAX_SFREQ = 64.0, 4096.0
MAX_CHANNELS = 256
MIN_SECONDS = 1.0
MAX_WINDOWS = 64  # model windows one request may need (at half-window hops): bounds its work
UNITS = {"uV": 1.0, "µV": 1.0, "mV": 1e3, "V": 1e6}  # -> µV
MIN_MEDIAN_UV, MAX_ABS_UV = 0.01, 1e5


@dataclass(frozen=True, eq=False)
class DenoiseInput:
    """One validated request: data [N, T] in µV (float64), its channel labels, rate, the template index of
    each template channel's recorded row (-1: interpolated) and the factor from the request's unit to µV."""

    data: np.ndarray
    channels: tuple[str, ...]
    sfreq: float
    recorded: tuple[int, ...]
    unit_scale: float = 1.0


@dataclass(frozen=True, eq=False)
class DenoiseOutput:
    """One answer: cleaned data [N, T] in the request's unit; the request channels that were cleaned and
    those returned band-passed only (not template channels, or eye channels)."""

    data: np.ndarray
    cleaned: list[str]
    uncleaned: list[str]


def refuse(message: str, where: str, status: int = 422) -> Refused:
    return Refused(Reason(message, where, status))


def parse_request(p: DenoisePredictor, request: DenoiseInput | Mapping[str, Any]) -> DenoiseInput | Reason:
    """`request` (a `DenoiseInput`, or a mapping of the JSON fields) as a validated `DenoiseInput` for `p`."""
    sfreq: Any
    channels: Any
    data: Any
    unit: Any = None
    scale: float | None = None
    if isinstance(request, DenoiseInput):
        sfreq, channels, data, scale = request.sfreq, request.channels, request.data, request.unit_scale
    else:
        sfreq, channels, data, unit = (request.get(k) for k in ("sfreq", "channels", "data", "unit"))
    try:
        scale = check_unit(unit) if scale is None else scale
        rate = check_sfreq(sfreq)
        names = check_channels(p, channels)
        recorded = check_montage(p, names)
        x = check_data(p, data, len(names), rate) * scale
        check_amplitude(x)
    except Refused as e:
        return e.reason
    return DenoiseInput(x, names, rate, recorded, scale)


def check_unit(unit: Any) -> float:
    if unit is None:
        return 1.0
    if not isinstance(unit, str) or unit not in UNITS:
        raise refuse(f"unit must be one of {', '.join(UNITS)}; got {unit!r}", "unit")
    return UNITS[unit]


def check_sfreq(sfreq: Any) -> float:
    if sfreq is None:
        raise refuse("sfreq is required: the sampling rate of `data` in Hz", "sfreq")
    if isinstance(sfreq, bool) or not isinstance(sfreq, int | float) or not math.isfinite(sfreq):
        raise refuse(f"sfreq must be a number of Hz; got {sfreq!r}", "sfreq")
    if not MIN_SFREQ <= sfreq <= MAX_SFREQ:
        raise refuse(f"sfreq must be between {MIN_SFREQ:g} and {MAX_SFREQ:g} Hz; got {sfreq:g}", "sfreq")
    return float(sfreq)


def check_channels(p: DenoisePredictor, channels: Any) -> tuple[str, ...]:
    if channels is None:
        raise refuse(f"channels is required: one label per data row, e.g. {', '.join(p.channels[:4])}", "channels")
    if not isinstance(channels, list | tuple) or not 1 <= len(channels) <= MAX_CHANNELS:
        raise refuse(f"channels must be a list of 1 to {MAX_CHANNELS} labels", "channels")
    for i, name in enumerate(channels):
        if not isinstance(name, str) or not 0 < len(name.strip()) <= 64:
            raise refuse(f"channels[{i}] must be a non-empty label of at most 64 characters", f"channels.{i}")
    return tuple(str(c) for c in channels)


def check_montage(p: DenoisePredictor, names: tuple[str, ...]) -> tuple[int, ...]:
    try:
        return match_channels(names, tuple(p.channels), p.min_present)
    except ChannelMapError as e:
        raise refuse(str(e), "channels") from None


def check_data(p: DenoisePredictor, data: Any, n: int, sfreq: float) -> np.ndarray:
    """data as float64 [N, T] of finite numbers with MIN_SECONDS <= T/sfreq <= the model's max_seconds."""
    if data is None:
        raise refuse(f"data is required: {n} rows (one per channel) of samples", "data")
    if isinstance(data, np.ndarray):
        x = data.astype(np.float64, copy=False)
        if x.ndim != 2 or len(x) != n:
            raise refuse(f"data must be {n} rows (one per channel) × T samples; got shape {list(x.shape)}", "data")
    else:
        if not isinstance(data, list | tuple) or len(data) != n:
            got = len(data) if isinstance(data, list | tuple) else type(data).__name__
            raise refuse(f"data must hold {n} rows, one per channel; got {got}", "data")
        widths = [len(row) if isinstance(row, list | tuple) else -1 for row in data]
        bad = next((i for i, w in enumerate(widths) if w != widths[0] or w < 0), None)
        if bad is not None:
            raise refuse(f"every data row must be a list of the same T samples; row {bad} differs", f"data.{bad}")
        try:
            x = np.asarray(data, dtype=np.float64)
        except (TypeError, ValueError):
            raise refuse("data must hold numbers only", "data") from None
    seconds = x.shape[1] / sfreq
    if seconds < MIN_SECONDS or seconds > p.max_seconds:
        span = f"{x.shape[1]} samples at {sfreq:g} Hz is {seconds:.3g} s"
        why = f"data must span {MIN_SECONDS:g} to {p.max_seconds:g} s ({span}); send longer recordings in parts"
        raise refuse(why, "data", 413 if seconds > p.max_seconds else 422)
    bad_values = np.argwhere(~np.isfinite(x))
    if len(bad_values):
        i, j = (int(v) for v in bad_values[0])
        why = f"data holds NaN or infinite values, first at row {i}, sample {j}; send finite numbers"
        raise refuse(why, f"data.{i}.{j}")
    return x


def check_amplitude(x: np.ndarray) -> None:
    """Refuse amplitudes that are no EEG in µV (after the unit's conversion)."""
    median = float(np.median(np.abs(x)))
    if median < MIN_MEDIAN_UV:
        raise refuse(
            f'data look like volts, not microvolts (median |value| {median:.3g} µV); send µV or set "unit": "V"',
            "data",
        )
    largest = float(np.abs(x).max())
    if largest > MAX_ABS_UV:
        raise refuse(
            f'data reach {largest:.3g} µV, more than {MAX_ABS_UV:g} µV: not EEG in µV; check the unit ("unit": '
            '"uV" | "mV" | "V")',
            "data",
        )
