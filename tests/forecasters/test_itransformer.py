"""iTransformer's own facts (Liu et al. 2024); the contract every model meets is in
tests/inference/test_model_conformance.py."""

import pytest
import torch

from forecasters import forecast_inputs
from forecasters.itransformer import ITransformer, ITransformerConfig


def inputs(cfg, batch=4, seed=0):
    return forecast_inputs(cfg, batch, torch.Generator().manual_seed(seed))


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
