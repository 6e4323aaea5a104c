"""The classify request and its rules, written once: `parse_request(predictor, request)` returns a
validated `ClassifyInput` (the flows encoded by the model's transform) or the first `Reason` the request
cannot be served, with a message that says what to send.

A request is `{"flows": [{feature: value, ...} × W']}`, the flows in the order they were recorded;
each is scored with the window ending at it (the flows before it in the same request; the first ones
have shorter windows). Rules, in order: `flows` is a list of 1..max_flows records (more is 413: the
bulk endpoint takes files); each record is an object whose keys are columns of the model's flow format
(its features, used or not, and its label columns: a labelled record from a dataset file is accepted
as it is; anything else is refused by name, so a typo is not silently ignored); every feature the
model reads is present and not null; numeric features are JSON numbers (not strings, not booleans)
and finite; the symbolic features of the format (e.g. NSL-KDD's `protocol_type`) are strings, other
categorical features numbers. A categorical value the model never saw is fine: it is "other".

Shapes: W' flows in the request, F features per flow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from inference.predictor import Reason, Refused

if TYPE_CHECKING:
    from inference.tasks.classify.predictor import ClassifyPredictor

MAX_TEXT = 64  # characters of a symbolic value (protocol or service names are short)
_NUMBER = (int, float)


@dataclass(frozen=True, eq=False)
class ClassifyInput:
    """One validated request: its flows encoded by the model's transform, float32 [c + W', F]. The first
    `context` rows (c < W; a chunk of a file carries the flows recorded before it) are read as the
    windows' earlier flows but not scored; the W' after them are."""

    flows: np.ndarray
    context: int = 0

    @property
    def scored(self) -> int:
        """W', the flows that get an answer."""
        return len(self.flows) - self.context


@dataclass(frozen=True, eq=False)
class ClassifyOutput:
    """One answer: class probabilities [W', K], one row per flow of the request, in the model's class order."""

    probabilities: np.ndarray


def refuse(message: str, where: str, status: int = 422) -> Refused:
    return Refused(Reason(message, where, status))


def parse_request(p: ClassifyPredictor, request: ClassifyInput | Mapping[str, Any]) -> ClassifyInput | Reason:
    """`request` (a `ClassifyInput`, or a mapping with `flows`) as a validated `ClassifyInput`, or the
    first `Reason` it cannot be served."""
    if isinstance(request, ClassifyInput):
        return request
    try:
        flows = check_flows(p, request.get("flows"))
        return ClassifyInput(p.transform.encode(records_frame(p, flows)))
    except Refused as e:
        return e.reason


def check_flows(p: ClassifyPredictor, flows: Any) -> Sequence[Mapping[str, Any]]:
    """The flow records: a list of 1..max_flows objects with known keys only and every feature present."""
    if flows is None:
        raise refuse("flows is required: a list of flow records, each an object of feature -> value", "flows")
    if not isinstance(flows, Sequence) or isinstance(flows, (str, bytes)):
        raise refuse("flows must be a list of flow records (objects of feature -> value)", "flows")
    if not flows:
        raise refuse("flows must hold at least one flow record", "flows")
    if len(flows) > p.max_flows:
        raise refuse(
            f"flows holds {len(flows)} records, this model takes at most {p.max_flows} per request; send fewer, "
            f"or upload a file to POST /v1/models/{p.name}/classify/bulk",
            "flows",
            413,
        )
    known, needed = p.known_columns, p.transform.features
    for i, flow in enumerate(flows):
        if not isinstance(flow, Mapping):
            raise refuse(f"flows[{i}] must be an object of feature -> value", f"flows.{i}")
        unknown = [k for k in flow if k not in known]
        if unknown:
            shown = ", ".join(map(repr, unknown[:5])) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            raise refuse(
                f"flows[{i}] has unknown fields {shown}; a {p.transform.format} flow has the fields "
                f"{', '.join(needed)} (and, ignored, {', '.join(sorted(known - set(needed)))})",
                f"flows.{i}",
            )
        missing = [f for f in needed if flow.get(f) is None]
        if missing:
            raise refuse(f"flows[{i}] lacks required fields {missing} (null counts as missing)", f"flows.{i}")
    return flows


def records_frame(p: ClassifyPredictor, flows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """The model's features of checked records as a typed frame (numbers as Float64, symbolic values as
    text); a value of the wrong type, or a number that is not finite, is refused naming the field."""
    text = set(p.transform.string_features)
    columns: dict[str, pl.Series] = {}
    for name in p.transform.features:
        values = [flow[name] for flow in flows]
        if name in text:
            bad = next((i for i, v in enumerate(values) if not isinstance(v, str) or len(v) > MAX_TEXT), None)
            if bad is not None:
                raise refuse(
                    f"flows[{bad}].{name} must be a string of at most {MAX_TEXT} characters", f"flows.{bad}.{name}"
                )
            columns[name] = pl.Series(name, values, dtype=pl.Utf8)
            continue
        bad = next((i for i, v in enumerate(values) if type(v) not in _NUMBER), None)  # bool is not a number here
        if bad is not None:
            got = type(values[bad]).__name__
            raise refuse(f"flows[{bad}].{name} must be a number, got {got} {values[bad]!r:.40}", f"flows.{bad}.{name}")
        try:
            column = np.asarray(values, dtype=np.float64)
        except OverflowError:
            column = np.asarray([float(v) if abs(v) < 1e308 else math.inf for v in values], dtype=np.float64)
        bad_value = np.flatnonzero(~np.isfinite(column))
        if len(bad_value):
            i = int(bad_value[0])
            raise refuse(f"flows[{i}].{name} must be a finite number, got {values[i]!r:.40}", f"flows.{i}.{name}")
        columns[name] = pl.Series(name, column)
    return pl.DataFrame(columns)
