"""The rollout task in training: its metrics against hand computations, the pushforward loss (value and
gradient) on a one-parameter model, the recipes' fairness (FNO trained exactly like IFactFormer-m), a
`seer train ... --smoke` run through the CLI registering a bundle that loads with the contract's metadata,
and the retraining holdout."""

import math

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from torch import nn

from data.fields.windows import RolloutDataConfig, read_trajectories
from data.schemas import RolloutBatch
from inference.bundle import load_bundle
from inference.predictor import load_predictor
from inference.registry import get_spec
from seer.cli import main
from training.recipes import apply_overrides, get_recipe, smoke
from training.tasks import holdout_for, objective_for
from training.tasks.rollout.metrics import CAP, rel_l2, spectrum_error, steps_until_blowup

SMOKE = "ifactformer-kolmogorov"


class Scale(nn.Module):
    """u_next = a · u: one parameter, so the loss and its gradient can be written by hand."""

    def __init__(self, a: float):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a, dtype=torch.float64))

    def forward(self, v):
        return self.a * v


def test_rel_l2_spectrum_error_and_blowup_follow_their_definitions():
    g = torch.Generator().manual_seed(0)
    truth = torch.randn(2, 3, 8, 8, 2, generator=g, dtype=torch.float64)  # [B, S, X, Y, V]
    pred = truth + 0.1 * torch.randn(2, 3, 8, 8, 2, generator=g, dtype=torch.float64)
    err = rel_l2(pred, truth, axes=3)
    t, p = truth.numpy(), pred.numpy()
    by_hand = [[np.linalg.norm(p[b, s] - t[b, s]) / np.linalg.norm(t[b, s]) for s in range(3)] for b in range(2)]
    np.testing.assert_allclose(err.numpy(), by_hand, rtol=1e-12)
    field = truth[:, 0]  # [B, 8, 8, 2]: a random field holds energy in every resolved shell
    assert spectrum_error(field, field).abs().max() < 1e-12
    np.testing.assert_allclose(spectrum_error(2 * field, field).numpy(), math.log10(4), rtol=1e-9)  # E ∝ u²
    rollout = truth.clone()
    assert steps_until_blowup(rollout, truth[:, 0]).tolist() == [3.0, 3.0]  # no blow-up: the horizon
    rollout[0, 2] *= 10  # 100 × the energy at the third step
    rollout[1, 0, 0, 0, 0] = float("nan")  # non-finite at the first
    assert steps_until_blowup(rollout, truth[:, 0]).tolist() == [2.0, 0.0]
    assert spectrum_error(rollout[:, 0], truth[:, 0])[1] == CAP


def _batch(pushforward: bool) -> RolloutBatch:
    g = torch.Generator().manual_seed(1)
    u = torch.randn(1, 4, 4, 2, generator=g, dtype=torch.float64)
    target = torch.randn(1, 2, 4, 4, 2, generator=g, dtype=torch.float64)
    return RolloutBatch(u=u, target=target, mean=torch.zeros(2), std=torch.ones(2), pushforward=pushforward)


def test_the_pushforward_loss_equals_the_hand_computation():
    objective = objective_for("rollout")
    a = 0.8
    u, (t1, t2) = _batch(True).u[0].numpy(), _batch(True).target[0].numpy()
    r1, r2 = a * u - t1, a * a * u - t2  # the residuals of steps 1 and 2 (a², two applications)
    n1, n2 = np.linalg.norm(r1), np.linalg.norm(r2)
    value = 0.5 * (n1 / np.linalg.norm(t1) + n2 / np.linalg.norm(t2))
    d1 = (r1 * u).sum() / (n1 * np.linalg.norm(t1))  # d(step-1 term)/da
    # Step 2 is a · (a u): full backprop differentiates both factors (2a u), pushforward only the last one
    # applied to its detached input (a u).
    full = 0.5 * (d1 + (r2 * 2 * a * u).sum() / (n2 * np.linalg.norm(t2)))
    pushed = 0.5 * (d1 + (r2 * a * u).sum() / (n2 * np.linalg.norm(t2)))
    for pushforward, grad in ((True, pushed), (False, full)):
        model = Scale(a)
        loss = objective.loss(model, _batch(pushforward))
        loss.backward()
        assert loss.item() == pytest.approx(value, rel=1e-12)
        assert model.a.grad.item() == pytest.approx(grad, rel=1e-12)
    one = _batch(True)
    one.target = one.target[:, :1]  # K = 1: the official one-step relative L2
    assert objective.loss(Scale(a), one).item() == pytest.approx(n1 / np.linalg.norm(t1), rel=1e-12)
    scaled = _batch(True)  # physical units 3·x + 1: the model sees x, the error is taken on 3·x + 1
    scaled.u, scaled.target = 3 * scaled.u + 1, 3 * scaled.target[:, :1] + 1
    scaled.mean, scaled.std = torch.ones(2), 3 * torch.ones(2)
    physical = np.linalg.norm(3 * (a * u - t1)) / np.linalg.norm(3 * t1 + 1)
    assert objective.loss(Scale(a), scaled).item() == pytest.approx(physical, rel=1e-9)


