"""One conformance suite over every registered model (DESIGN section 3), plus iTransformer's facts."""

import dataclasses

import pytest
import torch

from inference.bundle import load_bundle, save_bundle
from inference.registry import REGISTRY, get_spec
from forecasters.itransformer import ITransformer, ITransformerConfig

NAMES = sorted(REGISTRY)


def inputs(cfg, batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cfg.lookback, cfg.n_variates, generator=g)
    x_mark = torch.rand(batch, cfg.lookback, cfg.n_marks, generator=g) - 0.5
    y_mark = torch.rand(batch, cfg.horizon, cfg.n_marks, generator=g) - 0.5  # the horizon's calendar
    return x, x_mark, y_mark


def build(name, **over):
    spec = get_spec(name)
    torch.manual_seed(0)
    return spec.build(spec.config_cls.tiny(**over))


@pytest.mark.parametrize("name", NAMES)
def test_config_validation_and_round_trip(name):
    cls = get_spec(name).config_cls
    cfg = cls.tiny()
    assert cls.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lookback = 3  # type: ignore[misc]
    with pytest.raises(ValueError):
        cls.tiny(lookback=0)
    with pytest.raises(ValueError, match="unknown fields"):
        cls.from_dict({**cfg.to_dict(), "nope": 1})
    with pytest.raises(TypeError):
        cls(96)  # keyword-only


@pytest.mark.parametrize("name", NAMES)
def test_forecast_shapes_and_bad_input(name):
    model = build(name).eval()
    cfg = model.config
    x, xm, ym = inputs(cfg)
    assert model(x, xm, ym).shape == (4, cfg.horizon, cfg.n_variates)
    with pytest.raises(ValueError, match="expected x"):
        model(x[:, :-1], xm[:, :-1], ym)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name, tmp_path):
    model = build(name).eval()
    meta = {
        "name": "t",
        "model": name,
        "task": get_spec(name).task,
        "model_config": model.config.to_dict(),
        "transform": {},
    }
    save_bundle(tmp_path, model, meta)
    again, meta2 = load_bundle(tmp_path)
    x, xm, ym = inputs(model.config)
    torch.testing.assert_close(again(x, xm, ym), model(x, xm, ym), rtol=0, atol=0)
    assert meta2["model_config"] == model.config.to_dict()


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_in_eval_and_batch_independent(name):
    model = build(name).eval()
    x, xm, ym = inputs(model.config, batch=5)
    with torch.no_grad():
        full = model(x, xm, ym)
        assert torch.equal(full, model(x, xm, ym))
        single = torch.cat([model(x[i : i + 1], xm[i : i + 1], ym[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(full, single, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    model = build(name).train()
    x, xm, ym = inputs(model.config)
    model(x, xm, ym).pow(2).mean().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not dead, f"parameters without gradient: {dead}"


@pytest.mark.parametrize("name", NAMES)
def test_overfits_a_tiny_batch(name):
    model = build(name, dropout=0.0).train()
    x, xm, ym = inputs(model.config, batch=2)
    y = torch.randn(2, model.config.horizon, model.config.n_variates, generator=torch.Generator().manual_seed(1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x, xm, ym), y)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.05 * first


# iTransformer's own facts (Liu et al. 2024).


def test_itransformer_tokens_are_variates_plus_calendar_features():
    cfg = ITransformerConfig.tiny(n_variates=3, n_marks=2)
    model = ITransformer(cfg).eval()
    x, xm, ym = inputs(cfg)
    seen = {}
    model.encoder.register_forward_hook(lambda m, i, o: seen.update(tokens=o.shape))
    model(x, xm, ym)
    assert seen["tokens"] == (4, 3 + 2, cfg.d_model)  # one token per variate + one per calendar feature
    assert model.embed.value.in_features == cfg.lookback  # Linear(L -> D)
    assert (model.project.in_features, model.project.out_features) == (cfg.d_model, cfg.horizon)  # Linear(D -> H)


def test_itransformer_is_equivariant_to_per_variate_affine_maps():
    # With per-variate normalisation, scaling/shifting a variate's history scales/shifts its forecast.
    model = ITransformer(ITransformerConfig.tiny()).eval()
    x, xm, ym = inputs(model.config)
    scale, shift = torch.tensor([2.0, 0.5, 10.0]), torch.tensor([-3.0, 100.0, 0.25])
    with torch.no_grad():
        torch.testing.assert_close(
            model(x * scale + shift, xm, ym), model(x, xm, ym) * scale + shift, rtol=1e-4, atol=1e-3
        )


def test_itransformer_variate_order_is_permutation_equivariant():
    # Attention over variate tokens has no positional encoding: permuting variates permutes outputs.
    model = ITransformer(ITransformerConfig.tiny(n_marks=0)).eval()
    x, _, _ = inputs(model.config)
    perm = torch.tensor([2, 0, 1])
    with torch.no_grad():
        torch.testing.assert_close(model(x[..., perm]), model(x)[..., perm], rtol=1e-5, atol=1e-5)


def test_itransformer_requires_calendar_marks_when_configured():
    model = ITransformer(ITransformerConfig.tiny())
    assert model.uses_timestamps
    x, _, _ = inputs(model.config)
    with pytest.raises(ValueError, match="x_mark"):
        model(x)
