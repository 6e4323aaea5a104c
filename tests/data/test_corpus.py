"""Pretraining data for the foundation model: new datasets, synthetic generators, corpus, metrics."""

import math
from collections import Counter

import numpy as np
import polars as pl
import pytest
import torch

from data.series.calendar import infer_step_seconds
from data.series.corpus import (
    ZERO_SHOT_EXCLUDE,
    CorpusConfig,
    PretrainCorpus,
    collate,
    heldout_series,
    train_rows,
)
from data.series.readers import read_series
from data.series.sources import CATALOGUE, DATASET_DIR, load_series, split_for
from data.series.synthetic import (
    CompositeKernel,
    Kernel,
    generate_kernelsynth,
    generate_randomwalk,
    generate_seasonal,
    sample_gp,
    sample_kernel,
)
from training.tasks.forecast.metrics import (
    crps_from_samples,
    mase,
    quantile_loss,
    relative_geomean,
    seasonal_naive,
    weighted_quantile_loss,
)

SMALL = {"n_synthetic": 8, "synthetic_length": 256, "context_length": (32, 128), "horizon": (8, 32)}


# --- datasets ---------------------------------------------------------------------------------


def test_weather_sentinels_are_nulls():
    frame, spec = load_series("weather")
    assert spec is not None and spec.missing_values == (-9999.0,)
    nulls = {c: n for c, n in zip(frame.columns, frame.null_count().row(0), strict=True) if n}
    assert nulls == {"OT": 50, "max. PAR (\ufffdmol/m\ufffd/s)": 30, "wv (m/s)": 1}
    assert frame.select((pl.exclude("date") <= -999).sum()).sum_horizontal().item() == 0
    raw = frame.drop("date").to_numpy()
    assert np.isnan(raw[7245, frame.columns.index("OT") - 1]) and np.isnan(raw[7245, 11])  # OT, wv
    assert np.isnan(train_rows("weather")).sum() == 81  # every sentinel lies in the train rows


def test_catalogue_entries_and_ratio_splits():
    expected = {
        # name: rows, variates, step seconds, season, (train end, val end)
        "weather": (52696, 21, 600, 144, (36887, 42157)),
        "exchange_rate": (7588, 8, 86400, 7, (5311, 6071)),
    }
    for name, (rows, n_var, step, season, (train_end, val_end)) in expected.items():
        frame, spec = load_series(name)
        assert spec is CATALOGUE[name] and spec.protocol == "ratio"
        assert frame.height == rows and frame.width == n_var + 1
        assert infer_step_seconds(frame["date"]) == step == spec.minutes_per_step * 60
        assert spec.season_length == season
        s = split_for(spec, rows, lookback=96)
        assert s.train == (0, train_end) and s.val == (train_end - 96, val_end) and s.test == (val_end - 96, rows)
        assert (train_end, val_end - train_end, rows - val_end) == (
            int(rows * 0.7),
            s.val[1] - train_end,
            int(rows * 0.2),
        )
    assert [CATALOGUE[n].season_length for n in ("ETTh1", "ETTm2")] == [24, 96]
    assert all(CATALOGUE[n].missing_values == () for n in ("ETTh1", "ETTh2", "ETTm1", "ETTm2", "exchange_rate"))


# --- synthetic --------------------------------------------------------------------------------


@pytest.mark.parametrize("generate", [generate_kernelsynth, generate_seasonal, generate_randomwalk])
def test_generators_are_deterministic_with_the_requested_shape(generate):
    a = generate(6, 128, seed=3)
    assert a.shape == (6, 128) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, generate(6, 128, seed=3))
    np.testing.assert_array_equal(a[4:], generate(2, 128, seed=3, first=4))  # series i depends on (seed, i)
    assert not np.array_equal(a, generate(6, 128, seed=4))
    assert np.all(a.std(axis=1) > 0)


