"""Turbulence dataset generation (`data.fields.generate`): reproducible from a seed, written with its
parameters, read back with validation, and hostile files refused with a clear ValueError."""

import json
import math

import numpy as np
import pytest
import torch

from data.fields.generate import (
    FieldFileError,
    FieldGenConfig,
    generate,
    main,
    random_velocity,
    read_fields,
    write_fields,
)
from data.fields.spectral import SpectralGrid, energy, energy_spectrum


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tiny(kind: str = "kolmogorov2d", **overrides) -> FieldGenConfig:
    base = {"grid": 16, "filter_to": 8, "trajectories": 2, "snapshots": 3, "save_every": 2, "spinup_steps": 4}
    return FieldGenConfig.for_kind(kind, **{**base, **overrides})


def test_random_velocity_is_solenoidal_with_the_asked_energy_and_peak():
    u = random_velocity((32, 32, 32), k_peak=4.0, energy=0.7, generator=torch.Generator().manual_seed(3))
    grid = SpectralGrid((32, 32, 32))
    u_hat = grid.fft(torch.movedim(u, -1, 0))
    div = sum(k * u_hat[i] for i, k in enumerate(grid.k))
    assert float(div.abs().max()) < 1e-14 and float(energy(u)) == pytest.approx(0.7, rel=1e-12)
    assert 3 <= int(energy_spectrum(u).argmax()) <= 5


@pytest.mark.parametrize("kind", ["kolmogorov2d", "hit3d"])
def test_generation_is_reproducible_from_the_seed(kind):
    cfg = _tiny(kind, trajectories=2 if kind == "kolmogorov2d" else 1)
    a, b = generate(cfg, progress=False), generate(cfg, progress=False)
    assert a.shape == cfg.field_shape() and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.array_equal(a, b)
    other = generate(FieldGenConfig.from_dict({**cfg.to_dict(), "seed": 1}), progress=False)
    assert not np.allclose(a, other)
    assert np.abs(a[:, 1:] - a[:, :-1]).max() > 0  # the flow evolves between snapshots
    if kind == "kolmogorov2d":  # trajectory i depends on (seed, i) only, not on how many are drawn
        assert not np.allclose(a[0], a[1])
        one = generate(FieldGenConfig.from_dict({**cfg.to_dict(), "trajectories": 1}), progress=False)
        assert np.array_equal(one[0], a[0])


def test_file_round_trips_with_its_params(tmp_path):
    cfg = _tiny()
    u = generate(cfg, progress=False)
    path = write_fields(tmp_path / "k.npz", u, cfg)
    data = read_fields(path)
    assert np.array_equal(data.u, u) and data.config == cfg
    assert np.allclose(data.t, (4 + 2 * np.arange(3)) * cfg.dt)
    with np.load(path, allow_pickle=False) as z:  # params is plain JSON with every generation parameter
        params = json.loads(str(z["params"]))
    assert {"grid", "nu", "dt", "forcing_amplitude", "filter_to", "filter_kind", "seed", "save_every"} <= set(params)
    assert params["spinup_steps"] == 4 and params["precision"] == "float64"


def _write_raw(path, **arrays):
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path


def test_bad_files_get_a_clear_value_error(tmp_path):
    cfg = _tiny(trajectories=1, snapshots=2)
    good = {
        "u": np.zeros(cfg.field_shape(), np.float32),
        "t": cfg.times(),
        "params": np.array(json.dumps(cfg.to_dict())),
    }
    read_fields(_write_raw(tmp_path / "ok.npz", **good))  # the baseline is valid
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    truncated = (tmp_path / "ok.npz").read_bytes()[:200]
    (tmp_path / "cut.npz").write_bytes(truncated)
    nan = good["u"].copy()
    nan[0, 1, 2, 3, 0] = np.nan
    bad_params = {**cfg.to_dict(), "grid": 15}
    cases = {
        "junk.npz": "not a readable",
        "cut.npz": "not a readable",
        "missing.npz": "no such file",
        _write_raw(tmp_path / "shape.npz", **{**good, "u": np.zeros((1, 2, 8, 8, 3), np.float32)}).name: "imply",
        _write_raw(tmp_path / "nan.npz", **{**good, "u": nan}).name: "non-finite",
        _write_raw(tmp_path / "t.npz", **{**good, "t": cfg.times()[::-1]}).name: "snapshot times",
        _write_raw(tmp_path / "keys.npz", u=good["u"], t=good["t"]).name: "expected exactly",
        _write_raw(tmp_path / "json.npz", **{**good, "params": np.array("{not json")}).name: "bad params",
        _write_raw(tmp_path / "grid.npz", **{**good, "params": np.array(json.dumps(bad_params))}).name: "grid",
        _write_raw(
            tmp_path / "type.npz", **{**good, "params": np.array(json.dumps({"grid": "16"}))}
        ).name: "must be int",
        _write_raw(tmp_path / "extra.npz", **{**good, "params": np.array('{"colour": 1}')}).name: "unknown",
        _write_raw(tmp_path / "num.npz", **{**good, "params": np.array(3.0)}).name: "one JSON string",
    }
    for name, message in cases.items():
        with pytest.raises(FieldFileError, match=message):
            read_fields(tmp_path / name)
    assert issubclass(FieldFileError, ValueError)
    with pytest.raises(FieldFileError, match="allowed"):  # the array sizes are checked before decompressing
        read_fields(tmp_path / "ok.npz", max_array_bytes=100)


def test_a_run_that_outruns_its_time_step_stops_with_the_reason():
    with pytest.raises(RuntimeError, match="Courant"):
        generate(_tiny(trajectories=1, dt=2.0), progress=False)
    with pytest.raises(ValueError, match="filter_to"):
        _tiny(filter_to=32)


def test_cli_writes_a_readable_dataset(tmp_path, capsys):
    out = tmp_path / "hit.npz"
    args = "--kind hit3d --grid 16 --filter-to 8 --trajectories 1 --steps 2 --save-every 1 --spinup 1 --seed 5"
    cfg = main([*args.split(), "--out", str(out)])
    data = read_fields(out)
    assert data.u.shape == (1, 2, 8, 8, 8, 3) and data.config == cfg and cfg.seed == 5
    assert cfg.nu == 0.01 and math.isclose(cfg.dt, 0.01)  # the hit3d preset
    assert "wrote" in capsys.readouterr().out
