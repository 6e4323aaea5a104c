"""`seer` — train, evaluate, serve, retrain and list recipes (a stable contract: README, The `seer` command).

Every command reads `MLFLOW_TRACKING_URI` (default: `sqlite:///<cwd>/mlflow.db`) and prints where its
results went. Rooms are imported inside the commands so `seer --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys


def _recipe(args: argparse.Namespace):
    from training.recipes import apply_overrides, get_recipe, smoke

    recipe = apply_overrides(get_recipe(args.recipe), args.set or [])
    return smoke(recipe) if getattr(args, "smoke", False) else recipe


def cmd_train(args: argparse.Namespace) -> int:
    from training.run import train

    quiet()
    recipe = _recipe(args)
    result = train(recipe)
    print(f"\nrun {result.run_id} in {result.tracking_uri}")
    for k, v in sorted(result.metrics.items()):
        print(f"  {k:14s} {v:.4f}" if isinstance(v, float) else f"  {k:14s} {v}")
    alias = " (now @champion)" if result.champion else ""
    print(f"registered models:/{result.registered_name}/{result.version}{alias}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from training.run import evaluate

    quiet()
    recipe = _recipe(args)
    uri = args.model or f"models:/{recipe.registered_name}@champion"
    metrics = evaluate(recipe, uri)
    print(json.dumps({"model": uri, "recipe": recipe.name, **metrics}, indent=2))
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from training.recipes import RECIPES

    width = max(len("recipe"), *(len(name) for name in RECIPES)) + 1
    print(f"{'recipe':{width}s} {'model':14s} {'dataset':8s} {'task':9s} L/H")
    for name in sorted(RECIPES):
        r = RECIPES[name]()
        print(f"{name:{width}s} {r.model:14s} {r.data.dataset:8s} {r.task:9s} {r.data.lookback}/{r.data.horizon}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from service.server import serve

    serve(models=args.models, host=args.host, port=args.port)
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    import lightning  # noqa: F401  (jobs train with it; imported first so `quiet` can mute it)

    from training.retrain import main as retrain

    quiet()
    logging.getLogger("apscheduler").setLevel(logging.INFO)
    return retrain(args.jobs, once=args.once)


def cmd_demo(args: argparse.Namespace) -> int:
    """Train → register → serve → one real forecast over HTTP, printed."""
    import httpx

    from seer.procs import free_port, wait_http

    rc = cmd_train(args)
    if rc:
        return rc
    recipe = _recipe(args)
    name = recipe.registered_name
    port = args.port or free_port()
    print(f"\nstarting: seer serve --models {name}@champion --port {port}")
    env = {**os.environ, "SEER_LOG_REQUESTS": "false"}  # the demo prints its own summary of the exchange
    proc = subprocess.Popen(
        [sys.executable, "-m", "seer", "serve", "--models", f"{name}@champion", "--port", str(port)], env=env
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            wait_http(f"http://127.0.0.1:{port}/readyz", proc)
            info = client.get(f"/v1/models/{name}").json()
            example = info.get("example_input") or {}
            body = {"history": example["history"], "timestamps": example["timestamps"]}
            resp = client.post(f"/v1/models/{name}/forecast", json=body)
            resp.raise_for_status()
            out = resp.json()
        variates = info["variates"]
        print(
            f"\nPOST /v1/models/{name}/forecast  ({len(body['history'])}×{len(variates)} history → "
            f"{len(out['forecast'])}×{len(variates)} forecast, model version {out['model']['version']})"
        )
        print("timestamp            " + " ".join(f"{v:>8s}" for v in variates))
        rows = list(zip(out["timestamps"], out["forecast"], strict=True))
        for ts, row in rows[:6] + [("...", [])] + rows[-2:]:
            print(f"{ts:20s} " + " ".join(f"{x:8.3f}" for x in row))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seer", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def recipe_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("recipe", help="recipe name (see `seer recipes`)")
        sp.add_argument(
            "--set", action="append", metavar="KEY=VALUE", help="dotted override, e.g. trainer.max_epochs=3"
        )

    t = sub.add_parser("train", help="train, test, log and register a recipe")
    recipe_args(t)
    t.add_argument("--smoke", action="store_true", help="tiny config, a few steps, same path end to end")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="protocol test metrics of a registered model")
    recipe_args(e)
    e.add_argument("--model", help="models:/NAME@ALIAS, models:/NAME/VERSION or a local path (default: @champion)")
    e.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("serve", help="serve registered models over HTTP")
    s.add_argument("--models", default=os.environ.get("SEER_MODELS", ""), help="NAME@ALIAS[,NAME@ALIAS..]")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.set_defaults(func=cmd_serve)

    rt = sub.add_parser("retrain", help="scheduled retraining: champion/challenger jobs from a YAML file")
    rt.add_argument("--jobs", required=True, metavar="FILE", help="the jobs file (YAML; format: README, Retraining)")
    rt.add_argument("--once", action="store_true", help="run every job once now; exit 1 if any failed")
    rt.set_defaults(func=cmd_retrain)

    r = sub.add_parser("recipes", help="list recipes")
    r.set_defaults(func=cmd_recipes)

    d = sub.add_parser("demo", help="train a recipe, serve it, fetch one forecast over HTTP")
    d.add_argument("recipe", nargs="?", default="itransformer-etth1")
    d.add_argument("--set", action="append", metavar="KEY=VALUE")
    d.add_argument("--smoke", action="store_true")
    d.add_argument("--port", type=int, default=0)
    d.set_defaults(func=cmd_demo)
    return p


def quiet() -> None:
    """Keep the terminal for what matters: progress bars, results, and where they went.

    Called after the rooms are imported, because Lightning sets its own log level on import.
    """
    import warnings

    for noisy in ("alembic", "mlflow", "lightning", "lightning.pytorch", "lightning.fabric", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*is smaller than the logging interval.*")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if args.command == "serve" and not args.models:
        print("seer serve: --models (or SEER_MODELS) is required, e.g. --models itransformer-etth1@champion")
        return 2
    try:
        return int(args.func(args))
    except (KeyError, ValueError, FileNotFoundError) as e:
        print(f"seer {args.command}: error: {e}", file=sys.stderr)
        return 2
