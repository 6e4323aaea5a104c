"""One conformance suite over every registered model of every family (ARCHITECTURE.md, "The model contract").

Each model is driven through its spec alone: `spec.config_cls.tiny()` for a config and
`spec.example_inputs(config, batch, generator)` for the inputs of `model(*inputs)`, so a new family's
models join by registering. What the output must look like is the task's contract (`CONTRACTS`);
optional abilities a model claims (`core.registry` Protocols) are checked to be real.
Per-model facts (Informer's distilled lengths, iTransformer's tokens, ...) live in tests/forecasters/.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch

from core.registry import TASKS, AuxiliaryLoss, ModelSpec, ProbabilisticForecaster
from inference.bundle import load_bundle, save_bundle
from inference.registry import REGISTRY, get_spec, specs

NAMES = sorted(REGISTRY)


def forecast_contract(config, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
    """forecast: x [B, L, N] -> y [B, H, N]."""
    x = inputs[0]
    assert out.shape == (x.shape[0], config.horizon, config.n_variates)


def classify_contract(config, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
    """classify: flows [B, W, F] (+ pad_mask [B, W]) -> logits [B, K], finite."""
    flows = inputs[0]
    assert flows.shape[1:] == (config.window, config.n_features)
    assert out.shape == (flows.shape[0], config.n_classes) and bool(torch.isfinite(out).all())


def denoise_contract(config, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
    """denoise: x [B, N, T] -> x_clean [B, N, T], finite."""
    x = inputs[0]
    assert x.shape[1:] == (config.n_channels, config.window)
    assert out.shape == x.shape and bool(torch.isfinite(out).all())


def rollout_contract(config, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
    """rollout: u [B, *grid, V] -> u_next of the same shape, finite."""
    u = inputs[0]
    assert u.shape[1:] == (*config.grid, config.n_components)
    assert out.shape == u.shape and bool(torch.isfinite(out).all())


# task -> (output check, config fields a tiny config must refuse at 0)
CONTRACTS: dict[str, tuple[Callable[..., None], tuple[str, ...]]] = {
    "forecast": (forecast_contract, ("lookback", "horizon")),
    "classify": (classify_contract, ("window", "n_classes")),
    "denoise": (denoise_contract, ("n_channels", "window")),
    "rollout": (rollout_contract, ("n_components",)),
}


def one_step_short(xs: tuple[torch.Tensor, ...]) -> tuple[tuple[torch.Tensor, ...], str]:
    """The first input one step shorter than the model expects, and the error it must raise."""
    return (xs[0][:, :-1], *xs[1:]), "expected x"


def one_flow_short(xs: tuple[torch.Tensor, ...]) -> tuple[tuple[torch.Tensor, ...], str]:
    return (xs[0][:, :-1],), "expected flows"


# task -> a bad input built from good ones and the error message it must raise (default: one_step_short)
BAD_INPUTS: dict[str, Callable[[tuple[torch.Tensor, ...]], tuple[tuple[torch.Tensor, ...], str]]] = {
    "classify": one_flow_short,
    "rollout": lambda xs: ((xs[0][:, :-1],), "expected u"),
}


def build(name: str, **over):
    spec = get_spec(name)
    torch.manual_seed(0)
    return spec.build(spec.config_cls.tiny(**over))


def inputs(name: str, config, batch: int = 4, seed: int = 0) -> tuple[torch.Tensor, ...]:
    return get_spec(name).example_inputs(config, batch, torch.Generator().manual_seed(seed))


def test_every_spec_names_a_known_task_with_a_contract():
    assert NAMES, "no model is registered"
    for spec in REGISTRY.values():
        assert isinstance(spec, ModelSpec) and spec.task in TASKS and spec.paper
        assert spec.task in CONTRACTS, f"{spec.name}: task {spec.task!r} has no conformance contract yet"
    assert sorted(s.name for t in TASKS for s in specs(t)) == NAMES
    with pytest.raises(KeyError, match="unknown model"):
        get_spec("no-such-model")
    with pytest.raises(ValueError, match="unknown task"):
        specs("nope")


@pytest.mark.parametrize("name", NAMES)
def test_config_validation_and_round_trip(name):
    spec = get_spec(name)
    cls = spec.config_cls
    cfg = cls.tiny()
    assert cls.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lookback = 3  # type: ignore[misc]
    for field in CONTRACTS[spec.task][1]:
        with pytest.raises(ValueError):
            cls.tiny(**{field: 0})
    with pytest.raises(ValueError, match="unknown fields"):
        cls.from_dict({**cfg.to_dict(), "nope": 1})
    with pytest.raises(TypeError):
        cls(96)  # keyword-only
    with pytest.raises(TypeError, match=f"needs a {cls.__name__}"):
        spec.build(object())


@pytest.mark.parametrize("name", NAMES)
def test_output_follows_the_task_contract_and_bad_input_is_refused(name):
    model = build(name).eval()
    cfg = model.config
    xs = inputs(name, cfg)
    task = get_spec(name).task
    CONTRACTS[task][0](cfg, xs, model(*xs))
    bad, match = BAD_INPUTS.get(task, one_step_short)(xs)
    with pytest.raises(ValueError, match=match):
        model(*bad)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name, tmp_path):
    model = build(name).eval()
    spec = get_spec(name)
    meta = {"name": "t", "model": name, "task": spec.task, "model_config": model.config.to_dict(), "transform": {}}
    save_bundle(tmp_path, model, meta)
    again, meta2 = load_bundle(tmp_path)
    xs = inputs(name, model.config)
    torch.testing.assert_close(again(*xs), model(*xs), rtol=0, atol=0)
    assert meta2["model_config"] == model.config.to_dict()


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_in_eval_and_batch_independent(name):
    model = build(name).eval()
    xs = inputs(name, model.config, batch=5)
    with torch.no_grad():
        full = model(*xs)
        assert torch.equal(full, model(*xs))
        single = torch.cat([model(*(t[i : i + 1] for t in xs)) for i in range(5)])
    torch.testing.assert_close(full, single, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    model = build(name).train()
    model(*inputs(name, model.config)).pow(2).mean().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not dead, f"parameters without gradient: {dead}"


@pytest.mark.parametrize("name", NAMES)
def test_overfits_a_tiny_batch(name):
    no_dropout = {"dropout": 0.0} if "dropout" in get_spec(name).config_cls.__dataclass_fields__ else {}
    model = build(name, **no_dropout).train()
    xs = inputs(name, model.config, batch=2)
    y = torch.randn(model(*xs).shape, generator=torch.Generator().manual_seed(1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(*xs), y)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.05 * first


PROBABILISTIC = [n for n in NAMES if isinstance(build(n), ProbabilisticForecaster)]


def test_some_model_exercises_each_forecast_protocol():
    # An empty list would make the next tests vacuous: Moirai-MoE is probabilistic with an auxiliary loss.
    assert PROBABILISTIC and any(isinstance(build(n), AuxiliaryLoss) for n in PROBABILISTIC)


@pytest.mark.parametrize("name", PROBABILISTIC)
def test_a_probabilistic_forecaster_really_has_its_protocol(name):
    model = build(name).train()
    cfg = model.config
    x = inputs(name, cfg, batch=2)[0]
    y = torch.randn(2, cfg.horizon, cfg.n_variates, generator=torch.Generator().manual_seed(3))
    loss = model.loss(x, y)
    assert loss.dim() == 0 and torch.isfinite(loss) and loss.requires_grad
    assert model.max_horizon >= cfg.horizon
    model.eval()
    g = torch.Generator().manual_seed(0)
    q = model.quantiles(x, [0.1, 0.5, 0.9], num_samples=8, generator=g, horizon=cfg.horizon)
    assert q.shape == (2, cfg.horizon, cfg.n_variates, 3)
    assert bool((q.diff(dim=-1) >= 0).all()), "quantiles must not decrease with the level"
    if isinstance(model, AuxiliaryLoss):
        assert model.aux_loss().dim() == 0 and model.aux_loss_weight >= 0
