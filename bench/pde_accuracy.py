"""PDE surrogates' rollout accuracy: IFactFormer-m vs the FNO baseline vs the under-resolved solver, on the
turbulence test trajectories of their recipe pair -> rows of bench/results/accuracy.json (task `rollout`).

Models: two registered rollout models of one recipe pair (default `models:/ifactformer-kolmogorov/latest` and
`models:/fno-kolmogorov/latest`; MLflow URIs or bundle folders). Their bundles carry the dataset's generation
parameters (`transform.generation`), so the test data are regenerated (seeded, cached under
`SEER_FIELDS_CACHE`) exactly as the recipe made them:

- `test`: the recipe's test trajectory (the last of the split; never trained or validated on), starts every
  `--hop-test` snapshots; step s is scored at every start with s steps of truth after it (step 100 of a
  101-snapshot trajectory: start 0 only; the row says how many starts each figure averages).
- `long`: one extra trajectory from another seed (the pair's seed + 1), same physics, `--horizon` + 1 snapshots
  (one per model step): steps 1/10/100 from every `--hop-long`-th snapshot, and one rollout from snapshot 0
  over the whole horizon for stability (steps until blow-up, `training.tasks.rollout.metrics`) and the
  energy-spectrum error at the horizon (a statistical check: the flow is chaotic, pointwise truth is lost).

Metrics (`training.tasks.rollout.metrics`, physical units): relative L2 per step, energy-spectrum error in
decades, steps until blow-up. Baselines beside them: the same spectral solver run directly on the coarse grid
(the under-resolved solver: the filtered field as its initial state, the data's dt and precision) and
persistence (the initial field held fixed; printed only). The models are 2D/3D field models, so the neuralop
Burgers set (1D, 16 points) is not scored here.

    python bench/pde_accuracy.py                                   # the two registered kolmogorov models
    python bench/pde_accuracy.py --train --epochs 3                # train both (seer train), then score
    python bench/pde_accuracy.py --models DIR_A DIR_B --quick --out /tmp/acc.json   # smoke sizes (the test)

Rows are merged into bench/results/accuracy.json (`bench.accuracy.merge_row`; `--out FILE` writes elsewhere;
`--quick` never writes bench/results).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.accuracy import merge_row  # noqa: E402
from bench.common import commit  # noqa: E402

PAIR = ("ifactformer-kolmogorov", "fno-kolmogorov")
STEPS, HORIZON, HOP_TEST, HOP_LONG = (1, 10, 100), 1000, 10, 100
QUICK = {"steps": (1, 2, 4), "horizon": 12, "hop_test": 2, "hop_long": 4}
CHUNK = 10  # model steps per `model.rollout` call
MODEL_NAMES = {"ifactformer": "ifactformer-m", "fno": "fno"}
# (u0 [B, *grid, V] physical, steps, keep) -> ({step: field [B, *grid, V] float64}, steps until blow-up [B])
Roll = Callable[[np.ndarray, int, Sequence[int]], tuple[dict[int, torch.Tensor], np.ndarray]]


def load(uri: str, tracking_uri: str | None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A rollout bundle from a folder or an MLflow model URI."""
    import mlflow

    from inference.bundle import load_bundle

    path = Path(uri)
    if not path.exists():
        if tracking_uri:
            mlflow.set_tracking_uri(tracking_uri)
        path = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    model, meta = load_bundle(path)
    if meta["task"] != "rollout":
        raise SystemExit(f"{uri} is a {meta['task']} model, not a rollout model")
    return model, meta


def generation(meta: dict[str, Any]) -> Any:
    from data.fields.generate import FieldGenConfig

    return FieldGenConfig.from_dict(dict(meta["transform"]["generation"]))


def long_config(gen: Any, horizon: int) -> Any:
    """The extra long test trajectory: the pair's physics, seed + 1, one snapshot per model step."""
    return dataclasses.replace(gen, trajectories=1, snapshots=horizon + 1, seed=gen.seed + 1)


