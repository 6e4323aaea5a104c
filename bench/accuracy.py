"""Accuracy against the papers' tables on the same protocol → bench/results/accuracy.json.

iTransformer on ETTh1/ETTh2/ETTm1/ETTm2, lookback 96, horizons 96/192/336/720, official settings
(recipes `itransformer-<dataset>` at each horizon). MSE/MAE on the scaled data over every test window.
Baseline: the paper's Table (Liu et al., ICLR 2024, full results), printed beside ours.

    python bench/accuracy.py                       # all 16 rows (CPU: about an hour on 2 cores)
    python bench/accuracy.py --datasets ETTh1 --horizons 96
Rows are written as they finish, so an interrupted run keeps what it measured; `--resume` skips rows
already in the file for the same commit-independent configuration.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import read, write  # noqa: E402

PAPER = "Liu et al., iTransformer, ICLR 2024, Table 10 (full results), lookback 96"
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["ETTh1", "ETTh2", "ETTm1", "ETTm2"])
    ap.add_argument("--horizons", nargs="+", type=int, default=[96, 192, 336, 720])
    ap.add_argument("--resume", action="store_true", help="keep rows already measured")
    ap.add_argument("--max-epochs", type=int, default=None, help="cap on epochs (default: the recipe's 10)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from training.recipes import itransformer_ett
    from training.run import train

    rows = read("accuracy").get("results", []) if args.resume else []
    done = {(r["model"], r["dataset"], r["horizon"]) for r in rows}
    store = tempfile.mkdtemp(prefix="seer-bench-")
    os.chdir(store)  # MLflow artifacts of the bench runs stay out of the repo
    for dataset in args.datasets:
        for horizon in args.horizons:
            if ("itransformer", dataset, horizon) in done:
                continue
            recipe = itransformer_ett(dataset, horizon)
            trainer = replace(recipe.trainer, progress_bar=False)
            if args.max_epochs:
                trainer = replace(trainer, max_epochs=args.max_epochs)
            recipe = replace(recipe, experiment="bench-accuracy", trainer=trainer)
            t0 = time.perf_counter()
            result = train(recipe, register=False, uri=f"sqlite:///{store}/mlflow.db")
            m = result.metrics
            paper_mse, paper_mae = ITRANSFORMER_PAPER[(dataset, horizon)]
            rows.append(
                {
                    "model": "itransformer",
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
                    "train_seconds": round(time.perf_counter() - t0, 1),
                    "seed": recipe.trainer.seed,
                    "paper": {"mse": paper_mse, "mae": paper_mae, "source": PAPER},
                    "mse_vs_paper": round(m["test_mse"] / paper_mse - 1, 4),
                }
            )
            rows.sort(key=lambda r: (r["model"], r["dataset"], r["horizon"]))
            path = write("accuracy", {"baseline": "paper figures on the same protocol", "results": rows})
            print(
                f"{dataset} H={horizon}: mse {m['test_mse']:.4f} (paper {paper_mse}) mae {m['test_mae']:.4f} "
                f"(paper {paper_mae}) windows {int(m['test_windows'])} → {path}",
                flush=True,
            )
    print_table(rows)
    return 0


def print_table(rows: list[dict]) -> None:
    print(
        f"\n{'model':13s} {'dataset':7s} {'H':>4s} {'MSE':>7s} {'paper':>7s} {'MAE':>7s} {'paper':>7s} {'windows':>7s}"
    )
    for r in rows:
        print(
            f"{r['model']:13s} {r['dataset']:7s} {r['horizon']:4d} {r['mse']:7.3f} {r['paper']['mse']:7.3f} "
            f"{r['mae']:7.3f} {r['paper']['mae']:7.3f} {r['test_windows']:7d}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
