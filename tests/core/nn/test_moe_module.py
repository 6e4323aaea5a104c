"""`MoEFeedForward`, reference behaviour: load counts, the balancing loss by hand, centroid routing, k-means,
and the module against a dense computation written out by hand (all on CPU). The ops it is built on
(`route_topk`, `moe_swiglu`) are tested in tests/core/ops/test_moe.py and test_moe_triton.py."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from core.nn import MoEFeedForward
from core.nn.moe import kmeans
from core.ops.moe import route_topk


def learned_moe_by_hand() -> tuple[MoEFeedForward, torch.Tensor]:
    """E=3, D=3, k=2 with router = identity, so each token's logits are its own coordinates."""
    moe = MoEFeedForward(3, 4, 3, top_k=2)
    with torch.no_grad():
        moe.router.weight.copy_(torch.eye(3))
    x = torch.tensor([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [3.0, 1.0, 2.0], [1.0, 0.0, 5.0]])
    return moe, x


def test_last_counts_equal_a_hand_count():
    moe, x = learned_moe_by_hand()
    moe(x)
    # top-2 per row: {0, 1}, {1, 2}, {0, 2}, {2, 0} -> expert 0: 3, expert 1: 2, expert 2: 3 (of T·k = 8)
    assert moe.last_counts.dtype == torch.int64
    assert moe.last_counts.tolist() == [3, 2, 3]
    moe(x.view(2, 2, 3))  # leading dims are flattened
    assert moe.last_counts.tolist() == [3, 2, 3]


def test_aux_loss_equals_the_formula_by_hand():
    moe, x = learned_moe_by_hand()
    moe(x)
    frac = [3 / 8, 2 / 8, 3 / 8]
    prob = [0.0, 0.0, 0.0]
    for row in x.tolist():
        z = sum(math.exp(v) for v in row)
        for e, v in enumerate(row):
            prob[e] += math.exp(v) / z / len(x)
    expected = 3 * sum(f * p for f, p in zip(frac, prob, strict=True))
    assert moe.aux_loss.item() == pytest.approx(expected, rel=1e-6)
    assert moe.aux_loss.requires_grad
    moe.aux_loss.backward()
    assert moe.router.weight.grad is not None and moe.router.weight.grad.abs().sum() > 0
    assert moe.w_gate.grad is None  # the loss depends on the router only


def test_aux_loss_is_one_for_a_uniform_router_and_grows_when_routing_collapses():
    torch.manual_seed(0)
    moe = MoEFeedForward(8, 16, 4, top_k=2)
    x = torch.randn(64, 8)
    with torch.no_grad():
        moe.router.weight.zero_()  # every logit 0: P uniform, and E · Σ f_e / E = Σ f_e = 1 whatever f is
    moe(x)
    assert moe.aux_loss.item() == pytest.approx(1.0, abs=1e-6)
    top1 = MoEFeedForward(8, 16, 4, top_k=1)
    with torch.no_grad():
        top1.router.weight.zero_()
        top1.router.weight[2, 0] = 50.0  # every token (x[:, 0] >= 1) goes to expert 2 with probability ~1
    top1(x.abs() + 1.0)
    assert top1.last_counts.tolist() == [0, 0, 64, 0]
    assert top1.aux_loss.item() == pytest.approx(4.0, rel=1e-3)  # the maximum, E


def test_centroid_router_picks_the_nearest_centroids():
    moe = MoEFeedForward(2, 4, 4, top_k=2, router="centroid")
    centroids = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    moe.set_centroids(centroids)
    x = torch.tensor([[1.0, 0.5], [9.0, 8.0], [2.0, 9.0], [6.0, 1.0]])
    indices, weights = route_topk(moe.router_logits(x), 2)
    # nearest then second nearest, by hand: (1, .5) -> 1.1 to c0, 9.0 to c1; (9, 8) -> 2.2 to c3, 8.1 to c1;
    # (2, 9) -> 2.2 to c2, 8.1 to c3; (6, 1) -> 4.1 to c1, 6.1 to c0
    assert indices.tolist() == [[0, 1], [3, 1], [2, 3], [1, 0]]
    assert (weights[:, 0] > weights[:, 1]).all()  # the nearer centroid weighs more
    moe(x)
    assert moe.aux_loss.item() == 0.0 and not moe.aux_loss.requires_grad
    assert moe.last_counts.tolist() == torch.bincount(indices.flatten(), minlength=4).tolist()
    assert {n for n, _ in moe.named_parameters()} == {"w_gate", "w_up", "w_down"}  # nothing learned for routing
    assert "centroids" in moe.state_dict()
    with pytest.raises(ValueError, match="centroids must be"):
        moe.set_centroids(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="router='centroid'"):
        MoEFeedForward(2, 4, 4).set_centroids(centroids)


