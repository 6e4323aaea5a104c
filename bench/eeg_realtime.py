"""How much faster than real time a trained ART cleans 64-channel EEG, through the service's own path →
bench/results/eeg_realtime.json.

Input: EEGMMIDB S001R01 as recorded (64 channels at 160 Hz, µV), cut into `--seconds` chunks. Each chunk is
a denoise request through `DenoisePredictor` (average reference, band-pass, montage map, resampling,
windows, model, stitching, back to 160 Hz): batch 1 (one request per `predict_batch`) and batched (`--batch`
requests in one call, their windows sharing forward passes). The real-time factor is seconds of EEG
cleaned per second of wall clock. Baseline, in the same run on the same chunk: ICA + ICLabel cleaning
(fit + apply, the procedure ART's pairs come from). Then the HTTP path: `POST /v1/models/{name}/denoise`
in-process (ASGI, no network), a 4 s 64-channel request, sequential, median and p95 latency.

    python bench/eeg_realtime.py --model-uri models:/eeg-art-cpu@champion --tracking-uri sqlite:///mlflow.db
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import write  # noqa: E402


def bundle_path(model_uri: str, tracking_uri: str | None) -> Path:
    import mlflow

    path = Path(model_uri)
    if path.exists():
        return path
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))


def timed(fn, repeats: int) -> float:
    """Median wall seconds of `repeats` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def http_latency(path: Path, rec, n: int) -> dict[str, float]:
    from fastapi.testclient import TestClient

    from service import Settings, create_app

    seconds = 4.0
    samples = int(seconds * rec.sfreq)
    body = {"sfreq": rec.sfreq, "channels": list(rec.channels), "data": np.round(rec.data[:, :samples], 3).tolist()}
    with TestClient(create_app(Settings(models=f"eeg={path}"))) as client:
        client.post("/v1/models/eeg/denoise", json=body).raise_for_status()
        lat = []
        for _ in range(n):
            t = time.perf_counter()
            client.post("/v1/models/eeg/denoise", json=body).raise_for_status()
            lat.append(1000 * (time.perf_counter() - t))
    lat.sort()
    return {"seconds": seconds, "channels": len(rec.channels), "requests": n,
            "p50_ms": lat[len(lat) // 2], "p95_ms": lat[min(len(lat) - 1, int(0.95 * len(lat)))]}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-uri", required=True)
    ap.add_argument("--tracking-uri", default=None)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from bench.eeg_baselines import ica_clean
    from core.ops.dispatch import used_impls
    from data.eeg.readers import Preprocessing, average_reference, band_pass, read_recording
    from data.eeg.sources import recording_path
    from inference.predictor import load_predictor

    path = bundle_path(args.model_uri, args.tracking_uri)
    predictor = load_predictor(path)
    rec = read_recording(recording_path("eegmmidb-s001r01"))
    n = int(args.seconds * rec.sfreq)
    chunks = [rec.data[:, k * n : (k + 1) * n] for k in range(rec.data.shape[1] // n)]
    inputs = [predictor.parse({"sfreq": rec.sfreq, "channels": list(rec.channels), "data": c}) for c in chunks]
    inputs = (inputs * args.batch)[: args.batch]
    one = timed(lambda: predictor.predict_batch(inputs[:1]), args.repeats)
    many = timed(lambda: predictor.predict_batch(inputs), args.repeats)
    # The same model with the attention op forced to the PyTorch reference (the route `auto` took on CPU
    # before it had the fused SDPA one), in the same process: the speed-up of the dispatch alone.
    impl = used_impls().get("attention", "?")
    asked = os.environ.get("SEER_KERNELS")
    os.environ["SEER_KERNELS"] = "reference"
    one_ref = timed(lambda: predictor.predict_batch(inputs[:1]), args.repeats)
    if asked is None:
        del os.environ["SEER_KERNELS"]
    else:
        os.environ["SEER_KERNELS"] = asked
    prep = Preprocessing(sfreq=rec.sfreq, l_freq=1.0, h_freq=50.0)

    def ica() -> None:
        ica_clean(band_pass(average_reference(chunks[0]), rec.sfreq, prep), rec.channels, rec.sfreq)

    ica_s = timed(ica, 1)
    http = http_latency(path, rec, 20)
    rows = [
        {"method": "art", "batch": 1, "seconds_of_eeg": args.seconds, "wall_s": one, "rtf": args.seconds / one},
        {"method": "art", "batch": len(inputs), "seconds_of_eeg": args.seconds * len(inputs), "wall_s": many,
         "rtf": args.seconds * len(inputs) / many},
        {"method": "art, reference attention", "batch": 1, "seconds_of_eeg": args.seconds, "wall_s": one_ref,
         "rtf": args.seconds / one_ref},
        {"method": "ica-iclabel", "batch": 1, "seconds_of_eeg": args.seconds, "wall_s": ica_s,
         "rtf": args.seconds / ica_s},
    ]  # fmt: skip
    print(f"model {predictor.name}: {len(rec.channels)} channels at {rec.sfreq:g} Hz, {args.seconds:g} s requests")
    print("| method | batch | seconds of EEG | wall s | real-time factor |\n|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {r['batch']} | {r['seconds_of_eeg']:g} | {r['wall_s']:.3f} | **{r['rtf']:.1f}×** |")
    print(f"HTTP, one 4 s 64-channel request at a time: p50 {http['p50_ms']:.1f} ms, p95 {http['p95_ms']:.1f} ms")
    out = write("eeg_realtime", {
        "baseline": "ICA + ICLabel (fit + apply) on the same chunk; real time = 1×",
        "model": predictor.name, "threads": args.threads, "channels": len(rec.channels), "sfreq": rec.sfreq,
        "attention_impl": impl, "results": rows, "ratio_vs_ica": rows[0]["rtf"] / rows[3]["rtf"],
        "ratio_vs_reference_attention": one_ref / one, "http": http,
    })  # fmt: skip
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