def test_sets(meta: dict[str, Any], horizon: int) -> dict[str, np.ndarray]:
    """{"test": the recipe's test trajectory [T, *grid, V], "long": the long one [horizon + 1, *grid, V]}."""
    from data.fields.windows import cached_dataset, read_trajectories, split_trajectories
    from training.recipes import get_recipe

    data = get_recipe(str(meta.get("recipe") or PAIR[0])).data
    gen = generation(meta)
    trajs = read_trajectories([cached_dataset(gen, progress=False)]).items
    test = split_trajectories(len(trajs), data.n_val, data.n_test)["test"][-1]
    long = read_trajectories([cached_dataset(long_config(gen, horizon), progress=False)]).items[0]
    return {"test": trajs[test], "long": long}


def _blowup(fields: torch.Tensor, reference: torch.Tensor) -> np.ndarray:
    from training.tasks.rollout.metrics import steps_until_blowup

    return steps_until_blowup(fields, reference).numpy()


def _track(kept: dict[int, torch.Tensor], y: torch.Tensor, done: int, keep: Sequence[int]) -> None:
    """Keep the steps of `keep` that chunk y [B, n, *grid, V] (steps done+1 .. done+n) holds."""
    for s in keep:
        if done < s <= done + y.shape[1]:
            kept[s] = y[:, s - done - 1].double()


def surrogate(model: torch.nn.Module, meta: dict[str, Any]) -> Roll:
    """The model's rollout in physical units: normalised in, de-normalised out (the predictor's transform)."""
    t = meta["transform"]
    mean, std = torch.tensor(t["mean"], dtype=torch.float64), torch.tensor(t["std"], dtype=torch.float64)

    @torch.inference_mode()
    def roll(u0: np.ndarray, steps: int, keep: Sequence[int]) -> tuple[dict[int, torch.Tensor], np.ndarray]:
        ref = torch.from_numpy(np.asarray(u0, dtype=np.float64))
        x = ((ref - mean) / std).float()
        kept: dict[int, torch.Tensor] = {}
        first = np.full(len(u0), steps, dtype=np.float64)
        done = 0
        while done < steps:
            n = min(CHUNK, steps - done)
            y = model.rollout(x, n)  # [B, n, *grid, V] normalised
            phys = y.double() * std + mean
            _track(kept, phys, done, keep)
            b = _blowup(phys, ref)
            first = np.where((first == steps) & (b < n), done + b, first)
            x, done = y[:, -1], done + n
        return kept, first

    return roll


def solver(gen: Any, grid: int, precision: str | None = None, upsample: bool = False) -> Roll:
    """The data's spectral solver on `grid` points per axis, the data's dt, `save_every` solver steps per model
    step. Started from a (filtered) field on the stored grid: zero-padded in Fourier space when `upsample` (the
    fine solver from the coarse state); outputs filtered back to the stored grid."""
    from data.fields.generate import make_equation
    from data.fields.spectral import RK4Stepper, filter_field

    cfg = dataclasses.replace(gen, grid=grid, filter_to=None, precision=precision or gen.precision)
    eq = make_equation(cfg)
    stepper, stored = RK4Stepper(eq, gen.dt), gen.stored_grid
    dtype = eq.grid.dtype

    def roll(u0: np.ndarray, steps: int, keep: Sequence[int]) -> tuple[dict[int, torch.Tensor], np.ndarray]:
        ref = torch.from_numpy(np.asarray(u0, dtype=np.float64))
        u = upsample_field(ref, grid) if upsample and grid != stored else ref
        state = eq.state_from_velocity(u.to(dtype))
        kept: dict[int, torch.Tensor] = {}
        first = np.full(len(u0), steps, dtype=np.float64)
        for step in range(1, steps + 1):
            state = stepper.advance(state, gen.save_every)
            v = eq.velocity(state).double()
            v = filter_field(v, stored, kind=gen.filter_kind) if grid != stored else v
            _track(kept, v[:, None], step - 1, keep)
            b = _blowup(v[:, None], ref)
            first = np.where((first == steps) & (b < 1), step - 1, first)
        return kept, first

    return roll


