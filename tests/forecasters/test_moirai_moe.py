"""Moirai-MoE's own mechanisms (Liu et al. 2024 on Moirai, Woo et al. ICML 2024): patching and any-variate
flattening, instance scaling with missing values, time-causal attention with the binary variate bias, the
four-component mixture head, KV-cached decoding, quantiles, the MoE routing counts and the dense variant.
The registry-wide contract (shapes, save/load, determinism, gradients, overfitting) is tests/test_conformance.py.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributions as D

from core.nn import MoEFeedForward
from core.nn.moe import kmeans
from core.ops.attention.reference import attention_reference
from core.ops.rope.reference import rope_reference
from forecasters.moirai_moe import MoiraiMoE, MoiraiMoEConfig
from forecasters.moirai_moe.distribution import NUM_PARAMS, PatchMixture, sample_gamma
from forecasters.moirai_moe.model import instance_scale, patchify, token_ids, unpatchify
from inference.registry import get_spec


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny shapes: a second intra-op thread only contends with the other jobs on a shared 2-core box.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(**over) -> MoiraiMoE:
    torch.manual_seed(0)
    return MoiraiMoE(MoiraiMoEConfig.tiny(**over)).eval()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# Patching, flattening, scaling.


@pytest.mark.parametrize("length", [32, 29, 5])
def test_patchify_round_trip_with_padding_and_nans(length):
    x = torch.randn(2, length, 3, generator=gen())
    x[0, 3, 1] = float("nan")
    x[1, -1, 0] = float("nan")
    patches, variate_id, time_id = patchify(x, 8)
    c = math.ceil(length / 8)
    assert patches.shape == (2, c * 3, 8)
    pad = c * 8 - length
    assert torch.isnan(patches[:, :3, :pad]).all()  # left padding is unobserved, in the first patch
    # Time-major: token c·N + v is patch c of variate v.
    assert variate_id.tolist() == [0, 1, 2] * c
    assert time_id.tolist() == [t for t in range(c) for _ in range(3)]
    tail = min(length, 8)
    torch.testing.assert_close(patches[:, 3 * (c - 1) + 2, -tail:], x[:, -tail:, 2], equal_nan=True)
    back = unpatchify(patches, 3, length)
    assert back.shape == x.shape
    assert torch.equal(torch.isnan(back), torch.isnan(x))
    assert torch.equal(torch.nan_to_num(back), torch.nan_to_num(x))  # exact


def test_token_ids_continue_from_a_start_patch():
    v, t = token_ids(2, 3, start=5)
    assert v.tolist() == [0, 1, 2, 0, 1, 2] and t.tolist() == [5, 5, 5, 6, 6, 6]


def test_instance_scaling_ignores_missing_values():
    x = torch.randn(2, 20, 3, generator=gen(1)) * 4 + 7
    holes = x.clone()
    holes[0, :5, 0] = float("nan")
    holes[1, ::2, 2] = float("nan")
    loc, scale = instance_scale(holes, eps=1e-5)
    assert loc.shape == scale.shape == (2, 1, 3)
    for b in range(2):
        for v in range(3):
            seen = holes[b, :, v][~torch.isnan(holes[b, :, v])]
            torch.testing.assert_close(loc[b, 0, v], seen.mean())
            torch.testing.assert_close(scale[b, 0, v], torch.sqrt(seen.var(unbiased=True) + 1e-5))
    # A constant series gets the floor, not a division by zero.
    _, s = instance_scale(torch.ones(1, 10, 1))
    torch.testing.assert_close(s, torch.full((1, 1, 1), math.sqrt(1e-5)))


def test_all_missing_history_is_an_error():
    x = torch.randn(2, 32, 3)
    x[1, :, 2] = float("nan")
    model = tiny()
    with pytest.raises(ValueError, match="history is all missing for variate 2"):
        model(x)
    with pytest.raises(ValueError, match="history is all missing for variate 2"):
        model.forecast_samples(x, num_samples=2)


def test_missing_values_in_the_context_are_handled():
    model = tiny()
    x = torch.randn(2, 32, 3, generator=gen())
    x[0, 4:20, 1] = float("nan")
    y = model(x)
    assert torch.isfinite(y).all()
    # A missing value is invisible: whatever sits under the NaN mask, the forecast is the same.
    with torch.no_grad():
        patches, variate_id, time_id = patchify(x, 8)
        obs = ~torch.isnan(patches)
        a = model.embed(torch.nan_to_num(patches, nan=0.0), obs)
        b = model.embed(torch.nan_to_num(patches, nan=123.0), obs)
    torch.testing.assert_close(a, b)


# Attention: time causality, cross-variate attention, the binary bias.


def encoded(model, tokens):
    c = tokens.shape[1] // 3
    variate_id, time_id = token_ids(c, 3)
    with torch.no_grad():
        return model.encode(tokens, variate_id, time_id)[0]


def test_attention_is_causal_in_time_and_crosses_variates():
    model = tiny()
    tokens = torch.randn(2, 4 * 3, model.config.d_model, generator=gen())  # C = 4 patches, N = 3
    base = encoded(model, tokens)
    # Change variate 0's LAST patch (time 3): every token at times 0..2 is unchanged ...
    later = tokens.clone()
    later[:, 3 * 3 + 0] += 1.0
    out = encoded(model, later)
    torch.testing.assert_close(out[:, :9], base[:, :9], rtol=0, atol=0)
    # ... while the other variates at the same time see it (same patch index is allowed).
    assert (out[:, 9 + 1] - base[:, 9 + 1]).abs().max() > 1e-4
    # Change variate 1's FIRST patch: variate 0's later tokens change (cross-variate attention).
    past = tokens.clone()
    past[:, 1] += 1.0
    out = encoded(model, past)
    assert (out[:, 3 + 0] - base[:, 3 + 0]).abs().max() > 1e-4


def test_variate_order_is_permutation_equivariant():
    # No variate embedding: variates are told apart only by the same/different-variate bias.
    model = tiny()
    x = torch.randn(2, 32, 3, generator=gen(2))
    perm = torch.tensor([2, 0, 1])
    with torch.no_grad():
        torch.testing.assert_close(model(x[..., perm]), model(x)[..., perm], rtol=1e-5, atol=1e-5)


def test_binary_attention_bias_is_per_head_and_by_variate():
    attn = tiny().blocks[0].attn
    with torch.no_grad():
        attn.var_bias.copy_(torch.tensor([[-1.0, 0.5], [2.0, 3.0]]))  # [different, same] × 2 heads
    v, t = token_ids(2, 2)  # variates [0, 1, 0, 1], times [0, 0, 1, 1]
    bias = attn.attn_bias(v, t, v, t)
    assert bias.shape == (1, 2, 4, 4)
    inf = float("-inf")
    head0 = torch.tensor([[2.0, -1.0, inf, inf], [-1.0, 2.0, inf, inf], [2.0, -1.0, 2.0, -1.0], [-1.0, 2.0, -1.0, 2.0]])
    head1 = torch.tensor([[3.0, 0.5, inf, inf], [0.5, 3.0, inf, inf], [3.0, 0.5, 3.0, 0.5], [0.5, 3.0, 0.5, 3.0]])
    torch.testing.assert_close(bias[0, 0], head0)
    torch.testing.assert_close(bias[0, 1], head1)


def test_attention_block_matches_a_hand_computation():
    # QK-norm per head, RoPE on the first half of each head by patch index, binary bias + causal mask.
    model = tiny()
    attn = model.blocks[0].attn
    with torch.no_grad():
        attn.var_bias.normal_()
        attn.q_norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 6, model.config.d_model, generator=gen(3))
    v, t = token_ids(3, 2)
    with torch.no_grad():
        out, (k_cached, _) = attn(x, v, t, v, t)

        def heads(z):
            return z.view(2, 6, 2, -1).transpose(1, 2)

        def rms(z, w):
            return z * torch.rsqrt(z.pow(2).mean(-1, keepdim=True) + 1e-6) * w

        q = rope_reference(rms(heads(attn.q_proj(x)), attn.q_norm.weight), t, fraction=0.5)
        k = rope_reference(rms(heads(attn.k_proj(x)), attn.k_norm.weight), t, fraction=0.5)
        same = (v[:, None] == v[None, :]).float()
        bias = same * attn.var_bias[1][:, None, None] + (1 - same) * attn.var_bias[0][:, None, None]
        bias = bias.masked_fill(t[None, :] > t[:, None], float("-inf"))
        o = attention_reference(q, k, heads(attn.v_proj(x)), bias=bias[None])
        want = attn.out_proj(o.transpose(1, 2).reshape(2, 6, -1))
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(k_cached, k, rtol=1e-5, atol=1e-5)


# The mixture head.


def random_mixture(shape=(3, 5), seed=0, normal_scale=1e-3) -> PatchMixture:
    raw = torch.randn(*shape, NUM_PARAMS, generator=gen(seed), dtype=torch.float64)
    return PatchMixture.from_raw(raw, normal_scale)


def test_components_match_torch_distributions():
    m = random_mixture()
    y = torch.randn(3, 5, generator=gen(1), dtype=torch.float64) * 2
    assert (m.t_df > 2).all() and (m.t_scale > 0).all()
    torch.testing.assert_close(m.student_t_log_prob(y), D.StudentT(m.t_df, m.t_loc, m.t_scale).log_prob(y))
    torch.testing.assert_close(m.normal_log_prob(y), D.Normal(m.n_loc, torch.full_like(y, 1e-3)).log_prob(y))
    counts = torch.randint(0, 20, (3, 5), generator=gen(2)).double()
    nb = D.NegativeBinomial(total_count=m.nb_total_count, logits=m.nb_logits)
    torch.testing.assert_close(m.negative_binomial_log_prob(counts), nb.log_prob(counts))
    assert torch.isinf(m.negative_binomial_log_prob(-counts - 0.5)).all()
    pos = y.abs() + 0.1
    torch.testing.assert_close(m.log_normal_log_prob(pos), D.LogNormal(m.ln_loc, m.ln_scale).log_prob(pos))
    assert torch.isinf(m.log_normal_log_prob(-pos)).all() and torch.isinf(m.log_normal_log_prob(0 * pos)).all()


def test_mixture_log_prob_is_a_safe_log_sum_exp():
    raw = torch.randn(4, 6, NUM_PARAMS, generator=gen(4), dtype=torch.float64, requires_grad=True)
    m = PatchMixture.from_raw(raw, 0.05)
    y = torch.randn(4, 6, generator=gen(5), dtype=torch.float64)  # negative values: NB and LogNormal are −inf
    y[0] = torch.arange(6.0)  # non-negative integers: all four components count
    w = torch.softmax(m.logits, -1)
    by_hand = torch.log(
        w[..., 0] * D.StudentT(m.t_df, m.t_loc, m.t_scale).log_prob(y).exp()
        + w[..., 1] * D.Normal(m.n_loc, 0.05).log_prob(y).exp()
        + w[..., 2] * torch.where(y >= 0, m.negative_binomial_log_prob(y).exp(), torch.zeros_like(y))
        + w[..., 3] * torch.where(y > 0, m.log_normal_log_prob(y).exp(), torch.zeros_like(y))
    )
    lp = m.log_prob(y)
    torch.testing.assert_close(lp, by_hand)
    lp.sum().backward()
    assert torch.isfinite(raw.grad).all()


def test_mixture_mean_and_sampling():
    # One set of parameters broadcast over many draws: the sample mean is near `mean`.
    raw = torch.tensor([0.3, -0.2, 0.1, 0.0, 1.5, 0.4, -0.5, -0.3, 1.0, -0.5, -0.4, -0.6], dtype=torch.float64)
    m = PatchMixture.from_raw(raw.expand(40000, NUM_PARAMS), 1e-3)
    w = torch.softmax(raw[:4], 0)
    nb_mean = m.nb_total_count[0] * m.nb_logits[0].exp()
    ln_mean = torch.exp(m.ln_loc[0] + m.ln_scale[0] ** 2 / 2)
    want = w[0] * m.t_loc[0] + w[1] * m.n_loc[0] + w[2] * nb_mean + w[3] * ln_mean
    torch.testing.assert_close(m.mean[0], want)
    draws = m.sample(gen(6))
    assert draws.shape == (40000,) and torch.isfinite(draws).all()
    std = draws.std()
    assert abs(draws.mean() - want) < 4 * std / math.sqrt(40000)
    assert torch.equal(draws, m.sample(gen(6)))  # reproducible under a generator


def test_gamma_sampler_moments():
    alpha = torch.tensor([0.3, 1.0, 2.5, 12.0], dtype=torch.float64).repeat(20000, 1)
    g = sample_gamma(alpha, gen(7))
    assert (g > 0).all()
    torch.testing.assert_close(g.mean(0), alpha[0], rtol=0.05, atol=0.01)
    torch.testing.assert_close(g.var(0), alpha[0], rtol=0.1, atol=0.01)  # Gamma(α, 1): mean = var = α


# Decoding.


def test_cached_decoding_equals_recomputation():
    model = tiny()
    x = torch.randn(2, 27, 2, generator=gen(8))  # L not a multiple of P, N != config.n_variates
    cached = model.forecast_samples(x, horizon=30, num_samples=4, generator=gen(9), use_cache=True)
    again = model.forecast_samples(x, horizon=30, num_samples=4, generator=gen(9), use_cache=True)
    slow = model.forecast_samples(x, horizon=30, num_samples=4, generator=gen(9), use_cache=False)
    assert cached.shape == (2, 4, 30, 2)
    assert torch.equal(cached, again)
    torch.testing.assert_close(cached, slow, rtol=1e-5, atol=1e-5)
    assert not torch.equal(cached[:, 0], cached[:, 1])  # sample paths differ


def test_point_forecast_feeds_back_the_mean():
    model = tiny()
    x = torch.randn(2, 32, 3, generator=gen(10))
    with torch.no_grad():
        y = model(x)
        loc, scale = instance_scale(x)
        # The first horizon patch is the mixture mean predicted by the last context patch, unscaled.
        h = model.hidden_states(x)
        first = model.head(h[:, -3:]).mean.transpose(1, 2)  # [B, P, N]
    torch.testing.assert_close(y[:, :8], first * scale + loc, rtol=1e-5, atol=1e-5)


def test_quantiles_are_monotone_in_level():
    model = tiny()
    x = torch.randn(2, 32, 3, generator=gen(11))
    q = model.quantiles(x, [0.1, 0.5, 0.9], num_samples=16, generator=gen(12))
    assert q.shape == (2, 16, 3, 3)
    assert (q[..., 1:] >= q[..., :-1]).all()
    with pytest.raises(ValueError, match="quantile levels"):
        model.quantiles(x, [0.0, 0.5])


@pytest.mark.parametrize("n", [1, 5])
def test_any_number_of_variates(n):
    model = tiny()  # configured for 3 variates
    x = torch.randn(2, 32, n, generator=gen(13))
    assert model(x).shape == (2, 16, n)
    assert model.forecast_samples(x, num_samples=3, generator=gen(0)).shape == (2, 3, 16, n)
    loss = model.loss(x, torch.randn(2, 16, n))
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_horizon_bounds():
    model = tiny()
    x = torch.randn(1, 32, 3)
    assert model.max_horizon == 64 and not model.uses_timestamps
    assert model.forecast_samples(x, horizon=64, num_samples=2).shape == (1, 2, 64, 3)
    with pytest.raises(ValueError, match="max_horizon"):
        model.forecast_samples(x, horizon=65, num_samples=2)
    with pytest.raises(ValueError, match="max_horizon"):
        MoiraiMoEConfig.tiny(horizon=65)
    with pytest.raises(ValueError):
        MoiraiMoEConfig.tiny(rope_fraction=0.375)  # int(8 · 0.375) = 3 rotated dims: RoPE needs pairs
    with pytest.raises(ValueError, match="router"):
        MoiraiMoEConfig.tiny(router="hash")


# Training.


def sine_batch(b=8, lookback=32, horizon=16, n=2, seed=0):
    g = gen(seed)
    t = torch.arange(lookback + horizon, dtype=torch.float32)
    phase = torch.rand(b, 1, n, generator=g) * 2 * math.pi
    series = torch.sin(2 * math.pi * t[None, :, None] / 16 + phase) * 3 + 10
    return series[:, :lookback], series[:, lookback:]


def test_loss_decreases_on_a_sine_wave():
    torch.manual_seed(0)
    model = MoiraiMoE(MoiraiMoEConfig.tiny()).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = sine_batch()
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = model.loss(x, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5, losses


def test_loss_ignores_masked_and_missing_targets():
    model = tiny()
    x, y = sine_batch(b=2)
    mask = torch.ones_like(y, dtype=torch.bool)
    mask[:, 10:] = False
    base = model.loss(x, y, mask)
    changed = y.clone()
    changed[:, 10:] = 99.0
    torch.testing.assert_close(model.loss(x, changed, mask), base)
    nan = y.clone()
    nan[:, 10:] = float("nan")
    torch.testing.assert_close(model.loss(x, nan), base)


def test_eval_loss_is_the_forecast_nll_of_the_target():
    """Eval mode (`scale_prefix` set): full-context statistics and only the target scored, i.e. the NLL
    of the first horizon patch's mixture, the one decoding samples from."""
    model = tiny(aux_loss_weight=0.0)
    x, y = sine_batch(b=3, lookback=30, horizon=8)  # 30 steps: left-padded to 4 patches of 8
    loc, scale, _, dist, _, _ = model._context(x)
    ys = ((y - loc) / scale).transpose(1, 2)  # [B, N, P]: the patch of each variate
    torch.testing.assert_close(model.loss(x, y), -dist.log_prob(ys).mean())
    leaky = tiny(aux_loss_weight=0.0, scale_prefix=None)  # also scores context patches 1..C-1
    assert not torch.allclose(leaky.loss(x, y), model.loss(x, y))


