"""`seer` — train, evaluate, serve, retrain, list recipes and pretrained models, demo (a stable contract:
README, The `seer` command).

Every command reads `MLFLOW_TRACKING_URI` (default: `sqlite:///<cwd>/mlflow.db`) and prints where its
results went. Rooms are imported inside the commands so `seer --help` stays instant. A mistake the
user can fix (an unknown recipe, model, alias or file, a bad value) is one line on stderr and exit
status 2; an interrupted training run says how to resume it and exits 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from typing import Any

SMOKE_SUFFIX = "-smoke"  # smoke runs register under their own name, never the real model's


def _threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def _recipe(args: argparse.Namespace):
    """The recipe the arguments describe: a named recipe, or (with --data) a model on the user's file;
    overrides applied; `--smoke` shrinks it and registers it as `<name>-smoke` unless --name is given."""
    from training.recipes import apply_overrides, file_recipe, get_recipe, smoke

    if getattr(args, "data", None):
        if not args.horizon:
            raise ValueError("--data needs --horizon H (the steps to forecast)")
        name = args.name or f"{args.recipe}-{_stem(args.data)}"
        recipe = file_recipe(args.recipe, args.data, args.horizon, name, tuple(_targets(args)))
    else:
        for flag in ("horizon", "targets"):
            if getattr(args, flag, None):
                raise ValueError(f"--{flag} goes with --data FILE (a recipe fixes its own data)")
        recipe = get_recipe(args.recipe)
    if getattr(args, "name", None) and not getattr(args, "data", None):
        recipe = dataclasses.replace(recipe, registered_name=args.name)
    recipe = apply_overrides(recipe, args.set or [])
    if getattr(args, "smoke", False):
        recipe = smoke(recipe)
        # Its own name and experiment, so a smoke run never becomes a version of the real model; an explicit
        # `--set registered_name=...` is the way to smoke-test a real name on purpose.
        if not any(o.startswith("registered_name=") for o in args.set or []):
            name = f"{recipe.registered_name or recipe.name}{SMOKE_SUFFIX}"
            recipe = dataclasses.replace(recipe, registered_name=name, experiment=f"{recipe.experiment}-smoke")
    return recipe


def _stem(path: str) -> str:
    import re
    from pathlib import Path

    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(path).name.split(".")[0]).strip("-") or "data"


def _targets(args: argparse.Namespace) -> list[str]:
    return [t.strip() for t in (getattr(args, "targets", None) or "").split(",") if t.strip()]


def _train(args: argparse.Namespace) -> Any:
    """Train what the arguments describe, with a checkpoint every epoch; print the result."""
    from training.checkpoint import checkpoint_dir
    from training.recipes import Described
    from training.run import train

    quiet()
    _threads(args)
    recipe = _recipe(args)
    if isinstance(recipe.data, Described):
        print(recipe.data.describe(), flush=True)
    folder = checkpoint_dir(recipe.registered_name or recipe.name)
    if getattr(args, "resume", False):
        print(f"resuming the interrupted run from {folder}", flush=True)
    elif (folder / "last").exists():
        print(f"note: {folder} holds an interrupted run's checkpoint; starting afresh (--resume continues it)")
    try:
        result = train(recipe, checkpoints=folder, resume=getattr(args, "resume", False))
    except (KeyboardInterrupt, SystemExit) as e:  # Lightning turns Ctrl-C into SystemExit(1)
        if isinstance(e, SystemExit) and e.code in (0, None):
            raise
        saved = (folder / "last").exists()
        again = " ".join(a for a in args.argv if a != "--resume")
        how = f"continue with: seer {again} --resume" if saved else "no epoch was finished, nothing to resume"
        print(f"\ninterrupted: {how}", file=sys.stderr)
        raise SystemExit(130) from None
    _print_result(result)
    return result


def _print_result(result: Any) -> None:
    if result.resumed_from_epoch is not None:
        print(f"\nresumed at epoch {result.resumed_from_epoch + 1} (1-based) from its checkpoint")
    print(f"\nrun {result.run_id} in {result.tracking_uri}")
    for k, v in sorted(result.metrics.items()):
        print(f"  {k:14s} {v:.4f}" if isinstance(v, float) else f"  {k:14s} {v}")
    kernels = ", ".join(f"{op}={impl}" for op, impl in sorted(result.kernels.items()))
    if kernels:
        print(f"  kernels        {kernels}")
    alias = " (now @champion)" if result.champion else ""
    print(f"registered models:/{result.registered_name}/{result.version}{alias}")


def cmd_train(args: argparse.Namespace) -> int:
    _train(args)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from seer.refs import check_model_uri
    from training.run import evaluate
    from training.tracking import tracking_uri

    quiet()
    recipe = _recipe(args)
    uri = args.model or f"models:/{recipe.registered_name}@champion"
    check_model_uri(uri, tracking_uri())
    metrics = evaluate(recipe, uri)
    print(json.dumps({"model": uri, "recipe": recipe.name, **metrics}, indent=2))
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from training.recipes import FILE_RECIPES, RECIPES

    width = max(len("recipe"), *(len(name) for name in RECIPES)) + 1
    print(f"{'recipe':{width}s} {'model':14s} {'dataset':8s} {'task':9s} L/H")
    for name in sorted(RECIPES):
        r = RECIPES[name]()
        print(f"{name:{width}s} {r.model:14s} {r.data.dataset:8s} {r.task:9s} {r.data.lookback}/{r.data.horizon}")
    print(f"\nyour own file: seer train MODEL --data FILE --horizon H --name NAME  (MODEL: {', '.join(FILE_RECIPES)})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from seer.refs import check_serve_refs, serve_tracking_uri
    from service.server import serve

    check_serve_refs(args.models, serve_tracking_uri())
    serve(models=args.models, host=args.host, port=args.port)
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    import lightning  # noqa: F401  (jobs train with it; imported first so `quiet` can mute it)

    from training.retrain import main as retrain

    quiet()
    logging.getLogger("apscheduler").setLevel(logging.INFO)
    return retrain(args.jobs, once=args.once)


def cmd_pretrained(args: argparse.Namespace) -> int:
    from seer.pretrained import get_shipped, register, shipped
    from training.tracking import tracking_uri

    if args.action == "register":
        quiet()
        version, champion, new = register(args.name, uri=tracking_uri(), registered_name=args.register_as)
        name = args.register_as or args.name
        what = "registered" if new else "already registered (same weights)"
        alias = " (@champion)" if champion else ""
        print(f"{args.name}: {what} as models:/{name}/{version}{alias} in {tracking_uri()}")
        print(f"serve it: seer serve --models {name}/{version}")
        return 0
    models = [get_shipped(args.name)] if args.name else list(shipped().values())
    for model in models:
        model.verify()
        print(model.summary())
    print("\nregister one: seer pretrained register NAME;  try it: seer demo NAME")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """One forecast per series of a long or wide file (or glob), written in long format."""
    from seer.score import run

    quiet()
    _threads(args)
    return run(args)


def cmd_demo(args: argparse.Namespace) -> int:
    """Train (or register a shipped pretrained model) → serve that very version → one forecast over HTTP."""
    from seer.demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seer", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train, test, log and register a recipe, or a model on your own file")
    _training_args(t)
    t.add_argument(
        "--resume", action="store_true", help="continue the interrupted run of this name from its checkpoint"
    )
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="protocol test metrics of a registered model")
    e.add_argument("recipe", help="recipe name (see `seer recipes`)")
    _set_arg(e)
    e.add_argument("--model", help="models:/NAME@ALIAS, models:/NAME/VERSION or a local path (default: @champion)")
    e.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("serve", help="serve registered models over HTTP")
    s.add_argument(
        "--models",
        default=os.environ.get("SEER_MODELS", ""),
        help="NAME@ALIAS, NAME/VERSION or NAME=PATH, comma-separated",
    )
    s.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    s.set_defaults(func=cmd_serve)

    rt = sub.add_parser("retrain", help="scheduled retraining: champion/challenger jobs from a YAML file")
    rt.add_argument("--jobs", required=True, metavar="FILE", help="the jobs file (YAML; format: README, Retraining)")
    rt.add_argument("--once", action="store_true", help="run every job once now; exit 1 if any failed")
    rt.set_defaults(func=cmd_retrain)

    r = sub.add_parser("recipes", help="list recipes")
    r.set_defaults(func=cmd_recipes)

    pt = sub.add_parser("pretrained", help="list the pretrained models shipped in pretrained/, or register one")
    pt.add_argument(
        "action", nargs="?", choices=["list", "register"], default="list", help="list (default) or register"
    )
    pt.add_argument("name", nargs="?", help="a shipped model, e.g. moirai-moe-tiny")
    pt.add_argument("--as", dest="register_as", metavar="NAME", help="register under this name (default: its own)")
    pt.set_defaults(func=cmd_pretrained)

    sc = sub.add_parser(
        "score",
        help="forecast every series of a CSV/Parquet file or glob with a model; one forecast per series",
        description="Forecast every series of long (unique_id, ds, y) or wide files with a forecast model: each "
        "series' last lookback points in, the model's horizon out, written as unique_id, ds, yhat (+ quantile "
        "columns). Series the model cannot take are skipped and listed in OUTPUT.errors.csv.",
    )
    sc.add_argument("model_uri", metavar="MODEL_URI", help="models:/NAME@ALIAS, NAME/VERSION, or a local model folder")
    sc.add_argument("--input", required=True, metavar="PATH_OR_GLOB", help="a CSV/Parquet file or a quoted glob")
    sc.add_argument("--output", required=True, metavar="PATH", help="where the forecasts go (.parquet or .csv)")
    sc.add_argument("--format", choices=["parquet", "csv"], help="output format (default: from OUTPUT's suffix)")
    sc.add_argument("--batch", type=int, default=256, metavar="N", help="series per forward pass (default 256)")
    sc.add_argument(
        "--quantiles", metavar="Q[,Q..]", help="probabilistic models: the quantile levels (default 0.1,0.5,0.9)"
    )
    sc.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: torch's choice)")
    sc.set_defaults(func=cmd_score)

    d = sub.add_parser(
        "demo",
        help="train a recipe (or register a shipped pretrained model), serve it, fetch one forecast over HTTP",
        description="Train RECIPE (or MODEL --data FILE ...) and register it, or register the shipped pretrained "
        "model of that name (see `seer pretrained`); then serve exactly that version and print one forecast "
        "fetched over HTTP.",
    )
    _training_args(d, default="itransformer-etth1")
    d.add_argument("--port", type=int, default=0, help="port for the demo server (default: a free one)")
    d.set_defaults(func=cmd_demo)
    return p


def _set_arg(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--set", action="append", metavar="KEY=VALUE", help="dotted override, e.g. trainer.max_epochs=3")


def _training_args(sp: argparse.ArgumentParser, default: str | None = None) -> None:
    """The arguments `train` and `demo` share."""
    what = "recipe (see `seer recipes`), or a model name with --data"
    if default is not None:
        what = "recipe (see `seer recipes`), a shipped pretrained model (see `seer pretrained`), or a model with --data"
    if default is None:
        sp.add_argument("recipe", metavar="RECIPE|MODEL", help=what)
    else:
        sp.add_argument(
            "recipe", metavar="RECIPE|MODEL", nargs="?", default=default, help=f"{what} (default {default})"
        )
    _set_arg(sp)
    sp.add_argument("--smoke", action="store_true", help="tiny config, a few steps, registered as NAME-smoke")
    sp.add_argument("--data", metavar="FILE", help="your CSV/Parquet file: wide (a time column + series) or long")
    sp.add_argument("--horizon", type=int, metavar="H", help="with --data: the steps to forecast")
    sp.add_argument("--name", metavar="NAME", help="register under NAME (with --data default: MODEL-FILE)")
    sp.add_argument(
        "--targets", metavar="COL[,COL..]", help="with --data: the series to forecast (default: all numeric)"
    )
    sp.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: torch's choice)")


class _CurrentStderr(logging.StreamHandler):
    """A log handler that writes to whatever `sys.stderr` is when a record comes: a progress bar that
    redirects stderr to print above itself then gets the line, instead of having it drawn through it."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def quiet() -> None:
    """Keep the terminal for what matters: progress bars, results, and where they went.

    Called after the rooms are imported, because Lightning sets its own log level on import.
    """
    import warnings

    for noisy in ("alembic", "mlflow", "lightning", "lightning.pytorch", "lightning.fabric", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*is smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")


def _message(e: BaseException) -> str:
    return str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", handlers=[_CurrentStderr()])
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.command == "serve" and not args.models:
        print("seer serve: --models (or SEER_MODELS) is required, e.g. --models itransformer-etth1@champion")
        return 2
    try:
        return int(args.func(args))
    except (KeyError, ValueError, FileNotFoundError) as e:
        print(f"seer {args.command}: error: {_message(e)}", file=sys.stderr)
        return 2
    except Exception as e:
        if type(e).__module__.startswith("mlflow"):  # registry/tracking trouble the checks did not foresee
            print(f"seer {args.command}: error: {_message(e).splitlines()[0]}", file=sys.stderr)
            return 2
        raise
