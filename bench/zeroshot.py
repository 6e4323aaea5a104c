"""Zero-shot accuracy of Moirai-MoE against seasonal naive → rows of bench/results/accuracy.json.

One pretraining run of `moirai-moe-tiny-zeroshot` (weather and exchange_rate kept out of training and
validation; router "centroid" after a dense warm-up, or "learned" with its load-balancing loss and no
warm-up), then:
- zero-shot: weather and exchange_rate, the series the model never saw (rows `"zero_shot": true`);
- in-domain: ETTh1/ETTh2/ETTm1/ETTm2, whose *train* rows were in the pretraining mixture (`false`).
Evaluation windows come from each dataset's TEST split only (`data.series.corpus.heldout_series`): the last
`--windows` K windows of every variate, context = the model's lookback, forecast = `--horizon` (default:
the model's horizon), forecast windows ending `stride` apart (default stride = the horizon: adjacent,
non-overlapping forecast windows, rolling evaluation as in GIFT-Eval). Each (variate, window) is one
univariate series (N = 1), forecast in batches.

Metrics per series: `--num-samples` sample paths (a torch.Generator seeded with `--seed`); point
forecast = the median of the samples; MASE (seasonal period from the dataset spec: ETTh 24, ETTm 96,
weather 144, exchange_rate 7) and CRPS (the fair sample estimator, `training.tasks.forecast.metrics`).
Seasonal naive scores the same series (its CRPS is its MAE: a point mass). Reported:
  `mase`, `crps`: geometric mean over series of model / seasonal naive (< 1 beats seasonal naive;
      the Chronos / GIFT-Eval aggregate, DESIGN §8);
  `mase_raw`: mean over series of the model's MASE; `crps_raw`: mean over series of the model's CRPS
      divided by the series' MASE scale (unit free, like MASE); `naive_mase_raw` likewise;
  `naive1_mase`: "repeat the last value" (naive-1) scored like the model (geometric mean of its MASE /
      seasonal naive's): the baseline a random walk such as exchange_rate makes hard to beat;
  `mse`, `mae`: of the median forecast, in *standardised* units (each variate divided by its
      dataset's train-split standard deviation, NaN-aware: the units of the corpus validation metrics
      and of the dataset recipes' rows).
The router goes into `protocol` ("zero-shot/centroid", "in-domain/learned", ...), so the row key of
bench/accuracy.py keeps one row per (router, dataset, horizon) and both routers' rows coexist.

    python bench/zeroshot.py --router centroid                 # trains (~45 min on 2 loaded cores), scores
    python bench/zeroshot.py --router learned
    python bench/zeroshot.py --model-uri models:/moirai-moe-tiny-zeroshot@champion   # score an existing model
    python bench/zeroshot.py --model-uri path/to/bundle --windows 16
    python bench/zeroshot.py --quick                           # smoke recipe, 2 windows, 8 samples, ~1 min
    python bench/zeroshot.py --router centroid --train-seed 1 --out bench/results/zeroshot_seed1.json
`--quick` writes to a temporary `zeroshot_quick.json` (printed), never to bench/results/accuracy.json;
`--out PATH` sends rows to any other file.
"""

from __future__ import annotations

import argparse
import copy
import fcntl
import hashlib
import json
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.accuracy import merge_row, row_key  # noqa: E402
from bench.common import commit, machine  # noqa: E402

RECIPE = "moirai-moe-tiny-zeroshot"
ZERO_SHOT = ("weather", "exchange_rate")
IN_DOMAIN = ("ETTh1", "ETTh2", "ETTm1", "ETTm2")
SOURCE = "seasonal naive (normalized scores < 1 beat it)"
QUICK_WINDOWS, QUICK_SAMPLES = 2, 8
TRAINED_FACTS = ("seed", "train_seconds", "epochs", "best_epoch", "test_nll", "best_val_nll", "train_commit")


@dataclass(frozen=True)
class Scores:
    """One dataset's scores (see the module docstring for each field)."""

    dataset: str
    season: int
    variates: int  # univariate series per window (the dataset's variates)
    windows: int  # K windows per variate
    stride: int
    scored: int  # (variate, window) series scored (those with >= 2 observed context values)
    mase: float
    crps: float
    mase_raw: float
    crps_raw: float
    naive_mase_raw: float
    naive1_mase: float
    mse: float
    mae: float
    rows: tuple[int, int]  # the file rows the windows span (context start, last target row + 1)
    test_rows: tuple[int, int]


