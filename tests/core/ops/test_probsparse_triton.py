"""Triton ProbSparse attention vs the reference (the spec), with the same fixed key sample `index`.

Tiers: `interpret` tests run the kernels through the Triton interpreter on CPU in fp32 (or compiled on a
GPU when there is one); `gpu` tests check bf16/fp16 parity on CUDA and skip elsewhere.
Checked per case: the measurement M, the selected top-u set, the output, and dq/dk/dv against the
reference's autograd. Errors are relative RMS, ||a - b|| / ||b||, per tensor.
"""

from __future__ import annotations

import pytest
import torch
from triton_tier import CUDA, DEVICE, rel_rms  # first: interpreter set-up

pytest.importorskip("triton")  # the kernel modules imported below need it

from core.ops.attention.reference import attention_reference  # noqa: E402
from core.ops.dispatch import used_impls  # noqa: E402
from core.ops.probsparse import (  # noqa: E402
    n_sampled,
    probsparse_attention,
    probsparse_attention_reference,
    query_sparsity,
    sample_keys,
    select_queries,
    sparse_attention_reference,
)
from core.ops.probsparse.triton import (  # noqa: E402
    probsparse_attention_triton,
    query_sparsity_triton,
)

FP32_TOL = 1e-5  # measured <= 4e-7 (out, dq, dk, dv) on these shapes
M_TOL = 1e-6  # measured <= 1.1e-7: the same fp32 dot products, summed in another order


