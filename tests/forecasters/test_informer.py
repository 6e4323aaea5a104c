"""Informer's own mechanisms (Zhou et al., AAAI 2021; official zhouhaoyi/Informer2020 `models/`):
ProbSparse attention (sampling, the max−mean measurement, top-u, lazy-query fill), self-attention
distilling, the generative decoder, determinism, and serving a trained recipe end to end."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest
import torch
from fastapi.testclient import TestClient

from core.ops.attention.reference import attention_reference
from core.ops.probsparse import (
    n_sampled,
    probsparse_attention,
    query_sparsity,
    sample_keys,
    select_queries,
    sparse_attention_reference,
)
from forecasters.informer import Informer, InformerConfig


def qkv(b=2, h=3, lq=40, lk=40, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, h, n, d, generator=g) for n in (lq, lk, lk))


# ProbSparse attention (core.ops.probsparse).


def test_top_u_and_sample_counts_follow_c_ln_l():
    assert n_sampled(96, 5) == 5 * math.ceil(math.log(96)) == 25
    assert n_sampled(48, 3) == 3 * 4 == 12
    assert n_sampled(24, 5) == 20
    assert n_sampled(8, 5) == 8  # capped at L
    assert n_sampled(1, 5) == 1
    assert sample_keys(96, 48, 5).shape == (96, n_sampled(48, 5))
    q, k, v = qkv(lq=96, lk=96)
    m = query_sparsity(q, k, sample_keys(96, 96, 3, generator=torch.Generator().manual_seed(0)))
    assert select_queries(m, n_sampled(96, 3)).shape == (2, 3, 15)


def test_sparsity_measurement_checked_by_hand():
    # One head, 3 queries, 4 keys, 2 sampled keys per query; dot products are small integers.
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]).view(1, 1, 3, 2)
    k = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 1.0], [1.0, -2.0]]).view(1, 1, 4, 2)
    index = torch.tensor([[0, 1], [2, 3], [1, 1]])
    # q0·k0 = 2, q0·k1 = 0 -> max 2, sum 2 -> M = 2 - 2/4 = 1.5
    # q1·k2 = 1, q1·k3 = -2 -> max 1, sum -1 -> M = 1 + 1/4 = 1.25
    # q2·k1 = 3 twice (sampling is with replacement) -> max 3, sum 6 -> M = 3 - 6/4 = 1.5
    m = query_sparsity(q, k, index)
    torch.testing.assert_close(m, torch.tensor([[[1.5, 1.25, 1.5]]]))
    top = select_queries(m, 2)
    assert sorted(top.flatten().tolist()) == [0, 2]  # the "active" queries; query 1 is lazy


@pytest.mark.parametrize("causal", [False, True])
def test_lazy_queries_get_mean_or_cumsum_and_active_ones_full_attention(causal):
    q, k, v = qkv(b=2, h=2, lq=30, lk=30)
    index = sample_keys(30, 30, 2, generator=torch.Generator().manual_seed(3))
    u = n_sampled(30, 2)  # 8 of 30 queries are active
    top = select_queries(query_sparsity(q, k, index), u)
    out = probsparse_attention(q, k, v, factor=2, causal=causal, index=index, impl="reference")
    full = attention_reference(q, k, v, causal=causal)
    lazy = v.cumsum(dim=2) if causal else v.mean(dim=2, keepdim=True).expand_as(v)
    active = torch.zeros(2, 2, 30, dtype=torch.bool).scatter(2, top, True)
    assert int(active.sum(-1).unique()) == u
    torch.testing.assert_close(out[active], full[active], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out[~active], lazy[~active], rtol=1e-5, atol=1e-6)


def test_selecting_every_query_is_full_attention():
    q, k, v = qkv(lq=6, lk=6)  # u = min(c·⌈ln 6⌉, 6) = 6 with c = 5: every query is active
    for causal in (False, True):
        out = probsparse_attention(q, k, v, factor=5, causal=causal, impl="reference")
        torch.testing.assert_close(out, attention_reference(q, k, v, causal=causal), rtol=1e-5, atol=1e-6)


def test_gradients_flow_through_active_queries_and_lazy_fill_only():
    q, k, v = (t.requires_grad_() for t in qkv(b=1, h=1, lq=20, lk=20))
    index = sample_keys(20, 20, 1, generator=torch.Generator().manual_seed(0))
    top = select_queries(query_sparsity(q, k, index), n_sampled(20, 1))
    sparse_attention_reference(q, k, v, top).sum().backward()
    rows_with_grad = (q.grad.abs().sum(-1) > 0).flatten().nonzero().flatten()
    assert sorted(rows_with_grad.tolist()) == sorted(top.flatten().tolist())
    assert (v.grad.abs().sum(-1) > 0).all()  # every value row reaches the mean fill


def test_bad_shapes_are_refused():
    q, k, v = qkv(lq=10, lk=12)
    with pytest.raises(ValueError, match="Lq == Lk"):
        probsparse_attention(q, k, v, causal=True, impl="reference")
    with pytest.raises(ValueError, match="incompatible"):
        probsparse_attention(q, k[..., :4], v, impl="reference")


# The model.


def tiny(**over) -> InformerConfig:
    return InformerConfig.tiny(**over)


def inputs(c: InformerConfig, batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, c.lookback, c.n_variates, generator=g),
        torch.rand(batch, c.lookback, c.n_marks, generator=g) - 0.5,
        torch.rand(batch, c.horizon, c.n_marks, generator=g) - 0.5,
    )


def test_distilling_halves_the_encoder_length_96_48_24():
    c = tiny(lookback=96, label_len=48, e_layers=3)
    assert c.encoder_lengths() == [96, 48, 24]
    model = Informer(c).eval()
    seen = []
    for layer in model.encoder:
        layer.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[1]))
    with torch.no_grad():
        memory = model.encode(*inputs(c)[:2])
    assert seen == [96, 48, 24]
    assert memory.shape == (3, 24, c.d_model)
    # The distilling block is Conv1d(k3, circular) -> BatchNorm -> ELU -> MaxPool(k3, s2, p1).
    d = model.distil[0]
    assert (d.conv.kernel_size, d.conv.padding_mode) == ((3,), "circular")
    assert (d.pool.kernel_size, d.pool.stride, d.pool.padding) == (3, 2, 1)
    assert Informer(tiny(lookback=96, label_len=48, e_layers=3, distil=False)).config.encoder_lengths() == [96] * 3


def test_generative_decoder_reads_label_window_and_future_calendar():
    c = tiny(lookback=16, label_len=8, horizon=8)
    model = Informer(c).eval()
    x, xm, ym = inputs(c)
    seen = {}
    model.dec_embed.register_forward_hook(lambda m, i, o: seen.update(x=i[0], marks=i[1]))
    with torch.no_grad():
        y = model(x, xm, ym)
        assert y.shape == (3, 8, c.n_variates)
        # decoder input: the last label_len known steps, then zeros for the horizon
        torch.testing.assert_close(seen["x"], torch.cat([x[:, 8:], torch.zeros(3, 8, c.n_variates)], 1))
        torch.testing.assert_close(seen["marks"], torch.cat([xm[:, 8:], ym], 1))
        assert not torch.equal(model(x, xm, ym + 0.25), y)  # the future calendar matters
    with pytest.raises(ValueError, match="y_mark"):
        model(x, xm)


def test_decoder_self_attention_is_causal_probsparse_and_cross_attention_full():
    model = Informer(tiny())
    layer = model.decoder[0]
    assert type(layer.self_attn).__name__ == "ProbSparseAttention" and layer.self_attn.mix
    assert type(layer.cross_attn).__name__ == "MultiHeadAttention"
    assert all(type(e.attn).__name__ == "ProbSparseAttention" and not e.attn.mix for e in model.encoder)
    assert type(Informer(tiny(attn="full")).encoder[0].attn).__name__ == "MultiHeadAttention"
    assert all(e.attn.mix for e in Informer(tiny(mix_encoder=True)).encoder)  # TSLib's layout


def test_mix_reads_heads_first_output_as_positions():
    # The official "mix": the [B, H, L, E] attention output is viewed as [B, L, H·E] without a transpose.
    from core.nn import ProbSparseAttention

    torch.manual_seed(0)
    plain, mixed = ProbSparseAttention(8, 2, 5), ProbSparseAttention(8, 2, 5, mix=True)
    mixed.load_state_dict(plain.state_dict())
    for m in (plain, mixed):
        m.out_proj.weight.data = torch.eye(8)
        m.out_proj.bias.data.zero_()
    x = torch.randn(1, 4, 8)
    with torch.no_grad():
        heads_last = plain.eval()(x)  # [1, L, H·E], heads side by side per position
        heads_first = heads_last.view(1, 4, 2, 4).transpose(1, 2)  # back to [1, H, L, E]
        torch.testing.assert_close(mixed.eval()(x), heads_first.reshape(1, 4, 8))


def test_training_forward_is_random_but_reproducible_under_a_seed():
    model = Informer(tiny(dropout=0.0, lookback=32, label_len=16)).train()
    x, xm, ym = inputs(model.config)

    def run(seed):
        torch.manual_seed(seed)
        return model(x, xm, ym)

    torch.testing.assert_close(run(7), run(7), rtol=0, atol=0)
    assert not torch.equal(run(7), run(8))  # the key sample differs between draws
    model.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        a = model(x, xm, ym)
        torch.manual_seed(2)
        assert torch.equal(a, model(x, xm, ym))  # eval draws from its own seeded generator


def test_config_checks_label_len():
    with pytest.raises(ValueError, match="label_len"):
        InformerConfig.tiny(lookback=16, label_len=17)
    with pytest.raises(ValueError, match="attn"):
        InformerConfig.tiny(attn="sparse")


# Training, registering and serving the recipe (`seer train informer-etth1 --smoke`, `seer serve`).


def test_smoke_recipe_registers_and_serves_with_timestamps_required(tracking):
    from service import Settings, create_app
    from training.recipes import get_recipe, smoke
    from training.run import train

    result = train(smoke(get_recipe("informer-etth1")), uri=tracking)
    assert (result.registered_name, result.version, result.champion) == ("informer-etth1", "1", True)

    with TestClient(create_app(Settings(models="informer-etth1@champion", tracking_uri=tracking))) as c:
        info = c.get("/v1/models/informer-etth1").json()
        assert info["uses_timestamps"] is True
        lookback = info["lookback"]
        start = datetime(2018, 1, 1)
        history = [[float(i % 7 + j) for j in range(7)] for i in range(lookback)]
        stamps = [(start + timedelta(hours=i)).isoformat() for i in range(lookback)]
        r = c.post("/v1/models/informer-etth1/forecast", json={"history": history})
        assert r.status_code == 422, r.text
        assert "timestamps" in r.json()["detail"] and "calendar features" in r.json()["detail"]
        r = c.post("/v1/models/informer-etth1/forecast", json={"history": history, "timestamps": stamps})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["forecast"]) == info["horizon"] and len(body["forecast"][0]) == 7
        assert body["timestamps"][0] == (start + timedelta(hours=lookback)).isoformat()


def test_head_dims_past_the_kernel_tiles_refuse_explicit_triton():
    from core.ops.dispatch import KernelUnavailableError

    q, k, v = qkv(lq=8, lk=8, d=160)
    with pytest.raises(KernelUnavailableError, match="head dim"):
        probsparse_attention(q, k, v, impl="triton")
    assert probsparse_attention(q, k, v, impl="auto").shape == (2, 3, 8, 160)  # auto: the reference
