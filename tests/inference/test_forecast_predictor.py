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
        "max_cost": 1.0,
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


# Issue 14: what a hostile client found in the request rules.


def stamps_every(step: timedelta, n: int = L, start: datetime = START) -> list[str]:
    return [(start + step * k).isoformat() for k in range(n)]


def gapped(step: timedelta, at: int, n: int = L) -> list[str]:
    """Hourly timestamps with one step of `step` before row `at` (rows missing where it is a multiple)."""
    stamps = [START + timedelta(hours=k) for k in range(n)]
    return [(t if k < at else t + step - timedelta(hours=1)).isoformat() for k, t in enumerate(stamps)]


@pytest.mark.parametrize(
    ("stamps", "needles", "field"),
    [
        (stamps_every(timedelta(minutes=15)), ("1 h apart", "timestamps[1] is 15 min after"), "timestamps.1"),
        (
            stamps_every(timedelta(days=1)),
            ("1 h apart", "only 0 of the 15 steps are 1 h", "1 day after"),
            "timestamps.1",
        ),
        (stamps_every(timedelta(microseconds=1)), ("1 h apart", "1e-06 s after"), "timestamps.1"),
        (gapped(timedelta(minutes=90), 5), ("whole number of 1 h", "timestamps[5] is 90 min after"), "timestamps.5"),
    ],
)
def test_timestamps_must_be_at_the_model_step(
    point: ForecastPredictor, stamps: list[str], needles: tuple[str, ...], field: str
) -> None:
    """15-minute, daily, microsecond or irregular timestamps to an hourly model: wrong calendar features and
    future timestamps labelled at 1-hour steps before; now a 422 naming the step and the first bad one."""
    got = reason(point, request(timestamps=stamps))
    assert got.field == field, got
    for needle in needles:
        assert needle in got.message, got


def test_a_gap_of_missing_rows_is_not_another_step(point: ForecastPredictor) -> None:
    """A whole number of steps between two rows is rows missing, as in the data a model trains on: served,
    with the calendar of each row as it is and the future at the model's step after the last."""
    inp = point.parse(request(timestamps=gapped(timedelta(hours=5), 9)))
    assert isinstance(inp, ForecastInput) and inp.future is not None
    assert inp.future[0] - inp.timestamps[-1] == timedelta(hours=1)  # type: ignore[index]


def test_a_model_without_a_step_takes_evenly_spaced_timestamps(prob: ForecastPredictor) -> None:
    uneven = stamps_every(timedelta(minutes=10), P_L)
    uneven[7] = (datetime.fromisoformat(uneven[7]) + timedelta(seconds=1)).isoformat()
    got = reason(prob, {"history": any_history(2), "timestamps": uneven})
    assert got.field == "timestamps.7" and "evenly spaced" in got.message and "leave `timestamps` out" in got.message


@pytest.mark.parametrize("step", [timedelta(milliseconds=500), timedelta(seconds=1.5), timedelta(microseconds=250)])
def test_sub_second_steps_are_kept(prob: ForecastPredictor, step: timedelta) -> None:
    """500 ms steps gave H copies of the last timestamp and 1.5 s steps came back as 1 s: the step was
    cut to whole seconds. The future continues the exact step."""
    stamps = stamps_every(step, P_L)
    inp = prob.parse({"history": any_history(1), "timestamps": stamps, "horizon": 5})
    assert isinstance(inp, ForecastInput)
    (out,) = prob.predict_batch([inp])
    assert isinstance(out, ForecastOutput) and out.timestamps is not None
    last = datetime.fromisoformat(stamps[-1])
    assert out.timestamps == [last + step * (k + 1) for k in range(5)]


def test_timestamps_past_year_9999_are_a_reason(point: ForecastPredictor, prob: ForecastPredictor) -> None:
    """The future timestamps overflowed datetime inside the batch (a 500 for every batch-mate on the
    probabilistic model); they are computed by `parse` now."""
    late = stamps_every(timedelta(hours=1), L, datetime(9999, 12, 31, 23 - L))
    got = reason(point, request(timestamps=late))
    assert got.field == "timestamps" and "9999-12-31" in got.message
    # A huge step between timestamps (a model without a fixed step takes the request's own).
    huge = stamps_every(timedelta(days=365 * 300), P_L, datetime(1, 1, 1))
    got = reason(prob, {"history": any_history(1), "timestamps": huge})
    assert got.field == "timestamps" and "would pass 9999-12-31" in got.message