def test_seasonal_generator_random_walk_trend(monkeypatch):
    """With the random-walk trend forced on and no seasonality, yesterday's value is a far better
    forecast than the series mean (the signature of a random walk), which a deterministic trend with
    AR noise alone does not produce as reliably."""
    import data.series.synthetic as synthetic

    def persistence_wins(n: int) -> float:
        y = synthetic.generate_seasonal(n, 512, seed=3).astype(np.float64)
        persistence = np.mean(np.diff(y, axis=1) ** 2, axis=1)
        mean = np.var(y, axis=1)
        return float(np.mean(persistence < 0.1 * mean))

    monkeypatch.setattr(synthetic, "N_SEASONAL_P", (1.0, 0.0, 0.0, 0.0))
    monkeypatch.setattr(synthetic, "RANDOM_WALK_P", 1.0)
    walks = persistence_wins(64)
    monkeypatch.setattr(synthetic, "RANDOM_WALK_P", 0.0)
    assert walks > 0.35 and walks > persistence_wins(64) + 0.3  # measured: 0.50 against 0.02


def test_random_walk_generator_makes_persistence_the_forecast(monkeypatch):
    """Integrated processes: the last value beats the series mean by far (one-step error against the
    spread), increments are nearly uncorrelated (|lag-1 autocorrelation| <= 0.3 + noise), and stale
    runs repeat values only when asked for."""
    import data.series.synthetic as synthetic

    y = synthetic.generate_randomwalk(64, 512, seed=5).astype(np.float64)
    step = np.sqrt(np.mean(np.diff(y, axis=1) ** 2, axis=1))
    assert np.median(step / y.std(axis=1)) < 0.15 and np.all(step < 0.5 * y.std(axis=1))  # measured 0.07, 0.36
    d = np.diff(y, axis=1)
    d = d - d.mean(axis=1, keepdims=True)
    rho = np.sum(d[:, 1:] * d[:, :-1], axis=1) / np.sum(d * d, axis=1)
    assert np.median(np.abs(rho)) < 0.2 and np.all(np.abs(rho) < 0.6)
    plain = {k: 0.0 for k in synthetic.WALK_P}
    monkeypatch.setattr(synthetic, "WALK_P", plain)
    assert np.mean(np.diff(synthetic.generate_randomwalk(8, 512, seed=5), axis=1) == 0) == 0
    monkeypatch.setattr(synthetic, "WALK_P", {**plain, "stale": 1.0})
    stale = np.mean(np.diff(synthetic.generate_randomwalk(8, 512, seed=5), axis=1) == 0, axis=1)
    assert np.all((stale > 0.03) & (stale < 0.7))


def test_kernelsynth_periodic_kernel_repeats_every_period():
    period, length = 24, 384
    rng = np.random.default_rng(0)
    for _ in range(3):
        y = sample_gp(Kernel("periodic", period), length, rng)
        corr = [np.corrcoef(y[:-lag], y[lag:])[0, 1] for lag in range(2, 2 * period)]
        assert 2 + int(np.argmax(corr)) == period and corr[period - 2] > 0.999
        np.testing.assert_allclose(y[period:], y[:-period], atol=0.02 * np.std(y))
    # Kernel composition: left fold with + and ×, PSD, and Alg. 1's j in 1..J.
    k = CompositeKernel((Kernel("rbf", 0.1), Kernel("white", 1.0), Kernel("constant", 2.0)), ("+", "*"))
    np.testing.assert_allclose(k.matrix(5), (Kernel("rbf", 0.1).matrix(5) + np.eye(5)) * 2.0)
    sizes = {len(sample_kernel(np.random.default_rng(i), max_kernels=5).terms) for i in range(200)}
    assert sizes == {1, 2, 3, 4, 5}
    with pytest.raises(ValueError, match="ops"):
        CompositeKernel((Kernel("rbf", 1.0),), ("+",))


# --- corpus -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus():
    return PretrainCorpus(CorpusConfig(epoch_size=2000, seed=1, **SMALL))


