"""`seer score`: one forecast per series of long or wide files (or a glob), written in long format, with the
numbers the forecast predictor (the service's code) gives for the same window; a series the model cannot
take is skipped and listed, a bad file is one line and status 2. Tiny real bundles: an any-variate
probabilistic Moirai-MoE (each series alone) and a fixed-variate hourly iTransformer (its variates together)."""

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from inference.predictor import load_predictor
from seer.cli import main
from seer.score import DEFAULT_LEVELS, errors_path, quantile_column
from tests.inference.forecast_bundles import P_H, P_L, H, L, make_bundle, make_moirai_bundle

HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("score-bundles")
    return make_moirai_bundle(tmp / "moirai"), make_bundle(tmp / "itransformer")


def long_frame(lengths: dict[str, int], seed: int = 0, stagger: int = 5) -> pl.DataFrame:
    """Hourly series of the given lengths, each starting `stagger` hours after the one before, rows shuffled."""
    rng = np.random.default_rng(seed)
    parts = []
    for k, (uid, n) in enumerate(lengths.items()):
        start = datetime(2024, 1, 1) + k * stagger * HOUR
        y = 10.0 * (k + 1) + np.sin(np.arange(n) / 3) + 0.1 * rng.normal(size=n)
        parts.append(pl.DataFrame({"unique_id": [uid] * n, "ds": [start + i * HOUR for i in range(n)], "y": y}))
    return pl.concat(parts).sample(fraction=1.0, shuffle=True, seed=seed)


def score(*argv: str) -> int:
    return main(["score", *argv])


def expected(predictor, stamps, values, levels=None):
    """The predictor's answer for one window: what `POST .../forecast` answers."""
    (out,) = predictor.predict_batch(
        [
            predictor.parse(
                {
                    "history": values[-predictor.lookback :],
                    "timestamps": stamps[-predictor.lookback :],
                    "quantiles": levels,
                }
            )
        ]
    )
    return out