def test_kmeans_recovers_well_separated_clusters():
    g = torch.Generator().manual_seed(1)
    centres = torch.tensor([[0.0, 0.0, 0.0], [20.0, 0.0, 0.0], [0.0, 20.0, 0.0], [0.0, 0.0, 20.0]])
    labels = torch.randint(4, (400,), generator=g)
    h = centres[labels] + 0.3 * torch.randn(400, 3, generator=g)
    found = kmeans(h, 4, seed=0)
    assert found.shape == (4, 3)
    match = torch.cdist(centres, found).argmin(1)
    assert sorted(match.tolist()) == [0, 1, 2, 3]  # one found centroid per true cluster
    assert torch.cdist(centres, found).min(1).values.max() < 0.1
    assert torch.equal(found, kmeans(h, 4, seed=0))  # deterministic for a seed
    with pytest.raises(ValueError, match="k=500"):
        kmeans(h, 500)


def test_centroids_from_kmeans_route_each_cluster_to_its_own_expert():
    g = torch.Generator().manual_seed(2)
    centres = torch.randn(4, 6, generator=g) * 10
    h = centres.repeat_interleave(30, 0) + 0.1 * torch.randn(120, 6, generator=g)
    moe = MoEFeedForward(6, 8, 4, top_k=1, router="centroid")
    moe.set_centroids(kmeans(h, 4))
    moe(h)
    assert moe.last_counts.tolist() == [30, 30, 30, 30]


def test_module_output_equals_a_dense_computation_by_hand():
    torch.manual_seed(3)
    moe = MoEFeedForward(5, 7, 3, top_k=2)
    x = torch.randn(2, 3, 5)
    y = moe(x)
    expected = torch.zeros(6, 5)
    for t, xt in enumerate(x.reshape(6, 5)):
        logits = moe.router.weight @ xt  # [E]
        top = sorted(range(3), key=lambda e: -logits[e].item())[:2]
        z = torch.stack([logits[e] for e in top])
        w = torch.exp(z - z.max()) / torch.exp(z - z.max()).sum()
        for wj, e in zip(w, top, strict=True):
            hidden = F.silu(xt @ moe.w_gate[e]) * (xt @ moe.w_up[e])
            expected[t] += wj * (hidden @ moe.w_down[e])
    assert y.shape == x.shape
    assert torch.allclose(y.reshape(6, 5), expected, atol=1e-6)


def test_gradients_reach_every_expert_with_tokens_and_the_router():
    torch.manual_seed(4)
    moe = MoEFeedForward(6, 8, 4, top_k=2)
    with torch.no_grad():
        moe.router.weight[3] = -10.0  # x > 0 below: expert 3's logit is always the lowest, never in the top 2
    x = torch.rand(32, 6) + 0.1
    y = moe(x)
    (y.square().mean() + 0.01 * moe.aux_loss).backward()
    assert moe.last_counts[3] == 0 and (moe.last_counts[:3] > 0).all()
    for w in (moe.w_gate, moe.w_up, moe.w_down):
        assert (w.grad[:3].flatten(1).abs().sum(1) > 0).all()
        assert torch.equal(w.grad[3], torch.zeros_like(w.grad[3]))
    assert moe.router.weight.grad[:3].abs().sum() > 0  # through the routing weights and the aux loss


def test_module_rejects_bad_configs():
    with pytest.raises(ValueError, match="router must be"):
        MoEFeedForward(4, 8, 4, router="hash")
    with pytest.raises(ValueError, match="top_k"):
        MoEFeedForward(4, 8, 4, top_k=5)
    with pytest.raises(ValueError, match="last dim"):
        MoEFeedForward(4, 8, 4)(torch.randn(3, 5))


def test_expert_init_is_linear_like():
    moe = MoEFeedForward(64, 256, 4)
    for w, fan_in in ((moe.w_gate, 64), (moe.w_up, 64), (moe.w_down, 256)):
        bound = 1 / math.sqrt(fan_in)
        assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
        assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)  # U(-b, b) has std b/√3


def test_empty_batch_and_autocast():
    torch.manual_seed(6)
    moe = MoEFeedForward(6, 8, 4, top_k=2)
    y = moe(torch.randn(0, 3, 6))
    assert y.shape == (0, 3, 6) and moe.last_counts.tolist() == [0, 0, 0, 0] and moe.aux_loss.item() == 0.0
    x = torch.randn(10, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # fp32 parameters, low-precision matmuls
        y16 = moe(x)
    assert y16.dtype == torch.bfloat16
    y16.float().sum().backward()
    assert moe.w_gate.grad.dtype == torch.float32 and moe.w_gate.grad.abs().sum() > 0
    assert (y16.float() - moe(x)).norm() / moe(x).norm() < 3e-2