def test_sources_follow_the_mixture_weights(corpus):
    counts = Counter(corpus[i]["source"] for i in range(len(corpus)))
    weights = corpus.config.mixture()
    assert set(counts) == set(weights)
    for name, w in weights.items():
        assert abs(counts[name] / len(corpus) - w) < 0.04, (name, counts[name], w)


def test_items_are_train_windows_with_masks(corpus):
    train_end = {n: split_for(s, len(load_series(n)[0]), 0).train[1] for n, s in CATALOGUE.items()}
    assert train_end == {
        "ETTh1": 8640,
        "ETTh2": 8640,
        "ETTm1": 34560,
        "ETTm2": 34560,
        "weather": 36887,
        "exchange_rate": 5311,
    }
    ett_members = set()
    for i in range(400):
        item = corpus[i]
        t, obs = item["target"], item["observed"]
        c, h = item["context_length"], item["prediction_length"]
        assert t.dtype == torch.float32 and obs.dtype == torch.bool and t.shape == obs.shape
        assert t.shape[0] == c + h and 1 <= t.shape[1] <= corpus.config.max_variates
        assert 32 <= c <= 128 and 8 <= h <= 32
        torch.testing.assert_close(obs, ~torch.isnan(t))
        start, end = item["rows"]
        assert end - start == c + h
        if item["dataset"] in CATALOGUE:
            assert start >= 0 and end <= train_end[item["dataset"]]  # never val/test rows
            np.testing.assert_array_equal(t.numpy(), train_rows(item["dataset"])[start:end][:, list(item["variates"])])
        if item["source"] == "ett":
            ett_members.add(item["dataset"])
    assert ett_members == {"ETTh1", "ETTh2", "ETTm1", "ETTm2"}
    assert [train_rows(n).shape for n in ("ETTh1", "ETTm1", "weather", "exchange_rate")] == [
        (8640, 7),
        (34560, 7),
        (36887, 21),
        (5311, 8),
    ]
    again = PretrainCorpus(CorpusConfig(epoch_size=2000, seed=1, **SMALL))
    torch.testing.assert_close(again[7]["target"], corpus[7]["target"], equal_nan=True)
    again.set_epoch(1)
    assert any(again[i]["rows"] != corpus[i]["rows"] for i in range(5))


def test_weather_missing_values_stay_nan_and_unobserved():
    cfg = CorpusConfig(sources={"weather": 1.0}, context_length=(2000, 3000), horizon=64, max_variates=21)
    corpus = PretrainCorpus(cfg)
    for i in range(len(corpus)):
        item = corpus[i]
        if not item["observed"].all():
            break
    else:
        pytest.fail("no weather window with a missing value")
    t = item["target"]
    assert torch.isnan(t[~item["observed"]]).all() and not torch.isnan(t[item["observed"]]).any()
    lo, hi = item["rows"]
    assert hi <= 36887
    raw = read_series(DATASET_DIR / "weather.csv.gz").drop("date").to_numpy()  # sentinels not masked
    steps, cols = torch.nonzero(~item["observed"], as_tuple=True)
    variates = np.array(item["variates"])[cols.numpy()]
    assert np.all(raw[steps.numpy() + lo, variates] == -9999.0)


def test_exclude_and_window_shortening():
    cfg = CorpusConfig(exclude=ZERO_SHOT_EXCLUDE + ("ETTh2",), epoch_size=300, **SMALL)
    assert set(cfg.mixture()) == {"ett", "kernelsynth", "seasonal", "randomwalk"}
    assert abs(sum(cfg.mixture().values()) - 1) < 1e-12
    corpus = PretrainCorpus(cfg)
    datasets = {corpus[i]["dataset"] for i in range(len(corpus))}
    assert not datasets & {"weather", "exchange_rate", "ETTh2"} and "ETTh1" in datasets
    with pytest.raises(ValueError, match="unknown corpus sources"):
        CorpusConfig(sources={"traffic": 1.0})
    with pytest.raises(ValueError, match="no source"):
        CorpusConfig(sources={"weather": 1.0}, exclude=("weather",))
    long = PretrainCorpus(CorpusConfig(sources={"exchange_rate": 1.0}, context_length=6000, horizon=100, epoch_size=3))
    item = long[0]
    assert (item["context_length"], item["prediction_length"], item["rows"]) == (5211, 100, (0, 5311))


