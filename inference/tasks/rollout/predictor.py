"""The rollout task's predictor: a flow field in physical units in, the model's autoregressive rollout out.

The bundle's `transform` (written by the rollout data module at training):
{grid: [X, Y(, Z)], components: [V names], mean: [V], std: [V] (per-component normalisation fitted on the
training trajectories: the model sees (u - mean) / std), dt (simulated time per model step), domain: [box
lengths], max_steps (default 200), max_cost (the most grid points × steps one request may cost; default
16³ · 200), max_response_points (optional: the most grid points × returned fields one answer may hold;
default 16³ · 50), dataset, generation}.

One request's path: the rules (`request.py`), the work bound (`CostModel`, below), normalisation,
`model.rollout` under `torch.inference_mode()` in chunks of steps (requests with the same steps share
forward passes, at most MAX_PASS_POINTS grid points per pass), each chunk's fields checked for
finiteness per step (a row that diverges leaves the batch, its answer the step it diverged at),
de-normalised in float64, every k-th step kept.

The cost model's unit is one model step over the model's grid (one forward pass: the reference request),
so `cost` is grid points × steps / grid points and the service's heavy lane (SEER_HEAVY_COST, default 4)
takes rollouts of more than 4 steps one at a time while short ones are micro-batched. The metadata's and
the model info's `max_cost` stay in grid points × steps (the contract's unit); `CostModel.max_cost` is the
same bound in steps.

Shapes: B requests, S steps, n returned fields, X/Y(/Z) grid points per axis, V components, P = X·Y(·Z).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np
import pandas as pd
import torch
from torch import nn

from core.registry import RolloutModel
from inference.bundle import BundleError
from inference.predictor import BundledPredictor, Cancelled, Reason, Refused, add_checkpoints, request_cost
from inference.tasks.rollout.request import (
    AXES,
    MAX_ABS_VALUE,
    RolloutInput,
    RolloutOutput,
    parse_request,
    refuse,
)

DEFAULT_MAX_STEPS = 200
DEFAULT_MAX_COST = 16**3 * 200  # grid points × steps of one request
DEFAULT_MAX_RESPONSE_POINTS = 16**3 * 50  # grid points × returned fields of one answer (~12 MB of JSON at V = 3)
MAX_PASS_POINTS = 16**3 * 16  # grid points of one forward pass (rows × P): bounds the activations of a batch
STEPS_PER_CALL = 8  # steps per `model.rollout` call: bounds the stacked output [b, 8, *grid, V] kept at once
WARM_UP_STEPS = 2


@dataclass
class RolloutPredictor(BundledPredictor):
    """A field [*grid, V] in physical units -> its rollout over `steps` model steps (module docstring)."""

    task: ClassVar[str] = "rollout"
    model: nn.Module
    meta: dict[str, Any]

    def __post_init__(self) -> None:
        t = self.meta["transform"]
        missing = [k for k in ("grid", "components", "mean", "std", "dt") if k not in t]
        if missing:
            raise BundleError(f"{self.name}: the rollout transform lacks {missing}")
        if not isinstance(self.model, RolloutModel):
            raise BundleError(f"{self.name}: {type(self.model).__name__} has no rollout(u, steps)")
        self._check_transform(t)
        self.mean = np.asarray(t["mean"], dtype=np.float64)  # [V]
        self.std = np.asarray(t["std"], dtype=np.float64)  # [V]
        add_checkpoints(self.model)  # a server may stop (or pause) a rollout between steps and layers

    def _check_transform(self, t: Mapping[str, Any]) -> None:
        """The transform fits itself and the model: a broken bundle is refused at load, not per request."""
        grid, v = [int(n) for n in t["grid"]], len(t["components"])
        config = getattr(self.model, "config", None)
        if config is not None and (list(config.grid) != grid or config.n_components != v):
            raise BundleError(
                f"{self.name}: the transform's grid {grid} × {v} components differs from the model's "
                f"{list(config.grid)} × {config.n_components}"
            )
        for key in ("mean", "std"):
            values = np.asarray(t[key], dtype=np.float64)
            if values.shape != (v,) or not np.isfinite(values).all():
                raise BundleError(f"{self.name}: transform {key} must be {v} finite numbers, got {t[key]!r}")
        if min(t["std"]) <= 0:
            raise BundleError(f"{self.name}: transform std must be > 0, got {t['std']!r}")
        for key in ("dt", "max_steps", "max_cost", "max_response_points"):
            value = t.get(key)
            if value is not None and not (isinstance(value, int | float) and not isinstance(value, bool) and value > 0):
                raise BundleError(f"{self.name}: transform {key} must be a positive number, got {value!r}")
        if "domain" in t and len(t["domain"]) != len(grid):
            raise BundleError(f"{self.name}: transform domain must give one length per grid axis, got {t['domain']}")

    # Metadata the service exposes.
    @property
    def grid(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.meta["transform"]["grid"])

    @property
    def components(self) -> list[str]:
        return [str(c) for c in self.meta["transform"]["components"]]

    @property
    def n_components(self) -> int:
        return len(self.components)

    @property
    def points(self) -> int:
        """P: grid points of one field."""
        return math.prod(self.grid)

    @property
    def layout(self) -> str:
        """The field's axes in words, for messages: `x, y, then components u, v`."""
        return f"{', '.join(AXES[: len(self.grid)])}, then components {', '.join(self.components)}"

    @property
    def dt(self) -> float:
        return float(self.meta["transform"]["dt"])

    @property
    def domain(self) -> list[float] | None:
        domain = self.meta["transform"].get("domain")
        return None if domain is None else [float(x) for x in domain]

    @property
    def max_steps(self) -> int:
        return int(self.meta["transform"].get("max_steps") or DEFAULT_MAX_STEPS)

    @property
    def max_work(self) -> float:
        """The most grid points × steps one request may cost (the transform's `max_cost`)."""
        return float(self.meta["transform"].get("max_cost") or DEFAULT_MAX_COST)

    @property
    def max_fields(self) -> int:
        """The most fields one answer may hold: the response bound over the grid's points (at least 1)."""
        bound = self.meta["transform"].get("max_response_points") or DEFAULT_MAX_RESPONSE_POINTS
        return max(1, int(bound) // self.points)

    @property
    def example_input(self) -> dict[str, Any]:
        return dict(self.meta.get("example_input") or {})

    def describe(self) -> dict[str, Any]:
        """The rollout block of the model info: what a request may hold and what it gets back."""
        return {
            "grid": list(self.grid),
            "components": self.components,
            "dt": self.dt,
            "domain": self.domain,
            "max_steps": self.max_steps,
            "max_cost": self.max_work,
            "max_fields": self.max_fields,
            "max_abs_value": MAX_ABS_VALUE,
            "dataset": self.meta["transform"].get("dataset"),
        }

    # The work of a request (`inference.predictor.CostModel`), in model steps over the grid.
    @property
    def max_cost(self) -> float:
        """The work bound in reference requests (one step over the grid): max_cost grid points × steps / P."""
        return self.max_work / self.points

    def cost(self, inp: RolloutInput) -> float:
        """The input's work in reference requests: its grid points × steps over P (its field is on the grid)."""
        return math.prod(inp.field.shape[:-1]) * inp.steps / self.points

    def too_costly(self, inp: RolloutInput, cost: float) -> Reason:
        most = int(self.max_work // self.points)
        return Reason(
            f"this request is too much work: {self.points} grid points × {inp.steps} steps = "
            f"{self.points * inp.steps}, one request may cost at most {self.max_work:.0f} (`max_cost` in the model "
            f"info): ask for at most {most} steps and continue from the last field in a new request",
            "steps",
            413,
        )

    def parse(self, request: RolloutInput | Mapping[str, Any]) -> RolloutInput | Reason:
        """The request (a `RolloutInput`, or a mapping of the JSON fields `field`, `steps`, `every`) as a
        validated `RolloutInput`, or the first `Reason` it cannot be served (rules: `request.py`)."""
        return parse_request(self, request)

    def validate(self, request: RolloutInput | Mapping[str, Any]) -> Reason | None:
        parsed = self.parse(request)
        return parsed if isinstance(parsed, Reason) else None

    # Prediction on validated input.
    def predict_batch(self, inputs: Sequence[RolloutInput]) -> list[RolloutOutput | Exception]:
        """Blocking: one answer (or one exception) per input accepted by `parse`, in order. Inputs of the same
        steps share forward passes (at most MAX_PASS_POINTS grid points each); when a pass raises, its inputs
        are retried alone, so only the input at fault fails; a rollout that diverges is that input's refusal,
        naming the step."""
        groups: dict[int, list[int]] = {}  # steps -> input indices: rows of one pass roll out equally far
        for i, inp in enumerate(inputs):
            groups.setdefault(inp.steps, []).append(i)
        rows = max(1, MAX_PASS_POINTS // self.points)
        out: dict[int, RolloutOutput | Exception] = {}
        for idx in groups.values():
            for start in range(0, len(idx), rows):
                part = idx[start : start + rows]
                out.update(zip(part, self._outputs([inputs[i] for i in part]), strict=True))
        return [out[i] for i in range(len(inputs))]

    def _outputs(self, inputs: list[RolloutInput]) -> list[RolloutOutput | Exception]:
        """Inputs of one steps in one pass; a pass that raises is retried one input at a time."""
        try:
            rolled = self.roll(np.stack([inp.field for inp in inputs]), inputs[0].steps, [inp.every for inp in inputs])
        except Cancelled as e:
            return [e] * len(inputs)
        except Exception as e:
            if len(inputs) > 1:
                return [self._outputs([inp])[0] for inp in inputs]
            return [_as_refusal(e)]
        return [self._answer(inp, r) for inp, r in zip(inputs, rolled, strict=True)]

    def _answer(self, inp: RolloutInput, rolled: np.ndarray | int) -> RolloutOutput | Exception:
        if isinstance(rolled, int):
            return diverged(rolled)
        finite = np.isfinite(rolled.reshape(len(rolled), -1)).all(axis=1)  # [n]
        if not finite.all():  # finite in float32, not after de-normalising: a blow-up too
            return diverged(inp.returned[int(np.flatnonzero(~finite)[0])])
        return RolloutOutput(rolled, inp.returned, self.dt)

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def roll(self, u0: np.ndarray, steps: int, every: Sequence[int]) -> list[np.ndarray | int]:
        """Trusts its input (see `parse`): fields [B, *grid, V] in physical units, the steps and each row's
        stride -> per row, its fields [n, *grid, V] (physical, float64) at steps every, 2·every, ... ≤ steps,
        or (an int) the first step whose field is not finite. A row that diverges leaves the batch."""
        B = len(u0)
        x = torch.from_numpy(((u0 - self.mean) / self.std).astype(np.float32)).to(self._device())  # [B, *grid, V]
        kept: list[list[np.ndarray]] = [[] for _ in range(B)]
        first_bad: dict[int, int] = {}
        active = list(range(B))  # the rows still rolling out
        bad_in = (~torch.isfinite(x.reshape(B, -1)).all(dim=1)).nonzero().flatten().tolist()
        if bad_in:  # finite in physical units, not after normalising (a far too large value): step 1 fails
            first_bad.update({b: 1 for b in bad_in})
            active = [b for b in active if b not in first_bad]
            x = x[active]
        done = 0
        while done < steps and active:
            n = min(STEPS_PER_CALL, steps - done)
            y = cast(RolloutModel, self.model).rollout(x, n)  # [b, n, *grid, V] normalised (checked at load)
            finite = torch.isfinite(y.reshape(len(active), n, -1)).all(dim=2).cpu().numpy()  # [b, n]
            for i, row in enumerate(active):
                bad = np.flatnonzero(~finite[i])
                if len(bad):
                    first_bad[row] = done + int(bad[0]) + 1
                picks = [j for j in range(n) if (done + j + 1) % every[row] == 0 and row not in first_bad]
                if picks:
                    kept[row].append(y[i, picks].double().cpu().numpy() * self.std + self.mean)  # [n', *grid, V]
            stay = [i for i, row in enumerate(active) if row not in first_bad]
            x, active, done = y[stay, -1], [active[i] for i in stay], done + n
        return [first_bad[b] if b in first_bad else np.concatenate(kept[b]) for b in range(B)]

    # The checked array API (pyfunc, scripts): the request rules and the work bound, then the trusted path.
    def rollout(self, field: np.ndarray, steps: int, every: int = 1) -> np.ndarray:
        """field [*grid, V] in physical units -> its fields [steps // every, *grid, V] at steps every, 2·every,
        ...; `Refused` (a ValueError) when the input breaks a request rule, costs too much, or diverges."""
        return self._checked({"field": np.asarray(field), "steps": steps, "every": every}).fields

    def _checked(self, request: Mapping[str, Any]) -> RolloutOutput:
        inp = self.parse(request)
        if isinstance(inp, Reason):
            raise Refused(inp)
        _, too_much = request_cost(self, inp)
        if too_much is not None:
            raise Refused(too_much)
        (out,) = self.predict_batch([inp])
        if isinstance(out, Exception):
            raise out
        return out

    def warm_up(self) -> None:
        """One rollout of the bundle's example input (or, without one, a smooth field around the mean over
        WARM_UP_STEPS steps): it must be a valid request and come back with its shape, finite."""
        example = self.example_input
        if example.get("field") is None:
            phase = sum(np.meshgrid(*(np.linspace(0, 2 * np.pi, n, endpoint=False) for n in self.grid), indexing="ij"))
            field = self.mean + self.std * np.sin(phase)[..., None]  # [*grid, V]
            example = {"field": field, "steps": min(WARM_UP_STEPS, self.max_steps)}
        inp = self.parse(example)
        if isinstance(inp, Reason):
            raise ValueError(f"the example input is not a valid request: {inp.message}")
        (out,) = self.predict_batch([inp])
        if isinstance(out, Exception):
            raise ValueError(f"warm-up rollout of the example input failed: {out}") from out
        want = (len(inp.returned), *self.grid, self.n_components)
        if out.fields.shape != want or not np.isfinite(out.fields).all():
            raise ValueError(f"warm-up rollout has shape {out.fields.shape}, expected {want}, or is not finite")

    def pyfunc_predict(self, model_input: Any) -> Any:
        """The MLflow pyfunc `predict`: a request dict `{"field", "steps", "every"}` -> `{"fields", "steps",
        "dt"}`; or a DataFrame (what MLflow makes of a JSON request) with columns field, steps (and every),
        one request per row -> a DataFrame with columns steps, fields, one row per request."""
        if isinstance(model_input, Mapping):
            out = self._checked(model_input)
            return {"fields": out.fields.tolist(), "steps": out.steps, "dt": out.dt}
        frame = pd.DataFrame(model_input)
        missing = [c for c in ("field", "steps") if c not in frame.columns]
        if missing:
            raise ValueError(f"input lacks columns {missing}; expected field, steps (and every)")
        answers = []
        for row in frame.to_dict("records"):
            request = {k: _plain(v) for k, v in row.items() if k in ("field", "steps", "every")}
            answers.append(self._checked(request))
        return pd.DataFrame({"steps": [a.steps for a in answers], "fields": [a.fields.tolist() for a in answers]})


def diverged(step: int) -> Refused:
    """The refusal of a rollout whose field is not finite from `step` on."""
    fewer = f"ask for at most {step - 1} steps, or " if step > 1 else ""
    return refuse(
        f"the rollout diverged at step {step}: the model's field is not finite from there on; {fewer}start from "
        "a field closer to the training data",
        "steps",
    )


def _plain(value: Any) -> Any:
    """A DataFrame cell as the JSON value it was: numpy integers and arrays (of arrays) back to Python."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value] if value.dtype == object else value.tolist()
    if isinstance(value, float) and value.is_integer():
        return int(value)  # pandas makes an int column with a gap float
    return value.item() if isinstance(value, np.generic) else value


def _as_refusal(e: Exception) -> Exception:
    """A ValueError the model raised on one input is that input's fault: a refusal naming the field."""
    if isinstance(e, ValueError) and not isinstance(e, Refused):
        return refuse(str(e), "field")
    return e
