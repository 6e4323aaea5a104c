"""bench/pde_accuracy.py and bench/pde_rollout.py in --quick mode on tiny bundles and a tiny Kolmogorov set
(32² DNS -> 16², generated into a temporary cache): the JSON rows and fields, finite figures, and the solver
baselines behaving like solvers (nothing is written to bench/results)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import pde_accuracy, pde_rollout  # noqa: E402
from data.fields.generate import FieldGenConfig  # noqa: E402
from forecasters.fno.config import FNOConfig  # noqa: E402
from forecasters.fno.model import FNO  # noqa: E402
from forecasters.ifactformer.config import IFactFormerConfig  # noqa: E402
from forecasters.ifactformer.model import IFactFormer  # noqa: E402
from inference.bundle import save_bundle  # noqa: E402

GEN = FieldGenConfig.for_kind(
    "kolmogorov2d", grid=32, filter_to=16, trajectories=3, snapshots=16, save_every=5, spinup_steps=40, seed=0
)


def _bundle(directory: Path, model: torch.nn.Module, name: str, family: str) -> Path:
    meta = {
        "name": name,
        "model": family,
        "task": "rollout",
        "model_config": model.config.to_dict(),
        "recipe": f"{family}-kolmogorov",
        "transform": {
            "grid": [16, 16],
            "components": ["u", "v"],
            "mean": [0.0, 0.0],
            "std": [0.7, 0.6],
            "dt": GEN.dt * GEN.save_every,
            "domain": [2 * math.pi] * 2,
            "generation": GEN.to_dict(),
        },
    }
    return save_bundle(directory / name, model.eval(), meta)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("pde")
    torch.manual_seed(0)
    ifact = IFactFormer(IFactFormerConfig.tiny(grid=(16, 16), n_components=2))
    fno = FNO(FNOConfig.tiny(grid=(16, 16), n_components=2))
    return [str(_bundle(root, ifact, "ifact-tiny", "ifactformer")), str(_bundle(root, fno, "fno-tiny", "fno"))]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEER_FIELDS_CACHE", str(tmp_path_factory.getbasetemp() / "fields-cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_upsample_keeps_the_modes() -> None:
    from data.fields.spectral import filter_field

    u = pde_accuracy.upsample_field(torch.randn(2, 16, 16, 2, dtype=torch.float64), 32)
    back = filter_field(u, 16)  # band-limited inside the coarse sphere: filtering it returns the same field
    again = filter_field(pde_accuracy.upsample_field(back, 32), 16)
    assert u.shape == (2, 32, 32, 2) and torch.allclose(again, back, atol=1e-12)


def test_pde_accuracy_quick(bundles: list[str], tmp_path: Path) -> None:
    out = tmp_path / "acc.json"
    assert pde_accuracy.main(["--models", *bundles, "--quick", "--out", str(out)]) == 0
    rows = {r["model"]: r for r in json.loads(out.read_text())["results"]}
    assert set(rows) == {"ifactformer-m", "fno", "solver-16"}
    for r in rows.values():
        assert r["task"] == "rollout" and r["horizon"] == 12 and 0 <= r["stable_steps"] <= 12
        for s in (1, 2, 4):
            for key in (f"rel_l2_step{s}", f"spectrum_error_step{s}", f"long_rel_l2_step{s}"):
                assert math.isfinite(r[key]) and r[key] >= 0, (r["model"], key)
        assert r["starts_step1"] == 8 and r["starts_step4"] == 6  # 16 snapshots, hop 2
    # The coarse solver is a solver: near the truth (its 2/3 rule drops the top third of the stored modes).
    assert rows["solver-16"]["rel_l2_step1"] < 0.5 and rows["solver-16"]["stable_steps"] == 12


def test_score_of_the_truth_is_zero() -> None:
    traj = np.random.default_rng(0).normal(size=(9, 8, 8, 2)).astype(np.float32)

    def exact(u0, steps, keep):
        idx = [int(np.flatnonzero((traj == u).all(axis=(1, 2, 3)))[0]) for u in u0]
        return {s: torch.from_numpy(traj[[i + s for i in idx]]).double() for s in keep}, np.full(len(u0), steps)

    res = pde_accuracy.score(exact, traj, (1, 4), 2)
    assert res["rel_l2_step1"] == 0 and res["rel_l2_step4"] == 0 and res["starts_step4"] == 3


def test_pde_rollout_quick(bundles: list[str], tmp_path: Path) -> None:
    out = tmp_path / "rollout.json"
    assert pde_rollout.main(["--models", *bundles, "--quick", "--out", str(out)]) == 0
    body = json.loads(out.read_text())
    m = body["methods"]
    assert {"ifactformer-m", "fno", "dns-32", "dns-32-from-coarse", "solver-16", "persistence"} <= set(m)
    assert body["grid"] == {"fine": [32, 32], "coarse": [16, 16]} and body["threads"] == 1
    assert math.isclose(body["simulated_time"], 4 * GEN.dt * GEN.save_every)
    assert m["dns-32"]["speedup_vs_dns"] == 1.0 and m["dns-32"]["rel_l2_step4"] == 0.0
    for name, r in m.items():
        assert all(math.isfinite(r[f"rel_l2_step{s}"]) for s in (1, 4)), name
        if name != "persistence":
            assert r["wall_s"] > 0 and math.isfinite(r["speedup_vs_dns"]), name
    # The fine solver from the coarse state tracks the truth better than holding the field still.
    assert m["dns-32-from-coarse"]["rel_l2_step1"] < m["persistence"]["rel_l2_step1"]
