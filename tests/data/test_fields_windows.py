"""The rollout DataModule (`data.fields.windows`): split by trajectory without leakage, normalisation fitted
on the training trajectories only, samples (u_t, u_{t+1..t+K}) at the configured stride, the contract's
transform and example, and the generated dataset cached by its parameters."""

import math

import numpy as np
import pytest

import data.fields.windows as windows
from data.fields.generate import FieldGenConfig, write_fields
from data.fields.windows import RolloutDataConfig, split_trajectories
from data.schemas import RolloutBatch

N, T, GRID = 5, 12, 8


def labelled_file(path):
    """5 trajectories of 12 snapshots on 8², every value saying where it is from: component 0 holds
    100·trajectory + snapshot, component 1 its negative (so a window's trajectory and time can be read back)."""
    cfg = FieldGenConfig.for_kind("kolmogorov2d", grid=GRID, filter_to=None, trajectories=N, snapshots=T)
    label = 100.0 * np.arange(N)[:, None] + np.arange(T)[None, :]  # [N, T]
    u = np.empty(cfg.field_shape(), dtype=np.float32)
    u[..., 0] = label[:, :, None, None]
    u[..., 1] = -label[:, :, None, None]
    return write_fields(path, u, cfg), label


def module(path, **kw):
    dm = RolloutDataConfig(dataset=str(path), n_val=1, n_test=1, **kw).datamodule()
    dm.setup()
    return dm


def labels(batch: RolloutBatch) -> tuple[np.ndarray, np.ndarray]:
    """The label of every sample's state [B] and of its targets [B, K] (read from one grid point)."""
    return batch.u[:, 0, 0, 0].numpy(), batch.target[:, :, 0, 0, 0].numpy()


def test_splits_by_trajectory_without_leakage_and_normalises_on_train_only(tmp_path):
    path, label = labelled_file(tmp_path / "f.npz")
    dm = module(path, unroll=2, stride=2, eval_steps=3, eval_hop=2, batch_size=4)
    assert dm.parts == {"train": [0, 1, 2], "val": [3], "test": [4]}
    for part in ("train", "val", "test"):
        seen = set()
        for batch in getattr(dm, f"{part}_dataloader")():
            u, target = labels(batch)
            traj, t = u // 100, u % 100
            assert set(traj.astype(int)) <= set(dm.parts[part])  # every state of the part's trajectories
            steps = target.shape[1]
            assert steps == (2 if part == "train" else 3)
            np.testing.assert_array_equal(target, u[:, None] + 2 * np.arange(1, steps + 1))  # stride 2, same traj
            assert (t + 2 * steps <= T - 1).all()
            seen |= set(u.astype(int))
            assert batch.mean.shape == (2,) and batch.pushforward
        starts = range(0, T - 2 * 2) if part == "train" else range(0, T - 2 * 3, 2)
        assert seen == {100 * i + s for i in dm.parts[part] for s in starts}
    train = label[:3]  # the mean and std of the training trajectories' values, nothing else
    np.testing.assert_allclose(dm.mean, [train.mean(), -train.mean()], rtol=1e-6)
    np.testing.assert_allclose(dm.std, [train.std(), train.std()], rtol=1e-6)
    assert abs(dm.mean[0] - label.mean()) > 50  # all trajectories would give another mean


def test_transform_example_and_the_bundle_normalisation(tmp_path):
    path, label = labelled_file(tmp_path / "f.npz")
    dm = module(path, eval_steps=4)
    t = dm.transform_meta()
    assert t["grid"] == [GRID, GRID] and t["components"] == ["u", "v"]
    assert t["dt"] == pytest.approx(0.005 * 10) and t["domain"] == [2 * math.pi] * 2
    assert (t["max_steps"], t["max_cost"]) == (200, 16**3 * 200.0) and t["dataset"] == str(path)
    assert t["generation"]["kind"] == "kolmogorov2d" and t["generation"]["trajectories"] == N
    assert t["mean"] == pytest.approx(list(dm.mean)) and dm.model_dims() == {"grid": (GRID, GRID), "n_components": 2}
    ex = dm.example_input()
    field = np.asarray(ex["field"])
    assert ex["steps"] == 2 and field.shape == (GRID, GRID, 2)
    assert (field[..., 0] == label[4, 0]).all()  # the first snapshot of the test trajectory, physical units
    example = dm.evaluation_example()
    assert example.truth.shape == (5, GRID, GRID, 2) and example.truth[0, 0, 0, 0] == label[4, 0]
    again = RolloutDataConfig(dataset=str(path), n_val=1, n_test=1).for_bundle({"mean": [1.0, 2.0], "std": [3.0, 4.0]})
    dm2 = again.datamodule()
    dm2.setup()
    assert list(dm2.mean) == [1.0, 2.0] and list(dm2.std) == [3.0, 4.0]


def test_refuses_what_cannot_be_split_or_sampled(tmp_path):
    path, _ = labelled_file(tmp_path / "f.npz")
    with pytest.raises(ValueError, match="still one to train on"):
        split_trajectories(3, 2, 1)
    with pytest.raises(ValueError, match="too short for one 20-step sample"):
        module(path, eval_steps=20)
    with pytest.raises(ValueError, match="std positive"):
        RolloutDataConfig(mean=(0.0,), std=(0.0,))
    with pytest.raises(FileNotFoundError, match="no fields dataset"):
        module(tmp_path / "nothing-*.npz")


def test_generates_the_dataset_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEER_FIELDS_CACHE", str(tmp_path / "cache"))
    gen = FieldGenConfig.for_kind(
        "kolmogorov2d", grid=16, filter_to=8, trajectories=3, snapshots=5, save_every=2, spinup_steps=4, seed=3
    )
    config = RolloutDataConfig(generation=gen, n_val=1, n_test=1, unroll=1, eval_steps=2, eval_hop=1)
    dm = config.datamodule()
    dm.setup()
    (path,) = dm.paths
    assert path.parent == tmp_path / "cache" and path.name.startswith("kolmogorov2d-")
    assert dm.grid == (8, 8) and dm.transform_meta()["generation"] == gen.to_dict()

    def fail(*args, **kwargs):
        raise AssertionError("the cached dataset should have been reused")

    monkeypatch.setattr(windows, "generate", fail)
    again = config.datamodule()
    again.setup()
    np.testing.assert_array_equal(again.data.items[0], dm.data.items[0])
    other = RolloutDataConfig(generation=FieldGenConfig.from_dict({**gen.to_dict(), "seed": 4}))
    with pytest.raises(AssertionError, match="reused"):  # other parameters: another file
        other.files()
