"""The forecast predictor's request rules and its serving path, without HTTP: `validate` gives a `Reason`
(message, field, status) for each broken rule, the same words the service answers with; `parse` gives the
validated `ForecastInput`; `predict_batch` answers validated inputs one by one; `warm_up` refuses a bundle
whose example is not a valid request; `describe` is the forecast block of the model info; a bundle of a
task with no predictor fails to load, saying so.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference.bundle import BundleError
from inference.predictor import Reason, Refused, load_predictor
from inference.tasks.forecast import MAX_QUANTILES, ForecastInput, ForecastOutput, ForecastPredictor
from tests.inference.forecast_bundles import (
    P_H,
    P_HMAX,
    P_L,
    START,
    H,
    L,
    N,
    any_history,
    hourly_stamps,
    make_bundle,
    make_moirai_bundle,
    point_history,
)


@pytest.fixture(scope="module")
def point(tmp_path_factory: pytest.TempPathFactory) -> ForecastPredictor:
    p = load_predictor(make_bundle(tmp_path_factory.mktemp("point") / "b"))
    assert isinstance(p, ForecastPredictor)
    return p


@pytest.fixture(scope="module")
def prob(tmp_path_factory: pytest.TempPathFactory) -> ForecastPredictor:
    p = load_predictor(make_moirai_bundle(tmp_path_factory.mktemp("prob") / "b"))
    assert isinstance(p, ForecastPredictor)
    return p


def request(**changes: Any) -> dict[str, Any]:
    return {"history": point_history(), "timestamps": hourly_stamps(), **changes}


def reason(p: ForecastPredictor, req: dict[str, Any]) -> Reason:
    got = p.validate(req)
    assert got is not None, req
    assert got.status == 422
    return got


def ragged() -> list[list[float]]:
    rows = point_history()
    rows[5] = rows[5][:2]
    return rows


def with_value(row: int, col: int, value: float | None) -> list[list[float | None]]:
    rows: list[list[float | None]] = [list(r) for r in point_history()]
    rows[row][col] = value
    return rows


def shifted(k: int, text: str) -> list[str]:
    stamps = hourly_stamps()
    stamps[k] = text
    return stamps


@pytest.mark.parametrize(
    ("changes", "needles", "field"),
    [
        ({"quantiles": [0.1, 0.9]}, ("point forecasts only", "omit `quantiles`"), "quantiles"),
        ({"horizon": H + 1}, (f"horizon must be at most {H} (this model's horizon)", f"got {H + 1}"), "horizon"),
        ({"horizon": 0}, ("horizon must be at least 1",), "horizon"),
        ({"history": point_history()[:3]}, (f"history must be {L} × {N}", "variates a, b, c", "got 3 × 3"), "history"),
        ({"history": []}, ("got an empty list",), "history"),
        ({"history": ragged()}, ("row 5 has 2 values",), "history.5"),
        ({"history": with_value(2, 1, None)}, ("NaN or infinite", "first at row 2, column 1 ('b')"), "history.2.1"),
        ({"history": with_value(3, 0, float("inf"))}, ("NaN or infinite",), "history.3.0"),
        ({"timestamps": None}, ("calendar features (freq 'h')", f"{L} ISO-8601 timestamps"), "timestamps"),
        ({"timestamps": hourly_stamps(L - 1)}, (f"must hold {L}", f"got {L - 1}"), "timestamps"),
        ({"timestamps": shifted(4, "noon")}, ("timestamps[4] = 'noon' is not an ISO-8601",), "timestamps.4"),
        ({"timestamps": shifted(4, hourly_stamps()[3])}, ("strictly increasing", "timestamps[4]"), "timestamps.4"),
        ({"timestamps": shifted(0, hourly_stamps()[0] + "Z")}, ("mix values with and without",), "timestamps"),
    ],
)
def test_point_rules_give_a_reason(
    point: ForecastPredictor, changes: dict[str, Any], needles: tuple[str, ...], field: str
) -> None:
    got = reason(point, request(**changes))
    assert got.field == field, got
    for needle in needles:
        assert needle in got.message, got


def test_the_first_broken_rule_is_told(point: ForecastPredictor) -> None:
    """Levels, then horizon, then history, then timestamps: the service's order."""
    both = request(horizon=H + 1, history=[], timestamps=None)
    assert reason(point, both).field == "horizon"
    assert reason(point, request(history=[], timestamps=None)).field == "history"


@pytest.mark.parametrize(
    ("levels", "needle", "field"),
    [
        ([], "1 to 20 levels", "quantiles"),
        ([(k + 1) / 30 for k in range(MAX_QUANTILES + 1)], "got 21", "quantiles"),
        ([0.5, 1.0], "strictly between 0 and 1", "quantiles.1"),
        ([float("nan")], "strictly between 0 and 1", "quantiles.0"),
        ([0.9, 0.1], "strictly increasing", "quantiles.1"),
    ],
)
def test_level_rules(prob: ForecastPredictor, levels: list[float], needle: str, field: str) -> None:
    got = reason(prob, {"history": any_history(2), "quantiles": levels})
    assert needle in got.message and "e.g. [0.1, 0.5, 0.9]" in got.message and got.field == field


def test_any_variate_rules(prob: ForecastPredictor) -> None:
    assert prob.validate({"history": any_history(5), "horizon": P_HMAX}) is None
    got = reason(prob, {"history": any_history(65)})
    assert "1 <= N <= 64" in got.message and f"got {P_L} × 65" in got.message
    rows = any_history(3)
    for row in rows:
        row[1] = None
    got = reason(prob, {"history": rows})
    assert "no observed value for variate 1" in got.message and got.field == "history"
    got = reason(prob, {"history": any_history(2), "horizon": P_HMAX + 1})
    assert f"at most {P_HMAX} (this model's max_horizon)" in got.message


