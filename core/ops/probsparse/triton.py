"""ProbSparse attention in Triton: the sampled sparsity measurement and the selected queries' attention.

Shapes: B batch, H heads, Lq/Lk query/key length, D head dim (Dv for values), S sampled keys per query,
u selected queries per (batch, head).
  q [B, H, Lq, D], k [B, H, Lk, D], v [B, H, Lk, Dv], index [Lq, S] (int64 key positions)
  m [B, H, Lq] fp32 (sparsity measurement), top [B, H, u] (int64 query positions, sorted ascending)
  out_top [B, H, u, Dv] (attention of the selected queries), lse [B, H, u] fp32 (natural-log logsumexp)
  out [B, H, Lq, Dv] = the lazy context (mean or cumsum of V) with rows `top` replaced by out_top
Semantics are those of `reference.py` (the spec): with the same `index`, `m`, the selected set and the
output match `probsparse_attention_reference`.

Kernels:
- `_sparsity_kernel` (kernel A, forward only): one program = BLOCK_M queries of one (batch, head); it
  loops over the S samples, gathering row index[i, s] of K for every query i of the block, and keeps a
  running max and sum of the fp32 dot products. M = max − sum / Lk is written per query; the
  [B, H, Lq, S, D] gather the reference materialises never exists. Top-u is `torch.topk`, as in the
  reference (`select_queries`).
- `_sparse_attn_fwd_kernel` (kernel B): one program = BLOCK_M selected queries of one (batch, head); it
  gathers their q rows through `top` and runs the flash-attention online softmax over every key (causal:
  key j visible to the query at position p iff j <= p), fp32 accumulation, storing out_top and lse.
- Backward, FlashAttention-2 style from the saved lse (Dao, 2023, arXiv:2307.08691):
  `_sparse_attn_bwd_dq_kernel` computes Delta = rowsum(dO ∘ O) for its rows, then dQ over key blocks, and
  writes it straight to the rows `top` of a zero-filled dQ [B, H, Lq, D] (the top rows of one head are
  distinct, so no two programs write one row); `_sparse_attn_bwd_dkdv_kernel` (run after it, it reads
  Delta) gives dK, dV for a block of keys, looping over the u selected queries. No atomics.
The lazy context and the scatter of out_top into it are PyTorch (out-of-place `scatter`), so autograd
gives the mean/cumsum gradient to V and routes each selected row's gradient to out_top.

Layers, as in `core/ops/attention/triton.py`: kernels · launchers registered as `torch.ops.seer.probsparse_*`
through `torch.library.triton_op`, launching through `core.ops.triton_utils.launch` (the convention all ops
share, interpreter mode included) · `SparseAttentionFunction` (autograd) · `probsparse_attention_triton`.

Decisions:
- `top` is sorted before kernel B: the scatter does not care about order, and under the causal mask a
  block of sorted queries stops at its last query's position instead of scanning every key.
- The dK/dV programs loop over all u selected queries (u = c·⌈ln Lq⌉, ~50 at Lq = 16k): no causal
  block skipping there, it would save little.
- Block sizes are fixed (not autotuned, see `_fwd_blocks`): the largest spill-free tiles when compiled
  ahead of time for sm_90; checked for compilation and registers, not yet timed on a GPU.
- The backward kernels are copies of the flash-attention backward's inner loops, not calls into them (see
  the comments at `_sparse_attn_bwd_dq_kernel` and `_sparse_attn_bwd_dkdv_kernel` for what differs).
- `index` is range-checked on the host (one small reduction, a device sync on CUDA) outside
  torch.compile: an out-of-range position would read past K inside the kernel, where the reference
  raises an IndexError.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import triton
import triton.language as tl

from core.ops.probsparse.reference import _check, lazy_context, n_sampled, select_queries
from core.ops.triton_utils import LN2, LOG2E, dot_precision, interpreting, launch, pad_dim

# Tiles are sized for head dims up to 128, as the flash-attention kernels are.
MAX_HEAD_DIM = 128
_LOG2E = tl.constexpr(LOG2E)
_LN2 = tl.constexpr(LN2)


@triton.jit
def _sparsity_kernel(
    Q, K, Index, M,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_im, stride_is,
    H, Lq, Lk, D, S,
    BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """M[b, h, i] = max_s q_i·k_index[i,s] − Σ_s q_i·k_index[i,s] / Lk for BLOCK_M queries i; M is [B·H, Lq]."""
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)  # D padded to a power of two; lanes >= D load as 0
    row_ok = offs_m < Lq
    mask = row_ok[:, None] & (offs_d[None, :] < D)

    q_ptrs = Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd
    q = tl.load(q_ptrs, mask=mask, other=0.0).to(tl.float32)  # [BM, BD]
    k_base = K + b * stride_kb + h * stride_kh
    idx_base = Index + offs_m.to(tl.int64) * stride_im  # [BM] row starts of index [Lq, S]

    qk_max = tl.full([BLOCK_M], float("-inf"), tl.float32)
    qk_sum = tl.zeros([BLOCK_M], tl.float32)
    for s in range(0, S):
        key = tl.load(idx_base + s * stride_is, mask=row_ok, other=0).to(tl.int64)  # [BM] sampled key rows
        k = tl.load(k_base + key[:, None] * stride_kn + offs_d[None, :] * stride_kd, mask=mask, other=0.0)
        qk = tl.sum(q * k.to(tl.float32), 1)  # [BM] fp32 dot products q_i · k_index[i, s]
        qk_max = tl.maximum(qk_max, qk)
        qk_sum += qk
    tl.store(M + pid_bh.to(tl.int64) * Lq + offs_m, qk_max - qk_sum / Lk, mask=row_ok)


@triton.jit
def _sparse_attn_fwd_kernel(
    Q, K, V, Top, Out, Lse,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    H, U, Lk, D, Dv,
    qk_scale,
    CAUSAL: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """One program = BLOCK_M of the u selected queries of one (batch, head), online softmax over all keys.

    Top is contiguous [B·H, U] (query positions); Out is contiguous [B·H, U, Dv], Lse [B·H, U].
    """
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    offs_r = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # rows among the u selected
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)
    row_ok = offs_r < U
    row_base = pid_bh.to(tl.int64) * U

    pos = tl.load(Top + row_base + offs_r, mask=row_ok, other=0).to(tl.int64)  # [BM] query positions
    q_ptrs = Q + b * stride_qb + h * stride_qh + pos[:, None] * stride_qm + offs_d[None, :] * stride_qd
    q = tl.load(q_ptrs, mask=row_ok[:, None] & (offs_d[None, :] < D), other=0.0)  # [BM, BD] gathered rows
    k_base = K + b * stride_kb + h * stride_kh
    v_base = V + b * stride_vb + h * stride_vh

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)  # running row max, base-2 units
    l_i = tl.zeros([BLOCK_M], tl.float32)  # running softmax denominator
    acc = tl.zeros([BLOCK_M, BLOCK_DV], tl.float32)  # [BM, BDV] unnormalised output

    hi = Lk
    if CAUSAL:
        # No row of this block sees a key past its largest position (rows are sorted, so it is the last).
        hi = tl.minimum(Lk, tl.max(tl.where(row_ok, pos, 0), 0).to(tl.int32) + 1)
    for start_n in range(0, hi, BLOCK_N):
        offs_kn = start_n + offs_n
        kt_ptrs = k_base + offs_kn[None, :] * stride_kn + offs_d[:, None] * stride_kd
        kt = tl.load(kt_ptrs, mask=(offs_kn[None, :] < Lk) & (offs_d[:, None] < D), other=0.0)  # [BD, BN]
        s = tl.dot(q, kt, input_precision=DOT_PRECISION) * qk_scale  # [BM, BN] logits · log2(e)
        valid = (offs_kn[None, :] < Lk) & row_ok[:, None]  # [BM, BN]
        if CAUSAL:
            valid = valid & (offs_kn[None, :] <= pos[:, None])
        s = tl.where(valid, s, float("-inf"))

        m_new = tl.maximum(m_i, tl.max(s, 1))
        # Padding rows (r >= U) see no key: shift by 0 instead of -inf so exp2 gives 0, not NaN.
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp2(s - m_safe[:, None])  # [BM, BN]
        alpha = tl.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, 1)
        v_ptrs = v_base + offs_kn[:, None] * stride_vn + offs_dv[None, :] * stride_vd
        v = tl.load(v_ptrs, mask=(offs_kn[:, None] < Lk) & (offs_dv[None, :] < Dv), other=0.0)  # [BN, BDV]
        acc = acc * alpha[:, None]
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PRECISION)
        m_i = m_new

    l_safe = tl.where(l_i == 0.0, 1.0, l_i)
    out = acc / l_safe[:, None]
    lse = tl.where(l_i == 0.0, float("inf"), (m_i + tl.log2(l_safe)) * _LN2)
    o_ptrs = Out + (row_base + offs_r[:, None]) * Dv + offs_dv[None, :]
    tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=row_ok[:, None] & (offs_dv[None, :] < Dv))
    tl.store(Lse + row_base + offs_r, lse, mask=row_ok)


# Copied from core/ops/attention/triton.py: the Delta step is `_attention_bwd_preprocess_kernel`'s, and the key
# loop below is `_attention_bwd_dq_kernel`'s (P = exp2(S − lse·log2 e) recomputed from lse, dS = P ∘ (dP − Delta),
# dQ += dS K), minus bias and key padding. What differs is the addressing: q rows are gathered through Top,
# the causal limit is per row (key <= position) rather than bottom-right aligned, and dQ rows are scattered
# to their positions. It is a copy, not a call: (1) a shared loop would be a @triton.jit helper taking gathered
# or ranged rows, bias, key padding and both causal rules as constexpr branches, all inside the flash-attention
# hot loop whose tiles were sized for registers without them; (2) `launchable` (core/ops/triton_utils.py)
# re-wraps only the launched kernel for the interpreter, not @triton.jit helpers it calls, so such a helper
# (in triton_utils, since no op imports a sibling) would keep the mode of its first import. A fix to the
# softmax-gradient math belongs in both files.
@triton.jit
def _sparse_attn_bwd_dq_kernel(
    Q, K, V, Top, Out, DO, Lse, Delta, DQ,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_dob, stride_doh, stride_dom, stride_dod,
    H, U, Lq, Lk, D, Dv,
    qk_scale, sm_scale,
    CAUSAL: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """One program = BLOCK_M selected queries: Delta = rowsum(dO ∘ O) for them, then dQ = scale · dS K.

    DO is [B, H, U, Dv] (strided), Out contiguous [B·H, U, Dv]; Delta is written as [B·H, U] for the
    dK/dV kernel. dQ rows go to DQ[b, h, top[r]] of a zero-filled contiguous [B, H, Lq, D].
    """
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    offs_r = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)
    row_ok = offs_r < U
    row_base = pid_bh.to(tl.int64) * U

    pos = tl.load(Top + row_base + offs_r, mask=row_ok, other=0).to(tl.int64)  # [BM]
    q_mask = row_ok[:, None] & (offs_d[None, :] < D)
    q = tl.load(Q + b * stride_qb + h * stride_qh + pos[:, None] * stride_qm + offs_d[None, :] * stride_qd,
                mask=q_mask, other=0.0)  # [BM, BD]  # fmt: skip
    dv_mask = row_ok[:, None] & (offs_dv[None, :] < Dv)
    do = tl.load(DO + b * stride_dob + h * stride_doh + offs_r[:, None] * stride_dom + offs_dv[None, :] * stride_dod,
                 mask=dv_mask, other=0.0)  # [BM, BDV]  # fmt: skip
    o = tl.load(Out + (row_base + offs_r[:, None]) * Dv + offs_dv[None, :], mask=dv_mask, other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)  # [BM]
    tl.store(Delta + row_base + offs_r, delta, mask=row_ok)
    lse = tl.load(Lse + row_base + offs_r, mask=row_ok, other=float("inf"))  # [BM]
    k_base = K + b * stride_kb + h * stride_kh
    v_base = V + b * stride_vb + h * stride_vh

    dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    hi = Lk
    if CAUSAL:
        hi = tl.minimum(Lk, tl.max(tl.where(row_ok, pos, 0), 0).to(tl.int32) + 1)
    for start_n in range(0, hi, BLOCK_N):
        offs_kn = start_n + offs_n
        kt = tl.load(k_base + offs_kn[None, :] * stride_kn + offs_d[:, None] * stride_kd,
                     mask=(offs_kn[None, :] < Lk) & (offs_d[:, None] < D), other=0.0)  # [BD, BN]  # fmt: skip
        vt = tl.load(v_base + offs_kn[None, :] * stride_vn + offs_dv[:, None] * stride_vd,
                     mask=(offs_kn[None, :] < Lk) & (offs_dv[:, None] < Dv), other=0.0)  # [BDV, BN]  # fmt: skip
        s = tl.dot(q, kt, input_precision=DOT_PRECISION) * qk_scale  # [BM, BN]
        valid = (offs_kn[None, :] < Lk) & row_ok[:, None]
        if CAUSAL:
            valid = valid & (offs_kn[None, :] <= pos[:, None])
        s = tl.where(valid, s, float("-inf"))
        p = tl.exp2(s - lse[:, None] * _LOG2E)  # [BM, BN], recomputed from lse
        dp = tl.dot(do, vt, input_precision=DOT_PRECISION)  # [BM, BN]
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(q.dtype), tl.trans(kt), dq, input_precision=DOT_PRECISION)

    dq = dq * sm_scale
    dq_ptrs = DQ + (pid_bh.to(tl.int64) * Lq + pos[:, None]) * D + offs_d[None, :]
    tl.store(dq_ptrs, dq.to(DQ.dtype.element_ty), mask=q_mask)


# Copied from `_attention_bwd_dkdv_kernel` in core/ops/attention/triton.py (transposed Pᵀ/dSᵀ orientation,
# dV += Pᵀ dO, dK += dSᵀ Q), minus bias, key padding and dBias; the query loop runs over the u selected rows
# gathered through Top instead of a query range, with the per-row causal limit. A copy for the reasons given
# at `_sparse_attn_bwd_dq_kernel`.
@triton.jit
def _sparse_attn_bwd_dkdv_kernel(
    Q, K, V, Top, DO, Lse, Delta, DK, DV,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_dob, stride_doh, stride_dom, stride_dod,
    H, U, Lk, D, Dv,
    qk_scale, sm_scale,
    CAUSAL: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """One program = BLOCK_N keys of one (batch, head); loops over the u selected queries for dK and dV.

    Works in the transposed [BN, BM] orientation (Sᵀ, Pᵀ) so dV += Pᵀ dO and dK += dSᵀ Q are plain dots.
    DK/DV are contiguous [B, H, Lk, D|Dv].
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

    dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_DV], tl.float32)
    q_base = Q + b * stride_qb + h * stride_qh
    do_base = DO + b * stride_dob + h * stride_doh
    row_base = pid_bh.to(tl.int64) * U
    for start_r in range(0, U, BLOCK_M):
        offs_r = start_r + offs_m
        row_ok = offs_r < U
        pos = tl.load(Top + row_base + offs_r, mask=row_ok, other=0).to(tl.int64)  # [BM]
        qt = tl.load(q_base + pos[None, :] * stride_qm + offs_d[:, None] * stride_qd,
                     mask=row_ok[None, :] & (offs_d[:, None] < D), other=0.0)  # [BD, BM]  # fmt: skip
        # Padding rows load lse = +inf so their Pᵀ column is exactly 0.
        lse = tl.load(Lse + row_base + offs_r, mask=row_ok, other=float("inf"))  # [BM]
        st = tl.dot(k, qt, input_precision=DOT_PRECISION) * qk_scale  # [BN, BM] base-2 logits
        valid = (offs_n[:, None] < Lk) & row_ok[None, :]
        if CAUSAL:
            valid = valid & (offs_n[:, None] <= pos[None, :])
        st = tl.where(valid, st, float("-inf"))
        pt = tl.exp2(st - lse[None, :] * _LOG2E)  # [BN, BM] = Pᵀ
        do = tl.load(do_base + offs_r[:, None] * stride_dom + offs_dv[None, :] * stride_dod,
                     mask=row_ok[:, None] & (offs_dv[None, :] < Dv), other=0.0)  # [BM, BDV]  # fmt: skip
        dv = tl.dot(pt.to(do.dtype), do, dv, input_precision=DOT_PRECISION)
        delta = tl.load(Delta + row_base + offs_r, mask=row_ok, other=0.0)  # [BM]
        dpt = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)  # [BN, BM] = (dO Vᵀ)ᵀ
        dst = pt * (dpt - delta[None, :])  # [BN, BM] = dSᵀ
        dk = tl.dot(dst.to(qt.dtype), tl.trans(qt), dk, input_precision=DOT_PRECISION)

    dk = dk * sm_scale  # S = scale · Q Kᵀ, so dK = scale · dSᵀ Q
    dkv_base = pid_bh.to(tl.int64) * Lk
    tl.store(DK + (dkv_base + offs_n[:, None]) * D + offs_d[None, :], dk.to(DK.dtype.element_ty), mask=kv_mask_d)
    tl.store(DV + (dkv_base + offs_n[:, None]) * Dv + offs_dv[None, :], dv.to(DV.dtype.element_ty), mask=kv_mask_dv)