def test_training_loss_scales_by_a_prefix_and_scores_only_after_it():
    """Training mode: a random prefix of k context patches gives the statistics and patches k.. are
    scored, exactly the eval loss of the window cut after the prefix (so no statistic sees a scored
    value); k ranges over [ceil(scale_prefix · C), C]."""
    model = tiny(aux_loss_weight=0.0, scale_prefix=0.5)
    x, y = sine_batch(b=2, lookback=30, horizon=16)
    x = x + torch.linspace(0, 5, 30)[None, :, None]  # a trend: prefix and context statistics differ
    pad, seen = 2, set()
    for seed in range(12):
        torch.manual_seed(seed)
        k = int(torch.randint(2, 5, ()).item())  # C = 4 patches, ceil(0.5 · 4) = 2
        seen.add(k)
        torch.manual_seed(seed)
        train = model.train().loss(x, y)
        cut = k * 8 - pad
        expected = model.eval().loss(x[:, :cut], torch.cat([x[:, cut:], y], dim=1))
        torch.testing.assert_close(train, expected, rtol=1e-5, atol=1e-6)
    assert seen == {2, 3, 4}
    with pytest.raises(ValueError, match="scale_prefix"):
        MoiraiMoEConfig.tiny(scale_prefix=0.0)


def test_aux_loss_joins_only_for_the_learned_router():
    x, y = sine_batch(b=2)
    learned = tiny(aux_loss_weight=0.0)
    weighted = tiny(aux_loss_weight=1.0)
    diff = weighted.loss(x, y) - learned.loss(x, y)
    torch.testing.assert_close(diff, weighted.aux_loss())
    assert weighted.aux_loss() > 0.5  # ≈ 1 per layer when balanced
    assert tiny(router="centroid").aux_loss() == 0


