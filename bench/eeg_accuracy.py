"""EEG artifact removal: ART against ICA cleaning and a 1D-ResCNN on the same held-out windows →
bench/results/accuracy.json (rows with `task: denoise`) and bench/results/eeg_accuracy.json (the summary).

The split is the recipe's (by time inside each recording: the last 20 % of EEGMMIDB S001R01 and of the
EEGLAB sample are test, never seen in training). Test sets, all at the model's template and rate:
- `eeg-ica-pairs`: real recordings, target = their ICA (ICLabel) cleaning. ICA is the target here, so the
  ICA baseline has no row: it would score 0 by construction.
- `eeg-eog-snr<s>` / `eeg-emg-snr<s>` for s = -7..2 dB: semi-synthetic pairs (EEGdenoiseNet's recipe:
  clean + real EOG / muscle-like noise at SNR s); `-all` rows pool every level.
- `eeg-artifact-free`: clean windows in, the output should stay the input: RRMSE_t against the input and
  the alpha-band (8–13 Hz) power ratio out/in (1 = the brain rhythm kept).
ICA baseline on the semi-synthetic sets: per recording and level, the test windows (consecutive) are
joined into one stream, cleaned by ICA + ICLabel as a lab would, and cut back. The CNN trains here on the
recipe's own train/val loaders with the same loss, for as many epochs as ART's run had (best validation
weights kept). Anchors are context only (EEGdenoiseNet benchmark: other data, single-channel epochs).

    python bench/eeg_accuracy.py --model-uri models:/eeg-art-cpu@champion --tracking-uri sqlite:///mlflow.db
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.accuracy import merge_row  # noqa: E402
from bench.common import RESULTS, commit, write  # noqa: E402
from bench.eeg_baselines import ResCNN, ica_clean  # noqa: E402

ANCHORS = {
    "eog": {"source": "context, not the same data: EEGdenoiseNet EOG benchmark; GCTNet (Yin et al. 2023) RRMSE_t "
            "0.27, CC 0.94, SNR 13.8 dB; EEGDnet (Pu et al. 2022) CC 0.979", "rrmse_t": 0.27, "cc": 0.94},
    "emg": {"source": "context, not the same data: EEGdenoiseNet EMG benchmark; EEGDnet (Pu et al. 2022) CC 0.943",
            "cc": 0.943},
}  # fmt: skip
METRICS = ("rrmse_t", "rrmse_s", "cc", "snr_db", "snr_gain_db", "mse")


def load(model_uri: str, tracking_uri: str | None):
    import mlflow

    from inference.bundle import load_bundle

    path = Path(model_uri)
    if not path.exists():
        if tracking_uri:
            mlflow.set_tracking_uri(tracking_uri)
        path = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    return load_bundle(path)


@torch.no_grad()
def run(model: torch.nn.Module, noisy: np.ndarray, chunk: int = 32) -> np.ndarray:
    model.eval()
    out = [model(torch.from_numpy(noisy[k : k + chunk]).float()).double().numpy() for k in range(0, len(noisy), chunk)]
    return np.concatenate(out)


def train_cnn(dm, epochs: int, lr: float = 1e-3) -> tuple[ResCNN, dict]:
    from training.tasks import objective_for
    from training.tasks.denoise.metrics import window_metrics

    objective = objective_for("denoise")
    torch.manual_seed(0)
    cnn = ResCNN(len(dm.config.channels))
    opt = torch.optim.Adam(cnn.parameters(), lr=lr)
    best, state, log = float("inf"), None, []
    t0 = time.time()
    for epoch in range(epochs):
        cnn.train()
        for batch in dm.train_dataloader():
            opt.zero_grad()
            loss = objective.loss(cnn, batch)
            loss.backward()
            opt.step()
        cnn.eval()
        with torch.no_grad():
            vals = [window_metrics(b.noisy, b.clean, cnn(b.noisy))["rrmse_t"] for b in dm.val_dataloader()]
        val = float(torch.cat(vals).mean())
        log.append(val)
        print(f"cnn epoch {epoch}: val_rrmse_t {val:.4f} ({time.time() - t0:.0f} s)", flush=True)
        if val < best:
            best, state = val, copy.deepcopy(cnn.state_dict())
    cnn.load_state_dict(state)
    return cnn.eval(), {"val_rrmse_t": log, "best_val_rrmse_t": best, "train_s": time.time() - t0}


def test_groups(dm) -> dict[tuple[str, float | None], list]:
    """(kind, snr or None) -> the test items (index, spec), in recording and time order."""
    from data.eeg.pairs import KINDS

    groups: dict[tuple[str, float | None], list] = defaultdict(list)
    for i, spec in enumerate(dm.specs("test")):
        groups[(KINDS[spec.kind], None if spec.snr is None else float(spec.snr))].append((i, spec))
    return groups


def ica_baseline(dm, items, noisy: np.ndarray) -> np.ndarray:
    """ICA + ICLabel on each recording's joined test windows of one group, cut back into windows."""
    out = np.zeros_like(noisy)
    T = dm.config.window
    by_rec: dict[int, list[int]] = defaultdict(list)
    for k, (_, spec) in enumerate(items):
        by_rec[spec.rec].append(k)
    for rows in by_rec.values():
        rows = sorted(rows, key=lambda k: items[k][1].start)
        stream = np.concatenate([noisy[k] for k in rows], axis=1)  # [N, K·T]
        cleaned = ica_clean(stream, tuple(dm.config.channels), dm.config.sfreq)
        for j, k in enumerate(rows):
            out[k] = cleaned[:, j * T : (j + 1) * T]
    return out