def _sparsity_blocks(d_pad: int) -> tuple[int, int]:
    """(BLOCK_M, num_warps) of the measurement kernel (no tl.dot, so no 16-row minimum).

    GPU: 64 rows at D <= 64, 32 at D = 128 (64 spills ~650 B/thread there: gathered rows hold 64-bit
    pointers), 4 warps; spill-free in the sm_90 check described at `_fwd_blocks`.
    """
    if interpreting():
        return 32, 1
    return (64 if d_pad <= 64 else 32), 4


def _fwd_blocks(d_pad: int, dtype: torch.dtype) -> tuple[int, int, int, int]:
    """Kernel B forward (BLOCK_M, BLOCK_N, num_warps, num_stages); fixed, not autotuned.

    Interpreter: 16×16, the smallest tile tl.dot takes, so masked tails get exercised on tiny shapes.
    GPU: BLOCK_M rows of the u ~ 25-60 selected queries (larger tiles would be mostly padding rows).
    Picked by compiling every kernel for sm_90 ahead of time with triton 3.9 (no GPU was lent to time
    them) and keeping the largest tiles with no register spills (cuobjdump stack = 0) at D = 64 and 128.
    """
    if interpreting():
        return 16, 16, 1, 1
    if dtype == torch.float32:  # 3×TF32 dots hold more registers
        return (32, 32, 4, 2) if d_pad <= 64 else (16, 32, 4, 2)
    return (32, 64, 4, 2) if d_pad <= 64 else (32, 64, 8, 2)


