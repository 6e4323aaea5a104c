"""FlowTransformer's pre-processing as plain state (saved inside the model bundle, never pickled).

Fitted on the training rows only, then applied to every split and to every request:
- numeric feature x, `scaling="log"` (default) -> log(1 + max(x - min, 0)) / log(1 + range), with
  `min` and `range` (max - min) of the training rows (the official `StandardPreProcessing`); a feature
  constant in training maps to 0. Values below the training minimum map to 0 (the official code takes
  the log of a negative number there); values above the maximum exceed 1, clipped at `CLIP` so a
  hostile value cannot reach the model as an outlier of any size.
- `scaling="quantile"` -> the training rows' empirical CDF, F(x) = the fraction of training values
  <= x, in [0, 1]: a rank, so only the order of values matters (as for a tree's splits) and anything
  beyond the training range saturates at 0 or 1 instead of being extrapolated. Stored as at most
  `MAX_KNOTS` knots per feature (every distinct training value when there are no more, else the
  training quantiles) with F at each; between knots F is a step (the value of the knot below); NaN
  maps to 0.
- categorical feature -> an integer code: 1..k for its k most frequent training values (ties by value,
  so a fit is deterministic), 0 for everything else, unseen values included. The official code starts
  from ones instead, so an unseen value collides with the most frequent one.
Values are compared as text keys (`category_keys`): integers and integral floats alike as "6", other
floats in polars' shortest round-trip form, strings as they are, so 6, 6.0 and "6" are one value.

Encoded flows are float32 [T, F]: the numeric values, then the categorical codes (exact in float32).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from data.flows.formats import FlowFormat, get_format

CLIP = 16.0  # the largest encoded numeric value: ~log(1 + 1e14) over log(1 + 7e2)
SCALINGS = ("log", "quantile")
MAX_KNOTS = 512  # knots of a quantile-scaled feature's stored CDF
_INT_SAFE = 2.0**53  # integral floats below this print as their integer


def category_keys(col: pl.Series) -> pl.Series:
    """The text key of each value of a categorical column (see the module docstring)."""
    if col.dtype.is_integer():
        return col.cast(pl.Int64).cast(pl.Utf8)
    if col.dtype.is_float():
        integral = (col == col.round(0)) & (col.abs() < _INT_SAFE)
        as_int = pl.when(integral).then(col).otherwise(None).cast(pl.Int64).cast(pl.Utf8)
        return pl.select(pl.coalesce(as_int, col.cast(pl.Utf8))).to_series().alias(col.name)
    if col.dtype == pl.Boolean:
        return col.cast(pl.Int64).cast(pl.Utf8)
    return col.cast(pl.Utf8)


@dataclass(frozen=True)
class FlowTransform:
    """The fitted pre-processing of one model (see the module docstring); `to_dict` is the bundle's
    `transform` layout that `inference.tasks.classify` reads."""

    format: str
    numeric: tuple[str, ...]
    numeric_min: tuple[float, ...]
    numeric_range: tuple[float, ...]
    categorical: tuple[str, ...]
    levels: tuple[tuple[str, ...], ...]  # per categorical feature: its top-k values, code i + 1
    top_k: int
    classes: tuple[str, ...]  # class names in the model's output order
    benign: str  # the class of normal traffic
    window: int
    scaling: str = "log"  # numeric scaling: log | quantile (see the module docstring)
    # scaling "quantile": per numeric feature its knots (increasing) and the training CDF at each
    knots: tuple[tuple[float, ...], ...] = ()
    cdf: tuple[tuple[float, ...], ...] = ()

    @classmethod
    def fit(
        cls,
        frame: pl.DataFrame,
        fmt: FlowFormat,
        *,
        top_k: int,
        classes: list[str],
        benign: str,
        window: int,
        scaling: str = "log",
    ) -> FlowTransform:
        """Fit on the training rows `frame` (the format's checked columns)."""
        if frame.height == 0:
            raise ValueError("cannot fit the flow transform on no rows")
        if scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
        lo = [float(frame[c].min()) for c in fmt.numeric]  # type: ignore[arg-type]
        hi = [float(frame[c].max()) for c in fmt.numeric]  # type: ignore[arg-type]
        levels = []
        for c in fmt.categorical:
            counts = category_keys(frame[c]).value_counts(name="n")
            top = counts.sort(["n", c], descending=[True, False]).head(top_k)
            levels.append(tuple(top[c].to_list()))
        knots, cdf = zip(*(_fit_cdf(frame[c]) for c in fmt.numeric), strict=True) if scaling == "quantile" else ((), ())
        return cls(
            format=fmt.name,
            numeric=fmt.numeric,
            numeric_min=tuple(lo),
            numeric_range=tuple(h - v for h, v in zip(hi, lo, strict=True)),
            categorical=fmt.categorical,
            levels=tuple(levels),
            top_k=top_k,
            classes=tuple(classes),
            benign=benign,
            window=window,
            scaling=scaling,
            knots=tuple(knots),
            cdf=tuple(cdf),
        )

    @property
    def features(self) -> tuple[str, ...]:
        """The columns a flow must carry, in the model's order."""
        return (*self.numeric, *self.categorical)

    @property
    def n_levels(self) -> int:
        return self.top_k + 1

    @property
    def string_features(self) -> tuple[str, ...]:
        """Features whose values may be text (the format's symbolic fields); all others are numbers."""
        fmt = get_format(self.format)
        return tuple(f for f in self.features if f in fmt.string_features)

    def encode(self, frame: pl.DataFrame) -> np.ndarray:
        """Flows (a frame with at least `features`, numbers where numbers belong) -> float32 [T, F]."""
        out = np.empty((frame.height, len(self.features)), dtype=np.float32)
        for j, (name, lo, span) in enumerate(zip(self.numeric, self.numeric_min, self.numeric_range, strict=True)):
            x = frame[name].cast(pl.Float64).to_numpy()
            if self.scaling == "quantile":
                out[:, j] = _apply_cdf(x, self.knots[j], self.cdf[j])
                continue
            if span <= 0:
                out[:, j] = 0.0
                continue
            with np.errstate(invalid="ignore", over="ignore"):
                v = np.log1p(np.clip(x - lo, 0.0, None)) / math.log1p(span)
            out[:, j] = np.clip(np.nan_to_num(v, nan=0.0, posinf=CLIP), 0.0, CLIP)
        base = len(self.numeric)
        for j, (name, values) in enumerate(zip(self.categorical, self.levels, strict=True)):
            codes = {value: i + 1 for i, value in enumerate(values)}
            keys = category_keys(frame[name])
            out[:, base + j] = keys.replace_strict(codes, default=0, return_dtype=pl.Int32).to_numpy()
        return out

    def class_index(self, names: pl.Series) -> np.ndarray:
        """Class names -> indices [T] (int64); ValueError naming classes the model does not know."""
        unknown = sorted(set(names.unique().to_list()) - set(self.classes))
        if unknown:
            raise ValueError(f"classes {unknown} are not among the model's classes {list(self.classes)}")
        index = {c: i for i, c in enumerate(self.classes)}
        return names.replace_strict(index, return_dtype=pl.Int64).to_numpy()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        nested = ("levels", "knots", "cdf")
        return {k: list(map(list, v)) if k in nested else list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlowTransform:
        names = set(cls.__dataclass_fields__) - {"scaling", "knots", "cdf"}  # optional: bundles before them are log
        missing = sorted(names - set(d))
        if missing:
            raise ValueError(f"flow transform lacks {missing}")
        get_format(str(d["format"]))  # a known format
        return cls(
            format=str(d["format"]),
            numeric=tuple(d["numeric"]),
            numeric_min=tuple(float(v) for v in d["numeric_min"]),
            numeric_range=tuple(float(v) for v in d["numeric_range"]),
            categorical=tuple(d["categorical"]),
            levels=tuple(tuple(str(v) for v in lv) for lv in d["levels"]),
            top_k=int(d["top_k"]),
            classes=tuple(d["classes"]),
            benign=str(d["benign"]),
            window=int(d["window"]),
            **_scaling_state(d),
        )


def _scaling_state(d: dict[str, Any]) -> dict[str, Any]:
    """The scaling fields of a transform dict, checked: a quantile transform needs increasing knots and a
    non-decreasing CDF in [0, 1] of the same length for every numeric feature."""
    scaling = str(d.get("scaling", "log"))
    if scaling not in SCALINGS:
        raise ValueError(f"flow transform scaling must be one of {SCALINGS}, got {scaling!r}")
    knots = tuple(tuple(float(v) for v in k) for k in d.get("knots", ()))
    cdf = tuple(tuple(float(v) for v in c) for c in d.get("cdf", ()))
    if scaling == "quantile":
        if len(knots) != len(d["numeric"]) or len(cdf) != len(knots):
            raise ValueError("a quantile flow transform needs knots and cdf for every numeric feature")
        for k, c in zip(knots, cdf, strict=True):
            if not k or len(k) != len(c) or np.any(np.diff(k) <= 0) or np.any(np.diff(c) < 0):
                raise ValueError("quantile knots must increase and their cdf must not decrease, one value per knot")
            if c[0] < 0 or c[-1] > 1:
                raise ValueError("quantile cdf values must be in [0, 1]")
    return {"scaling": scaling, "knots": knots, "cdf": cdf}


def _fit_cdf(col: pl.Series) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """A numeric training column -> knots (every distinct value, or MAX_KNOTS quantiles) and F at each (the
    fraction of values <= the knot). Non-finite training values are left out."""
    x = col.cast(pl.Float64).to_numpy()
    x = np.sort(x[np.isfinite(x)])
    if len(x) == 0:
        return (0.0,), (0.0,)
    knots = np.unique(x)
    if len(knots) > MAX_KNOTS:
        knots = np.unique(np.quantile(x, np.linspace(0.0, 1.0, MAX_KNOTS), method="inverted_cdf"))
    cdf = np.searchsorted(x, knots, side="right") / len(x)
    return tuple(knots.tolist()), tuple(cdf.tolist())


def _apply_cdf(x: np.ndarray, knots: tuple[float, ...], cdf: tuple[float, ...]) -> np.ndarray:
    """x [T] -> F(x) [T] (float32): the CDF of the knot at or below x, 0 below the first knot and for NaN."""
    i = np.searchsorted(np.asarray(knots), x, side="right") - 1  # [T]: the knot at or below x, -1 below all
    v = np.where(i >= 0, np.asarray(cdf)[np.clip(i, 0, None)], 0.0)
    return np.where(np.isnan(x), 0.0, v).astype(np.float32)
