"""The forecast objective on tiny hand-made batches: its loss choice, metrics accumulated over every
observed element (NaN left out, original-unit windows rescored with loc/scale), the likelihood without
the auxiliary term, and what early stopping may watch."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.registry import ProbabilisticForecaster
from data.schemas import ForecastBatch
from training.system import SeerSystem
from training.tasks import OBJECTIVES, objective_for
from training.tasks.forecast.objective import FORECAST_OBJECTIVE


class Shift(nn.Module):
    """A point forecaster: the last context value + `bias` for every step (ignores the calendar)."""

    def __init__(self, horizon: int, bias: float = 0.0):
        super().__init__()
        self.horizon = horizon
        self.bias = nn.Parameter(torch.tensor(bias))

    def forward(self, x, x_mark=None, y_mark=None):
        return x[:, -1:].expand(-1, self.horizon, -1) + self.bias


class Gaussian(Shift):
    """A probabilistic forecaster whose `loss` is a unit-Gaussian NLL plus an auxiliary term."""

    max_horizon = 8
    aux_loss_weight = 0.5

    def loss(self, x, y, mask=None):
        pred = self(x)
        keep = ~torch.isnan(y)
        return 0.5 * ((pred - y)[keep] ** 2).mean() + self.aux_loss_weight * self.aux_loss()

    def aux_loss(self):
        return self.bias.abs() + 1.0

    def quantiles(self, x, levels, num_samples=None, generator=None, horizon=None):
        return self(x)[..., None].expand(*self(x).shape, len(levels))


def batch(b=2, length=3, h=2, n=2, **extra) -> ForecastBatch:
    g = torch.Generator().manual_seed(0)
    return ForecastBatch(
        x=torch.randn(b, length, n, generator=g),
        x_mark=torch.zeros(b, length, 0),
        y=torch.randn(b, h, n, generator=g),
        y_mark=torch.zeros(b, h, 0),
        **extra,
    )


def test_the_table_gives_the_forecast_objective():
    assert objective_for("forecast") is FORECAST_OBJECTIVE and OBJECTIVES["forecast"].task == "forecast"
    assert FORECAST_OBJECTIVE.monitors == ("val_mse", "val_mae", "val_nll")
    assert FORECAST_OBJECTIVE.default_monitor == "val_mse"
    with pytest.raises(ValueError, match="no training objective"):
        objective_for("teleport")


def test_point_model_trains_on_mse_and_gets_no_likelihood():
    model, b = Shift(horizon=2, bias=0.3), batch()
    assert not isinstance(model, ProbabilisticForecaster)
    expected = F.mse_loss(b.x[:, -1:].expand(-1, 2, -1) + 0.3, b.y)
    torch.testing.assert_close(FORECAST_OBJECTIVE.loss(model, b), expected)
    assert set(FORECAST_OBJECTIVE.metrics(model, "val")) == {"mse", "mae"}
    assert set(FORECAST_OBJECTIVE.metrics(model, "test")) == {"mse", "mae", "windows"}
    assert FORECAST_OBJECTIVE.bundle_meta(model) == {}


def test_metrics_are_the_mean_over_every_observed_element_across_batches():
    model = Shift(horizon=2)
    first, second = batch(b=2), batch(b=3)
    second.y[0, 0, 1] = float("nan")  # a missing target: left out, not counted
    metrics = FORECAST_OBJECTIVE.metrics(model, "test")
    for b in (first, second):
        FORECAST_OBJECTIVE.update(model, b, metrics)
    errors = []
    for b in (first, second):
        pred = model(b.x)
        keep = ~torch.isnan(b.y)
        errors.append((pred - b.y)[keep])
    err = torch.cat(errors)
    assert err.numel() == 2 * 2 * 2 + 3 * 2 * 2 - 1
    torch.testing.assert_close(metrics["mse"].compute(), (err**2).mean())
    torch.testing.assert_close(metrics["mae"].compute(), err.abs().mean())
    assert float(metrics["windows"].compute()) == 5


def test_windows_in_original_units_are_scored_after_standardising():
    model = Shift(horizon=2, bias=1.0)
    loc, scale = torch.full((2, 1, 2), 10.0), torch.tensor([2.0, 4.0]).expand(2, 1, 2)
    b = batch(loc=loc, scale=scale)
    metrics = FORECAST_OBJECTIVE.metrics(model, "val")
    FORECAST_OBJECTIVE.update(model, b, metrics)
    pred = model(b.x)
    expected = (((pred - loc) / scale - (b.y - loc) / scale) ** 2).mean()  # = ((pred - y) / scale)²
    torch.testing.assert_close(metrics["mse"].compute(), expected)


def test_probabilistic_model_trains_on_its_loss_and_scores_the_likelihood_without_aux():
    model, b = Gaussian(horizon=2, bias=0.2), batch()
    assert isinstance(model, ProbabilisticForecaster)
    torch.testing.assert_close(FORECAST_OBJECTIVE.loss(model, b), model.loss(b.x, b.y))
    nll = FORECAST_OBJECTIVE.nll(model, b.x, b.y)
    torch.testing.assert_close(nll, model.loss(b.x, b.y) - 0.5 * (0.2 + 1.0))
    metrics = FORECAST_OBJECTIVE.metrics(model, "val")
    assert set(metrics) == {"mse", "mae", "nll"}
    FORECAST_OBJECTIVE.update(model, b, metrics)
    torch.testing.assert_close(metrics["nll"].compute(), nll.detach())
    assert FORECAST_OBJECTIVE.bundle_meta(model) == {"probabilistic": True}


def test_the_system_logs_what_the_objective_gives_the_model():
    point, prob = SeerSystem(Shift(2), task="forecast", lr=1e-3), SeerSystem(Gaussian(2), task="forecast", lr=1e-3)
    assert point.monitors == ("val_mse", "val_mae") and prob.monitors == ("val_mse", "val_mae", "val_nll")
    assert set(prob.split_metrics("test")) == {"mse", "mae", "nll", "windows"}
    with pytest.raises(ValueError, match="no training objective"):
        SeerSystem(Shift(2), task="no-such-task", lr=1e-3)