# Experts.


def test_top2_routing_counts_and_every_expert_learns():
    spec = get_spec("moirai_moe")
    torch.manual_seed(0)
    model = spec.build(spec.config_cls.tiny()).train()
    x = torch.randn(4, 32, 3, generator=gen(0))  # the conformance suite's batch
    model(x)
    counts = model.expert_counts()
    assert counts.shape == (2, 4)
    # forward: C·N context tokens, then (Hp − 1)·N decoded tokens, each routed to top_k = 2 experts.
    tokens = 4 * (4 * 3 + 1 * 3)
    assert counts.sum(1).tolist() == [tokens * 2] * 2
    assert (counts > 0).all(), counts
    # Under the training loss every token's output counts, so every expert that got tokens learns.
    # (Through forward() alone, the last layer's experts only learn from the tokens that predict the horizon.)
    model.loss(x, torch.randn(4, 16, 3, generator=gen(1))).backward()
    assert (model.expert_counts() > 0).all()
    for block in model.blocks:
        ffn = block.ffn
        assert isinstance(ffn, MoEFeedForward) and ffn.top_k == 2
        for e in range(4):  # each expert's own weights get gradient
            assert ffn.w_gate.grad[e].abs().sum() > 0 and ffn.w_down.grad[e].abs().sum() > 0
        assert ffn.router.weight.grad.abs().sum() > 0