def test_long_parquet_any_variate_one_forecast_per_series_and_short_series_listed(bundles, tmp_path, capsys):
    moirai, _ = bundles
    lengths = {"s1": P_L + 10, "s2": P_L, "s3": P_L + 3, "short": P_L - 5}
    frame = long_frame(lengths)
    frame.write_parquet(tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    assert score(str(moirai), "--input", str(tmp_path / "in.parquet"), "--output", str(out)) == 0
    said = capsys.readouterr().out
    assert "scored 3 of 4 series" in said and "skipped 1 series" in said
    got = pl.read_parquet(out)
    assert (
        got.columns
        == ["unique_id", "ds", "yhat", *map(quantile_column, DEFAULT_LEVELS)]
        == ["unique_id", "ds", "yhat", "q10", "q50", "q90"]
    )
    assert got.group_by("unique_id").len().sort("unique_id").rows() == [("s1", P_H), ("s2", P_H), ("s3", P_H)]
    errors = pl.read_csv(errors_path(out))
    assert errors.rows() == [("short", f"{P_L - 5} points; the model needs its lookback, {P_L}")]
    predictor = load_predictor(moirai)
    for uid in ("s1", "s2", "s3"):
        series = frame.filter(pl.col("unique_id") == uid).sort("ds")
        stamps, values = series["ds"].to_list(), series["y"].to_numpy()[:, None]
        mine = got.filter(pl.col("unique_id") == uid)
        assert mine["ds"].to_list() == [stamps[-1] + (k + 1) * HOUR for k in range(P_H)]  # the series' step
        want = expected(predictor, stamps, values, list(DEFAULT_LEVELS))
        np.testing.assert_allclose(mine["yhat"].to_numpy(), want.forecast[:, 0], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(mine["q90"].to_numpy(), want.quantiles[0.9][:, 0], rtol=1e-6, atol=1e-9)


def test_a_glob_of_files_is_one_table_and_wide_csv_gives_the_same_numbers(bundles, tmp_path):
    moirai, _ = bundles
    frame = long_frame({"a": P_L + 8, "b": P_L + 8}, seed=1, stagger=0).sort("ds")
    one = tmp_path / "one.parquet"
    frame.write_parquet(one)
    parts = tmp_path / "parts"
    parts.mkdir()
    for k, part in enumerate(frame.with_row_index().group_by(pl.col("index") % 3)):  # every series spans files
        part[1].drop("index").write_parquet(parts / f"part-{k}.parquet")
    wide = frame.pivot(on="unique_id", index="ds", values="y").sort("ds").rename({"ds": "date"})
    wide.write_csv(tmp_path / "wide.csv")
    outs = []
    for name, source in (("one", one), ("glob", parts / "*.parquet"), ("wide", tmp_path / "wide.csv")):
        out = tmp_path / f"{name}.csv"
        assert score(str(moirai), "--input", str(source), "--output", str(out), "--quantiles", "0.25,0.75") == 0
        outs.append(pl.read_csv(out, try_parse_dates=True).sort("unique_id", "ds"))
    assert outs[0].columns == ["unique_id", "ds", "yhat", "q25", "q75"] and outs[0].height == 2 * P_H
    assert outs[0].equals(outs[1])
    np.testing.assert_allclose(outs[0]["yhat"].to_numpy(), outs[2]["yhat"].to_numpy(), rtol=1e-6)


def test_fixed_variate_model_takes_its_columns_together_wide_or_long(bundles, tmp_path):
    _, itransformer = bundles
    predictor = load_predictor(itransformer)
    rng = np.random.default_rng(3)
    n = L + 7
    stamps = [datetime(2024, 3, 1) + k * HOUR for k in range(n)]
    values = rng.normal(size=(n, 3)) * [2.0, 1.0, 30.0] + [10.0, -5.0, 100.0]
    wide = pl.DataFrame({"time": stamps, "a": values[:, 0], "b": values[:, 1], "c": values[:, 2], "site": ["x"] * n})
    wide.reverse().write_csv(tmp_path / "wide.csv")  # out of order on purpose, and a text column
    long = wide.unpivot(index="time", on=["c", "a", "b"], variable_name="unique_id", value_name="y")
    long = pl.concat(
        [
            long.rename({"time": "ds"}).select("unique_id", "ds", "y"),
            pl.DataFrame({"unique_id": ["other"], "ds": [stamps[0]], "y": [1.0]}),
        ]
    )
    long.write_parquet(tmp_path / "long.parquet")
    want = expected(predictor, stamps, values)
    for source in ("wide.csv", "long.parquet"):
        out = tmp_path / f"{source}.out.parquet"
        assert score(str(itransformer), "--input", str(tmp_path / source), "--output", str(out)) == 0
        got = pl.read_parquet(out)
        assert got.columns == ["unique_id", "ds", "yhat"] and got.height == 3 * H
        for j, name in enumerate("abc"):
            mine = got.filter(pl.col("unique_id") == name)
            assert mine["ds"].to_list() == [stamps[-1] + (k + 1) * HOUR for k in range(H)]
            np.testing.assert_allclose(mine["yhat"].to_numpy(), want.forecast[:, j], rtol=1e-6)
        assert not errors_path(out).exists()


@pytest.mark.parametrize(
    ("content", "model", "message"),
    [
        ("unique_id,ds\nx,2024-01-01\n", 0, "a long file needs the columns unique_id, ds, y; it lacks ['y']"),
        ("when,a\nsoon,1\n", 0, "no timestamp column among ['when', 'a']"),
        ("date,a,c\n2024-01-01,1,2\n", 1, "the file lacks columns ['b']"),
        (None, 0, "no such file"),
    ],
)
def test_a_bad_file_is_one_line_and_status_2(bundles, tmp_path, capsys, content, model, message):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content)
    assert score(str(bundles[model]), "--input", str(path), "--output", str(tmp_path / "o.parquet")) == 2
    err = capsys.readouterr().err
    assert err.startswith("seer score: error: ") and message in err and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_refused_options_and_a_file_where_nothing_can_be_scored(bundles, tmp_path, capsys):
    moirai, itransformer = bundles
    long_frame({"tiny": 3}).write_csv(tmp_path / "short.csv")
    args = ["--input", str(tmp_path / "short.csv"), "--output", str(tmp_path / "o.csv")]
    assert score(str(itransformer), *args, "--quantiles", "0.5") == 2
    assert "gives point forecasts only" in capsys.readouterr().err
    assert score(str(moirai), *args, "--quantiles", "0.9,0.1") == 2
    assert "strictly increasing" in capsys.readouterr().err
    assert score(str(moirai), *args) == 2
    assert "no series could be scored" in capsys.readouterr().err
    assert pl.read_csv(errors_path(tmp_path / "o.csv"))["unique_id"].to_list() == ["tiny"]
    assert score("models:/nope@champion", *args) == 2
    assert "no registered model 'nope'" in capsys.readouterr().err
