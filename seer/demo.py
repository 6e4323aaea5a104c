"""`seer demo`: a model registered (trained now, or a shipped pretrained one), served, and asked for one
forecast over HTTP — the version just registered, never an older champion.

`seer demo RECIPE` trains the recipe (`--smoke`: its tiny version, registered as `<name>-smoke`);
`seer demo MODEL --data FILE --horizon H --name NAME` trains on the user's file; `seer demo NAME` with NAME a
shipped pretrained model (`seer pretrained`) registers its weights without training. Then `seer serve
--models NAME/VERSION` runs as a child process, the demo posts the model's stored example input and
prints the answer.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from typing import Any


def run_demo(args: argparse.Namespace) -> int:
    from seer.pretrained import get_shipped, register, shipped
    from training.tracking import tracking_uri

    note = ""
    if args.recipe in shipped() and not (args.data or args.smoke):
        if args.set:
            raise ValueError(f"{args.recipe} is pretrained: there is nothing to --set (drop it, or train a recipe)")
        from seer.cli import quiet

        quiet()
        version, _, new = register(args.recipe, uri=tracking_uri(), registered_name=args.name)
        name = args.name or args.recipe
        print(f"{args.recipe}: {'registered' if new else 'already registered'} as models:/{name}/{version}")
        note = str(get_shipped(args.recipe).provenance.get("example", ""))
    else:
        from seer.cli import _train

        result = _train(args)
        name, version = result.registered_name, result.version
    return _serve_and_ask(name, version, args, note)


def _serve_and_ask(name: str, version: str, args: argparse.Namespace, note: str) -> int:
    import httpx

    from seer.procs import free_port, wait_http

    port = args.port or free_port()
    ref = f"{name}/{version}"
    print(f"\nstarting: seer serve --models {ref} --port {port}")
    env = {**os.environ, "SEER_LOG_REQUESTS": "false"}  # the demo prints its own summary of the exchange
    if args.threads:
        env["SEER_TORCH_THREADS"] = str(args.threads)
    proc = subprocess.Popen([sys.executable, "-m", "seer", "serve", "--models", ref, "--port", str(port)], env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            wait_http(f"http://127.0.0.1:{port}/readyz", proc)
            info = client.get(f"/v1/models/{name}").json()
            body = request_body(info)
            resp = client.post(f"/v1/models/{name}/forecast", json=body)
            if resp.status_code != 200:
                raise ValueError(f"the service answered {resp.status_code}: {resp.text[:300]}")
            out = resp.json()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print_forecast(name, info, body, out, note)
    return 0


def request_body(info: dict[str, Any]) -> dict[str, Any]:
    """The model's stored example as a request: its history, its timestamps where it has them, and the
    10/50/90 % quantiles from a probabilistic model."""
    example = info.get("example_input") or {}
    if "history" not in example:
        raise ValueError(f"model {info.get('name')} stores no example input to send; POST your own history")
    body: dict[str, Any] = {"history": example["history"]}
    if example.get("timestamps"):
        body["timestamps"] = example["timestamps"]
    if info.get("quantiles"):
        body["quantiles"] = [0.1, 0.9]
    return body


def print_forecast(name: str, info: dict[str, Any], body: dict[str, Any], out: dict[str, Any], note: str) -> None:
    history, forecast = body["history"], out["forecast"]
    n = len(forecast[0]) if forecast else 0
    variates = info.get("variates") or [f"series {j}" for j in range(n)]
    print(
        f"\nPOST /v1/models/{name}/forecast  ({len(history)}×{n} history → {len(forecast)}×{n} forecast, "
        f"model version {out['model']['version']})"
    )
    if note:
        print(note)
    shown = variates[:6]
    band = out.get("quantiles") or {}
    lo, hi = band.get("0.1"), band.get("0.9")
    head = "step" if not out.get("timestamps") else "timestamp"
    extra = f"  {variates[0][:12]} 10-90 %" if lo and hi else ""
    print(f"{head:20s} " + " ".join(f"{v[:8]:>8s}" for v in shown) + extra)
    stamps = out.get("timestamps") or [str(k + 1) for k in range(len(forecast))]
    rows = list(range(len(forecast)))
    for k in rows[:6] + [-1] + rows[-2:]:
        if k < 0:
            print("...")
            continue
        cells = " ".join(f"{x:8.3f}" for x in forecast[k][: len(shown)])
        interval = f"  [{lo[k][0]:.3f}, {hi[k][0]:.3f}]" if lo and hi else ""
        print(f"{str(stamps[k])[:20]:20s} {cells}{interval}")
