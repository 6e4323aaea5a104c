"""Does a pretrained Moirai-MoE forecast a random walk by persistence? → bench/results/walk_probe.json

A probe of the failure behind the exchange_rate zero-shot row: on series whose best point forecast is
the last value, the model's median is scored against "repeat the last value" (naive-1). Four families
of fresh walks, drawn here with numpy (not by `data.series.synthetic`, so a model trained on that generator
is not scored on its own pool):
- `gaussian`: a Gaussian random walk;
- `t3+drift`: Student-t (3 degrees of freedom) shocks and a drift of 0.05 shock sd per step;
- `noisy`: a Gaussian walk observed with noise of 0.3 shock sd (persistence is no longer optimal);
- `weekends`: a Gaussian walk with every 6th and 7th step a copy of the one before (forward-filled
  non-trading days, as in exchange_rate).
Each family: `--series` series of context L (the model's lookback) and horizon H (the model's), the
median of `--num-samples` sample paths, MASE with season 7; reported as geometric means over series of
model / naive-1 (< 1: better than persistence) and of model / seasonal naive, and the pull toward
the context mean at the last step (`reversion_slope`: the slope of the median's move from the last
value on the context mean's distance from it, in context standard deviations; 0 is right for a walk).

    python bench/walk_probe.py BUNDLE [BUNDLE ...] [--label NAME ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import write  # noqa: E402
from bench.zeroshot import load_model, sample_paths  # noqa: E402

FAMILIES = ("gaussian", "t3+drift", "noisy", "weekends")
SEASON = 7


def walks(family: str, n: int, length: int, seed: int) -> np.ndarray:
    """`[n, length]` float64 series of one probe family."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; use one of {FAMILIES}")
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    if family == "t3+drift":
        shocks = rng.standard_t(3, size=(n, length)) / np.sqrt(3.0) + 0.05
        return np.cumsum(shocks, axis=1)
    y = np.cumsum(rng.standard_normal((n, length)), axis=1)
    if family == "noisy":
        return y + rng.normal(0.0, 0.3, size=(n, length))
    if family == "weekends":
        for k in range(length):
            if k % 7 in (5, 6):
                y[:, k] = y[:, k - 1]
    return y


def probe(model: Any, family: str, n: int, num_samples: int, seed: int) -> dict[str, float]:
    from training.tasks.forecast.metrics import mase, relative_geomean, seasonal_naive

    lookback, horizon = model.config.lookback, model.config.horizon
    y = walks(family, n, lookback + horizon, seed)
    context, target = y[:, :lookback], y[:, lookback:]
    point = np.median(sample_paths(model, context, horizon, num_samples, seed), axis=0)
    m = mase(point, target, context, SEASON)
    naive1 = mase(seasonal_naive(context, horizon, 1), target, context, SEASON)
    naive = mase(seasonal_naive(context, horizon, SEASON), target, context, SEASON)
    # Pull toward the context mean at the last step: slope of (median − last) on (mean − last), both in
    # context standard deviations (0 for a random walk's ideal forecast, 1 = forecasts the mean).
    sd = context.std(axis=1)
    gap = (context.mean(axis=1) - context[:, -1]) / sd
    slope = float(np.polyfit(gap, (point[:, -1] - context[:, -1]) / sd, 1)[0])
    return {
        "reversion_slope": slope,
        "model_vs_naive1": relative_geomean(m, naive1),
        "model_vs_seasonal_naive": relative_geomean(m, naive),
        "naive1_vs_seasonal_naive": relative_geomean(naive1, naive),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="+", help="model bundles (or models:/ URIs) to probe")
    ap.add_argument("--label", nargs="*", default=None, help="one name per bundle (default: the bundle path)")
    ap.add_argument("--series", type=int, default=64, help="series per family")
    ap.add_argument("--num-samples", type=int, default=50, help="sample paths per series")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args(argv)
    labels = args.label or args.bundles
    if len(labels) != len(args.bundles):
        raise SystemExit("--label needs one name per bundle")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rows = []
    print(f"{'model':34s} {'family':9s} {'model/naive-1':>13s} {'model/SN':>9s} {'naive-1/SN':>10s} {'pull':>6s}")
    for label, uri in zip(labels, args.bundles, strict=True):
        model, facts = load_model(uri)
        model.eval()
        for family in FAMILIES:
            r = probe(model, family, args.series, args.num_samples, args.seed)
            rows.append({"model": label, "recipe": facts.get("recipe"), "router": model.config.router,
                         "family": family, **{k: round(v, 4) for k, v in r.items()}})  # fmt: skip
            print(
                f"{label:34s} {family:9s} {r['model_vs_naive1']:13.3f} {r['model_vs_seasonal_naive']:9.3f} "
                f"{r['naive1_vs_seasonal_naive']:10.3f} {r['reversion_slope']:6.3f}",
                flush=True,
            )
    path = write(
        "walk_probe",
        {"series": args.series, "num_samples": args.num_samples, "season": SEASON, "seed": args.seed, "rows": rows},
    )
    print(f"→ {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
