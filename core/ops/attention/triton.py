"""Flash attention in Triton: online-softmax forward and a FlashAttention-2 backward (dQ, dK, dV, dBias).

Shapes: B batch, H heads, Lq query length, Lk key length, D head dim (Dv for values, usually = D).
  q [B, H, Lq, D], k [B, H, Lk, D], v [B, H, Lk, Dv], out [B, H, Lq, Dv]
  bias: additive, broadcastable to [B, H, Lq, Lk]; the kernels read it through 4-D strides with 0 on
        broadcast dims, so a [1, H, Lq, Lk] bias is never materialised per batch
  key_padding_mask: [B, Lk] bool, True = padded key; lse: [B, H, Lq] fp32 (natural-log logsumexp)
Semantics are those of `reference.attention_reference` (the spec): causal is bottom-right aligned (key
j visible to query i iff j <= i + Lk - Lq), softmax runs in fp32, a query whose keys are all masked
outputs zeros and gets zero gradients.

Algorithm: FlashAttention-2 (Dao, 2023, arXiv:2307.08691), following the layout of Triton's fused-
attention tutorial (python/tutorials/06-fused-attention.py): the forward keeps a running max `m` and
denominator `l` per query row and never stores the [Lq, Lk] matrix; the backward recomputes
P = exp(S - lse) from the saved logsumexp, one kernel accumulating dK/dV over query blocks and another
accumulating dQ over key blocks, so no atomics are needed. Exponentials use exp2 with log2(e) folded
into the scale (one multiply fewer per score than exp).

Layers, as in Liger-Kernel: `_attention_*_kernel` (Triton) · `_flash_attention_fwd/_bwd` (launchers,
registered as `torch.ops.seer.flash_attention[_backward]` through `torch.library.triton_op`) ·
`AttentionFunction` (autograd) · `attention_triton` (public op, reached via `core.ops.attention`).

Decisions:
- triton_op / wrap_triton: the autograd Function calls the registered ops on every device, so
  torch.compile sees custom ops whose Triton launches Inductor can trace, and the interpreter tests
  exercise the same op path as the GPU. Under TRITON_INTERPRET=1, torch 2.13's wrap_triton passes the
  InterpretedFunction through unchanged: eager calls work, but torch.compile fails (the fake-tensor
  trace would run the interpreter on fake tensors), so compile is a GPU-only feature.
- Launches: every kernel goes through `core.ops.triton_utils.launch` (the launch convention shared by
  all ops; it also re-wraps kernels for the interpreter mode in force, see "Interpreter mode" there). The
  kernels call no @triton.jit helpers of ours, so that re-wrap covers everything they run.
- Block sizes are fixed per head dim and dtype (`_blocks`), not autotuned: timing configs means nothing
  in the interpreter, and on GPU it adds a benchmarking pause to every new sequence length.
- dBias: when the bias requires grad, dS is written to an fp32 [B, H, Lq, Lk] buffer and summed over
  the bias's broadcast dims in PyTorch (as FlashAttention's Triton version does); O(B·H·Lq·Lk) memory
  only in that case. Atomics into the broadcast bias would save memory but make the sum order (and
  so the result) nondeterministic.
- Dropout and head dims past 128 are not covered: `attention_triton` raises NotImplementedError; the
  dispatcher (`core.ops.attention`) keeps such calls on the reference under `auto` and raises
  KernelUnavailableError for an explicit `triton`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import triton
import triton.language as tl

from core.ops.triton_utils import LN2, LOG2E, dot_precision, interpreting, launch, pad_dim

# Tiles are sized (and checked for shared memory and registers, see `_blocks`) for head dims up to 128;
# past that the GPU launch would run out of shared memory.
MAX_HEAD_DIM = 128
# Kernels may read module globals only as constexprs (tensor on the left: `x * _LOG2E`).
_LOG2E = tl.constexpr(LOG2E)
_LN2 = tl.constexpr(LN2)


@triton.jit
def _attention_fwd_kernel(
    Q, K, V, Bias, Kpm, Out, Lse,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_ob, stride_oh, stride_om, stride_od,
    stride_biasb, stride_biash, stride_biasm, stride_biasn,
    stride_kpmb, stride_kpmn,
    H, Lq, Lk, D, Dv,
    qk_scale,
    HAS_BIAS: tl.constexpr, HAS_KPM: tl.constexpr, CAUSAL: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """One program = BLOCK_M query rows of one (batch, head); loops over key blocks with online softmax."""
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    # int64 bases: a [B, H, 8k, 8k] bias has 2^31 elements, past int32 offsets.
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)  # D padded to a power of two; lanes >= D load as 0
    offs_dv = tl.arange(0, BLOCK_DV)

    q_ptrs = Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd
    q = tl.load(q_ptrs, mask=(offs_m[:, None] < Lq) & (offs_d[None, :] < D), other=0.0)  # [BM, BD]
    k_base = K + b * stride_kb + h * stride_kh
    v_base = V + b * stride_vb + h * stride_vh
    bias_base = Bias + b * stride_biasb + h * stride_biash

    # m_i starts at -inf so a row that never sees a key stays recognisable (l_i = 0) at the end.
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)  # running row max, base-2 units
    l_i = tl.zeros([BLOCK_M], tl.float32)  # running softmax denominator
    acc = tl.zeros([BLOCK_M, BLOCK_DV], tl.float32)  # [BM, BDV] unnormalised output

    hi = Lk
    if CAUSAL:
        # The last row of this block sees keys j < (pid_m + 1)·BLOCK_M + Lk - Lq: skip blocks past it.
        hi = tl.minimum(Lk, (pid_m + 1) * BLOCK_M + Lk - Lq)
    for start_n in range(0, hi, BLOCK_N):
        offs_kn = start_n + offs_n
        kt_ptrs = k_base + offs_kn[None, :] * stride_kn + offs_d[:, None] * stride_kd
        kt = tl.load(kt_ptrs, mask=(offs_kn[None, :] < Lk) & (offs_d[:, None] < D), other=0.0)  # [BD, BN]
        s = tl.dot(q, kt, input_precision=DOT_PRECISION) * qk_scale  # [BM, BN] logits · log2(e)
        if HAS_BIAS:
            bias_ptrs = bias_base + offs_m[:, None] * stride_biasm + offs_kn[None, :] * stride_biasn
            bias_mask = (offs_m[:, None] < Lq) & (offs_kn[None, :] < Lk)
            s += tl.load(bias_ptrs, mask=bias_mask, other=0.0).to(tl.float32) * _LOG2E
        valid = (offs_kn[None, :] < Lk) & (offs_m[:, None] >= 0)  # [BM, BN]; 2-D from the start
        if CAUSAL:
            valid = valid & (offs_kn[None, :] <= offs_m[:, None] + (Lk - Lq))
        if HAS_KPM:
            pad = tl.load(Kpm + b * stride_kpmb + offs_kn * stride_kpmn, mask=offs_kn < Lk, other=1)
            valid = valid & (pad[None, :] == 0)
        s = tl.where(valid, s, float("-inf"))

        m_new = tl.maximum(m_i, tl.max(s, 1))
        # While a row has seen only masked keys its max is -inf; shift by 0 instead so exp2 gives 0, not NaN.
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp2(s - m_safe[:, None])  # [BM, BN]
        alpha = tl.exp2(m_i - m_safe)  # rescales what was accumulated under the old max
        l_i = l_i * alpha + tl.sum(p, 1)
        v_ptrs = v_base + offs_kn[:, None] * stride_vn + offs_dv[None, :] * stride_vd
        v = tl.load(v_ptrs, mask=(offs_kn[:, None] < Lk) & (offs_dv[None, :] < Dv), other=0.0)  # [BN, BDV]
        acc = acc * alpha[:, None]
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PRECISION)
        m_i = m_new

    # Fully masked rows (l_i = 0) output zeros and store lse = +inf, so backward's exp(S - lse) is 0 there.
    l_safe = tl.where(l_i == 0.0, 1.0, l_i)
    out = acc / l_safe[:, None]
    lse = tl.where(l_i == 0.0, float("inf"), (m_i + tl.log2(l_safe)) * _LN2)
    o_ptrs = Out + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_om + offs_dv[None, :] * stride_od
    tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=(offs_m[:, None] < Lq) & (offs_dv[None, :] < Dv))
    tl.store(Lse + pid_bh.to(tl.int64) * Lq + offs_m, lse, mask=offs_m < Lq)


@triton.jit
def _attention_bwd_preprocess_kernel(
    Out, DO, Delta,
    stride_ob, stride_oh, stride_om, stride_od,
    stride_dob, stride_doh, stride_dom, stride_dod,
    H, Lq, Dv,
    BLOCK_M: tl.constexpr, BLOCK_DV: tl.constexpr,
):  # fmt: skip
    """Delta = rowsum(dO ∘ O) [B·H, Lq]: the softmax-Jacobian term dS = P ∘ (dP - Delta) needs per row."""
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_dv = tl.arange(0, BLOCK_DV)
    mask = (offs_m[:, None] < Lq) & (offs_dv[None, :] < Dv)
    o = tl.load(Out + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_om + offs_dv[None, :] * stride_od,
                mask=mask, other=0.0).to(tl.float32)  # fmt: skip
    do = tl.load(DO + b * stride_dob + h * stride_doh + offs_m[:, None] * stride_dom + offs_dv[None, :] * stride_dod,
                 mask=mask, other=0.0).to(tl.float32)  # fmt: skip
    tl.store(Delta + pid_bh.to(tl.int64) * Lq + offs_m, tl.sum(o * do, 1), mask=offs_m < Lq)


# core/ops/probsparse/triton.py copies this kernel's loop for the selected queries (see there): keep in step.
@triton.jit
def _attention_bwd_dkdv_kernel(
    Q, K, V, Bias, Kpm, DO, Lse, Delta, DK, DV, DBias,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_dob, stride_doh, stride_dom, stride_dod,
    stride_biasb, stride_biash, stride_biasm, stride_biasn,
    stride_kpmb, stride_kpmn,
    H, Lq, Lk, D, Dv,
    qk_scale, sm_scale,
    HAS_BIAS: tl.constexpr, HAS_KPM: tl.constexpr, CAUSAL: tl.constexpr, STORE_DBIAS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """One program = BLOCK_N keys of one (batch, head); loops over query blocks, accumulating dK and dV.

    Works in the transposed [BN, BM] orientation (Sᵀ, Pᵀ) so dV += Pᵀ dO and dK += dSᵀ Q are plain dots.
    DK/DV are contiguous [B, H, Lk, D|Dv]; DBias (when stored) is a contiguous fp32 [B, H, Lq, Lk].
    """
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)

    kv_mask_d = (offs_n[:, None] < Lk) & (offs_d[None, :] < D)
    kv_mask_dv = (offs_n[:, None] < Lk) & (offs_dv[None, :] < Dv)
    k = tl.load(K + b * stride_kb + h * stride_kh + offs_n[:, None] * stride_kn + offs_d[None, :] * stride_kd,
                mask=kv_mask_d, other=0.0)  # [BN, BD]  # fmt: skip
    v = tl.load(V + b * stride_vb + h * stride_vh + offs_n[:, None] * stride_vn + offs_dv[None, :] * stride_vd,
                mask=kv_mask_dv, other=0.0)  # [BN, BDV]  # fmt: skip
    keep_n = offs_n < Lk
    if HAS_KPM:
        pad = tl.load(Kpm + b * stride_kpmb + offs_n * stride_kpmn, mask=offs_n < Lk, other=1)
        keep_n = keep_n & (pad == 0)

    dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_DV], tl.float32)
    q_base = Q + b * stride_qb + h * stride_qh
    do_base = DO + b * stride_dob + h * stride_doh
    bias_base = Bias + b * stride_biasb + h * stride_biash
    row_base = pid_bh.to(tl.int64) * Lq
    dbias_base = DBias + pid_bh.to(tl.int64) * Lq * Lk

    lo = 0
    if CAUSAL:
        # Queries i < j - (Lk - Lq) cannot see key j: start at the block holding the first that can.
        lo = tl.maximum(0, pid_n * BLOCK_N - (Lk - Lq))
        lo = (lo // BLOCK_M) * BLOCK_M
    for start_m in range(lo, Lq, BLOCK_M):
        offs_qm = start_m + offs_m
        qt = tl.load(q_base + offs_qm[None, :] * stride_qm + offs_d[:, None] * stride_qd,
                     mask=(offs_qm[None, :] < Lq) & (offs_d[:, None] < D), other=0.0)  # [BD, BM]  # fmt: skip
        # Rows past Lq load lse = +inf so their Pᵀ column is exactly 0.
        lse = tl.load(Lse + row_base + offs_qm, mask=offs_qm < Lq, other=float("inf"))  # [BM]
        st = tl.dot(k, qt, input_precision=DOT_PRECISION) * qk_scale  # [BN, BM] base-2 logits
        if HAS_BIAS:
            biast_ptrs = bias_base + offs_n[:, None] * stride_biasn + offs_qm[None, :] * stride_biasm
            biast_mask = (offs_n[:, None] < Lk) & (offs_qm[None, :] < Lq)
            st += tl.load(biast_ptrs, mask=biast_mask, other=0.0).to(tl.float32) * _LOG2E
        valid = keep_n[:, None] & (offs_qm[None, :] < Lq)
        if CAUSAL:
            valid = valid & (offs_n[:, None] <= offs_qm[None, :] + (Lk - Lq))
        st = tl.where(valid, st, float("-inf"))
        pt = tl.exp2(st - lse[None, :] * _LOG2E)  # [BN, BM] = Pᵀ, recomputed from lse
        do = tl.load(do_base + offs_qm[:, None] * stride_dom + offs_dv[None, :] * stride_dod,
                     mask=(offs_qm[:, None] < Lq) & (offs_dv[None, :] < Dv), other=0.0)  # [BM, BDV]  # fmt: skip
        dv = tl.dot(pt.to(do.dtype), do, dv, input_precision=DOT_PRECISION)
        delta = tl.load(Delta + row_base + offs_qm, mask=offs_qm < Lq, other=0.0)  # [BM]
        dpt = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)  # [BN, BM] = (dO Vᵀ)ᵀ
        dst = pt * (dpt - delta[None, :])  # [BN, BM] = dSᵀ, gradient w.r.t. the natural-log logits
        if STORE_DBIAS:
            dbias_ptrs = dbias_base + offs_qm[None, :] * Lk + offs_n[:, None]
            tl.store(dbias_ptrs, dst, mask=(offs_n[:, None] < Lk) & (offs_qm[None, :] < Lq))
        dk = tl.dot(dst.to(qt.dtype), tl.trans(qt), dk, input_precision=DOT_PRECISION)

    dk = dk * sm_scale  # S = scale · Q Kᵀ, so dK = scale · dSᵀ Q
    dkv_base = pid_bh.to(tl.int64) * Lk
    tl.store(DK + (dkv_base + offs_n[:, None]) * D + offs_d[None, :], dk.to(DK.dtype.element_ty), mask=kv_mask_d)
    tl.store(DV + (dkv_base + offs_n[:, None]) * Dv + offs_dv[None, :], dv.to(DV.dtype.element_ty), mask=kv_mask_dv)


# core/ops/probsparse/triton.py copies this kernel's loop for the selected queries (see there): keep in step.
@triton.jit
def _attention_bwd_dq_kernel(
    Q, K, V, Bias, Kpm, DO, Lse, Delta, DQ,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_dob, stride_doh, stride_dom, stride_dod,
    stride_biasb, stride_biash, stride_biasm, stride_biasn,
    stride_kpmb, stride_kpmn,
    H, Lq, Lk, D, Dv,
    qk_scale, sm_scale,
    HAS_BIAS: tl.constexpr, HAS_KPM: tl.constexpr, CAUSAL: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """One program = BLOCK_M queries of one (batch, head); loops over key blocks, accumulating dQ = dS K."""
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)

    q_mask = (offs_m[:, None] < Lq) & (offs_d[None, :] < D)
    q = tl.load(Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd,
                mask=q_mask, other=0.0)  # [BM, BD]  # fmt: skip
    do = tl.load(DO + b * stride_dob + h * stride_doh + offs_m[:, None] * stride_dom + offs_dv[None, :] * stride_dod,
                 mask=(offs_m[:, None] < Lq) & (offs_dv[None, :] < Dv), other=0.0)  # [BM, BDV]  # fmt: skip
    row_base = pid_bh.to(tl.int64) * Lq
    lse = tl.load(Lse + row_base + offs_m, mask=offs_m < Lq, other=float("inf"))  # [BM]
    delta = tl.load(Delta + row_base + offs_m, mask=offs_m < Lq, other=0.0)  # [BM]
    k_base = K + b * stride_kb + h * stride_kh
    v_base = V + b * stride_vb + h * stride_vh
    bias_base = Bias + b * stride_biasb + h * stride_biash

    dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    hi = Lk
    if CAUSAL:
        hi = tl.minimum(Lk, (pid_m + 1) * BLOCK_M + Lk - Lq)
    for start_n in range(0, hi, BLOCK_N):
        offs_kn = start_n + offs_n
        kt = tl.load(k_base + offs_kn[None, :] * stride_kn + offs_d[:, None] * stride_kd,
                     mask=(offs_kn[None, :] < Lk) & (offs_d[:, None] < D), other=0.0)  # [BD, BN]  # fmt: skip
        vt = tl.load(v_base + offs_kn[None, :] * stride_vn + offs_dv[:, None] * stride_vd,
                     mask=(offs_kn[None, :] < Lk) & (offs_dv[:, None] < Dv), other=0.0)  # [BDV, BN]  # fmt: skip
        s = tl.dot(q, kt, input_precision=DOT_PRECISION) * qk_scale  # [BM, BN]
        if HAS_BIAS:
            bias_ptrs = bias_base + offs_m[:, None] * stride_biasm + offs_kn[None, :] * stride_biasn
            bias_mask = (offs_m[:, None] < Lq) & (offs_kn[None, :] < Lk)
            s += tl.load(bias_ptrs, mask=bias_mask, other=0.0).to(tl.float32) * _LOG2E
        valid = (offs_kn[None, :] < Lk) & (offs_m[:, None] < Lq)
        if CAUSAL:
            valid = valid & (offs_kn[None, :] <= offs_m[:, None] + (Lk - Lq))
        if HAS_KPM:
            pad = tl.load(Kpm + b * stride_kpmb + offs_kn * stride_kpmn, mask=offs_kn < Lk, other=1)
            valid = valid & (pad[None, :] == 0)
        s = tl.where(valid, s, float("-inf"))
        p = tl.exp2(s - lse[:, None] * _LOG2E)  # [BM, BN]
        dp = tl.dot(do, vt, input_precision=DOT_PRECISION)  # [BM, BN]
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(q.dtype), tl.trans(kt), dq, input_precision=DOT_PRECISION)

    dq = dq * sm_scale
    tl.store(DQ + (row_base + offs_m[:, None]) * D + offs_d[None, :], dq.to(DQ.dtype.element_ty), mask=q_mask)


def _blocks(d_pad: int, dtype: torch.dtype) -> tuple[int, int, int, int]:
    """Forward (BLOCK_M, BLOCK_N, num_warps, num_stages) for a padded head dim; fixed, not autotuned.

    Interpreter: 16×16, the smallest tile tl.dot takes, so masked tails get exercised on tiny shapes.
    GPU (Hopper): the fused-attention tutorial's 128×64 tiles. Checked by compiling for sm_90 ahead of
    time with triton 3.9 (no GPU was lent for timing): with bias + causal + padding and 16-aligned
    shapes, 246 registers / 96 KB shared memory at D=64 (4 warps) and 198 / 160 KB at D=128 (8 warps),
    no spills. fp32 runs its dots as 3×TF32 and spills at 128×64, hence 64×32.
    """
    if interpreting():
        return 16, 16, 1, 1
    if dtype == torch.float32:
        return 64, 32, 4, 2
    return 128, 64, (4 if d_pad <= 64 else 8), 3


def _bwd_blocks(d_pad: int, dtype: torch.dtype) -> tuple[int, int, int, int]:
    """Backward tiles. A dK/dV program holds two fp32 accumulators plus K and V, so 64×64: measured as
    above, 234 registers at D=64 (4 warps) and 244 / 113 KB at D=128 (8 warps), no spills; fp32 D=128
    still spills ~100 B at 32×16, accepted (fp32 is not the GPU training dtype)."""
    if interpreting():
        return 16, 16, 1, 1
    if dtype == torch.float32:
        return 32, (32 if d_pad <= 64 else 16), 4, 2
    return 64, 64, (4 if d_pad <= 64 else 8), 2


def _bias_strides(bias: torch.Tensor | None) -> tuple[int, int, int, int]:
    return tuple(bias.stride()) if bias is not None else (0, 0, 0, 0)  # type: ignore[return-value]


@torch.library.triton_op("seer::flash_attention", mutates_args=())
def _flash_attention_fwd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor | None,
    key_padding_mask: torch.Tensor | None,
    causal: bool,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(out [B, H, Lq, Dv], lse [B, H, Lq] fp32). `bias` is already expanded to 4-D (stride 0 on broadcast
    dims); `key_padding_mask` is uint8 [B, Lk] with nonzero = padded."""
    bsz, heads, lq, d = q.shape
    lk, dv = k.shape[2], v.shape[3]
    out = torch.empty((bsz, heads, lq, dv), device=q.device, dtype=q.dtype)
    lse = torch.empty((bsz, heads, lq), device=q.device, dtype=torch.float32)
    block_d, block_dv = pad_dim(d), pad_dim(dv)
    block_m, block_n, warps, stages = _blocks(max(block_d, block_dv), q.dtype)
    kpm = key_padding_mask if key_padding_mask is not None else q  # dummy pointer, never read
    grid = (triton.cdiv(lq, block_m), bsz * heads)
    launch(_attention_fwd_kernel, grid,
        q, k, v, bias if bias is not None else q, kpm, out, lse,
        *q.stride(), *k.stride(), *v.stride(), *out.stride(),
        *_bias_strides(bias),
        *(kpm.stride()[:2] if key_padding_mask is not None else (0, 0)),
        heads, lq, lk, d, dv,
        scale * LOG2E,
        HAS_BIAS=bias is not None, HAS_KPM=key_padding_mask is not None, CAUSAL=causal,
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d, BLOCK_DV=block_dv,
        DOT_PRECISION=dot_precision(q.dtype), num_warps=warps, num_stages=stages, traceable=True,
    )  # fmt: skip
    return out, lse