def scores(noisy, clean, pred) -> dict[str, float]:
    from training.tasks.denoise.metrics import window_metrics

    values = window_metrics(*(torch.from_numpy(np.ascontiguousarray(a)) for a in (noisy, clean, pred)))
    return {k: float(v.mean()) for k, v in values.items()}


def artifact_free(dm, items, models: dict) -> dict[str, dict[str, float]]:
    """Clean windows in: RRMSE_t of the output against the input, and the alpha power ratio out/in."""
    from training.tasks.denoise.metrics import band_power, rrmse_t

    ds = dm.dataset("test")
    clean = np.stack([ds[i].clean.numpy() for i, _ in items]).astype(np.float64)
    out = {}
    for name, fn in models.items():
        pred = torch.from_numpy(fn(clean))
        x = torch.from_numpy(clean)
        alpha = band_power(pred, dm.config.sfreq, (8.0, 13.0)) / band_power(x, dm.config.sfreq, (8.0, 13.0))
        out[name] = {"rrmse_t": float(rrmse_t(pred, x).mean()), "alpha_ratio": float(alpha.mean()),
                     "test_windows": len(clean)}  # fmt: skip
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-uri", required=True, help="models:/NAME@ALIAS or a bundle folder")
    ap.add_argument("--tracking-uri", default=None)
    ap.add_argument("--recipe", default="eeg-art-cpu", help="the recipe whose split and pairs to use")
    ap.add_argument("--cnn-epochs", type=int, default=0, help="0: the recipe's max_epochs (what ART's run had)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-ica", action="store_true")
    ap.add_argument("--dry-run", action="store_true", help="print the table, write no results file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from training.recipes import get_recipe

    model, meta = load(args.model_uri, args.tracking_uri)
    recipe = get_recipe(args.recipe)
    data = recipe.data.for_bundle(meta["transform"])
    dm = data.datamodule()
    dm.setup()
    cnn, cnn_log = train_cnn(dm, args.cnn_epochs or recipe.trainer.max_epochs)
    ds = dm.dataset("test")
    ours = lambda x: run(model, x)  # noqa: E731
    theirs = lambda x: run(cnn, x)  # noqa: E731
    results = []
    pooled: dict[tuple[str, str], list] = defaultdict(list)
    groups = test_groups(dm)
    order = sorted(groups, key=lambda k: (k[0], -99.0 if k[1] is None else k[1]))
    for kind, snr in order:
        items = groups[(kind, snr)]
        noisy = np.stack([ds[i].noisy.numpy() for i, _ in items]).astype(np.float64)
        clean = np.stack([ds[i].clean.numpy() for i, _ in items]).astype(np.float64)
        preds = {"art": ours(noisy), "cnn-1d-rescnn": theirs(noisy)}
        if kind != "ica" and not args.skip_ica:
            preds["ica-iclabel"] = ica_baseline(dm, items, noisy)
        protocol = "eeg-ica-pairs" if kind == "ica" else f"eeg-{kind}-snr{snr:g}"
        for name, pred in preds.items():
            s = scores(noisy, clean, pred)
            results.append({"model": name, "protocol": protocol, "kind": kind, "snr": snr, **s, "windows": len(noisy)})
            if kind != "ica":
                pooled[(name, kind)].append((noisy, clean, pred))
    for (name, kind), parts in pooled.items():
        s = scores(*(np.concatenate([p[j] for p in parts]) for j in range(3)))
        n = sum(len(p[0]) for p in parts)
        results.append({"model": name, "protocol": f"eeg-{kind}-all", "kind": kind, "snr": None, **s, "windows": n})
    free_items = groups[("ica", None)]  # the real test windows: their ICA-clean part goes in
    free_models = {"art": ours, "cnn-1d-rescnn": theirs}
    if not args.skip_ica:
        free_models["ica-iclabel"] = lambda x: ica_baseline(dm, free_items, x)
    free = artifact_free(dm, free_items, free_models)
    record(results, free, meta, data, cnn_log, write_files=not args.dry_run)
    return 0


def record(results, free, meta, data, cnn_log, write_files: bool = True) -> None:
    """Print the table, merge the rows into accuracy.json, write the summary."""
    T, dataset = data.window, data.dataset
    print("| model | protocol | RRMSE_t | RRMSE_s | CC | SNR dB | SNR gain dB | windows |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['model']} | {r['protocol']} | {r['rrmse_t']:.3f} | {r['rrmse_s']:.3f} | {r['cc']:.3f} | "
              f"{r['snr_db']:.2f} | {r['snr_gain_db']:.2f} | {r['windows']} |")  # fmt: skip
        anchor = ANCHORS.get(r["kind"], {"source": "none: ICA pairs of these recordings are ours"})
        if not write_files:
            continue
        merge_row({
            "task": "denoise", "model": r["model"], "protocol": r["protocol"], "dataset": dataset, "lookback": T,
            "horizon": T, "sfreq": data.sfreq, "channels": len(data.channels), "mse": r["mse"], "mae": None,
            **{k: r[k] for k in METRICS}, "snr_level_db": r["snr"], "test_windows": r["windows"], "paper": anchor,
            "registered_name": meta["name"], "commit": commit(), "command": " ".join(["python", *sys.argv]),
        })  # fmt: skip
    print("\nartifact-free windows (output vs input):")
    for name, s in free.items():
        print(f"  {name}: RRMSE_t {s['rrmse_t']:.3f}, alpha power out/in {s['alpha_ratio']:.3f} ({s['test_windows']})")
        if not write_files:
            continue
        merge_row({
            "task": "denoise", "model": name, "protocol": "eeg-artifact-free", "dataset": dataset, "lookback": T,
            "horizon": T, "mse": None, "mae": None, "rrmse_t": s["rrmse_t"], "alpha_ratio": s["alpha_ratio"],
            "test_windows": s["test_windows"], "paper": {"source": "none"}, "commit": commit(),
            "command": " ".join(["python", *sys.argv]),
        })  # fmt: skip
    if not write_files:
        return
    path = write("eeg_accuracy", {
        "baseline": "ICA + ICLabel cleaning of the same test streams; a 1D-ResCNN trained on the same pairs",
        "model": meta["name"], "model_metrics": meta.get("metrics"), "data": data.to_dict(), "cnn": cnn_log,
        "results": results, "artifact_free": free,
    })  # fmt: skip
    print(f"wrote {path} and {RESULTS / 'accuracy.json'}")


if __name__ == "__main__":
    raise SystemExit(main())