def sample_paths(
    model: Any, context: np.ndarray, horizon: int, num_samples: int, seed: int = 0, batch_size: int = 64
) -> np.ndarray:
    """context [S, L] (NaN = missing) -> sample paths [num_samples, S, H] in original units.

    Univariate series (N = 1) in batches of `batch_size`; one generator seeded once with `seed`, so the
    same call gives the same draws."""
    import torch

    generator = torch.Generator().manual_seed(int(seed))
    out = []
    with torch.no_grad():
        for start in range(0, len(context), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(context[start : start + batch_size], dtype=np.float32))
            y = model.forecast_samples(x[..., None], horizon=horizon, num_samples=num_samples, generator=generator)
            out.append(y[..., 0].float().numpy().transpose(1, 0, 2))  # [B, S, H, 1] -> [S, B, H]
    return np.concatenate(out, axis=1).astype(np.float64)


def score(
    samples: np.ndarray, context: np.ndarray, target: np.ndarray, season: int, std: np.ndarray | None = None
) -> dict[str, float]:
    """Scores of sample paths [S_samples, S, H] on series context [S, L] / target [S, H] against seasonal
    naive; `std` [S] standardises MSE/MAE (default 1)."""
    from training.tasks.forecast.metrics import crps_from_samples, mase, mase_scale, relative_geomean, seasonal_naive

    horizon = target.shape[-1]
    point = np.median(samples, axis=0)
    naive = seasonal_naive(context, horizon, season)
    mase_model, mase_naive = mase(point, target, context, season), mase(naive, target, context, season)
    crps_model = crps_from_samples(samples, target)
    crps_naive = crps_from_samples(naive[None], target)  # a point mass: its MAE
    scale = mase_scale(context, season)
    with np.errstate(invalid="ignore", divide="ignore"):
        crps_scaled = np.where(scale > 0, crps_model / np.where(scale > 0, scale, 1.0), np.nan)
    std = np.ones(len(target)) if std is None else np.asarray(std, dtype=np.float64)
    err = (point - target) / std[:, None]
    return {
        "mase": relative_geomean(mase_model, mase_naive),
        "crps": relative_geomean(crps_model, crps_naive),
        "mase_raw": float(np.nanmean(mase_model)),
        "crps_raw": float(np.nanmean(crps_scaled)),
        "naive_mase_raw": float(np.nanmean(mase_naive)),
        "naive1_mase": relative_geomean(mase(seasonal_naive(context, horizon, 1), target, context, season), mase_naive),
        "mse": float(np.nanmean(err**2)),
        "mae": float(np.nanmean(np.abs(err))),
    }


def evaluate_dataset(
    model: Any,
    dataset: str,
    lookback: int,
    horizon: int,
    windows: int,
    num_samples: int,
    seed: int = 0,
    stride: int | None = None,
    batch_size: int = 64,
) -> Scores:
    """Score the model on the last `windows` test-split windows of every variate of `dataset`."""
    from data.series.corpus import heldout_series, train_rows
    from data.series.pretrain import window_stats

    stride = horizon if stride is None else stride
    hs = heldout_series(dataset, lookback, horizon, windows, stride=stride)
    lo, hi = hs.test_rows
    if hs.rows.min() < lo or hs.rows.max() > hi:  # heldout_series promises this; the bench relies on it
        raise AssertionError(
            f"{dataset}: windows span rows {hs.rows.min()}..{hs.rows.max()}, outside test {hs.test_rows}"
        )
    _, std = window_stats(np.asarray(train_rows(dataset), dtype=np.float64))
    n_var = len(hs.variate) // windows
    series_std = np.repeat(std.numpy()[0].astype(np.float64), windows)  # variate-major, like hs
    keep = (np.sum(~np.isnan(hs.context), axis=1) >= 2) & np.any(~np.isnan(hs.target), axis=1)
    samples = sample_paths(model, hs.context[keep], horizon, num_samples, seed, batch_size)
    s = score(
        samples, hs.context[keep].astype(np.float64), hs.target[keep].astype(np.float64), hs.season, series_std[keep]
    )
    return Scores(
        dataset=dataset,
        season=hs.season,
        variates=n_var,
        windows=windows,
        stride=stride,
        scored=int(keep.sum()),
        rows=(int(hs.rows.min()), int(hs.rows.max())),
        test_rows=(int(lo), int(hi)),
        **s,
    )