@torch.library.triton_op("seer::flash_attention_backward", mutates_args=())
def _flash_attention_bwd(
    do: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    bias: torch.Tensor | None,
    key_padding_mask: torch.Tensor | None,
    causal: bool,
    scale: float,
    bias_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dq, dk, dv, dbias): dbias is fp32 [B, H, Lq, Lk] when `bias_grad`, else an empty placeholder."""
    bsz, heads, lq, d = q.shape
    lk, dv_dim = k.shape[2], v.shape[3]
    do = do.contiguous()  # autograd may hand over an expanded (stride-0) gradient, e.g. from .sum()
    delta = torch.empty((bsz, heads, lq), device=q.device, dtype=torch.float32)
    dq = torch.empty((bsz, heads, lq, d), device=q.device, dtype=q.dtype)
    dk = torch.empty((bsz, heads, lk, d), device=q.device, dtype=k.dtype)
    dv = torch.empty((bsz, heads, lk, dv_dim), device=q.device, dtype=v.dtype)
    # Zero-filled: causal skips whole tiles, whose dS is 0 and never written.
    dbias_shape = (bsz, heads, lq, lk) if bias_grad else (0,)
    dbias = torch.zeros(dbias_shape, device=q.device, dtype=torch.float32)
    block_d, block_dv = pad_dim(d), pad_dim(dv_dim)
    block_m, block_n, warps, stages = _bwd_blocks(max(block_d, block_dv), q.dtype)
    kpm = key_padding_mask if key_padding_mask is not None else q
    bias_arg = bias if bias is not None else q
    kpm_strides = kpm.stride()[:2] if key_padding_mask is not None else (0, 0)
    flags = dict(HAS_BIAS=bias is not None, HAS_KPM=key_padding_mask is not None, CAUSAL=causal)
    tiles = dict(BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d, BLOCK_DV=block_dv)
    launch_opts = dict(DOT_PRECISION=dot_precision(q.dtype), num_warps=warps, num_stages=stages)

    launch(_attention_bwd_preprocess_kernel, (triton.cdiv(lq, block_m), bsz * heads),
        out, do, delta, *out.stride(), *do.stride(), heads, lq, dv_dim,
        BLOCK_M=block_m, BLOCK_DV=block_dv, traceable=True,
    )  # fmt: skip
    launch(_attention_bwd_dkdv_kernel, (triton.cdiv(lk, block_n), bsz * heads),
        q, k, v, bias_arg, kpm, do, lse, delta, dk, dv, dbias,
        *q.stride(), *k.stride(), *v.stride(), *do.stride(), *_bias_strides(bias), *kpm_strides,
        heads, lq, lk, d, dv_dim, scale * LOG2E, scale,
        **flags, STORE_DBIAS=bias_grad, **tiles, **launch_opts, traceable=True,
    )  # fmt: skip
    launch(_attention_bwd_dq_kernel, (triton.cdiv(lq, block_m), bsz * heads),
        q, k, v, bias_arg, kpm, do, lse, delta, dq,
        *q.stride(), *k.stride(), *v.stride(), *do.stride(), *_bias_strides(bias), *kpm_strides,
        heads, lq, lk, d, dv_dim, scale * LOG2E, scale,
        **flags, **tiles, **launch_opts, traceable=True,
    )  # fmt: skip
    return dq, dk, dv, dbias


def _reduce_bias_grad(dbias: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Sum the full [B, H, Lq, Lk] dS over the dims the bias was broadcast along, back to bias.shape."""
    shape4 = (1,) * (4 - bias.dim()) + tuple(bias.shape)
    dims = [i for i in range(4) if shape4[i] == 1 and dbias.shape[i] != 1]
    if dims:
        dbias = dbias.sum(dim=dims, keepdim=True)
    return dbias.reshape(bias.shape).to(bias.dtype)


