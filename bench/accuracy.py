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
"""

from __future__ import annotations

import argparse
import fcntl
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


def merge_row(row: dict[str, Any]) -> tuple[Path, list[dict[str, Any]]]:
    """Add (or replace) one row in accuracy.json under an exclusive lock; return the path and all rows."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / ".accuracy.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = [r for r in read("accuracy").get("results", []) if row_key(r) != row_key(row)]
        rows.append(row)
        rows.sort(key=row_key)
        path = write("accuracy", {"baseline": "published figures on the same protocol", "results": rows})
    return path, rows


def recipe_for(model: str, dataset: str, horizon: int, protocol: str):
    from training.recipes.informer import informer_ett
    from training.recipes.itransformer import itransformer_ett

    if model == "itransformer":
        if protocol != "today":
            raise SystemExit("iTransformer has one protocol: today")
        return itransformer_ett(dataset, horizon)
    return informer_ett(dataset, horizon, protocol)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["itransformer", "informer"], default="itransformer")
    ap.add_argument("--protocol", choices=["today", "original"], default="today")
    ap.add_argument("--datasets", nargs="+", default=None, help="default: every dataset with an anchor")
    ap.add_argument("--horizons", nargs="+", type=int, default=None, help="default: every anchored horizon")
    ap.add_argument("--resume", action="store_true", help="keep rows already measured")
    ap.add_argument("--max-epochs", type=int, default=None, help="cap on epochs (default: the recipe's)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--precision", default=None, help="Lightning precision, e.g. bf16-mixed (default: the recipe's)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from training.run import train

    started_at = commit()  # the code the rows were measured with (HEAD can move while a long run trains)
    anchors, source = ANCHORS[(args.model, args.protocol)]
    datasets = args.datasets or sorted({d for d, _ in anchors})
    horizons = args.horizons or sorted({h for _, h in anchors})
    done = {row_key(r) for r in read("accuracy").get("results", [])} if args.resume else set()
    store = tempfile.mkdtemp(prefix="seer-bench-")
    os.chdir(store)  # MLflow artifacts of the bench runs stay out of the repo
    rows: list[dict[str, Any]] = []
    for dataset in datasets:
        for horizon in horizons:
            if (dataset, horizon) not in anchors or (args.model, args.protocol, dataset, horizon) in done:
                continue
            recipe = recipe_for(args.model, dataset, horizon, args.protocol)
            trainer = replace(recipe.trainer, progress_bar=False)
            if args.max_epochs:
                trainer = replace(trainer, max_epochs=args.max_epochs)
            if args.precision:
                trainer = replace(trainer, precision=args.precision)
            recipe = replace(recipe, experiment="bench-accuracy", trainer=trainer)
            t0 = time.perf_counter()
            result = train(recipe, register=False, uri=f"sqlite:///{store}/mlflow.db")
            m = result.metrics
            paper_mse, paper_mae = anchors[(dataset, horizon)]
            row = {
                "model": args.model,
                "protocol": args.protocol,
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
                "commit": started_at,
                "command": " ".join(["python", *sys.argv]),
                "paper": {"mse": paper_mse, "mae": paper_mae, "source": source},
                "mse_vs_paper": round(m["test_mse"] / paper_mse - 1, 4),
            }
            path, rows = merge_row(row)
            print(
                f"{args.model} {args.protocol} {dataset} H={horizon}: mse {m['test_mse']:.4f} (paper {paper_mse}) "
                f"mae {m['test_mae']:.4f} (paper {paper_mae}) windows {int(m['test_windows'])} → {path}",
                flush=True,
            )
    print_table(rows or read("accuracy").get("results", []))
    return 0


def print_table(rows: list[dict]) -> None:
    def num(value: float | None) -> str:
        return f"{value:7.3f}" if value is not None else f"{'—':>7s}"

    print(
        f"\n{'model':13s} {'protocol':18s} {'dataset':13s} {'H':>4s} {'MSE':>7s} {'anchor':>7s} {'MAE':>7s} "
        f"{'anchor':>7s} {'windows':>7s}"
    )
    for r in rows:
        print(
            f"{r['model']:13s} {r.get('protocol', 'today'):18s} {r['dataset']:13s} {r['horizon']:4d} {num(r['mse'])} "
            f"{num(r['paper'].get('mse'))} {num(r['mae'])} {num(r['paper'].get('mae'))} {r['test_windows']:7d}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