def test_parse_gives_the_validated_input(point: ForecastPredictor) -> None:
    stamps = [t + "Z" for t in hourly_stamps()]
    inp = point.parse(request(timestamps=stamps))
    assert isinstance(inp, ForecastInput)
    assert inp.history.shape == (L, N) and inp.history.dtype == np.float64
    assert inp.horizon == H and inp.levels is None  # the trained horizon when none is asked
    assert inp.timestamps is not None and inp.timestamps[0] == START.replace(tzinfo=timezone.utc)
    # The parsed form passes the same rules (arrays and datetimes instead of lists and strings).
    assert point.validate(inp) is None
    bad = ForecastInput(np.zeros((L, N + 1)), inp.timestamps)
    assert f"history must be {L} × {N}" in reason(point, bad).message  # type: ignore[arg-type]


def test_predict_batch_answers_each_input(point: ForecastPredictor) -> None:
    inputs = [point.parse(request(history=point_history(s), horizon=h)) for s, h in ((0, H), (1, 3))]
    huge = point.parse(request(history=[[1e300] * N] * L))
    outs = point.predict_batch([*inputs, huge])  # type: ignore[list-item]
    assert isinstance(outs[0], ForecastOutput) and isinstance(outs[1], ForecastOutput)
    assert outs[0].forecast.shape == (H, N) and outs[1].forecast.shape == (3, N)
    assert outs[1].timestamps == [START + timedelta(hours=L + k) for k in range(3)]
    alone = point.predict(np.asarray(point_history(1))[None], [[START + timedelta(hours=k) for k in range(L)]])
    np.testing.assert_allclose(outs[1].forecast, alone[0, :3], rtol=1e-5, atol=1e-5)
    assert isinstance(outs[2], Refused) and "not finite" in str(outs[2]) and outs[2].reason.field == "history"


def test_probabilistic_batch_is_the_median_of_seeded_paths(prob: ForecastPredictor) -> None:
    inp = prob.parse({"history": any_history(2), "quantiles": [0.1, 0.9], "horizon": 20})
    other = prob.parse({"history": any_history(4, seed=1)})
    out, _ = prob.predict_batch([inp, other])  # type: ignore[list-item]
    alone = prob.predict_batch([inp])[0]  # type: ignore[list-item]
    assert isinstance(out, ForecastOutput) and isinstance(alone, ForecastOutput) and out.quantiles is not None
    assert out.forecast.shape == (20, 2) and set(out.quantiles) == {0.1, 0.9}
    q = prob.predict_quantiles(np.asarray(any_history(2))[None], [0.1, 0.5, 0.9], horizon=20)[0]
    np.testing.assert_allclose(out.forecast, q[..., 1], rtol=1e-6)
    np.testing.assert_array_equal(out.forecast, alone.forecast)  # batch-mates change nothing


def test_checked_array_api_refuses_with_the_same_words(point: ForecastPredictor) -> None:
    x = np.stack([np.asarray(point_history(s)) for s in range(2)])
    x[1, 2, 1] = np.nan
    stamps = [[START + timedelta(hours=k) for k in range(L)]] * 2
    with pytest.raises(Refused, match=r"batch row 1: history holds 1 NaN or infinite value\(s\)"):
        point.predict(x, stamps)
    with pytest.raises(ValueError, match="calendar features"):
        point.predict(x[:1])
    with pytest.raises(ValueError, match="point forecasts only"):
        point.predict_quantiles(x[:1], [0.5])


def test_describe_is_the_forecast_block(point: ForecastPredictor, prob: ForecastPredictor) -> None:
    block = point.describe()
    assert block == {
        "lookback": L,
        "horizon": H,
        "variates": ["a", "b", "c"],
        "freq": "h",
        "step_seconds": 3600,
        "uses_timestamps": True,
        "quantiles": False,
        "probabilistic": False,
        "max_horizon": H,
        "any_variates": False,
        "max_variates": N,
        "allows_missing": False,
    }
    assert prob.describe()["max_horizon"] == P_HMAX and prob.describe()["horizon"] == P_H
    json.dumps(block)  # JSON-able as it is


def test_warm_up_refuses_an_example_that_is_not_a_valid_request(tmp_path: Path) -> None:
    path = make_bundle(tmp_path / "b")
    config = path / "config.json"
    meta = json.loads(config.read_text())
    meta["example_input"]["history"] = [row[:2] for row in meta["example_input"]["history"]]
    config.write_text(json.dumps(meta))
    p = load_predictor(path)
    with pytest.raises(ValueError, match=f"example input is not a valid request: history must be {L} × {N}"):
        p.warm_up()
    del meta["example_input"]  # no example: a synthetic window at the scaler's mean, hourly timestamps
    config.write_text(json.dumps(meta))
    load_predictor(path).warm_up()


def test_a_bundle_of_a_task_with_no_predictor_fails_to_load(tmp_path: Path) -> None:
    path = make_bundle(tmp_path / "b")
    meta = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**meta, "task": "teleport"}))
    with pytest.raises(BundleError, match="no predictor for task 'teleport'; tasks with a predictor: forecast"):
        load_predictor(path)


def test_timestamps_may_come_parsed(point: ForecastPredictor) -> None:
    parsed = [datetime.fromisoformat(t) for t in hourly_stamps()]
    assert point.validate(request(timestamps=parsed)) is None
