"""Metrics for probabilistic zero-shot forecasting (Chronos / GIFT-Eval style), in numpy.

Shapes: `...` any leading series dimensions, L context length, H horizon, S samples, Q quantiles.
Inputs may be numpy arrays or CPU torch tensors (anything `np.asarray` takes); outputs are float64
numpy arrays with one value per series (the horizon is averaged out). NaN targets are ignored
(averages over the observed steps); a series with no observed target step scores NaN.

Aggregation in the Chronos/GIFT-Eval manner: score every series with the model and with the seasonal
naive baseline, then `relative_geomean(model, baseline)` (< 1 means better than seasonal naive).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _f64(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _nanmean_last(x: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN (without a warning) where all are NaN."""
    count = np.sum(~np.isnan(x), axis=-1)
    total = np.nansum(x, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def seasonal_naive(context: Any, horizon: int, season: int) -> np.ndarray:
    """Repeat the last season of the context: `[..., L] -> [..., H]`.

    `out[..., h] = context[..., L - season + (h mod season)]`; naive-1 (repeat the last value) when
    `L < season` or `season <= 1`.
    """
    ctx = _f64(context)
    length = ctx.shape[-1]
    if length < 1 or horizon < 1:
        raise ValueError("need a non-empty context and horizon >= 1")
    if season <= 1 or length < season:
        return np.repeat(ctx[..., -1:], horizon, axis=-1)
    idx = length - season + np.arange(horizon) % season
    return ctx[..., idx]


def mase_scale(context: Any, season: int) -> np.ndarray:
    """In-sample MAE of the seasonal naive forecast on the context: `[..., L] -> [...]`.

    `mean_t |c_t - c_{t-m}|` over `t = m..L-1` with `m = season`, or `m = 1` when `L <= season`
    (no full season of in-sample errors; GluonTS does the same). NaN differences are skipped.
    """
    ctx = _f64(context)
    lag = season if 1 <= season < ctx.shape[-1] else 1
    if ctx.shape[-1] <= lag:
        raise ValueError(f"a context of {ctx.shape[-1]} steps has no lag-{lag} differences")
    return _nanmean_last(np.abs(ctx[..., lag:] - ctx[..., :-lag]))


def mase(pred: Any, target: Any, context: Any, season: int) -> np.ndarray:
    """Mean absolute scaled error per series: `MAE(pred, target) / mase_scale(context, season)`.

    pred, target `[..., H]`, context `[..., L]` -> `[...]`. A series whose scale is 0 (a context
    that repeats exactly every season) has an undefined MASE and scores NaN.
    """
    err = _nanmean_last(np.abs(_f64(pred) - _f64(target)))
    scale = mase_scale(context, season)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(scale > 0, err / np.where(scale > 0, scale, 1.0), np.nan)


def crps_from_samples(samples: Any, target: Any, estimator: str = "fair") -> np.ndarray:
    """Sample CRPS per series, averaged over the horizon: samples `[S, ..., H]`, target `[..., H]` -> `[...]`.

    Energy form `CRPS = E|X - y| - ½ E|X - X'|`, with `E|X - X'|` from the sorted samples
    `x_(1) <= .. <= x_(S)` through `Σ_{i<j} |x_i - x_j| = Σ_k (2k - S - 1) x_(k)`:
      `fair` (default): divided by `S(S-1)/2` pairs, unbiased for the CRPS of the forecast
        distribution the samples come from; algebraically identical to the probability-weighted-moment
        (PWM) form `E|X - y| + β0 - 2β1` (Zamo & Naveau 2018);
      `nrg`: divided by `S²/2`, the CRPS of the empirical distribution of the samples (biased up by
        `E|X - X'| / (2S)`).
    With one sample both reduce to the absolute error; a point mass (all samples equal) gives the MAE.
    """
    if estimator not in ("fair", "nrg"):
        raise ValueError(f"estimator must be 'fair' or 'nrg', got {estimator!r}")
    x = _f64(samples)
    y = _f64(target)
    if x.shape[1:] != y.shape:
        raise ValueError(f"samples {x.shape} must be [S, *target.shape] with target {y.shape}")
    m = x.shape[0]
    abs_err = np.mean(np.abs(x - y[None]), axis=0)
    xs = np.sort(x, axis=0)
    weights = (2.0 * np.arange(1, m + 1) - m - 1).reshape((m,) + (1,) * y.ndim)
    pair_sum = np.sum(weights * xs, axis=0)  # Σ_{i<j} |x_i - x_j|
    if m == 1:
        spread = np.zeros_like(abs_err)
    else:
        spread = pair_sum / (m * (m - 1) / 2.0) if estimator == "fair" else pair_sum / (m * m / 2.0)
    crps = abs_err - 0.5 * spread
    crps = np.where(np.isnan(y), np.nan, crps)
    return _nanmean_last(crps)


def quantile_loss(pred_quantiles: Any, target: Any, quantiles: Any) -> np.ndarray:
    """Pinball loss per quantile and series, averaged over the horizon.

    pred_quantiles `[Q, ..., H]`, target `[..., H]`, quantiles `[Q]` in (0, 1) -> `[Q, ...]`, with
    `ρ_τ(u) = max(τ u, (τ - 1) u)` for `u = y - q̂_τ`. Twice its mean over a dense, even quantile grid
    approximates the CRPS.
    """
    q = _f64(pred_quantiles)
    y = _f64(target)
    tau = _f64(quantiles)
    if tau.ndim != 1 or q.shape != (len(tau), *y.shape):
        raise ValueError(f"pred_quantiles {q.shape} must be [Q={tau.shape}, *target.shape={y.shape}]")
    if np.any((tau <= 0) | (tau >= 1)):
        raise ValueError("quantile levels must lie in (0, 1)")
    tau = tau.reshape((len(tau),) + (1,) * y.ndim)
    u = y[None] - q
    return _nanmean_last(np.maximum(tau * u, (tau - 1.0) * u))


def weighted_quantile_loss(pred_quantiles: Any, target: Any, quantiles: Any) -> np.ndarray:
    """Mean weighted quantile loss per series (GluonTS `mean_wQuantileLoss`, GIFT-Eval's "CRPS").

    `mean_τ 2 Σ_h ρ_τ(y_h - q̂_τ,h) / Σ_h |y_h|`: pred_quantiles `[Q, ..., H]` -> `[...]`. GIFT-Eval sums
    numerator and denominator over a whole dataset; pass the series flattened to `[Q, 1, N·H]` for
    that. NaN where `Σ |y| = 0`.
    """
    y = _f64(target)
    observed = np.sum(~np.isnan(y), axis=-1)
    per_q = quantile_loss(pred_quantiles, y, quantiles) * observed  # Σ_h ρ over the observed steps
    denom = np.nansum(np.abs(y), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2.0 * per_q.mean(axis=0) / np.where(denom > 0, denom, 1.0), np.nan)


def relative_geomean(model_scores: Any, baseline_scores: Any, min_ratio: float = 1e-8) -> float:
    """Geometric mean over series of `model / baseline` (e.g. MASE or CRPS relative to seasonal naive).

    Guards: pairs with a NaN/inf score are skipped; a zero baseline counts as ratio 1 when the model
    is zero too (a tie) and is skipped otherwise (the ratio is unbounded); ratios are floored at
    `min_ratio` so a single perfect model score does not make the mean 0. NaN if nothing is left.
    """
    m = _f64(model_scores).ravel()
    b = _f64(baseline_scores).ravel()
    if m.shape != b.shape:
        raise ValueError(f"model {m.shape} and baseline {b.shape} need one score per series each")
    if np.any(m[np.isfinite(m)] < 0) or np.any(b[np.isfinite(b)] < 0):
        raise ValueError("scores must be non-negative")
    finite = np.isfinite(m) & np.isfinite(b)
    tie = finite & (b == 0) & (m == 0)
    usable = finite & (b > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.concatenate([np.maximum(m[usable] / b[usable], min_ratio), np.ones(int(tie.sum()))])
    if ratios.size == 0:
        return float("nan")
    return float(np.exp(np.mean(np.log(ratios))))
