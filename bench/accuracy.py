"""Accuracy against the papers' tables on the same protocol → bench/results/accuracy.json.

- iTransformer on ETTh1/ETTh2/ETTm1/ETTm2, lookback 96, horizons 96/192/336/720, official settings
  (recipes `itransformer-<dataset>`). Anchor: the paper's full-results table.
- Informer, protocol "today" (TSLib scripts: lookback 96, label 48, factor 3), same 16 rows. Anchor:
  the Informer rows of TimesNet (Wu et al., ICLR 2023) Table 13, run with TSLib.
- Informer, protocol "original" (official Informer2020 scripts, per-horizon lookback/label), ETTh1
  horizons 24/48/168/336/720. Anchor: the official README's multivariate table.
MSE/MAE on the scaled data over every test window (the official Informer code drops the last
incomplete test batch; we never drop windows).

    python bench/accuracy.py                                   # iTransformer, all 16 rows
    python bench/accuracy.py --model informer --datasets ETTh1 --horizons 96
    python bench/accuracy.py --model informer --protocol original --datasets ETTh1 --horizons 24
Rows are written as they finish (merged into the file under a lock, so several bench processes can
run side by side), so an interrupted run keeps what it measured; `--resume` skips rows already there.
Each row names the device it trained on and the kernels it used (`core.ops.dispatch.used_impls`).

    python bench/accuracy.py --rows informer:today:ETTh1:192 informer:original:ETTh1:48 --budget-s 300
`--rows MODEL:PROTOCOL:DATASET:H ...` runs those rows in that order (instead of --model/--datasets/...);
`--budget-s` starts a row only while its predicted time (the last row's seconds scaled by lookback +
horizon) fits in what is left, and records the rows it skipped; `--out PATH` writes there instead of
bench/results/accuracy.json; `--smoke` trains each recipe's tiny config for 2 batches (proves the path,
measures nothing; such rows say `"smoke": true`).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import logging
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS, commit, read, write  # noqa: E402

RowSpec = tuple[str, str, str, int]  # (model, protocol, dataset, horizon)

PAPER = "Liu et al., iTransformer, ICLR 2024, Table 10 (full results), lookback 96"
INFORMER_TODAY_SOURCE = "Wu et al., TimesNet, ICLR 2023, Table 13 (Informer, TSLib), lookback 96"
INFORMER_ORIGINAL_SOURCE = "zhouhaoyi/Informer2020 README, multivariate ETTh1 (Zhou et al., AAAI 2021)"
# (MSE, MAE) from the paper.
ITRANSFORMER_PAPER = {
    ("ETTh1", 96): (0.386, 0.405),
    ("ETTh1", 192): (0.441, 0.436),
    ("ETTh1", 336): (0.487, 0.458),
    ("ETTh1", 720): (0.503, 0.491),
    ("ETTh2", 96): (0.297, 0.349),
    ("ETTh2", 192): (0.380, 0.400),
    ("ETTh2", 336): (0.428, 0.432),
    ("ETTh2", 720): (0.427, 0.445),
    ("ETTm1", 96): (0.334, 0.368),
    ("ETTm1", 192): (0.377, 0.391),
    ("ETTm1", 336): (0.426, 0.420),
    ("ETTm1", 720): (0.491, 0.459),
    ("ETTm2", 96): (0.180, 0.264),
    ("ETTm2", 192): (0.250, 0.309),
    ("ETTm2", 336): (0.311, 0.348),
    ("ETTm2", 720): (0.412, 0.407),
}


INFORMER_TODAY = {
    ("ETTh1", 96): (0.865, 0.713),
    ("ETTh1", 192): (1.008, 0.792),
    ("ETTh1", 336): (1.107, 0.809),
    ("ETTh1", 720): (1.181, 0.865),
    ("ETTh2", 96): (3.755, 1.525),
    ("ETTh2", 192): (5.602, 1.931),
    ("ETTh2", 336): (4.721, 1.835),
    ("ETTh2", 720): (3.647, 1.625),
    ("ETTm1", 96): (0.672, 0.571),
    ("ETTm1", 192): (0.795, 0.669),
    ("ETTm1", 336): (1.212, 0.871),
    ("ETTm1", 720): (1.166, 0.823),
    ("ETTm2", 96): (0.365, 0.453),
    ("ETTm2", 192): (0.533, 0.563),
    ("ETTm2", 336): (1.363, 0.887),
    ("ETTm2", 720): (3.379, 1.338),
}
INFORMER_ORIGINAL = {
    ("ETTh1", 24): (0.577, 0.549),
    ("ETTh1", 48): (0.685, 0.625),
    ("ETTh1", 168): (0.931, 0.752),
    ("ETTh1", 336): (1.128, 0.873),
    ("ETTh1", 720): (1.215, 0.896),
}
ANCHORS = {
    ("itransformer", "today"): (ITRANSFORMER_PAPER, PAPER),
    ("informer", "today"): (INFORMER_TODAY, INFORMER_TODAY_SOURCE),
    ("informer", "original"): (INFORMER_ORIGINAL, INFORMER_ORIGINAL_SOURCE),
}


def row_key(r: dict[str, Any]) -> tuple[str, str, str, int]:
    return (r["model"], r.get("protocol", "today"), r["dataset"], int(r["horizon"]))


def _lock_path(out: Path | None) -> Path:
    """bench/results/.accuracy.lock for the default file; for another file a lock in the temp dir (a results
    folder such as a GPU run's stays free of anything but results)."""
    if out is None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        return RESULTS / ".accuracy.lock"
    digest = hashlib.sha1(str(Path(out).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"seer-accuracy-{digest}.lock"


def merge_row(
    row: dict[str, Any] | None, out: Path | None = None, skipped: list[dict[str, Any]] | None = None
) -> tuple[Path, list[dict[str, Any]]]:
    """Add (or replace) one row in accuracy.json (or `out`) under an exclusive lock; return the path and all
    rows. `skipped` (rows a budget left out) replaces the file's list of skipped rows."""
    with open(_lock_path(out), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = read("accuracy", out)
        rows = [r for r in old.get("results", []) if row is None or row_key(r) != row_key(row)]
        rows += [row] if row is not None else []
        rows.sort(key=row_key)
        payload: dict[str, Any] = {"baseline": "published figures on the same protocol", "results": rows}
        if skipped is not None or old.get("skipped"):
            payload["skipped"] = skipped if skipped is not None else old["skipped"]
        path = write("accuracy", payload, out)
    return path, rows


def recipe_for(model: str, dataset: str, horizon: int, protocol: str):
    from training.recipes.informer import informer_ett
    from training.recipes.itransformer import itransformer_ett

    if model == "itransformer":
        if protocol != "today":
            raise SystemExit("iTransformer has one protocol: today")
        return itransformer_ett(dataset, horizon)
    return informer_ett(dataset, horizon, protocol)


def _parse_row(text: str) -> RowSpec:
    """ "informer:today:ETTh1:192" -> ("informer", "today", "ETTh1", 192), checked against the anchors."""
    parts = text.split(":")
    if len(parts) != 4 or not parts[3].isdigit():
        raise argparse.ArgumentTypeError(f"a row is MODEL:PROTOCOL:DATASET:H, got {text!r}")
    spec = (parts[0], parts[1], parts[2], int(parts[3]))
    if (spec[0], spec[1]) not in ANCHORS or (spec[2], spec[3]) not in ANCHORS[(spec[0], spec[1])][0]:
        raise argparse.ArgumentTypeError(f"no anchored row {text!r}")
    return spec


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["itransformer", "informer"], default="itransformer")
    ap.add_argument("--protocol", choices=["today", "original"], default="today")
    ap.add_argument("--datasets", nargs="+", default=None, help="default: every dataset with an anchor")
    ap.add_argument("--horizons", nargs="+", type=int, default=None, help="default: every anchored horizon")
    ap.add_argument("--rows", nargs="+", type=_parse_row, default=None, help="MODEL:PROTOCOL:DATASET:H, in order")
    ap.add_argument("--resume", action="store_true", help="keep rows already measured")
    ap.add_argument("--max-epochs", type=int, default=None, help="cap on epochs (default: the recipe's)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--precision", default=None, help="Lightning precision, e.g. bf16-mixed (default: the recipe's)")
    ap.add_argument("--budget-s", type=float, default=None, help="start a row only while it is predicted to fit")
    ap.add_argument("--out", type=Path, default=None, help="result file (default bench/results/accuracy.json)")
    ap.add_argument("--smoke", action="store_true", help="tiny config, 2 batches: proves the path, measures nothing")
    return ap.parse_args()


def row_specs(args: argparse.Namespace) -> list[RowSpec]:
    """The rows to run, in order: `--rows`, else every anchored (dataset, horizon) of --model/--protocol."""
    if args.rows:
        return list(args.rows)
    anchors, _ = ANCHORS[(args.model, args.protocol)]
    datasets = args.datasets or sorted({d for d, _ in anchors})
    horizons = args.horizons or sorted({h for _, h in anchors})
    return [(args.model, args.protocol, d, h) for d in datasets for h in horizons if (d, h) in anchors]


def _recipe(spec: RowSpec, args: argparse.Namespace):
    model, protocol, dataset, horizon = spec
    recipe = recipe_for(model, dataset, horizon, protocol)
    trainer = replace(recipe.trainer, progress_bar=False)
    if args.max_epochs:
        trainer = replace(trainer, max_epochs=args.max_epochs)
    if args.precision:
        trainer = replace(trainer, precision=args.precision)
    recipe = replace(recipe, experiment="bench-accuracy", trainer=trainer)
    if args.smoke:
        from training.recipes import smoke

        recipe = smoke(recipe)
    return recipe


def _device() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def _train_row(spec: RowSpec, recipe, store: str, started_at: str, smoke: bool) -> dict[str, Any]:
    """Train one recipe and return its accuracy row."""
    from core.ops.dispatch import used_impls
    from training.run import train

    model, protocol, dataset, horizon = spec
    t0 = time.perf_counter()
    result = train(recipe, register=False, uri=f"sqlite:///{store}/mlflow.db")
    m = result.metrics
    anchors, source = ANCHORS[(model, protocol)]
    paper_mse, paper_mae = anchors[(dataset, horizon)]
    row = {
        "model": model,
        "protocol": protocol,
        "dataset": dataset,
        "horizon": horizon,
        "lookback": recipe.data.lookback,
        "mse": round(m["test_mse"], 4),
        "mae": round(m["test_mae"], 4),
        "test_windows": int(m["test_windows"]),
        "d_model": recipe.model_config.d_model,
        "epochs": int(m["epochs"]),
        "best_epoch": int(m["best_epoch"]),
        "max_epochs": recipe.trainer.max_epochs,
        "precision": recipe.trainer.precision,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "seed": recipe.trainer.seed,
        "device": _device(),
        "kernels": dict(sorted(used_impls().items())),
        "commit": started_at,
        "command": " ".join(["python", *sys.argv]),
        "paper": {"mse": paper_mse, "mae": paper_mae, "source": source},
        "mse_vs_paper": round(m["test_mse"] / paper_mse - 1, 4),
    }
    if smoke:
        row["smoke"] = True
    return row


def _predicted_s(last: tuple[float, int] | None, recipe) -> float:
    """A row's predicted seconds: the last row's, scaled by lookback + horizon (0 before any row ran)."""
    if last is None:
        return 0.0
    seconds, size = last
    return seconds * (recipe.data.lookback + recipe.data.horizon) / size


def main() -> int:
    args = _args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    started_at = commit()  # the code the rows were measured with (HEAD can move while a long run trains)
    done = {row_key(r) for r in read("accuracy", args.out).get("results", [])} if args.resume else set()
    store = tempfile.mkdtemp(prefix="seer-bench-")
    os.chdir(store)  # MLflow artifacts of the bench runs stay out of the repo
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    last: tuple[float, int] | None = None  # (seconds, lookback + horizon) of the last row trained
    for spec in row_specs(args):
        if spec in done:
            continue
        recipe = _recipe(spec, args)
        model, protocol, dataset, horizon = spec
        if args.budget_s is not None:
            left = args.budget_s - (time.perf_counter() - t_start)
            predicted = _predicted_s(last, recipe)
            if predicted > left or left <= 0:
                reason = f"budget: {left:.0f} s left, predicted {predicted:.0f} s"
                skip = {"model": model, "protocol": protocol, "dataset": dataset, "horizon": horizon}
                skipped.append({**skip, "reason": reason})
                print(f"skip {model} {protocol} {dataset} H={horizon}: {reason}", flush=True)
                merge_row(None, args.out, skipped)
                continue
        row = _train_row(spec, recipe, store, started_at, args.smoke)
        last = (row["train_seconds"], recipe.data.lookback + recipe.data.horizon)
        path, rows = merge_row(row, args.out, skipped if args.budget_s is not None else None)
        print(
            f"{model} {protocol} {dataset} H={horizon}: mse {row['mse']:.4f} (paper {row['paper']['mse']}) "
            f"mae {row['mae']:.4f} (paper {row['paper']['mae']}) windows {row['test_windows']} "
            f"{row['train_seconds']:.0f} s on {row['device']} → {path}",
            flush=True,
        )
    print_table(rows or read("accuracy", args.out).get("results", []))
    return 0


def print_table(rows: list[dict]) -> None:
    def num(value: float | None) -> str:
        return f"{value:7.3f}" if value is not None else f"{'—':>7s}"

    print(
        f"\n{'model':13s} {'protocol':18s} {'dataset':13s} {'H':>4s} {'MSE':>7s} {'anchor':>7s} {'MAE':>7s} "
        f"{'anchor':>7s} {'windows':>7s}"
    )
    for r in (r for r in rows if r.get("task", "forecast") == "forecast"):  # classify rows: nids_accuracy.py
        print(
            f"{r['model']:13s} {r.get('protocol', 'today'):18s} {r['dataset']:13s} {r['horizon']:4d} {num(r['mse'])} "
            f"{num(r['paper'].get('mse'))} {num(r['mae'])} {num(r['paper'].get('mae'))} {r['test_windows']:7d}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