def test_collate_pads_time_and_variates():
    def item(c, h, n, fill):
        t = torch.full((c + h, n), fill, dtype=torch.float32)
        t[0, 0] = float("nan")  # a missing value stays unobserved after padding
        return {"target": t, "observed": ~torch.isnan(t), "context_length": c, "prediction_length": h, "source": "x"}

    b = collate([item(3, 2, 1, 1.0), item(5, 1, 3, 2.0)])
    assert b["target"].shape == (2, 7, 3) and b["observed"].shape == (2, 7, 3)
    assert b["variate_mask"].tolist() == [[True, False, False], [True, True, True]]
    assert b["time_mask"][0].tolist() == [False, False, True, True, True, True, True]
    assert b["prediction_mask"][0].tolist() == [False] * 5 + [True, True]
    assert b["prediction_mask"][1].tolist() == [False] * 5 + [True, False]
    assert b["context_length"].tolist() == [3, 5] and b["prediction_length"].tolist() == [2, 1]
    first = b["target"][0]
    assert torch.isnan(first[:2]).all() and torch.isnan(first[:, 1:]).all() and torch.isnan(first[2, 0])
    assert (first[3:7, 0] == 1.0).all() and b["observed"][0].sum() == 4
    assert b["observed"][1].sum() == 6 * 3 - 1 and torch.isnan(b["target"][1, 6]).all()
    assert b["source"] == ["x", "x"]


def test_heldout_series_uses_only_test_rows():
    h = heldout_series("exchange_rate", context_length=64, horizon=16, n_windows=4)
    assert h.season == 7 and h.test_rows == (6071, 7588)
    assert h.context.shape == (8 * 4, 64) and h.target.shape == (8 * 4, 16)
    assert h.context.dtype == np.float32 and h.variate[:4] == ("0",) * 4 and h.variate[-1] == "OT"
    assert h.rows.min() >= 6071 and h.rows.max() == 7588
    assert [tuple(r) for r in h.rows[:4]] == [(7588 - 16 * k - 80, 7588 - 16 * k) for k in (3, 2, 1, 0)]
    raw = load_series("exchange_rate")[0]["OT"].to_numpy()
    np.testing.assert_array_equal(h.target[-1], raw[-16:].astype(np.float32))
    np.testing.assert_array_equal(h.context[-1], raw[-80:-16].astype(np.float32))
    disjoint = heldout_series("ETTh1", 96, 24, n_windows=2, stride=120)
    assert disjoint.season == 24 and disjoint.rows.tolist()[:2] == [[14160, 14280], [14280, 14400]]
    assert heldout_series("weather", 512, 96, 2).season == 144
    with pytest.raises(ValueError, match="test split has 1517"):
        heldout_series("exchange_rate", 512, 96, n_windows=20)


# --- metrics ----------------------------------------------------------------------------------