def make(b, h, lq, lk, d, dv=None, dtype=torch.float32, seed=0):
    """q, k, v (leaves requiring grad) and a fixed key sample `index [Lq, S]` for factor 5."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, lq, d, generator=g).to(DEVICE, dtype).requires_grad_()
    k = torch.randn(b, h, lk, d, generator=g).to(DEVICE, dtype).requires_grad_()
    v = torch.randn(b, h, lk, dv or d, generator=g).to(DEVICE, dtype).requires_grad_()
    return q, k, v


def index_for(lq, lk, factor=5, seed=1):
    return sample_keys(lq, lk, factor, generator=torch.Generator().manual_seed(seed), device=DEVICE)


def top_set(m: torch.Tensor, u: int) -> torch.Tensor:
    """The selected queries as sorted positions [B, H, u]: topk(sorted=False) leaves the order open."""
    return select_queries(m, u).sort(dim=-1).values


def assert_parity(q, k, v, index, *, factor=5, causal=False, scale=None, tol=FP32_TOL):
    """Triton vs reference with the same index: M, the top set, the output and dq/dk/dv."""
    lq = q.shape[-2]
    u = n_sampled(lq, factor)
    m, m_ref = query_sparsity_triton(q, k, index), query_sparsity(q, k, index)
    assert m.shape == m_ref.shape and m.dtype == torch.float32
    assert rel_rms(m, m_ref) < M_TOL, f"M: {rel_rms(m, m_ref):.2e}"
    assert torch.equal(top_set(m, u), top_set(m_ref, u)), "the kernel's measurement selects other queries"

    kw = dict(factor=factor, causal=causal, scale=scale)
    out_ref = probsparse_attention_reference(q, k, v, index=index, **kw)
    out = probsparse_attention_triton(q, k, v, index, **kw)
    assert out.shape == out_ref.shape and out.dtype == out_ref.dtype
    assert rel_rms(out, out_ref) < tol, f"out: {rel_rms(out, out_ref):.2e}"

    do = torch.randn(out_ref.shape, generator=torch.Generator().manual_seed(7)).to(out.device, out.dtype)
    grads_ref = torch.autograd.grad(out_ref, (q, k, v), do)
    grads = torch.autograd.grad(out, (q, k, v), do)
    for name, g, g_ref in zip(("dq", "dk", "dv"), grads, grads_ref, strict=True):
        assert g.shape == g_ref.shape and g.dtype == g_ref.dtype, name
        assert torch.isfinite(g).all(), name
        assert rel_rms(g, g_ref) < tol, f"{name}: {rel_rms(g, g_ref):.2e}"
    return out, grads, top_set(m, u)


# (id, B, H, Lq, Lk, D, Dv, causal)
CASES = [
    ("L96", 2, 2, 96, 96, 16, None, False),
    ("L96-causal", 2, 2, 96, 96, 16, None, True),
    ("Lq48-Lk96", 1, 2, 48, 96, 16, None, False),
    ("L37-causal", 2, 1, 37, 37, 16, None, True),
    ("L40-D24-causal", 1, 2, 40, 40, 24, None, True),
    ("L33-D80", 1, 1, 33, 33, 80, None, False),
    ("Lq20-Lk30-Dv40", 2, 1, 20, 30, 16, 40, False),
    ("L1", 1, 2, 1, 1, 16, None, True),
]


@pytest.mark.interpret
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_forward_backward_match_reference(case):
    _, b, h, lq, lk, d, dv, causal = case
    q, k, v = make(b, h, lq, lk, d, dv)
    assert_parity(q, k, v, index_for(lq, lk), causal=causal)


@pytest.mark.interpret
def test_dq_is_zero_off_the_selected_rows():
    q, k, v = make(1, 2, 50, 50, 16, seed=2)
    _, (dq, _, _), top = assert_parity(q, k, v, index_for(50, 50, seed=3), causal=True)
    selected = torch.zeros(1, 2, 50, dtype=torch.bool, device=DEVICE).scatter(2, top, True)
    assert top.shape[-1] == n_sampled(50, 5) < 50
    assert torch.equal(dq[~selected], torch.zeros_like(dq[~selected]))
    assert (dq[selected].abs().sum(-1) > 0).all()


@pytest.mark.interpret
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_every_query_selected_is_full_attention(causal):
    # L = 8, factor 5: u = min(5·⌈ln 8⌉, 8) = 8, so no row is lazy and the op is plain softmax attention.
    q, k, v = make(1, 2, 8, 8, 16, seed=4)
    out = probsparse_attention_triton(q, k, v, index_for(8, 8), factor=5, causal=causal)
    assert rel_rms(out, attention_reference(q, k, v, causal=causal)) < FP32_TOL


@pytest.mark.interpret
def test_custom_scale_factor_and_strided_inputs():
    # Models produce q/k/v as [B, L, H, D] projections viewed as [B, H, L, D]: non-contiguous strides.
    g = torch.Generator().manual_seed(5)
    qkv = torch.randn(2, 45, 3, 2, 24, generator=g).to(DEVICE)  # [B, L, 3, H, D]
    q, k, v = (qkv[:, :, i].transpose(1, 2).detach().requires_grad_() for i in range(3))  # [B, H, L, D]
    assert not q.is_contiguous()
    assert_parity(q, k, v, index_for(45, 45, factor=3), factor=3, causal=True, scale=0.37)


@pytest.mark.interpret
def test_dispatch_explicit_triton_runs_the_kernel():
    q, k, v = make(1, 2, 30, 30, 16, seed=6)
    index = index_for(30, 30)
    out = probsparse_attention(q, k, v, causal=True, index=index, impl="triton")
    assert used_impls()["probsparse"] == "triton"
    assert rel_rms(out, probsparse_attention_reference(q, k, v, causal=True, index=index)) < FP32_TOL
    # Without an index the op draws one from the generator, as the reference does with the same seed.
    out = probsparse_attention(q, k, v, generator=torch.Generator().manual_seed(9), impl="triton")
    ref = probsparse_attention_reference(q, k, v, generator=torch.Generator().manual_seed(9))
    assert rel_rms(out, ref) < FP32_TOL


@pytest.mark.interpret
@pytest.mark.skipif(CUDA, reason="checks the CPU fallback")
def test_auto_stays_on_reference_on_cpu_even_when_interpreting(monkeypatch):
    monkeypatch.delenv("SEER_KERNELS", raising=False)
    q, k, v = make(1, 1, 12, 12, 16)
    probsparse_attention(q, k, v)
    assert used_impls()["probsparse"] == "reference"


@pytest.mark.interpret
def test_bad_inputs_raise():
    q, k, v = make(1, 1, 12, 20, 16)
    index = index_for(12, 20)
    with pytest.raises(ValueError, match=r"\[B, H, L, D\]"):
        probsparse_attention_triton(q[0], k[0], v[0], index, factor=5)
    with pytest.raises(ValueError, match="incompatible"):
        probsparse_attention_triton(q, k[..., :8], v, index, factor=5)
    with pytest.raises(ValueError, match="Lq == Lk"):
        probsparse_attention_triton(q, k, v, index, factor=5, causal=True)
    with pytest.raises(ValueError, match="index must be"):
        probsparse_attention_triton(q, k, v, index[:5], factor=5)
    with pytest.raises(ValueError, match="integer"):
        probsparse_attention_triton(q, k, v, index.float(), factor=5)
    with pytest.raises(ValueError, match="outside"):
        probsparse_attention_triton(q, k, v, index + 20, factor=5)
    with pytest.raises(ValueError, match="share one of"):
        probsparse_attention_triton(q, k, v.double(), index, factor=5)
    q, k, v = make(1, 1, 4, 4, 160)
    with pytest.raises(NotImplementedError, match="head dim 160"):
        probsparse_attention_triton(q, k, v, index_for(4, 4), factor=5)


# bf16 rounds to 8 mantissa bits (relative step 2^-8 ≈ 4e-3); P and dS are cast to the input dtype before
# their matmuls, as in the flash-attention kernels, so the same bounds (tests/core/ops/test_attention_triton.py).
LOW_PRECISION_TOL = {torch.bfloat16: (1e-2, 2e-2), torch.float16: (2e-3, 5e-3)}


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize(
    "shape,causal",
    [((2, 4, 1000, 1000, 64), True), ((2, 3, 257, 513, 128), False), ((1, 2, 77, 77, 80), True)],
    ids=["L1000-D64-causal", "Lq<Lk-D128", "D80-causal"],
)
def test_low_precision_parity_on_gpu(dtype, shape, causal):
    b, h, lq, lk, d = shape
    q, k, v = make(b, h, lq, lk, d, dtype=dtype, seed=8)
    index = index_for(lq, lk)
    m, m_ref = query_sparsity_triton(q, k, index), query_sparsity(q, k, index)
    assert rel_rms(m, m_ref) < M_TOL  # fp32 accumulation of the same low-precision inputs
    # Near-equal measurements may rank differently under another summation order, so the attention is
    # compared on the kernel's own selection: the reference attends and fills with that `top`.
    out = probsparse_attention_triton(q, k, v, index, factor=5, causal=causal)
    top = select_queries(m, n_sampled(lq, 5))
    out_ref = sparse_attention_reference(q, k, v, top, causal=causal)
    do = torch.randn_like(out_ref)
    grads = torch.autograd.grad(out, (q, k, v), do)
    grads_ref = torch.autograd.grad(out_ref, (q, k, v), do)
    tol, grad_tol = LOW_PRECISION_TOL[dtype]
    assert out.dtype == dtype and rel_rms(out, out_ref) < tol
    for name, g, g_ref in zip(("dq", "dk", "dv"), grads, grads_ref, strict=True):
        assert g.dtype == dtype and torch.isfinite(g).all(), name
        assert rel_rms(g, g_ref) < grad_tol, f"{name}: {rel_rms(g, g_ref):.2e}"