def test_the_baseline_is_trained_exactly_like_ifactformer():
    for flow in ("hit", "kolmogorov"):
        ours, fno = get_recipe(f"ifactformer-{flow}"), get_recipe(f"fno-{flow}")
        assert ours.task == fno.task == "rollout" and ours.data == fno.data and ours.trainer == fno.trainer
        assert ours.trainer.lr == 5e-4 and ours.data.batch_size == 5 and ours.trainer.monitor == "val_rel_l2"
        t = ours.trainer  # the official optimizer and schedule: AdamW, StepLR(5, 0.7)
        assert (t.optimizer, t.weight_decay, t.lr_step, t.lr_decay) == ("adamw", 0.01, 5, 0.7)
        sizes = [sum(p.numel() for p in get_spec(r.model).build(r.model_config).parameters()) for r in (ours, fno)]
        assert abs(sizes[1] / sizes[0] - 1) < 0.05, sizes  # a baseline of the same size
    hit = get_recipe("ifactformer-hit")
    assert (hit.data.generation.grid, hit.data.generation.filter_to, hit.model_config.width) == (64, 16, 96)
    assert apply_overrides(hit, ["data.unroll=4", "data.pushforward=false"]).data.horizon == 4
    small = smoke(hit)
    assert small.data.generation.stored_grid == 8 and small.model_config.grid == (8, 8, 8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rollout")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.delenv("SEER_FIELDS_CACHE", raising=False)
        assert main(["train", SMOKE, "--smoke", "--set", "trainer.progress_bar=false"]) == 0
        yield uri, tmp


def test_a_smoke_run_registers_a_bundle_with_the_contract_metadata(trained):
    uri, tmp = trained
    name = f"{SMOKE}-smoke"
    client = MlflowClient(uri)
    version = client.get_model_version_by_alias(name, "champion")
    plots = {a.path for a in client.list_artifacts(version.run_id, "plots")}
    assert {"plots/rollout_slices.png", "plots/energy_spectra.png"} <= plots
    mlflow.set_tracking_uri(uri)
    local = mlflow.artifacts.download_artifacts(f"models:/{name}/{version.version}", dst_path=str(tmp / "dl"))
    model, meta = load_bundle(local)
    t = meta["transform"]
    assert type(model).__name__ == "IFactFormer" and model.config.grid == (16, 16)
    assert meta["task"] == "rollout" and meta["model"] == "ifactformer" and t["grid"] == [16, 16]
    assert t["components"] == ["u", "v"] and len(t["mean"]) == len(t["std"]) == 2 and min(t["std"]) > 0
    assert t["dt"] == pytest.approx(0.005 * 10) and t["domain"] == pytest.approx([2 * math.pi] * 2)
    assert t["max_steps"] == 200 and t["max_cost"] == 16**3 * 200 and t["generation"]["kind"] == "kolmogorov2d"
    assert {"test_rel_l2_step1", "test_rel_l2_last", "test_spectrum_error", "test_stable_steps"} <= set(meta["metrics"])
    field = np.asarray(meta["example_input"]["field"])
    assert meta["example_input"]["steps"] == 2 and field.shape == (16, 16, 2)
    (cached,) = (tmp / "data_cache" / "fields").glob("kolmogorov2d-*.npz")
    data = read_trajectories([cached])
    np.testing.assert_allclose(field, data.items[-1][0], atol=1e-6)  # the test trajectory's first snapshot
    predictor = load_predictor(local)  # the service's predictor takes the bundle as it is
    predictor.warm_up()
    out = predictor.rollout(field, 3)
    assert out.shape == (3, 16, 16, 2) and np.isfinite(out).all()


def test_the_service_serves_the_registered_smoke_model(trained, monkeypatch):
    """The acceptance path: what `seer train ... --smoke` registered, served by `seer serve`'s app from the
    registry (`NAME@champion`), answers a rollout of its own example input over HTTP."""
    from fastapi.testclient import TestClient

    from service import Settings, create_app

    uri, _ = trained
    name = f"{SMOKE}-smoke"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    settings = Settings(models=f"{name}@champion", tracking_uri=uri, max_wait_ms=0, reload_interval_s=0)
    with TestClient(create_app(settings)) as client:
        info = client.get(f"/v1/models/{name}").json()
        assert info["task"] == "rollout" and info["grid"] == [16, 16]
        r = client.post(f"/v1/models/{name}/rollout", json={**info["example_input"], "steps": 4, "every": 2})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["steps"] == [2, 4] and np.asarray(body["fields"]).shape == (2, 16, 16, 2)
        assert body["model"]["name"] == name and np.isfinite(np.asarray(body["fields"])).all()


class Oracle:
    """A predictor that knows the fresh data: it rolls out by looking each state up, so it scores 0 exactly
    when the holdout's truth is aligned with its states."""

    def __init__(self, meta, trajectories):
        self.meta, self.items = meta, trajectories.items

    def roll(self, u0, steps, every):
        out = []
        for x in u0:
            i, s = next((i, s) for i, traj in enumerate(self.items) for s in range(len(traj)) if np.all(traj[s] == x))
            out.append(self.items[i][s + 1 :][:steps].astype(np.float64))
        return out


def test_the_retraining_holdout_scores_on_fresh_trajectories(trained, tmp_path):
    uri, tmp = trained
    (cached,) = (tmp / "data_cache" / "fields").glob("kolmogorov2d-*.npz")
    holdout = holdout_for("rollout")
    fresh = holdout.read(str(cached.parent / "*.npz"))
    assert fresh.describe == {"files": "1", "trajectories": "3", "grid": "16x16"}
    folder = holdout.write(fresh, tmp_path, "job")
    assert (folder / cached.name).is_file()
    recipe = smoke(get_recipe(SMOKE))
    assert isinstance(recipe.data, RolloutDataConfig)
    windows = holdout.windows(fresh, recipe, 3)
    assert [s for _, s in windows.payload.samples] == [6, 9, 12]  # the last 3 test samples (every 3rd start)
    with pytest.raises(ValueError, match="does not fit"):
        holdout.windows(fresh, recipe, 100)
    predictor = load_predictor(next((tmp / "dl").rglob("config.json")).parent)
    oracle = Oracle(predictor.meta, fresh.payload)
    assert holdout.score(oracle, fresh, windows) == {"rel_l2": 0.0, "rel_l2_last": 0.0, "spectrum_error": 0.0}
    scores = holdout.score(predictor, fresh, windows)
    assert set(scores) == set(holdout.metrics) and all(0 < v < CAP for v in scores.values())
    assert holdout.incomparable(predictor, oracle) is None
    other = Oracle({**predictor.meta, "transform": {**predictor.meta["transform"], "grid": [8, 8]}}, fresh.payload)
    assert "not comparable" in holdout.incomparable(predictor, other)


def test_the_system_builds_adamw_with_a_step_schedule():
    """`optimizer="adamw"`, `lr_step=5`, `lr_decay=0.7` is torch's AdamW under StepLR(5, 0.7)."""
    from training.system import SeerSystem

    model = torch.nn.Linear(2, 2)
    system = SeerSystem(model, task="rollout", lr=1.0, lr_decay=0.7, lr_step=5, optimizer="adamw", weight_decay=0.01)
    conf = system.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["weight_decay"] == 0.01
    rates = []
    for _ in range(11):
        rates.append(opt.param_groups[0]["lr"])
        sched.step()
    assert rates == pytest.approx([1.0] * 5 + [0.7] * 5 + [0.49])
