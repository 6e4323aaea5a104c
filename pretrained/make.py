"""Make a shipped pretrained bundle from a trained one, and record the scores measured on it.

The shipped tiny Moirai-MoE was made in three steps (pretrained/README.md has the commands as run):

1. pretrain and score (`bench/zeroshot.py` saves the trained bundle and prints its path):
       python bench/zeroshot.py --router centroid --threads 1 --out /tmp/seer-ship/zeroshot_fp32.json
2. ship it — float16 weights (half the bytes; every value checked to be in float16's range), the
   config, a zero-shot example input (the last weather test window: a dataset the model never saw)
   and PROVENANCE.json (recipe, seed, commit, command, the weights' SHA-256):
       python pretrained/make.py ship BUNDLE --rows /tmp/seer-ship/zeroshot_fp32.json --out pretrained/moirai-moe-tiny
3. score the shipped file itself (rows merged into bench/results/accuracy.json, each with the file's
   SHA-256), then copy those scores into PROVENANCE.json:
       python bench/zeroshot.py --model-uri pretrained/moirai-moe-tiny --threads 1
       python pretrained/make.py record pretrained/moirai-moe-tiny
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EXAMPLE_DATASET, EXAMPLE_VARIATES = "weather", 3
FP16_MAX = 65504.0


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def example_input(lookback: int, horizon: int) -> tuple[dict[str, Any], str]:
    """The last test window of the first complete weather variates: (request-shaped example, description)."""
    from data.series.corpus import heldout_series
    from data.series.sources import load_series

    hs = heldout_series(EXAMPLE_DATASET, lookback, horizon, 1)
    complete = [j for j in range(len(hs.context)) if np.isfinite(hs.context[j]).all()][:EXAMPLE_VARIATES]
    start, _ = hs.rows[complete[0]]
    frame, _ = load_series(EXAMPLE_DATASET)
    stamps = [d.isoformat() for d in frame["date"][int(start) : int(start) + lookback].to_list()]
    history = np.stack([hs.context[j] for j in complete], axis=1).astype(float)  # [L, N]
    names = [str(hs.variate[j]) for j in complete]
    what = (
        f"zero-shot: the last {EXAMPLE_DATASET} test window ({', '.join(names)}), a dataset kept out of "
        "this model's pretraining"
    )
    return {"history": history.round(4).tolist(), "timestamps": stamps}, what


def ship(bundle: Path, rows_file: Path, out: Path, name: str) -> Path:
    from safetensors.torch import save_file

    from inference.bundle import load_bundle

    model, meta = load_bundle(bundle)
    rows = json.loads(rows_file.read_text())["results"]
    facts = rows[0]
    state = {}
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            if value.abs().max().item() >= FP16_MAX:
                raise ValueError(f"{key} holds values outside float16's range: ship float32 instead")
            value = value.half()
        state[key] = value.contiguous()
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / "weights.safetensors"))
    cfg = model.config
    example, what = example_input(cfg.lookback, cfg.horizon)
    trained = {k: facts.get(k) for k in ("seed", "train_seconds", "epochs", "best_epoch", "test_nll", "best_val_nll")}
    trained["train_commit"] = facts.get("commit")
    meta = {**meta, "name": name, "example_input": example, "trained": trained, "metrics": {}}
    (out / "config.json").write_text(json.dumps({"format": 1, **meta}, indent=2) + "\n")
    provenance = {
        "name": name,
        "model": meta["model"],
        "recipe": facts.get("recipe"),
        "router": facts.get("router"),
        "train_seed": facts.get("seed"),
        "commit": facts.get("commit"),
        "command": facts.get("command"),
        "run_id": facts.get("run_id"),
        "trained": trained,
        "parameters": int(sum(v.numel() for v in model.state_dict().values())),
        "dtype": "float16",
        "size_bytes": (out / "weights.safetensors").stat().st_size,
        "sha256": _sha256(out / "weights.safetensors"),
        "example": what,
        "fp32_scores": {r["dataset"]: {"mase": r["mase"], "crps": r["crps"]} for r in rows},
        "scored_by": f"python bench/zeroshot.py --model-uri pretrained/{out.name} --threads 1",
        "zero_shot": {},
        "in_domain": {},
    }
    (out / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return out


def record(folder: Path) -> dict[str, Any]:
    """Copy the accuracy.json rows scored on this folder's weights (same SHA-256) into PROVENANCE.json."""
    prov_file = folder / "PROVENANCE.json"
    prov = json.loads(prov_file.read_text())
    sha = _sha256(folder / "weights.safetensors")
    if sha != prov["sha256"]:
        raise SystemExit(f"{folder}/weights.safetensors changed since it was shipped (SHA-256 {sha[:12]}…)")
    rows = json.loads((ROOT / "bench" / "results" / "accuracy.json").read_text())["results"]
    mine = [r for r in rows if r.get("weights_sha256") == sha]
    if not mine:
        raise SystemExit(f"no row of bench/results/accuracy.json scored {sha[:12]}…: run {prov['scored_by']}")
    for r in mine:
        kind = "zero_shot" if r["zero_shot"] else "in_domain"
        prov[kind][r["dataset"]] = {"mase": r["mase"], "crps": r["crps"], "commit": r["commit"]}
    prov_file.write_text(json.dumps(prov, indent=2) + "\n")
    return prov


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="step", required=True)
    s = sub.add_parser("ship", help="float16 bundle + example + provenance from a trained bundle")
    s.add_argument("bundle", type=Path)
    s.add_argument("--rows", type=Path, required=True, help="the rows bench/zeroshot.py wrote for that training run")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--name", default="moirai-moe-tiny")
    r = sub.add_parser("record", help="copy the shipped file's scores from accuracy.json into its provenance")
    r.add_argument("folder", type=Path)
    args = ap.parse_args(argv)
    if args.step == "ship":
        print(ship(args.bundle, args.rows, args.out, args.name))
    else:
        print(json.dumps(record(args.folder), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