def upsample_field(u: torch.Tensor, n: int) -> torch.Tensor:
    """A velocity [B, X, Y, V] on a finer n × n grid by Fourier zero-padding (its modes unchanged)."""
    x = u.shape[1]
    u_hat = torch.fft.fft2(u.movedim(-1, 1), norm="forward")  # [B, V, X, X]
    m = torch.fft.fftfreq(x, 1.0 / x).long() % n
    out = u_hat.new_zeros((*u_hat.shape[:2], n, n))
    out[:, :, m[:, None], m[None, :]] = u_hat
    return torch.fft.ifft2(out, norm="forward").real.movedim(1, -1)


def persistence(u0: np.ndarray, steps: int, keep: Sequence[int]) -> tuple[dict[int, torch.Tensor], np.ndarray]:
    ref = torch.from_numpy(np.asarray(u0, dtype=np.float64))
    return {s: ref for s in keep if s <= steps}, np.full(len(u0), steps, dtype=np.float64)


def score(roll: Roll, traj: np.ndarray, steps: Sequence[int], hop: int) -> dict[str, Any]:
    """Steps' rel-L2 and spectrum error over every start (every `hop`) with that step's truth; starts grouped
    by the longest step they are scored at, one rollout per group. {rel_l2_step{s}, spectrum_error_step{s},
    starts_step{s}, stable_steps (min over the rollouts, each to its own length)}."""
    from training.tasks.rollout.metrics import capped, rel_l2, spectrum_error

    last = len(traj) - 1
    need = {st: max([s for s in steps if st + s <= last], default=0) for st in range(0, last, hop)}
    errs: dict[int, list[float]] = {s: [] for s in steps}
    spec: dict[int, list[float]] = {s: [] for s in steps}
    stable: list[float] = []
    for length in sorted({n for n in need.values() if n}):
        starts = [st for st, n in need.items() if n == length]
        kept, first = roll(traj[starts], length, [s for s in steps if s <= length])
        stable += list(first)
        axes = traj.ndim - 1
        for s, pred in kept.items():
            truth = torch.from_numpy(traj[[st + s for st in starts]]).double()
            errs[s] += capped(rel_l2(pred, truth, axes)).tolist()
            spec[s] += spectrum_error(torch.nan_to_num(pred, nan=1e6).clamp(-1e6, 1e6), truth).tolist()
    out: dict[str, Any] = {}
    for s in steps:
        out[f"rel_l2_step{s}"] = float(np.mean(errs[s])) if errs[s] else None
        out[f"spectrum_error_step{s}"] = float(np.mean(spec[s])) if spec[s] else None
        out[f"starts_step{s}"] = len(errs[s])
    out["min_stable_steps"] = float(min(stable)) if stable else None
    return out


def horizon_score(roll: Roll, traj: np.ndarray) -> dict[str, Any]:
    """One rollout from snapshot 0 over the whole trajectory: steps until blow-up (the horizon when none) and
    the energy-spectrum error at the horizon."""
    from training.tasks.rollout.metrics import spectrum_error

    horizon = len(traj) - 1
    t0 = time.perf_counter()
    kept, first = roll(traj[:1], horizon, [horizon])
    pred = torch.nan_to_num(kept[horizon], nan=1e6).clamp(-1e6, 1e6)
    truth = torch.from_numpy(traj[horizon : horizon + 1]).double()
    return {
        "stable_steps": float(first[0]),
        "horizon": horizon,
        f"spectrum_error_step{horizon}": float(spectrum_error(pred, truth)[0]),
        "horizon_rollout_s": round(time.perf_counter() - t0, 2),
    }


