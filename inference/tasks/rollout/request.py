"""The rollout request and its rules, written once: `parse_request(predictor, request)` returns a validated
`RolloutInput` or the first `Reason` the request cannot be served, with a message that says what to send.

The request: `{"field": [X][Y]([Z])[V] numbers, "steps": S, "every": k}` (`every` optional, default 1),
the field in physical units on the model's grid. Rules, in the order they are checked:
- `steps` a JSON integer in 1..max_steps (the model's bound on one request's horizon);
- `every` a JSON integer in 1..steps (the answer holds the fields at steps k, 2k, ... ≤ S);
- the answer's size: (S // k) fields × the grid's points at most the model's `max_response_points`
  (413, naming the smallest `every` that fits): a long rollout asks for every k-th step;
- `field` nested lists (or an array) of exactly the model's grid + [V] (the message names the expected
  and the got shape, or the first ragged row), numbers only, every value finite and |value| ≤
  MAX_ABS_VALUE (the first bad one named by its index).
The work bound (grid points × steps ≤ `max_cost`, 413) is the predictor's `CostModel`, which the
service checks after `parse`.

Shapes: X, Y(, Z) grid points per axis, V components, S steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.predictor import Reason, Refused

if TYPE_CHECKING:
    from inference.tasks.rollout.predictor import RolloutPredictor

MAX_ABS_VALUE = 1e6  # a physical field past this is in other units (or garbage): refused, not rolled out
AXES = "xyz"


@dataclass(frozen=True, eq=False)
class RolloutInput:
    """One validated request: the initial field [*grid, V] in physical units (float64), the steps to roll
    out and the stride of the steps returned."""

    field: np.ndarray
    steps: int
    every: int = 1

    @property
    def returned(self) -> list[int]:
        """The steps whose fields the answer holds: every, 2·every, ... ≤ steps."""
        return list(range(self.every, self.steps + 1, self.every))


@dataclass(frozen=True, eq=False)
class RolloutOutput:
    """One answer: the fields [n, *grid, V] (physical units, float64) at `steps` (n of them), `dt` of simulated
    time per step."""

    fields: np.ndarray
    steps: list[int]
    dt: float


def refuse(message: str, where: str, status: int = 422) -> Refused:
    return Refused(Reason(message, where, status))


def parse_request(p: RolloutPredictor, request: RolloutInput | Mapping[str, Any]) -> RolloutInput | Reason:
    """`request` (a `RolloutInput`, or a mapping of the JSON fields) as a validated `RolloutInput` for `p`."""
    field: Any
    steps: Any
    every: Any
    if isinstance(request, RolloutInput):
        field, steps, every = request.field, request.steps, request.every
    elif isinstance(request, Mapping):
        field, steps, every = request.get("field"), request.get("steps"), request.get("every")
    else:
        return Reason(f"a request is a mapping with field, steps and every; got {type(request).__name__}", "body")
    try:
        s = check_steps(p, steps)
        k = check_every(every, s)
        check_response_size(p, s, k)
        u = check_field(p, field)
    except Refused as e:
        return e.reason
    return RolloutInput(u, s, k)


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def check_steps(p: RolloutPredictor, steps: Any) -> int:
    if steps is None:
        raise refuse(f"steps is required: how many model steps to roll out (1 to {p.max_steps})", "steps")
    if not _is_int(steps):
        raise refuse(f"steps must be an integer from 1 to {p.max_steps}; got {steps!r:.40}", "steps")
    if not 1 <= steps <= p.max_steps:
        why = f"steps must be from 1 to {p.max_steps} (`max_steps` in the model info); got {steps}"
        if steps > p.max_steps:
            why += "; continue a longer rollout from the last field in a new request"
        raise refuse(why, "steps")
    return int(steps)


def check_every(every: Any, steps: int) -> int:
    if every is None:
        return 1
    if not _is_int(every) or not 1 <= every <= steps:
        raise refuse(f"every must be an integer from 1 to steps ({steps}); got {every!r:.40}", "every")
    return int(every)


def check_response_size(p: RolloutPredictor, steps: int, every: int) -> None:
    """(steps // every) fields of the grid's points, at most the model's response bound."""
    n = steps // every
    if n <= p.max_fields:
        return
    fits = steps // (p.max_fields + 1) + 1  # the smallest k with steps // k <= max_fields
    raise refuse(
        f"the answer would hold {n} fields of {p.points} grid points; one answer may hold at most {p.max_fields} "
        f"(`max_fields` in the model info): ask for every >= {fits}, or fewer steps",
        "every",
        413,
    )


def check_field(p: RolloutPredictor, field: Any) -> np.ndarray:
    """field as float64 [*grid, V]: the model's exact shape, numbers only, finite and bounded."""
    want = (*p.grid, p.n_components)
    if field is None:
        raise refuse(f"field is required: the initial field, nested lists of shape {_shape(want)}", "field")
    if isinstance(field, np.ndarray):
        if field.dtype.kind not in "fiu":
            raise refuse(f"field must hold numbers only; got an array of {field.dtype}", "field")
        u = field.astype(np.float64, copy=False)
    else:
        if not isinstance(field, list | tuple):
            raise refuse(f"field must be nested lists of shape {_shape(want)}; got {type(field).__name__}", "field")
        ragged = _first_ragged(field, want)
        if ragged is not None:
            raise refuse(f"field must be nested lists of shape {_shape(want)} ({p.layout}); {ragged[1]}", ragged[0])
        try:
            raw = np.asarray(field)  # no dtype: strings and nulls must not be converted quietly
        except (TypeError, ValueError):
            raise refuse(
                f"field must be nested lists of shape {_shape(want)} ({p.layout}) of numbers", "field"
            ) from None
        if raw.dtype.kind not in "fiu":
            raise refuse("field must hold numbers only (JSON numbers, no strings, booleans or nulls)", "field")
        u = raw.astype(np.float64, copy=False)
    if u.shape != want:
        got = _shape(u.shape)
        raise refuse(f"field must have shape {_shape(want)} ({p.layout}); got {got}", "field")
    bad = np.argwhere(~np.isfinite(u))
    if len(bad):
        at = tuple(int(i) for i in bad[0])
        raise refuse(f"field holds NaN or infinite values, first at {list(at)}; send finite numbers", _path(at))
    big = np.argwhere(np.abs(u) > MAX_ABS_VALUE)
    if len(big):
        at = tuple(int(i) for i in big[0])
        raise refuse(
            f"field holds |values| over {MAX_ABS_VALUE:g}, first {u[at]:.3g} at {list(at)}: send the field in the "
            "physical units the model was trained in",
            _path(at),
        )
    return u


def _first_ragged(field: Sequence[Any], want: tuple[int, ...]) -> tuple[str, str] | None:
    """(dotted path, what is wrong) of the first list whose length is not the expected one at its depth, or
    of the first number where a list should be; None when every level has the expected length."""
    level: list[tuple[tuple[int, ...], Any]] = [((), field)]
    for depth, n in enumerate(want):
        below: list[tuple[tuple[int, ...], Any]] = []
        for at, item in level:
            if not isinstance(item, list | tuple):
                return _path(at), f"{_name(at)} is {type(item).__name__}, expected a list of {n}"
            if len(item) != n:
                return _path(at), f"{_name(at)} holds {len(item)} entries, expected {n} ({_axis(depth, len(want))})"
            if depth + 1 < len(want):
                below.extend(((*at, i), sub) for i, sub in enumerate(item))
        level = below
    return None


def _axis(depth: int, n_levels: int) -> str:
    return "components" if depth == n_levels - 1 else f"grid points along {AXES[depth]}"


def _shape(shape: Sequence[int]) -> str:
    return "".join(f"[{n}]" for n in shape)


def _name(at: tuple[int, ...]) -> str:
    return "field" + "".join(f"[{i}]" for i in at)


def _path(at: tuple[int, ...]) -> str:
    return ".".join(["field", *(str(i) for i in at)])