class AttentionFunction(torch.autograd.Function):
    """Autograd for the flash-attention kernels; saves (q, k, v, out, lse), recomputes P in backward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        bias: torch.Tensor | None,
        key_padding_mask: torch.Tensor | None,
        causal: bool,
        scale: float,
    ) -> torch.Tensor:
        bsz, heads, lq, _ = q.shape
        lk = k.shape[2]
        bias4 = bias.expand(bsz, heads, lq, lk) if bias is not None else None  # [B, H, Lq, Lk], stride 0 = broadcast
        # uint8 view of the bool mask: same bytes, and a pointer type every Triton backend loads.
        kpm = key_padding_mask.contiguous().view(torch.uint8) if key_padding_mask is not None else None
        out, lse = torch.ops.seer.flash_attention(q, k, v, bias4, kpm, causal, scale)
        ctx.save_for_backward(q, k, v, out, lse, bias, kpm)
        ctx.causal, ctx.scale = causal, scale
        return out

    @staticmethod
    def backward(ctx: Any, do: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        q, k, v, out, lse, bias, kpm = ctx.saved_tensors
        bias_grad = bias is not None and ctx.needs_input_grad[3]
        bias4 = bias.expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2]) if bias is not None else None
        dq, dk, dv, dbias_full = torch.ops.seer.flash_attention_backward(
            do, q, k, v, out, lse, bias4, kpm, ctx.causal, ctx.scale, bias_grad
        )
        dbias = _reduce_bias_grad(dbias_full, bias) if bias_grad else None
        return dq, dk, dv, dbias, None, None, None


def attention_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    causal: bool = False,
    key_padding_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> torch.Tensor:
    """Flash attention over `[B, H, L, D]` inputs; same contract as `attention_reference` except dropout."""
    if dropout_p > 0.0:
        raise NotImplementedError(
            "attention_triton: dropout_p > 0 is not implemented in the Triton kernel; "
            "use impl='reference' (or impl='auto', which falls back to it) for attention dropout"
        )
    if max(q.shape[-1], v.shape[-1]) > MAX_HEAD_DIM:
        raise NotImplementedError(
            f"attention_triton: head dim {max(q.shape[-1], v.shape[-1])} > {MAX_HEAD_DIM}; "
            "the kernel's tiles are sized for head dims up to 128"
        )
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"attention expects [B, H, L, D] tensors, got {tuple(q.shape)}, {tuple(k.shape)}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2] or not q.shape[:2] == k.shape[:2] == v.shape[:2]:
        raise ValueError(f"incompatible q/k/v shapes {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if key_padding_mask is not None and key_padding_mask.shape != (q.shape[0], k.shape[2]):
        raise ValueError(
            f"key_padding_mask must be [B, Lk] = {(q.shape[0], k.shape[2])}, got {tuple(key_padding_mask.shape)}"
        )
    if not q.dtype == k.dtype == v.dtype or q.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"q, k, v must share one of fp32/fp16/bf16, got {q.dtype}, {k.dtype}, {v.dtype}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    kpm = key_padding_mask.bool() if key_padding_mask is not None else None
    return AttentionFunction.apply(q, k, v, bias, kpm, causal, scale)


__all__ = ["AttentionFunction", "attention_triton"]