def plot_forecasts(
    model: Any, datasets: tuple[str, ...], lookback: int, horizon: int, path: Path, num_samples: int, seed: int = 0
) -> Path:
    """A figure of the last test window of the first 3 variates of each dataset: the context's tail, the
    truth, the median and the 10-90 % band of the sample paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from data.series.corpus import heldout_series

    fig, axes = plt.subplots(len(datasets), 3, figsize=(13, 3.2 * len(datasets)), squeeze=False)
    for row, dataset in enumerate(datasets):
        hs = heldout_series(dataset, lookback, horizon, 1)
        context, target = hs.context[:3].astype(np.float64), hs.target[:3].astype(np.float64)
        paths = sample_paths(model, context, horizon, num_samples, seed)  # [S, 3, H]
        lo, med, hi = np.quantile(paths, [0.1, 0.5, 0.9], axis=0)
        tail = min(lookback, 2 * horizon)
        for j, ax in enumerate(axes[row]):
            if j >= len(context):
                ax.axis("off")
                continue
            past, future = np.arange(-tail, 0), np.arange(horizon)
            ax.plot(past, context[j, -tail:], color="0.3", lw=1, label="context")
            ax.plot(future, target[j], color="black", lw=1, label="truth")
            ax.fill_between(future, lo[j], hi[j], color="tab:blue", alpha=0.25, label="10-90 %")
            ax.plot(future, med[j], color="tab:blue", lw=1.5, label="median")
            ax.set_title(f"{dataset} · variate {j} · last test window", fontsize=9)
            if row == 0 and j == 0:
                ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), digits)


def make_row(s: Scores, *, model: str, router: str, zero_shot: bool, horizon: int, lookback: int, **extra: Any) -> dict:
    """The accuracy.json row of one dataset (`extra`: num_samples, train_seconds, seed, epochs, ...)."""
    kind = "zero-shot" if zero_shot else "in-domain"
    return {
        "model": model,
        "protocol": f"{kind}/{router}",
        "dataset": s.dataset,
        "horizon": int(horizon),
        "lookback": int(lookback),
        "mse": _r(s.mse),
        "mae": _r(s.mae),
        "metric_units": "mse/mae: median forecast, standardised by the train-split std per variate",
        "mase": _r(s.mase),
        "crps": _r(s.crps),
        "mase_raw": _r(s.mase_raw),
        "crps_raw": _r(s.crps_raw),
        "naive_mase_raw": _r(s.naive_mase_raw),
        "naive1_mase": _r(s.naive1_mase),
        "series": s.variates,
        "windows": s.windows,
        "stride": s.stride,
        "season": s.season,
        "test_windows": s.scored,
        "rows": list(s.rows),
        "test_rows": list(s.test_rows),
        "zero_shot": bool(zero_shot),
        "router": router,
        **extra,
        "paper": {"mse": None, "mae": None, "source": SOURCE},
    }


def merge_into(path: Path, row: dict[str, Any]) -> list[dict[str, Any]]:
    """bench.accuracy.merge_row for another file (same row key, same locked read-modify-write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = json.loads(path.read_text()).get("results", []) if path.exists() else []
        rows = [r for r in rows if row_key(r) != row_key(row)]
        rows.append(row)
        rows.sort(key=row_key)
        body = {"commit": commit(), "machine": machine(), "command": " ".join(["python", *sys.argv])}
        path.write_text(json.dumps({**body, "baseline": SOURCE, "results": rows}, indent=2) + "\n")
    return rows


def zeroshot_recipe(router: str, quick: bool = False, seed: int | None = None):
    """`moirai-moe-tiny-zeroshot` with `router` (the learned router gets no warm-up: it trains its own
    routing with the load-balancing loss); `quick`: its smoke version (tiny model, a few steps);
    `seed`: the training seed (default: the recipe's)."""
    from training.recipes import apply_overrides, get_recipe, smoke

    overrides = [f'model.router="{router}"'] + ([] if seed is None else [f"trainer.seed={int(seed)}"])
    recipe = apply_overrides(get_recipe(RECIPE), overrides)
    if router == "learned":
        recipe = replace(recipe, before_fit=None)
    if quick:
        recipe = smoke(recipe)
    return replace(recipe, experiment="bench-zeroshot", trainer=replace(recipe.trainer, progress_bar=False))


def train_model(recipe: Any, store: str) -> tuple[Any, dict[str, Any]]:
    """Train the recipe (not registered, MLflow in `store`) and return the trained model (what its
    bundle would hold: best weights, after the test) and facts for the rows."""
    import lightning as L

    from training.run import train

    class KeepModel(L.Callback):
        """The model as the final test leaves it (the last test of the run: warm-up stages come first)."""

        model: Any = None

        def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            self.model = copy.deepcopy(pl_module.model).cpu().eval()  # type: ignore[union-attr]

    keep = KeepModel()
    t0 = time.perf_counter()
    result = train(recipe, register=False, uri=f"sqlite:///{store}/mlflow.db", callbacks=[keep])
    if keep.model is None:
        raise RuntimeError("training finished without a test pass: no model to score")
    m = result.metrics
    facts = {
        "train_seconds": round(time.perf_counter() - t0, 1),
        "epochs": int(m.get("epochs", 0)),
        "best_epoch": int(m.get("best_epoch", 0)),
        "seed": recipe.trainer.seed,
        "recipe": recipe.name,
        "run_id": result.run_id,
        "test_nll": _r(m.get("test_nll")),
        "best_val_nll": _r(m.get("best_val_nll")),
    }
    return keep.model, facts


def save_trained(model: Any, facts: dict[str, Any], directory: Path) -> Path:
    """The trained model as a bundle that `--model-uri` (and `seer serve NAME=PATH`) can load."""
    from inference.bundle import save_bundle

    cfg = model.config
    meta = {
        "name": str(facts["recipe"]),
        "model": "moirai_moe",
        "task": "forecast",
        "model_config": cfg.to_dict(),
        "transform": {"kind": "instance", "scaler": None, "variates": None, "calendar_freq": "",
                      "step_seconds": None, "lookback": cfg.lookback, "horizon": cfg.horizon,
                      "max_horizon": cfg.max_horizon, "dataset": "corpus"},
        "probabilistic": True,
        "recipe": facts["recipe"],
        "run_id": facts.get("run_id"),
    }  # fmt: skip
    return save_bundle(directory, model, meta)


def load_model(uri: str) -> tuple[Any, dict[str, Any]]:
    """A registered (`models:/NAME@ALIAS`, `models:/NAME/VERSION`, `runs:/...`) or local bundle."""
    from inference.bundle import WEIGHTS_FILE, find_bundle_dir, load_bundle

    local = Path(uri)
    if not local.exists():
        import mlflow

        from training.tracking import tracking_uri

        mlflow.set_tracking_uri(tracking_uri())
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    model, meta = load_bundle(local)
    facts = {"model_uri": uri, "recipe": meta.get("recipe"), "run_id": meta.get("run_id"), "epochs": None}
    # A shipped pretrained bundle (pretrained/*/) says how it was trained; the rows keep that and the
    # weights file's SHA-256, so a row names the exact file it scored.
    facts.update({k: meta["trained"][k] for k in TRAINED_FACTS if k in meta.get("trained", {})})
    weights = find_bundle_dir(local) / WEIGHTS_FILE
    facts["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    return model, facts


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"\n{'protocol':20s} {'dataset':13s} {'H':>4s} {'MASE/SN':>8s} {'CRPS/SN':>8s} {'MASE':>7s} "
        f"{'MSE':>7s} {'MAE':>7s} {'series':>7s}"
    )
    f = lambda v: "    nan" if v is None else f"{v:7.3f}"  # noqa: E731
    for r in rows:
        print(
            f"{r['protocol']:20s} {r['dataset']:13s} {r['horizon']:4d} {f(r['mase']):>8s} {f(r['crps']):>8s} "
            f"{f(r['mase_raw'])} {f(r['mse'])} {f(r['mae'])} {r['test_windows']:7d}"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--router", choices=["centroid", "learned"], default="centroid", help="router of the trained model")
    ap.add_argument(
        "--model-uri", default=None, help="score this model instead of training (models:/NAME@ALIAS or a bundle path)"
    )
    ap.add_argument("--quick", action="store_true", help="smoke recipe, 2 windows, 8 samples, temporary output")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--num-samples", type=int, default=None, help="sample paths per series (default 100; quick 8)")
    ap.add_argument("--windows", type=int, default=None, help="windows per variate (default 8; quick 2)")
    ap.add_argument("--stride", type=int, default=None, help="steps between forecast windows (default: the horizon)")
    ap.add_argument("--horizon", type=int, default=None, help="forecast steps (default: the model's, <= max_horizon)")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed")
    ap.add_argument(
        "--train-seed", type=int, default=None, help="training seed (default: the recipe's); pair with --out"
    )
    ap.add_argument("--datasets", nargs="+", default=None, help=f"default: {' '.join(ZERO_SHOT + IN_DOMAIN)}")
    ap.add_argument("--out", default=None, help="rows go here instead of bench/results/accuracy.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    started_at = commit()  # the code the rows were measured with (HEAD can move while a long run trains)
    command = " ".join(["python", "bench/zeroshot.py", *(sys.argv[1:] if argv is None else argv)])
    num_samples = args.num_samples or (QUICK_SAMPLES if args.quick else 100)
    windows = args.windows or (QUICK_WINDOWS if args.quick else 8)
    out = Path(args.out).resolve() if args.out else None
    store = tempfile.mkdtemp(prefix="seer-zeroshot-")
    if args.quick and out is None:
        out = Path(store) / "zeroshot_quick.json"
    model_uri = args.model_uri
    if model_uri and Path(model_uri).exists():
        model_uri = str(Path(model_uri).resolve())
    cwd = os.getcwd()
    os.chdir(store)  # MLflow artifacts of the bench run stay out of the repo
    try:
        if model_uri:
            model, facts = load_model(model_uri)
            facts.setdefault("train_seconds", None)
            facts.setdefault("seed", None)
        else:
            model, facts = train_model(zeroshot_recipe(args.router, args.quick, args.train_seed), store)
            bundle = save_trained(model, facts, Path(store) / "bundle")
            print(f"trained model saved to {bundle} (score it again: --model-uri {bundle})", flush=True)
    finally:
        os.chdir(cwd)
    cfg = model.config
    router = "dense" if getattr(cfg, "dense", False) else cfg.router
    horizon = args.horizon or cfg.horizon
    if not 1 <= horizon <= cfg.max_horizon:
        raise SystemExit(f"--horizon must be in [1, {cfg.max_horizon}]")
    lookback = cfg.lookback
    name = "moirai_moe"
    # Weather/exchange_rate rows are zero-shot only for a model whose pretraining left them out.
    recipe_name = str(facts.get("recipe") or "")
    held_out = recipe_name.endswith("-zeroshot") or not recipe_name
    if not recipe_name:
        print("note: the model names no recipe; weather/exchange_rate are assumed unseen (zero-shot)")
    elif not held_out:
        print(f"note: {recipe_name} pretrained on weather/exchange_rate: their rows are in-domain")
    rows: list[dict[str, Any]] = []
    for dataset in args.datasets or [*ZERO_SHOT, *IN_DOMAIN]:
        t0 = time.perf_counter()
        s = evaluate_dataset(model, dataset, lookback, horizon, windows, num_samples, args.seed, args.stride)
        row = make_row(
            s,
            model=name,
            router=router,
            zero_shot=held_out and dataset in ZERO_SHOT,
            horizon=horizon,
            lookback=lookback,
            num_samples=num_samples,
            sample_seed=args.seed,
            eval_seconds=round(time.perf_counter() - t0, 1),
            quick=bool(args.quick),
            commit=started_at,
            command=command,
            **facts,
        )
        if out is None:
            path, _ = merge_row(row)
        else:
            merge_into(out, row)
            path = out
        rows.append(row)
        print(
            f"{row['protocol']} {dataset} H={horizon}: MASE/SN {row['mase']} CRPS/SN {row['crps']} "
            f"({s.scored} series) → {path}",
            flush=True,
        )
    print_table(rows)
    if args.quick:
        plot_dir = Path(store)
    else:
        plot_dir = out.parent if out is not None else Path(__file__).resolve().parent / "results"
    suffix = "" if args.train_seed is None else f"_seed{args.train_seed}"
    figure = plot_forecasts(
        model, ZERO_SHOT, lookback, horizon, plot_dir / f"zeroshot_{router}{suffix}.png", num_samples, args.seed
    )
    print(f"forecast plots: {figure}")
    if out is not None:
        print(f"\nrows written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