def evaluate(rolls: dict[str, Roll], sets: dict[str, np.ndarray], cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every method on both test sets; {method: {test: {...}, long: {...}}}."""
    out: dict[str, dict[str, Any]] = {}
    for name, roll in rolls.items():
        t0 = time.perf_counter()
        res = {
            "test": score(roll, sets["test"], cfg["steps"], cfg["hop_test"]),
            "long": {**score(roll, sets["long"], cfg["steps"], cfg["hop_long"]), **horizon_score(roll, sets["long"])},
        }
        res["eval_s"] = round(time.perf_counter() - t0, 1)
        print(f"  {name}: scored in {res['eval_s']} s", flush=True)
        out[name] = res
    return out


def training_info(meta: dict[str, Any], tracking_uri: str | None, n_params: int) -> dict[str, Any]:
    """The run's training configuration (its MLflow params) and wall time, where the run is reachable."""
    info: dict[str, Any] = {"recipe": meta.get("recipe"), "run_id": meta.get("run_id"), "parameters": n_params}
    if not meta.get("run_id"):
        info["run"] = "none: a bundle built outside seer train"
        return info
    try:
        import mlflow

        if tracking_uri:
            mlflow.set_tracking_uri(tracking_uri)
        run = mlflow.get_run(str(meta["run_id"]))
    except Exception as e:  # a bundle folder without its run: say so, keep the row
        info["run"] = f"not found ({type(e).__name__})"
        return info
    p, m = run.data.params, run.data.metrics
    keys = ("trainer.max_epochs", "trainer.patience", "trainer.lr", "trainer.optimizer", "trainer.weight_decay",
            "trainer.lr_step", "trainer.lr_decay", "trainer.seed", "trainer.limit_train_batches", "data.batch_size",
            "data.unroll", "data.pushforward", "data.eval_steps", "data.n_val", "data.n_test",
            "data.generation.trajectories", "data.generation.snapshots")  # fmt: skip
    info.update({k: p.get(k) for k in keys})
    info["best_epoch"] = m.get("best_epoch")
    versions = mlflow.MlflowClient().search_model_versions(f"run_id = '{meta['run_id']}'")
    info["registered"] = [f"models:/{v.name}/{v.version}" for v in versions]
    if run.info.end_time and run.info.start_time:
        info["wall_s"] = round((run.info.end_time - run.info.start_time) / 1000, 1)
    return info


def table(results: dict[str, dict[str, Any]], steps: Sequence[int]) -> str:
    cols = [f"rel-L2 @{s}" for s in steps] + [f"spec err @{s}" for s in steps]
    head = "| method | set | " + " | ".join(cols) + " | stable steps / horizon | spec err @horizon |"
    out = [head, "|" + "---|" * (len(cols) + 4)]
    for name, res in results.items():
        for part in ("test", "long"):
            r = res[part]
            vals = [_fmt(r[f"rel_l2_step{s}"]) + f" ({r[f'starts_step{s}']})" for s in steps]
            vals += [_fmt(r[f"spectrum_error_step{s}"]) for s in steps]
            hz = f"{r['stable_steps']:.0f} / {r['horizon']}" if "horizon" in r else ""
            spec = _fmt(r.get(f"spectrum_error_step{r.get('horizon')}")) if "horizon" in r else ""
            out.append(f"| {name} | {part} | " + " | ".join(vals) + f" | {hz} | {spec} |")
    out.append("(n): the number of start points a rel-L2 averages; spectrum errors in decades.")
    return "\n".join(out)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def row(name: str, res: dict[str, Any], dataset: str, protocol: str, extra: dict[str, Any]) -> dict[str, Any]:
    t, lg = res["test"], res["long"]
    body = {k: v for k, v in t.items()}
    body.update({f"long_{k}": v for k, v in lg.items() if k not in ("horizon", "stable_steps")})
    return {
        "task": "rollout",
        "model": name,
        "protocol": protocol,
        "dataset": dataset,
        "lookback": 1,
        "horizon": lg["horizon"],
        "mse": None,
        "mae": None,
        **body,
        "stable_steps": lg["stable_steps"],
        "paper": {"source": "none: our own solver's data (no published figure on it)"},
        **extra,
        "commit": commit(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }


def train_pair(recipes: Sequence[str], epochs: int, tracking_uri: str, threads: int) -> list[str]:
    """`seer train` each recipe identically (epochs, patience = epochs); the registered versions' URIs."""
    seer = str(Path(sys.executable).with_name("seer"))
    uris = []
    for recipe in recipes:
        argv = [seer, "train", recipe, "--set", f"trainer.max_epochs={epochs}", "--set", f"trainer.patience={epochs}",
                "--threads", str(threads)]  # fmt: skip
        print("$", " ".join(argv), flush=True)
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri})
        print(f"  trained {recipe} in {time.perf_counter() - t0:.0f} s", flush=True)
        uris.append(f"models:/{recipe}/latest")
    return uris


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs=2, default=[f"models:/{r}/latest" for r in PAIR], help="IFactFormer-m, FNO")
    ap.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    ap.add_argument("--train", action="store_true", help="train both recipes first (seer train), then score them")
    ap.add_argument("--recipes", nargs=2, default=list(PAIR), help="the pair --train trains")
    ap.add_argument("--epochs", type=int, default=3, help="--train: epochs of both (the paper: 30)")
    ap.add_argument("--horizon", type=int, default=HORIZON)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="smoke sizes (steps 1/2/4, horizon 12); never bench/results")
    ap.add_argument("--no-solver", action="store_true", help="leave out the coarse-solver baseline")
    ap.add_argument("--out", type=Path, help="merge the rows into this file instead of bench/results/accuracy.json")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    cfg = dict(QUICK) if args.quick else {"steps": STEPS, "horizon": args.horizon, "hop_test": HOP_TEST,
                                          "hop_long": HOP_LONG}  # fmt: skip
    out = args.out or (Path(tempfile.gettempdir()) / "pde_accuracy_quick.json" if args.quick else None)
    uris = train_pair(args.recipes, args.epochs, args.tracking_uri, args.threads) if args.train else args.models
    loaded = [load(u, args.tracking_uri) for u in uris]
    meta0 = loaded[0][1]
    if any(generation(m) != generation(meta0) for _, m in loaded):
        raise SystemExit("the two models were trained on different data; score a pair of one recipe pair")
    t0 = time.perf_counter()
    sets = test_sets(meta0, cfg["horizon"])
    print(f"test data ready in {time.perf_counter() - t0:.1f} s: test {sets['test'].shape}, long {sets['long'].shape}")
    rolls: dict[str, Roll] = {MODEL_NAMES.get(m["model"], m["model"]): surrogate(model, m) for model, m in loaded}
    gen = generation(meta0)
    if not args.no_solver:
        rolls[f"solver-{gen.stored_grid} (under-resolved)"] = solver(gen, gen.stored_grid)
    rolls["persistence"] = persistence
    results = evaluate(rolls, sets, cfg)
    print(table(results, cfg["steps"]))
    dataset = f"{gen.kind} {gen.grid}^{gen.ndim} DNS -> {gen.stored_grid}^{gen.ndim} (seed {gen.seed})"
    for (model, m), uri in zip(loaded, uris, strict=True):
        name = MODEL_NAMES.get(m["model"], m["model"])
        info = training_info(m, args.tracking_uri, sum(p.numel() for p in model.parameters()))
        protocol = f"cpu-reduced: {info.get('trainer.max_epochs', '?')} epochs (paper 30)"
        info["note"] = (
            f"CPU-reduced: {info.get('trainer.max_epochs', '?')} epochs instead of the paper's 30, the "
            "recipe's model (official width) and data otherwise unchanged; both models trained alike"
        )
        extra = {"model_uri": uri, "training": info, "eval_threads": args.threads, "long_test_seed": gen.seed + 1,
                 "eval_s": results[name]["eval_s"]}  # fmt: skip
        path, _ = merge_row(row(name, results[name], dataset, protocol, extra), out)
    base = next(k for k in results if k.startswith("solver-")) if not args.no_solver else None
    if base is not None:
        extra = {"baseline": "the data's spectral solver run directly on the coarse grid from the filtered field "
                 f"(dt {gen.dt}, {gen.save_every} steps per model step, {gen.precision})"}  # fmt: skip
        path, _ = merge_row(row(f"solver-{gen.stored_grid}", results[base], dataset, "baseline", extra), out)
    print(f"rows merged into {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