def _bwd_blocks(d_pad: int, dtype: torch.dtype) -> tuple[int, int, int, int]:
    """Backward tiles, shared by the dQ and dK/dV kernels; chosen as in `_fwd_blocks`. Spill-free except
    fp32 at D = 128, which keeps ~50-110 B/thread of spills at the smallest 16×16 tiles (accepted: fp32
    is not the GPU training dtype)."""
    if interpreting():
        return 16, 16, 1, 1
    if dtype == torch.float32:
        return 16, 16, 4, 2
    return (32, 64, 8, 2) if d_pad <= 64 else (16, 32, 8, 2)


@torch.library.triton_op("seer::probsparse_sparsity", mutates_args=())
def _probsparse_sparsity(q: torch.Tensor, k: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """M [B, H, Lq] fp32 for q [B, H, Lq, D], k [B, H, Lk, D] and a contiguous int64 index [Lq, S]."""
    bsz, heads, lq, d = q.shape
    lk, s = k.shape[2], index.shape[1]
    m = torch.empty((bsz, heads, lq), device=q.device, dtype=torch.float32)
    block_d = pad_dim(d)
    block_m, warps = _sparsity_blocks(block_d)
    grid = (triton.cdiv(lq, block_m), bsz * heads)
    launch(_sparsity_kernel, grid,
        q, k, index, m,
        *q.stride(), *k.stride(), *index.stride(),
        heads, lq, lk, d, s,
        BLOCK_M=block_m, BLOCK_D=block_d, num_warps=warps, traceable=True,
    )  # fmt: skip
    return m


@torch.library.triton_op("seer::probsparse_attention", mutates_args=())
def _probsparse_attention_fwd(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, top: torch.Tensor, causal: bool, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(out_top [B, H, u, Dv] in v's dtype, lse [B, H, u] fp32) for the queries `top` (contiguous [B, H, u])."""
    bsz, heads, _, d = q.shape
    lk, dv = k.shape[2], v.shape[3]
    u = top.shape[2]
    out = torch.empty((bsz, heads, u, dv), device=q.device, dtype=v.dtype)
    lse = torch.empty((bsz, heads, u), device=q.device, dtype=torch.float32)
    block_d, block_dv = pad_dim(d), pad_dim(dv)
    block_m, block_n, warps, stages = _fwd_blocks(max(block_d, block_dv), q.dtype)
    grid = (triton.cdiv(u, block_m), bsz * heads)
    launch(_sparse_attn_fwd_kernel, grid,
        q, k, v, top, out, lse,
        *q.stride(), *k.stride(), *v.stride(),
        heads, u, lk, d, dv,
        scale * LOG2E,
        CAUSAL=causal, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d, BLOCK_DV=block_dv,
        DOT_PRECISION=dot_precision(q.dtype), num_warps=warps, num_stages=stages, traceable=True,
    )  # fmt: skip
    return out, lse


@torch.library.triton_op("seer::probsparse_attention_backward", mutates_args=())
def _probsparse_attention_bwd(
    do: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    top: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    causal: bool,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dq [B, H, Lq, D], zero outside the rows `top`; dk [B, H, Lk, D]; dv [B, H, Lk, Dv]) for do [B, H, u, Dv]."""
    bsz, heads, lq, d = q.shape
    lk, dv_dim = k.shape[2], v.shape[3]
    u = top.shape[2]
    delta = torch.empty((bsz, heads, u), device=q.device, dtype=torch.float32)
    dq = torch.zeros((bsz, heads, lq, d), device=q.device, dtype=q.dtype)  # unselected rows get no gradient
    dk = torch.empty((bsz, heads, lk, d), device=q.device, dtype=k.dtype)
    dv = torch.empty((bsz, heads, lk, dv_dim), device=q.device, dtype=v.dtype)
    block_d, block_dv = pad_dim(d), pad_dim(dv_dim)
    block_m, block_n, warps, stages = _bwd_blocks(max(block_d, block_dv), q.dtype)
    tiles = dict(BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d, BLOCK_DV=block_dv)
    opts = dict(DOT_PRECISION=dot_precision(q.dtype), num_warps=warps, num_stages=stages)
    # dQ first: it also writes Delta, which the dK/dV kernel reads.
    launch(_sparse_attn_bwd_dq_kernel, (triton.cdiv(u, block_m), bsz * heads),
        q, k, v, top, out, do, lse, delta, dq,
        *q.stride(), *k.stride(), *v.stride(), *do.stride(),
        heads, u, lq, lk, d, dv_dim, scale * LOG2E, scale,
        CAUSAL=causal, **tiles, **opts, traceable=True,
    )  # fmt: skip
    launch(_sparse_attn_bwd_dkdv_kernel, (triton.cdiv(lk, block_n), bsz * heads),
        q, k, v, top, do, lse, delta, dk, dv,
        *q.stride(), *k.stride(), *v.stride(), *do.stride(),
        heads, u, lk, d, dv_dim, scale * LOG2E, scale,
        CAUSAL=causal, **tiles, **opts, traceable=True,
    )  # fmt: skip
    return dq, dk, dv


class SparseAttentionFunction(torch.autograd.Function):
    """Autograd for kernel B: (q, k, v, top) -> out_top [B, H, u, Dv]; saves (q, k, v, top, out_top, lse)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, top: torch.Tensor, causal: bool, scale: float
    ) -> torch.Tensor:
        out, lse = torch.ops.seer.probsparse_attention(q, k, v, top, causal, scale)
        ctx.save_for_backward(q, k, v, top, out, lse)
        ctx.causal, ctx.scale = causal, scale
        return out

    @staticmethod
    def backward(ctx: Any, do: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        q, k, v, top, out, lse = ctx.saved_tensors
        # Autograd may hand over an expanded (stride-0) gradient; the kernels take any other strides.
        do = do.contiguous()
        dq, dk, dv = torch.ops.seer.probsparse_attention_backward(do, q, k, v, top, out, lse, ctx.causal, ctx.scale)
        return dq, dk, dv, None, None, None


def _check_triton_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, index: torch.Tensor, causal: bool) -> None:
    _check(q, k, v, causal)
    if not q.dtype == k.dtype == v.dtype or q.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"q, k, v must share one of fp32/fp16/bf16, got {q.dtype}, {k.dtype}, {v.dtype}")
    if max(q.shape[-1], v.shape[-1]) > MAX_HEAD_DIM:
        raise NotImplementedError(
            f"probsparse_attention_triton: head dim {max(q.shape[-1], v.shape[-1])} > {MAX_HEAD_DIM}; "
            "the kernels' tiles are sized for head dims up to 128 (use impl='reference')"
        )
    lq, lk = q.shape[-2], k.shape[-2]
    if index.dim() != 2 or index.shape[0] != lq or index.shape[1] < 1:
        raise ValueError(f"index must be [Lq, S] = [{lq}, S >= 1] sampled key positions, got {tuple(index.shape)}")
    if index.dtype.is_floating_point or index.dtype.is_complex or index.dtype == torch.bool:
        raise ValueError(f"index must hold integer key positions, got {index.dtype}")
    if not torch.compiler.is_compiling() and index.numel():
        lo, hi = torch.aminmax(index)
        if lo.item() < 0 or hi.item() >= lk:
            raise ValueError(f"index holds key positions outside [0, {lk}): min {lo.item()}, max {hi.item()}")


def query_sparsity_triton(q: torch.Tensor, k: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Kernel A: M [B, H, Lq] (fp32), the sampled max − sum/Lk measurement of `reference.query_sparsity`."""
    index = index.to(device=q.device, dtype=torch.int64).contiguous()
    return torch.ops.seer.probsparse_sparsity(q, k, index)


def sparse_attention_triton(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, top: torch.Tensor, *, causal: bool = False, scale: float
) -> torch.Tensor:
    """Kernel B with autograd: out_top [B, H, u, Dv] for the query positions `top [B, H, u]` (distinct per head)."""
    return SparseAttentionFunction.apply(q, k, v, top.to(torch.int64).contiguous(), causal, scale)


def probsparse_attention_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    index: torch.Tensor,
    *,
    factor: int,
    causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    """ProbSparse attention `[B, H, Lq, Dv]` with the key sample `index [Lq, S]` already drawn.

    Same result as `probsparse_attention_reference(q, k, v, factor=, causal=, index=, scale=)`;
    gradients flow to q (selected rows only), k and v (attention and lazy fill), none to `index`.
    Raises ValueError on shapes, dtypes or an index the reference would reject, NotImplementedError
    for head dims past 128.
    """
    _check_triton_inputs(q, k, v, index, causal)
    bsz, heads, lq, d = q.shape
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    m = query_sparsity_triton(q, k, index)  # [B, H, Lq]
    top = select_queries(m, n_sampled(lq, factor))  # [B, H, u], as the reference ranks
    top = top.sort(dim=-1).values  # ascending positions: tighter causal loops, same scatter
    out_top = sparse_attention_triton(q, k, v, top, causal=causal, scale=scale)  # [B, H, u, Dv]
    context = lazy_context(v, lq, causal)  # [B, H, Lq, Dv]: mean(V) rows or cumsum(V)
    rows = top.unsqueeze(-1).expand(bsz, heads, top.shape[-1], v.shape[-1])
    return context.scatter(2, rows, out_top)


__all__ = [
    "SparseAttentionFunction",
    "probsparse_attention_triton",
    "query_sparsity_triton",
    "sparse_attention_triton",
]