def test_seasonal_naive_and_mase_by_hand():
    ctx = np.array([1.0, 2, 3, 4, 5, 6, 7])
    np.testing.assert_array_equal(seasonal_naive(ctx, 5, season=3), [5, 6, 7, 5, 6])
    np.testing.assert_array_equal(seasonal_naive(ctx, 2, season=10), [7, 7])  # L < season: naive-1
    np.testing.assert_array_equal(seasonal_naive(torch.arange(8.0).reshape(2, 4), 3, 2), [[2, 3, 2], [6, 7, 6]])
    # A linear trend: seasonal differences are 3·slope in and out of sample, so MASE of the
    # seasonal naive forecast is exactly 1 for H <= season.
    series = 0.5 * np.arange(30.0)
    ctx, tgt = series[:27], series[27:]
    np.testing.assert_allclose(mase(seasonal_naive(ctx, 3, 3), tgt, ctx, 3), 1.0)
    # By hand: scale = mean |c_t - c_{t-2}| = mean(|3-1|, |2-4|) = 2; MAE = (1 + 3) / 2 = 2 -> 1.
    np.testing.assert_allclose(
        mase(np.array([0.0, 0.0]), np.array([1.0, -3.0]), np.array([1.0, 4.0, 3.0, 2.0]), 2), 1.0
    )
    assert np.isnan(mase(np.zeros(2), np.ones(2), np.ones(6), 2))  # constant context: undefined


def test_crps_point_mass_normal_and_pwm():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(3, 4))
    pred = rng.normal(size=(3, 4))
    point = np.broadcast_to(pred, (10, 3, 4))
    np.testing.assert_allclose(crps_from_samples(point, y), np.abs(pred - y).mean(axis=-1))
    # Closed form for N(mu, sigma): sigma [z (2Φ(z) - 1) + 2 φ(z) - 1/√π], z = (y - mu) / sigma.
    mu, sigma, obs = 0.3, 2.0, 1.1
    z = (obs - mu) / sigma
    phi, cdf = math.exp(-z * z / 2) / math.sqrt(2 * math.pi), 0.5 * (1 + math.erf(z / math.sqrt(2)))
    exact = sigma * (z * (2 * cdf - 1) + 2 * phi - 1 / math.sqrt(math.pi))
    samples = rng.normal(mu, sigma, size=(4000, 1, 1))
    assert abs(crps_from_samples(samples, np.array([[obs]]))[0] - exact) < 0.03
    # fair == PWM (E|X-y| + β0 - 2β1); nrg adds E|X-X'| / (2S).
    x = rng.normal(size=7)
    xs, m = np.sort(x), 7
    b1 = np.sum(np.arange(m) * xs) / (m * (m - 1))
    pwm = np.mean(np.abs(x - 0.2)) + xs.mean() - 2 * b1
    fair = crps_from_samples(x[:, None, None], np.array([[0.2]]))[0]
    nrg = crps_from_samples(x[:, None, None], np.array([[0.2]]), estimator="nrg")[0]
    pair = np.abs(x[:, None] - x[None, :]).sum() / (m * (m - 1))
    np.testing.assert_allclose([fair, nrg - fair], [pwm, pair / (2 * m)])


def test_quantile_losses_and_relative_geomean_by_hand():
    q = np.array([[[1.0, 3.0]], [[2.0, 4.0]]])  # [Q=2, 1 series, H=2]
    y = np.array([[2.0, 2.0]])
    # tau 0.1: u = (1, -1) -> (0.1, 0.9); tau 0.9: u = (0, -2) -> (0, 0.2).
    np.testing.assert_allclose(quantile_loss(q, y, [0.1, 0.9]), [[0.5], [0.1]])
    # wQL = mean_tau 2 Σ_h ρ / Σ|y| = mean(2·1.0/4, 2·0.2/4) = 0.3
    np.testing.assert_allclose(weighted_quantile_loss(q, y, [0.1, 0.9]), [0.3])
    assert relative_geomean([1.0, 4.0], [2.0, 2.0]) == pytest.approx(1.0)  # sqrt(0.5 · 2)
    assert relative_geomean([1.0, 1.0, 0.0, 5.0], [4.0, 1.0, 0.0, 0.0]) == pytest.approx(0.5 ** (2 / 3))
    assert relative_geomean([0.0], [1.0], min_ratio=1e-4) == pytest.approx(1e-4)
    assert math.isnan(relative_geomean([1.0, np.nan], [0.0, 1.0]))