def test_dense_variant_and_centroids_from_it():
    dense = tiny(dense=True)
    assert not any(isinstance(b.ffn, MoEFeedForward) for b in dense.blocks)
    assert dense.blocks[0].ffn.w_gate.out_features == 2 * 16  # top_k · d_expert by default
    x, y = sine_batch(b=4, n=3)
    assert dense(x).shape == (4, 16, 3) and torch.isfinite(dense.loss(x, y))
    with pytest.raises(ValueError, match="no experts"):
        dense.expert_counts()
    # The warm-up model's feed-forward inputs, clustered, become the centroid router's centroids.
    moe = tiny(router="centroid")
    feats = dense.ffn_inputs(x)
    assert len(feats) == 2 and feats[0].shape == (4 * 4 * 3, 16)
    moe.init_centroids(dense, x)
    for block, h in zip(moe.blocks, feats, strict=True):
        assert block.ffn.centroids.abs().sum() > 0
        torch.testing.assert_close(block.ffn.centroids, kmeans(h, 4))
    assert moe(x).shape == (4, 16, 3) and moe.expert_counts().sum() > 0
    with pytest.raises(ValueError, match="centroid"):
        tiny().init_centroids(dense, x)


def test_float64_input_and_presets():
    model = tiny()
    assert model(torch.randn(1, 32, 3, dtype=torch.float64)).dtype == torch.float32
    small, cpu = MoiraiMoEConfig.small(), MoiraiMoEConfig.cpu()
    assert (small.n_layers, small.d_model, small.n_experts, small.d_expert, small.top_k) == (6, 384, 32, 512, 2)
    assert (cpu.n_layers, cpu.d_model, cpu.n_experts, cpu.top_k) == (4, 128, 8, 2)


@pytest.mark.interpret
def test_triton_kernels_match_the_reference_in_the_interpreter():
    # attention (with the additive binary bias + time mask, and its dBias) and the MoE experts, through
    # the Triton kernels run by the interpreter (TRITON_INTERPRET=1 without a GPU), against the references.
    pytest.importorskip("triton")
    models = [tiny(attn_impl=impl, moe_impl=impl).train() for impl in ("reference", "triton")]
    x, y = sine_batch(b=2, n=2)
    losses = [torch.manual_seed(0) and m.loss(x, y) for m in models]  # the same scaling prefix for both
    for loss in losses:
        loss.backward()
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-5)
    grads = [dict(m.named_parameters()) for m in models]
    for name, p in grads[0].items():
        torch.testing.assert_close(grads[1][name].grad, p.grad, rtol=1e-4, atol=1e-5, msg=name)
    with torch.no_grad():
        paths = [m.eval().forecast_samples(x, num_samples=2, generator=gen(1)) for m in models]
    torch.testing.assert_close(paths[1], paths[0], rtol=1e-5, atol=1e-5)
