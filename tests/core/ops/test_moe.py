"""Mixture-of-experts ops, reference behaviour: top-k routing by hand and against torch, and the SwiGLU expert
loop counting a repeated expert twice (all on CPU). The Triton kernels are tested in test_moe_triton.py, the
`MoEFeedForward` module in tests/core/nn/test_moe_module.py."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from core.ops.dispatch import used_impls
from core.ops.moe import moe_swiglu, moe_swiglu_reference, route_topk


def test_route_topk_picks_the_k_largest_and_weights_are_their_softmax():
    logits = torch.randn(50, 7, generator=torch.Generator().manual_seed(0))
    indices, weights = route_topk(logits, 3)
    assert indices.dtype == torch.int64 and indices.shape == weights.shape == (50, 3)
    ranked = logits.argsort(dim=-1, descending=True)[:, :3]
    assert torch.equal(indices, ranked)  # largest first
    chosen = logits.gather(1, indices)
    assert torch.allclose(weights, torch.softmax(chosen, -1), atol=1e-7)
    assert torch.allclose(weights.sum(-1), torch.ones(50), atol=1e-6)
    assert (weights[:, :-1] >= weights[:, 1:]).all()
    _, w16 = route_topk(logits.bfloat16(), 2)
    assert w16.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="k=8"):
        route_topk(logits, 8)


def test_route_topk_by_hand():
    logits = torch.tensor([[1.0, 3.0, 2.0, -1.0]])
    indices, weights = route_topk(logits, 2)
    assert indices.tolist() == [[1, 2]]
    e = math.exp(1.0)  # softmax([3, 2]) = [e, 1] / (e + 1)
    assert weights[0].tolist() == pytest.approx([e / (e + 1), 1 / (e + 1)], abs=1e-7)


def test_reference_counts_a_repeated_expert_twice_and_keeps_the_dtype():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(4, 6, generator=g)
    w_gate, w_up, w_down = torch.randn(2, 6, 5, generator=g), torch.randn(2, 6, 5, generator=g), torch.randn(2, 5, 6)
    idx = torch.tensor([[1, 1], [0, 1], [0, 0], [1, 0]])
    wts = torch.full((4, 2), 0.5)
    y = moe_swiglu_reference(x, idx, wts, w_gate, w_up, w_down)

    def expert(e, v):
        return (F.silu(v @ w_gate[e]) * (v @ w_up[e])) @ w_down[e]

    assert torch.allclose(y[0], expert(1, x[0]), atol=1e-5)  # 0.5 + 0.5 of the same expert
    assert torch.allclose(y[1], 0.5 * expert(0, x[1]) + 0.5 * expert(1, x[1]), atol=1e-5)
    y16 = moe_swiglu(x.bfloat16(), idx, wts, w_gate.bfloat16(), w_up.bfloat16(), w_down.bfloat16(), impl="reference")
    assert y16.dtype == torch.bfloat16 and used_impls()["moe"] == "reference"
    assert (y16.float() - y).norm() / y.norm() < 2e-2