@pytest.mark.parametrize(
    ("levels", "field", "needle"),
    [([1e-50], "quantiles.0", "quantiles[0] = 1e-50 rounds to 0"), ([0.5, 1 - 1e-10], "quantiles.1", "rounds to 1")],
)
def test_levels_that_round_to_0_or_1_in_float32(
    prob: ForecastPredictor, levels: list[float], field: str, needle: str
) -> None:
    """Named a level the client never sent and blamed `history`; now names the level sent, and why."""
    got = reason(prob, {"history": any_history(2), "quantiles": levels})
    assert got.field == field and needle in got.message and "float32" in got.message, got


@pytest.mark.parametrize(
    ("changes", "field", "needle"),
    [
        ({"history": with_value(0, 1, "1.5")}, "history.0.1", "got str '1.5'"),  # type: ignore[arg-type]
        ({"history": with_value(2, 0, True)}, "history.2.0", "got a boolean"),
        ({"horizon": "5"}, "horizon", "whole number"),
        ({"horizon": 5.0}, "horizon", "got float"),
        ({"horizon": True}, "horizon", "got a boolean"),
    ],
)
def test_numbers_are_parsed_strictly(
    point: ForecastPredictor, changes: dict[str, Any], field: str, needle: str
) -> None:
    """numpy read "1.5" and true as numbers, and a float horizon passed: all refused, by field."""
    got = reason(point, request(**changes))
    assert got.field == field and needle in got.message, got


def test_levels_are_parsed_strictly(prob: ForecastPredictor) -> None:
    for bad, needle in (([0.1, "0.5"], "got str"), ([True], "got a boolean"), ("0.5", "a list of levels")):
        got = reason(prob, {"history": any_history(2), "quantiles": bad})
        assert needle in got.message and got.field.startswith("quantiles"), got


def test_cost_grows_with_variates_and_horizon(point: ForecastPredictor, prob: ForecastPredictor) -> None:
    """Point models: one shape, cost 1. Probabilistic: relative to the example (3 variates) at the trained
    horizon; the bound is the widest request at the trained horizon, so each advertised bound is reachable
    alone but not together."""
    parsed = point.parse(request())
    assert isinstance(parsed, ForecastInput) and point.cost(parsed) == 1.0 == point.max_cost

    def cost(n: int, horizon: int) -> float:
        inp = prob.parse({"history": any_history(n), "horizon": horizon})
        assert isinstance(inp, ForecastInput)
        return prob.cost(inp)

    assert cost(3, P_H) == pytest.approx(1.0)
    assert cost(1, P_H) < 1.0 < cost(6, P_H) < cost(6, 2 * P_H)
    assert cost(64, P_H) == pytest.approx(prob.max_cost)
    assert cost(64, P_HMAX) > 4 * prob.max_cost and cost(1, P_HMAX) < prob.max_cost
    inp = prob.parse({"history": any_history(64), "horizon": P_HMAX})
    refusal = prob.too_costly(inp, cost(64, P_HMAX))  # type: ignore[arg-type]
    assert refusal.status == 413 and "64 variates over horizon 64" in refusal.message
    assert "shorter horizon" in refusal.message and "several requests" in refusal.message


def test_max_cost_comes_from_the_metadata(tmp_path: Path) -> None:
    path = make_moirai_bundle(tmp_path / "b")
    meta = json.loads((path / "config.json").read_text())
    meta["transform"]["max_cost"] = 2.5
    (path / "config.json").write_text(json.dumps(meta))
    assert load_predictor(path).describe()["max_cost"] == 2.5
    meta["transform"]["max_cost"] = "lots"
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="max_cost must be a positive number"):
        load_predictor(path)
