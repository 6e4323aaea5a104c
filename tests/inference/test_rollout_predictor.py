"""The rollout predictor: request rules (each refusal names the field and says what to send), the numbers
(normalise → model.rollout → de-normalise, checked against the model called by hand), the work and answer
bounds, a model that blows up (refused naming the step), batching, warm-up, describe and the pyfunc path."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from inference.bundle import BundleError
from inference.predictor import CostModel, Reason, Refused, load_predictor, request_cost
from inference.tasks.rollout import RolloutInput, RolloutPredictor
from tests.inference.rollout_bundles import (
    BLOW_UP,
    COST_STEPS,
    DT,
    GRID_3D,
    MAX_FIELDS,
    MAX_STEPS,
    MEAN,
    STD,
    flow,
    make_rollout_bundle,
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny grids run fastest on one thread, and a busy 2-core machine makes a second one spin (10× slower
    here, measured); the setting is the process's, so it is put back after this module."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> RolloutPredictor:
    p = load_predictor(make_rollout_bundle(tmp_path_factory.mktemp("b")))
    assert isinstance(p, RolloutPredictor)
    return p


@pytest.fixture(scope="module")
def blowup(tmp_path_factory) -> RolloutPredictor:
    return RolloutPredictor.load(make_rollout_bundle(tmp_path_factory.mktemp("x"), blow_up=BLOW_UP))


def by_hand(p: RolloutPredictor, u: np.ndarray, steps: int) -> np.ndarray:
    """The model called directly: [S, *grid, V] physical, every step."""
    V = u.shape[-1]
    mean, std = np.asarray(MEAN[:V]), np.asarray(STD[:V])
    x = torch.tensor((u - mean) / std, dtype=torch.float32)[None]
    with torch.no_grad():
        y = p.model.rollout(x, steps)[0].double().numpy()  # [S, *grid, V] normalised
    return y * std + mean


def request(**over):
    return {"field": flow().tolist(), "steps": 4, **over}


@pytest.mark.parametrize("grid", [(8, 8), GRID_3D])
def test_rollout_is_normalise_model_denormalise_every_kth_step(tmp_path, predictor, grid):
    p = predictor if grid == (8, 8) else RolloutPredictor.load(make_rollout_bundle(tmp_path, grid=grid))
    u = flow(grid)
    out = p.rollout(u, steps=6, every=2)
    assert out.shape == (3, *grid, len(grid))
    np.testing.assert_allclose(out, by_hand(p, u, 6)[[1, 3, 5]], rtol=1e-5, atol=1e-6)
    # The transform matters: the model on the raw field (no normalisation) gives other numbers.
    with torch.no_grad():
        raw = p.model.rollout(torch.tensor(u, dtype=torch.float32)[None], 2)[0, 1].numpy()
    assert not np.allclose(out[0], raw, atol=1e-2)


@pytest.mark.parametrize(
    "change, field, needle",
    [
        ({"field": flow()[:7].tolist()}, "field", "field holds 7 entries, expected 8 (grid points along x)"),
        ({"field": flow((8, 6)).tolist()}, "field.0", "holds 6 entries, expected 8 (grid points along y)"),
        ({"field": np.concatenate([flow()] * 2, -1).tolist()}, "field.0.0", "expected 2 (components)"),
        ({"field": flow()[..., 0].tolist()}, "field.0.0", "field[0][0] is float, expected a list of 2"),
        ({"field": [*flow()[:7].tolist(), flow()[7, :5].tolist()]}, "field.7", "holds 5 entries, expected 8"),
        ({"field": flow((8, 8, 8))[..., :2].tolist()}, "field.0.0", "shape [8][8][2] (x, y, then components u, v)"),
        ({"field": np.full((8, 8, 2), "a").tolist()}, "field", "numbers only"),
        ({"field": 3.0}, "field", "nested lists of shape [8][8][2]"),
        ({"field": None}, "field", "field is required"),
        ({"field": (flow() * 1e7).tolist()}, "field.0.0.0", "over 1e+06"),
        ({"steps": None}, "steps", "steps is required"),
        ({"steps": 0}, "steps", "from 1 to 50"),
        ({"steps": MAX_STEPS + 1}, "steps", "continue a longer rollout"),
        ({"steps": 2.5}, "steps", "an integer"),
        ({"steps": True}, "steps", "an integer"),
        ({"every": 0}, "every", "from 1 to steps (4)"),
        ({"every": 5}, "every", "from 1 to steps (4)"),
    ],
)
def test_each_rule_refuses_with_what_to_send(predictor, change, field, needle):
    reason = predictor.parse(request(**change))
    assert isinstance(reason, Reason), reason
    assert needle in reason.message and reason.field == field and reason.status == 422, reason


def test_non_finite_values_are_named_by_index(predictor):
    for bad in (np.nan, np.inf, -np.inf):
        u = flow()
        u[3, 5, 1] = bad
        reason = predictor.parse(request(field=u.tolist()))
        assert isinstance(reason, Reason) and reason.field == "field.3.5.1" and "NaN or infinite" in reason.message


def test_the_work_and_the_answer_are_bounded(predictor):
    assert isinstance(predictor, CostModel)
    ok = predictor.parse(request(steps=COST_STEPS, every=COST_STEPS // MAX_FIELDS))
    assert isinstance(ok, RolloutInput) and request_cost(predictor, ok) == (COST_STEPS, None)
    short = predictor.parse(request(steps=2))
    assert request_cost(predictor, short)[0] == 2.0  # in model steps over the grid: light under SEER_HEAVY_COST
    big = predictor.parse(request(steps=COST_STEPS + 5, every=5))
    cost, refusal = request_cost(predictor, big)
    assert cost == COST_STEPS + 5 and refusal is not None and refusal.status == 413 and refusal.field == "steps"
    assert "64 grid points × 45 steps = 2880" in refusal.message and "at most 40 steps" in refusal.message
    many = predictor.parse(request(steps=25, every=2))  # 12 fields > MAX_FIELDS
    assert isinstance(many, Reason) and many.status == 413 and many.field == "every"
    assert "ask for every >= 3" in many.message and predictor.parse(request(steps=25, every=3)) is not None
    with pytest.raises(Refused, match="too much work"):
        predictor.rollout(flow(), COST_STEPS + 1, every=COST_STEPS + 1)


def test_a_model_that_blows_up_is_refused_naming_the_step(blowup):
    # Find the first non-finite step by hand: the refusal must name that one.
    fields = by_hand(blowup, flow(), 20)
    first = 1 + int(np.flatnonzero(~np.isfinite(fields.reshape(20, -1)).all(axis=1))[0])
    assert 2 < first < 20
    with pytest.raises(Refused, match=f"diverged at step {first}: .*ask for at most {first - 1} steps") as e:
        blowup.rollout(flow(), 20, every=2)
    assert e.value.reason.status == 422 and e.value.reason.field == "steps"
    # Up to the step before, the answer stands (finite, however large); batch-mates of a diverging input too.
    inputs = [blowup.parse(request(steps=first - 1)), blowup.parse(request(steps=20, every=4)), blowup.parse(request())]
    outs = blowup.predict_batch(inputs)
    assert isinstance(outs[1], Refused) and f"step {first}" in str(outs[1])
    assert np.isfinite(outs[0].fields).all() and outs[0].steps == list(range(1, first))
    np.testing.assert_allclose(outs[2].fields, fields[:4], rtol=1e-4)


def test_a_batch_answers_each_input_as_if_alone(predictor):
    inputs = [
        predictor.parse(request(field=flow(seed=s).tolist(), steps=steps, every=every))
        for s, steps, every in [(0, 4, 1), (1, 4, 2), (2, 3, 3), (3, 4, 4), (4, 3, 1)]
    ]
    outs = predictor.predict_batch(inputs)
    for inp, out in zip(inputs, outs, strict=True):
        alone = predictor.rollout(inp.field, inp.steps, inp.every)
        assert out.steps == inp.returned and out.dt == DT
        np.testing.assert_allclose(out.fields, alone, rtol=1e-5, atol=1e-6)


def test_warm_up_describe_and_pyfunc(predictor, tmp_path):
    predictor.warm_up()
    info = predictor.describe()
    assert info["grid"] == [8, 8] and info["components"] == ["u", "v"] and info["dt"] == DT
    assert info["domain"] == [2 * math.pi] * 2 and info["max_steps"] == MAX_STEPS
    assert info["max_cost"] == 64 * COST_STEPS and info["max_fields"] == MAX_FIELDS
    answer = predictor.pyfunc_predict(request(every=2))
    assert answer["steps"] == [2, 4] and answer["dt"] == DT and np.asarray(answer["fields"]).shape == (2, 8, 8, 2)
    frame = pd.DataFrame({"field": [flow().tolist(), flow(seed=1).tolist()], "steps": [2, 3]})
    out = predictor.pyfunc_predict(frame)
    assert list(out["steps"]) == [[1, 2], [1, 2, 3]] and np.asarray(out["fields"][1]).shape == (3, 8, 8, 2)
    with pytest.raises(Refused, match="expected 8"):
        predictor.pyfunc_predict(request(field=flow()[:7].tolist()))
    # Through the MLflow pyfunc model itself (what `mlflow models serve` runs).
    from inference.pyfunc_model import SeerModel

    model = SeerModel()
    model.load_context(SimpleNamespace(artifacts={"bundle": str(make_rollout_bundle(tmp_path / "m"))}))
    got = model.predict(None, request(steps=3))
    np.testing.assert_allclose(got["fields"], predictor.rollout(flow(), 3), rtol=1e-6)


def test_a_bundle_whose_transform_does_not_fit_is_refused_at_load(tmp_path):
    path = make_rollout_bundle(tmp_path)
    meta = json.loads((path / "config.json").read_text())
    for key, value, needle in [
        ("grid", [8, 6], "differs from the model's"),
        ("std", [1.0, 0.0], "std must be > 0"),
        ("mean", [0.0], "mean must be 2 finite numbers"),
        ("dt", -1.0, "dt must be a positive number"),
    ]:
        bad = {**meta, "transform": {**meta["transform"], key: value}}
        (path / "config.json").write_text(json.dumps(bad))
        with pytest.raises(BundleError, match=needle):
            RolloutPredictor.load(path)
