"""Mixture-of-SwiGLU-experts in Triton: token permutation, grouped GEMMs with a fused SwiGLU, weighted
un-permute, and a Triton backward for every GEMM.

Shapes: T tokens, D model dim, F expert hidden dim, E experts, k experts per token, R = T·k assignments
(one per (token, slot) pair; assignment a = t·k + j).
  x [T, D]; indices, weights [T, k]; w_gate, w_up [E, D, F]; w_down [E, F, D]; y [T, D]
  Permutation (torch bookkeeping, no host sync): `order` [R] sorts the assignments by expert (stable, so
  rows of one expert keep token order); sorted row r belongs to token `tok[r]` [R]; `pos` [T, k] is the
  inverse (the sorted row of assignment (t, j)); `offsets` [E + 1] bounds each expert's rows.
  Row blocks: the grouped kernels tile each expert's rows in blocks of BLOCK_M. The block table (`_RowBlocks`:
  expert, first row, row count per program) is built on the device for an upper bound of
  cdiv(R, BLOCK_M) + E programs; the spare programs see a row count of 0 and skip their K loop, so the
  grid never depends on the routing and nothing waits for the GPU.
Semantics are those of `reference.moe_swiglu_reference` (the spec).

Forward (3 launches):
  1. `_gate_up_fwd_kernel`   H[r] = silu(x[tok[r]] W_gate[e]) * (x[tok[r]] W_up[e])  [R, F]; the gather of x
     is folded into the A-tile load, both GEMMs share it, the SwiGLU runs on the fp32 accumulators. When a
     gradient is needed, the pre-activations G, U [R, F] are stored for the backward instead of H.
  2. `_rows_matmul_kernel`   O[r] = H[r] W_down[e]  [R, D] (unweighted expert outputs, sorted rows).
  3. `_unpermute_kernel`     y[t] = Σ_j weights[t, j] · O[pos[t, j]]: a gather-sum per token, fp32, in j order,
     so the result is deterministic (no atomics; index_add_ would add in a nondeterministic order on GPU).
Backward (up to 5 launches, each skipped when its gradients are not needed):
  4. `_swiglu_bwd_kernel`    A = dy[tok[r]] W_down[e]ᵀ [R, F] (gathered dy); with h = silu(g)·u recomputed
     from G, U: d weights[r] = Σ_f A·h (per F-block partials [nF, R], summed in torch: deterministic),
     dH = weight_r · A, dG = dH · u · silu'(g), dU = dH · silu(g)  [R, F].
  5. `_rows_matmul_kernel`   dXr[r] = dG[r] W_gate[e]ᵀ + dU[r] W_up[e]ᵀ  [R, D] (two GEMMs, one accumulator),
     then `_unpermute_kernel` with unit weights: dx[t] = Σ_j dXr[pos[t, j]].
  6. `_dw_gate_up_kernel`    dW_gate[e] = Σ_{r∈e} x[tok[r]]ᵀ dG[r], dW_up[e] likewise: one program per
     (expert, D-tile, F-tile) loops over the expert's rows (a grouped GEMM reducing over rows).
  7. `_dw_down_kernel`       dW_down[e] = Σ_{r∈e} (weight_r · h[r])ᵀ dy[tok[r]], h recomputed from G, U.
An expert with no rows gets zero weight gradients (its programs run no loop iteration and store zeros).

Precision: loads are in the input dtype, every dot accumulates in fp32 (fp32 inputs: 3×TF32, ~fp32 accuracy, see
`core.ops.triton_utils.dot_precision`), the SwiGLU and its derivative run in fp32, and H, O, G, U, dG, dU, dXr are
stored in the input dtype (16-bit inputs: one rounding each, as in Megablocks). Routing weights may have any float
dtype; they are read as fp32 and their gradient is returned in their dtype. Block sizes are fixed per dtype
(`_tiles`), not autotuned. Indices must lie in [0, E): they are not range-checked (that would sync the GPU).

Layers: `_*_kernel` (Triton) · `_forward` / `_backward` (launchers, every launch through
`core.ops.triton_utils.launch`, the convention all ops share) · `MoESwiGLUFunction` (autograd) ·
`moe_swiglu_triton` (public op, reached via `core.ops.moe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import triton
import triton.language as tl

from core.ops.moe.reference import check_moe_args
from core.ops.triton_utils import dot_precision, interpreting, launch


@triton.jit
def _gate_up_fwd_kernel(
    X, Tok, Wg, Wu, H, G, U, BlkE, BlkStart, BlkLen,
    stride_xt, stride_xd, stride_we, stride_wd, stride_wf,
    D, F,
    SAVE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """One program = BLOCK_M sorted rows of one expert × BLOCK_N hidden units; loops over D.

    X [T, D] (any strides) is gathered through Tok [R]; Wg, Wu [E, D, F] share strides; H, G, U are
    contiguous [R, F]; G and U are written only when SAVE.
    """
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    e = tl.load(BlkE + pid_m).to(tl.int64)
    start = tl.load(BlkStart + pid_m)
    n_rows = tl.load(BlkLen + pid_m)  # 0 for the spare programs of the upper-bound grid
    offs_m = tl.arange(0, BLOCK_M)
    row_ok = offs_m < n_rows
    rows = (start + offs_m).to(tl.int64)
    tok = tl.load(Tok + rows, mask=row_ok, other=0).to(tl.int64)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = offs_n < F
    offs_k = tl.arange(0, BLOCK_K)

    x_ptrs = X + tok[:, None] * stride_xt + offs_k[None, :] * stride_xd  # [BM, BK]
    w_off = e * stride_we + offs_k[:, None] * stride_wd + offs_n[None, :] * stride_wf  # [BK, BN]
    wg_ptrs = Wg + w_off
    wu_ptrs = Wu + w_off
    acc_g = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    acc_u = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    k_end = tl.where(n_rows > 0, D, 0)
    for k0 in range(0, k_end, BLOCK_K):
        k_ok = (k0 + offs_k) < D
        a = tl.load(x_ptrs, mask=row_ok[:, None] & k_ok[None, :], other=0.0)
        w_mask = k_ok[:, None] & col_ok[None, :]
        bg = tl.load(wg_ptrs, mask=w_mask, other=0.0)
        bu = tl.load(wu_ptrs, mask=w_mask, other=0.0)
        acc_g = tl.dot(a, bg, acc_g, input_precision=DOT_PRECISION)
        acc_u = tl.dot(a, bu, acc_u, input_precision=DOT_PRECISION)
        x_ptrs += BLOCK_K * stride_xd
        wg_ptrs += BLOCK_K * stride_wd
        wu_ptrs += BLOCK_K * stride_wd

    h = acc_g * tl.sigmoid(acc_g) * acc_u  # SwiGLU on the fp32 accumulators
    out_off = rows[:, None] * F + offs_n[None, :]
    out_mask = row_ok[:, None] & col_ok[None, :]
    tl.store(H + out_off, h.to(H.dtype.element_ty), mask=out_mask)
    if SAVE:
        tl.store(G + out_off, acc_g.to(G.dtype.element_ty), mask=out_mask)
        tl.store(U + out_off, acc_u.to(U.dtype.element_ty), mask=out_mask)


@triton.jit
def _rows_matmul_kernel(
    A1, B1, A2, B2, C, BlkE, BlkStart, BlkLen,
    stride_be, stride_bk, stride_bn,
    K, N,
    DUAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """C[r] = A1[r] B1[e] (+ A2[r] B2[e] when DUAL) for the sorted rows r of expert e.

    A1, A2 contiguous [R, K]; B1, B2 [E, K, N] read through (stride_be, stride_bk, stride_bn), so a
    transposed weight (W_gate[e]ᵀ for dX) is just other strides; C contiguous [R, N].
    """
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    e = tl.load(BlkE + pid_m).to(tl.int64)
    start = tl.load(BlkStart + pid_m)
    n_rows = tl.load(BlkLen + pid_m)
    offs_m = tl.arange(0, BLOCK_M)
    row_ok = offs_m < n_rows
    rows = (start + offs_m).to(tl.int64)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = offs_n < N
    offs_k = tl.arange(0, BLOCK_K)

    a_off = rows[:, None] * K + offs_k[None, :]  # [BM, BK]
    b_off = e * stride_be + offs_k[:, None] * stride_bk + offs_n[None, :] * stride_bn  # [BK, BN]
    acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    k_end = tl.where(n_rows > 0, K, 0)
    for k0 in range(0, k_end, BLOCK_K):
        k_ok = (k0 + offs_k) < K
        a_mask = row_ok[:, None] & k_ok[None, :]
        b_mask = k_ok[:, None] & col_ok[None, :]
        a = tl.load(A1 + a_off, mask=a_mask, other=0.0)
        b = tl.load(B1 + b_off, mask=b_mask, other=0.0)
        acc = tl.dot(a, b, acc, input_precision=DOT_PRECISION)
        if DUAL:
            a2 = tl.load(A2 + a_off, mask=a_mask, other=0.0)
            b2 = tl.load(B2 + b_off, mask=b_mask, other=0.0)
            acc = tl.dot(a2, b2, acc, input_precision=DOT_PRECISION)
        a_off += BLOCK_K
        b_off += BLOCK_K * stride_bk

    c_off = rows[:, None] * N + offs_n[None, :]
    tl.store(C + c_off, acc.to(C.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])


@triton.jit
def _unpermute_kernel(
    O, Pos, S, Y,
    T, N,
    TOP_K: tl.constexpr, HAS_SCALE: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """Y[t] = Σ_j S[t, j] · O[Pos[t, j]] (S = 1 without HAS_SCALE), summed in fp32 in j order.

    O contiguous [R, N]; Pos [T, TOP_K] int32 and S [T, TOP_K] (any float dtype) contiguous; Y contiguous [T, N].
    """
    offs_t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    t_ok = offs_t < T
    mask = t_ok[:, None] & (offs_n[None, :] < N)
    slot = offs_t.to(tl.int64) * TOP_K
    acc = tl.zeros((BLOCK_T, BLOCK_N), tl.float32)
    for j in tl.static_range(TOP_K):
        pos = tl.load(Pos + slot + j, mask=t_ok, other=0).to(tl.int64)
        o = tl.load(O + pos[:, None] * N + offs_n[None, :], mask=mask, other=0.0).to(tl.float32)
        if HAS_SCALE:
            s = tl.load(S + slot + j, mask=t_ok, other=0.0).to(tl.float32)
            o = o * s[:, None]
        acc += o
    tl.store(Y + offs_t.to(tl.int64)[:, None] * N + offs_n[None, :], acc.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _swiglu_bwd_kernel(
    DY, Tok, Wd, G, U, Ws, DG, DU, DWp, BlkE, BlkStart, BlkLen,
    stride_dyt, stride_wde, stride_wdf, stride_wdd,
    D, F, R,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """One program = BLOCK_M sorted rows of one expert × BLOCK_N hidden units; loops over D.

    A = DY[Tok[r]] Wd[e]ᵀ [BM, BN] (DY [T, D] with unit column stride, gathered); G, U [R, F] are the saved
    pre-activations, Ws [R] fp32 the sorted routing weights. Writes DG, DU [R, F] and this F-block's partial
    d(weight) Σ_f A·h into row pid_n of DWp [nF, R] (fp32).
    """
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    e = tl.load(BlkE + pid_m).to(tl.int64)
    start = tl.load(BlkStart + pid_m)
    n_rows = tl.load(BlkLen + pid_m)
    offs_m = tl.arange(0, BLOCK_M)
    row_ok = offs_m < n_rows
    rows = (start + offs_m).to(tl.int64)
    tok = tl.load(Tok + rows, mask=row_ok, other=0).to(tl.int64)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = offs_n < F
    offs_k = tl.arange(0, BLOCK_K)

    dy_ptrs = DY + tok[:, None] * stride_dyt + offs_k[None, :]  # [BM, BK]
    wdt_ptrs = Wd + e * stride_wde + offs_n[None, :] * stride_wdf + offs_k[:, None] * stride_wdd  # [BK, BN] = Wd[e]ᵀ
    acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    k_end = tl.where(n_rows > 0, D, 0)
    for k0 in range(0, k_end, BLOCK_K):
        k_ok = (k0 + offs_k) < D
        a = tl.load(dy_ptrs, mask=row_ok[:, None] & k_ok[None, :], other=0.0)
        b = tl.load(wdt_ptrs, mask=k_ok[:, None] & col_ok[None, :], other=0.0)
        acc = tl.dot(a, b, acc, input_precision=DOT_PRECISION)
        dy_ptrs += BLOCK_K
        wdt_ptrs += BLOCK_K * stride_wdd

    hf_off = rows[:, None] * F + offs_n[None, :]
    hf_mask = row_ok[:, None] & col_ok[None, :]
    g = tl.load(G + hf_off, mask=hf_mask, other=0.0).to(tl.float32)
    u = tl.load(U + hf_off, mask=hf_mask, other=0.0).to(tl.float32)
    sig = tl.sigmoid(g)
    silu = g * sig
    # d weight_r = dy_t · (h_r Wd[e]) = Σ_f (dy_t Wd[e]ᵀ)_f h_rf; masked lanes have g = u = 0, so h = 0.
    tl.store(DWp + pid_n.to(tl.int64) * R + rows, tl.sum(acc * (silu * u), axis=1), mask=row_ok)
    w = tl.load(Ws + rows, mask=row_ok, other=0.0)
    dh = acc * w[:, None]
    dg = dh * u * sig * (1.0 + g * (1.0 - sig))  # silu'(g) = σ(g)(1 + g(1 − σ(g)))
    du = dh * silu
    tl.store(DG + hf_off, dg.to(DG.dtype.element_ty), mask=hf_mask)
    tl.store(DU + hf_off, du.to(DU.dtype.element_ty), mask=hf_mask)


@triton.jit
def _dw_gate_up_kernel(
    X, Tok, DG, DU, Off, DWg, DWu,
    stride_xt, stride_xd,
    D, F,
    BLOCK_D: tl.constexpr, BLOCK_F: tl.constexpr, BLOCK_R: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """dWg[e] = Σ_{r∈e} X[Tok[r]]ᵀ DG[r], dWu[e] likewise; one program = one expert's [BLOCK_D, BLOCK_F] tile.

    Loops over the expert's rows Off[e] ≤ r < Off[e + 1]; DG, DU contiguous [R, F]; DWg, DWu contiguous [E, D, F].
    """
    e = tl.program_id(0)
    tile = tl.program_id(1)
    n_f = tl.cdiv(F, BLOCK_F)
    offs_d = (tile // n_f) * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_f = (tile % n_f) * BLOCK_F + tl.arange(0, BLOCK_F)
    d_ok = offs_d < D
    f_ok = offs_f < F
    offs_r = tl.arange(0, BLOCK_R)
    lo = tl.load(Off + e)
    hi = tl.load(Off + e + 1)
    acc_g = tl.zeros((BLOCK_D, BLOCK_F), tl.float32)
    acc_u = tl.zeros((BLOCK_D, BLOCK_F), tl.float32)
    for r0 in range(lo, hi, BLOCK_R):
        rows = r0 + offs_r
        r_ok = rows < hi
        rows = rows.to(tl.int64)
        tok = tl.load(Tok + rows, mask=r_ok, other=0).to(tl.int64)
        xt = tl.load(X + tok[None, :] * stride_xt + offs_d[:, None] * stride_xd,
                     mask=d_ok[:, None] & r_ok[None, :], other=0.0)  # [BD, BR]  # fmt: skip
        g_off = rows[:, None] * F + offs_f[None, :]
        g_mask = r_ok[:, None] & f_ok[None, :]
        dg = tl.load(DG + g_off, mask=g_mask, other=0.0)  # [BR, BF]
        du = tl.load(DU + g_off, mask=g_mask, other=0.0)
        acc_g = tl.dot(xt, dg, acc_g, input_precision=DOT_PRECISION)
        acc_u = tl.dot(xt, du, acc_u, input_precision=DOT_PRECISION)

    w_off = e.to(tl.int64) * D * F + offs_d[:, None] * F + offs_f[None, :]
    w_mask = d_ok[:, None] & f_ok[None, :]
    tl.store(DWg + w_off, acc_g.to(DWg.dtype.element_ty), mask=w_mask)
    tl.store(DWu + w_off, acc_u.to(DWu.dtype.element_ty), mask=w_mask)


@triton.jit
def _dw_down_kernel(
    G, U, Ws, DY, Tok, Off, DWd,
    stride_dyt,
    D, F,
    BLOCK_F: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_R: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """dWd[e] = Σ_{r∈e} (Ws[r] · h[r])ᵀ DY[Tok[r]] with h = silu(G) · U; one program = one [BLOCK_F, BLOCK_D] tile.

    G, U contiguous [R, F]; Ws [R] fp32; DY [T, D] with unit column stride; DWd contiguous [E, F, D].
    """
    e = tl.program_id(0)
    tile = tl.program_id(1)
    n_d = tl.cdiv(D, BLOCK_D)
    offs_f = (tile // n_d) * BLOCK_F + tl.arange(0, BLOCK_F)
    offs_d = (tile % n_d) * BLOCK_D + tl.arange(0, BLOCK_D)
    f_ok = offs_f < F
    d_ok = offs_d < D
    offs_r = tl.arange(0, BLOCK_R)
    lo = tl.load(Off + e)
    hi = tl.load(Off + e + 1)
    acc = tl.zeros((BLOCK_F, BLOCK_D), tl.float32)
    for r0 in range(lo, hi, BLOCK_R):
        rows = r0 + offs_r
        r_ok = rows < hi
        rows = rows.to(tl.int64)
        tok = tl.load(Tok + rows, mask=r_ok, other=0).to(tl.int64)
        gt_off = rows[None, :] * F + offs_f[:, None]  # [BF, BR]
        gt_mask = f_ok[:, None] & r_ok[None, :]
        gt = tl.load(G + gt_off, mask=gt_mask, other=0.0).to(tl.float32)
        ut = tl.load(U + gt_off, mask=gt_mask, other=0.0).to(tl.float32)
        w = tl.load(Ws + rows, mask=r_ok, other=0.0)
        ht = gt * tl.sigmoid(gt) * ut * w[None, :]  # (weight · h)ᵀ, fp32
        dy = tl.load(DY + tok[:, None] * stride_dyt + offs_d[None, :],
                     mask=r_ok[:, None] & d_ok[None, :], other=0.0)  # [BR, BD]  # fmt: skip
        acc = tl.dot(ht.to(dy.dtype), dy, acc, input_precision=DOT_PRECISION)

    w_off = e.to(tl.int64) * F * D + offs_f[:, None] * D + offs_d[None, :]
    tl.store(DWd + w_off, acc.to(DWd.dtype.element_ty), mask=f_ok[:, None] & d_ok[None, :])


@dataclass(frozen=True)
class _Tiles:
    """Fixed tile sizes and launch options for one dtype (see `_tiles`)."""

    block_m: int  # sorted rows per program in the row-grouped kernels (1, 2, 4, 5)
    dual: tuple[int, int, int, int]  # (BLOCK_N, BLOCK_K, num_warps, num_stages): gate/up forward and dX (two dots)
    rows: tuple[int, int, int, int]  # (BLOCK_N, BLOCK_K, warps, stages): down projection (one dot)
    swiglu_bwd: tuple[int, int, int, int]  # (BLOCK_N over F, BLOCK_K over D, warps, stages)
    dw: tuple[int, int, int, int, int]  # (BLOCK over D or F, BLOCK over F or D, BLOCK_R, warps, stages)
    precision: str


def _tiles(dtype: torch.dtype) -> _Tiles:
    """Tile sizes per dtype; fixed, not autotuned.

    Interpreter: 16 everywhere (the smallest tile tl.dot takes), so masked tails and multi-tile loops get
    exercised on tiny shapes. GPU (Hopper): 64-row blocks, so an expert's padding waste stays small when
    R / E is a few hundred rows; 16-bit dots with 64-wide K steps and 3 pipeline stages (cp.async + wgmma);
    the two-dot kernels (gate/up forward: two accumulators; dX: two operand pairs) and the weight-gradient
    kernels take 64×64 tiles, the down projection 64×128. fp32 inputs run their dots as 3×TF32 with 32-wide
    K steps and 2 stages. Checked by compiling for sm_90 with triton 3.9 and its bundled ptxas, with the
    16-byte alignment the launcher specialises on (no GPU was lent for timing): bf16 uses 96-128 registers
    in the GEMM kernels and 254 in the SwiGLU backward, 16-96 KB of shared memory, no spills; fp32 no spills
    either. tests/core/ops/test_moe_triton.py rebuilds every variant and fails on a spill.
    """
    if interpreting():
        return _Tiles(16, (16, 16, 1, 1), (16, 16, 1, 1), (16, 16, 1, 1), (16, 16, 16, 1, 1), "ieee")
    if dtype == torch.float32:
        return _Tiles(64, (64, 32, 4, 2), (64, 32, 4, 2), (64, 32, 4, 2), (64, 64, 32, 4, 2), dot_precision(dtype))
    return _Tiles(64, (64, 64, 4, 3), (128, 64, 4, 3), (64, 64, 4, 3), (64, 64, 64, 4, 3), dot_precision(dtype))


@dataclass
class _RowBlocks:
    """The block table of the row-grouped kernels: program p covers sorted rows
    [start[p], start[p] + length[p]) of expert expert[p]; length is 0 for spare programs."""

    expert: torch.Tensor  # [P] int32
    start: torch.Tensor  # [P] int32
    length: torch.Tensor  # [P] int32
    programs: int  # P = cdiv(R, block_m) + E, an upper bound that needs no host sync


def _row_blocks(counts: torch.Tensor, offsets: torch.Tensor, n_rows: int, block_m: int) -> _RowBlocks:
    """Tile each expert's rows (counts [E], offsets [E + 1]) in blocks of block_m, on the device."""
    n_exp = counts.numel()
    programs = triton.cdiv(n_rows, block_m) + n_exp  # Σ_e cdiv(c_e, BM) <= cdiv(R, BM) + E
    per_expert = (counts + block_m - 1) // block_m  # [E] blocks of each expert
    ends = torch.cumsum(per_expert, 0)  # [E] one past each expert's last block
    p = torch.arange(programs, device=counts.device)
    expert = torch.searchsorted(ends, p, right=True)  # [P] in [0, E]; E marks a spare program
    active = expert < n_exp
    expert = expert.clamp(max=n_exp - 1)
    local = p - (ends[expert] - per_expert[expert])  # block index within its expert
    start = offsets[expert] + local * block_m
    length = torch.where(active, (counts[expert] - local * block_m).clamp(0, block_m), 0)
    return _RowBlocks(expert.to(torch.int32), start.to(torch.int32), length.to(torch.int32), programs)


@dataclass
class _Routing:
    """The token permutation: assignments sorted by expert (see the module docstring)."""

    order: torch.Tensor  # [R] int64: sorted row -> assignment t·k + j
    tok: torch.Tensor  # [R] int32: sorted row -> token
    pos: torch.Tensor  # [T, k] int32: assignment -> sorted row
    offsets: torch.Tensor  # [E + 1] int32: expert e owns sorted rows offsets[e] .. offsets[e + 1]
    blocks: _RowBlocks


def _route(indices: torch.Tensor, n_exp: int, block_m: int) -> _Routing:
    n_tok, top_k = indices.shape
    flat = indices.reshape(-1).long()  # [R]
    n_rows = flat.numel()
    # scatter-add instead of bincount: bincount's output length depends on the data (a host sync on CUDA).
    counts = torch.zeros(n_exp, dtype=torch.int64, device=flat.device).scatter_add_(0, flat, torch.ones_like(flat))
    order = torch.argsort(flat, stable=True)
    tok = (order // top_k).to(torch.int32)
    pos = torch.empty_like(order)
    pos[order] = torch.arange(n_rows, device=flat.device)
    offsets = torch.zeros(n_exp + 1, dtype=torch.int64, device=flat.device)
    offsets[1:] = torch.cumsum(counts, 0)
    blocks = _row_blocks(counts, offsets, n_rows, block_m)
    return _Routing(order, tok, pos.view(n_tok, top_k).to(torch.int32), offsets.to(torch.int32), blocks)


def _unpermute(
    rows: torch.Tensor, pos: torch.Tensor, scale: torch.Tensor | None, out_dtype: torch.dtype
) -> torch.Tensor:
    """[R, N] sorted rows -> [T, N]: out[t] = Σ_j scale[t, j] · rows[pos[t, j]] (scale 1 when None)."""
    (n_tok, top_k), n = pos.shape, rows.shape[1]
    out = torch.empty((n_tok, n), device=rows.device, dtype=out_dtype)
    block_t = 16 if interpreting() else 32
    block_n = min(128, max(16, triton.next_power_of_2(n)))
    launch(_unpermute_kernel, (triton.cdiv(n_tok, block_t), triton.cdiv(n, block_n)),
        rows, pos, scale if scale is not None else rows, out, n_tok, n,
        TOP_K=top_k, HAS_SCALE=scale is not None, BLOCK_T=block_t, BLOCK_N=block_n, num_warps=4,
    )  # fmt: skip
    return out


def _forward(
    x: torch.Tensor,
    route: _Routing,
    weights: torch.Tensor,
    w_gate: torch.Tensor,
    w_up: torch.Tensor,
    w_down: torch.Tensor,
    save: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(y [T, D], G [R, F] | None, U [R, F] | None): launches 1-3 of the module docstring."""
    n_exp, d, f = w_gate.shape
    n_rows = route.tok.numel()
    tiles = _tiles(x.dtype)
    blk = route.blocks
    hidden = torch.empty((n_rows, f), device=x.device, dtype=x.dtype)  # H [R, F]
    g, u = (torch.empty_like(hidden), torch.empty_like(hidden)) if save else (None, None)
    bn, bk, warps, stages = tiles.dual
    launch(_gate_up_fwd_kernel, (blk.programs, triton.cdiv(f, bn)),
        x, route.tok, w_gate, w_up, hidden, g if save else hidden, u if save else hidden,
        blk.expert, blk.start, blk.length,
        x.stride(0), x.stride(1), *w_gate.stride(),
        d, f,
        SAVE=save, BLOCK_M=tiles.block_m, BLOCK_N=bn, BLOCK_K=bk, DOT_PRECISION=tiles.precision,
        num_warps=warps, num_stages=stages,
    )  # fmt: skip
    out_rows = torch.empty((n_rows, d), device=x.device, dtype=x.dtype)  # O [R, D]
    bn, bk, warps, stages = tiles.rows
    launch(_rows_matmul_kernel, (blk.programs, triton.cdiv(d, bn)),
        hidden, w_down, hidden, w_down, out_rows, blk.expert, blk.start, blk.length,
        *w_down.stride(), f, d,
        DUAL=False, BLOCK_M=tiles.block_m, BLOCK_N=bn, BLOCK_K=bk, DOT_PRECISION=tiles.precision,
        num_warps=warps, num_stages=stages,
    )  # fmt: skip
    y = _unpermute(out_rows, route.pos, weights, x.dtype)
    return y, g, u


def _backward(
    dy: torch.Tensor,
    x: torch.Tensor,
    route: _Routing,
    w_sorted: torch.Tensor,
    w_gate: torch.Tensor,
    w_up: torch.Tensor,
    w_down: torch.Tensor,
    g: torch.Tensor,
    u: torch.Tensor,
    needs: tuple[bool, bool, bool, bool, bool],
) -> tuple[torch.Tensor | None, ...]:
    """(dx, d w_sorted [R] fp32, dW_gate, dW_up, dW_down), None where `needs` (same order) is False."""
    need_x, need_w, need_g, need_u, need_d = needs
    n_exp, d, f = w_gate.shape
    n_rows = route.tok.numel()
    tiles = _tiles(x.dtype)
    blk = route.blocks
    dx = dws = dwg = dwu = dwd = None
    if need_x or need_w or need_g or need_u:
        bn, bk, warps, stages = tiles.swiglu_bwd
        n_fblocks = triton.cdiv(f, bn)
        dg = torch.empty((n_rows, f), device=x.device, dtype=x.dtype)
        du = torch.empty_like(dg)
        dw_part = torch.empty((n_fblocks, n_rows), device=x.device, dtype=torch.float32)
        launch(_swiglu_bwd_kernel, (blk.programs, n_fblocks),
            dy, route.tok, w_down, g, u, w_sorted, dg, du, dw_part, blk.expert, blk.start, blk.length,
            dy.stride(0), *w_down.stride(),
            d, f, n_rows,
            BLOCK_M=tiles.block_m, BLOCK_N=bn, BLOCK_K=bk, DOT_PRECISION=tiles.precision,
            num_warps=warps, num_stages=stages,
        )  # fmt: skip
        dws = dw_part.sum(0) if need_w else None
        if need_x:
            dx_rows = torch.empty((n_rows, d), device=x.device, dtype=x.dtype)
            bn, bk, warps, stages = tiles.dual
            s_e, s_d, s_f = w_gate.stride()  # W[e]ᵀ as [E, F, D]: k runs over F, n over D
            launch(_rows_matmul_kernel, (blk.programs, triton.cdiv(d, bn)),
                dg, w_gate, du, w_up, dx_rows, blk.expert, blk.start, blk.length,
                s_e, s_f, s_d, f, d,
                DUAL=True, BLOCK_M=tiles.block_m, BLOCK_N=bn, BLOCK_K=bk, DOT_PRECISION=tiles.precision,
                num_warps=warps, num_stages=stages,
            )  # fmt: skip
            dx = _unpermute(dx_rows, route.pos, None, x.dtype)
        if need_g or need_u:
            b_d, b_f, b_r, warps, stages = tiles.dw
            dwg = torch.empty_like(w_gate)
            dwu = torch.empty_like(w_up)
            launch(_dw_gate_up_kernel, (n_exp, triton.cdiv(d, b_d) * triton.cdiv(f, b_f)),
                x, route.tok, dg, du, route.offsets, dwg, dwu,
                x.stride(0), x.stride(1), d, f,
                BLOCK_D=b_d, BLOCK_F=b_f, BLOCK_R=b_r, DOT_PRECISION=tiles.precision,
                num_warps=warps, num_stages=stages,
            )  # fmt: skip
    if need_d:
        b_f, b_d, b_r, warps, stages = tiles.dw
        dwd = torch.empty_like(w_down)
        launch(_dw_down_kernel, (n_exp, triton.cdiv(f, b_f) * triton.cdiv(d, b_d)),
            g, u, w_sorted, dy, route.tok, route.offsets, dwd,
            dy.stride(0), d, f,
            BLOCK_F=b_f, BLOCK_D=b_d, BLOCK_R=b_r, DOT_PRECISION=tiles.precision,
            num_warps=warps, num_stages=stages,
        )  # fmt: skip
    return dx, dws, dwg, dwu, dwd


class MoESwiGLUFunction(torch.autograd.Function):
    """Autograd for the MoE kernels; saves x, the expert weights, the routing and the pre-activations G, U."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        indices: torch.Tensor,
        weights: torch.Tensor,
        w_gate: torch.Tensor,
        w_up: torch.Tensor,
        w_down: torch.Tensor,
    ) -> torch.Tensor:
        route = _route(indices, w_gate.shape[0], _tiles(x.dtype).block_m)
        y, g, u = _forward(x, route, weights, w_gate, w_up, w_down, save=True)
        w_sorted = weights.reshape(-1)[route.order].float()  # [R] routing weight of each sorted row
        blk = route.blocks
        ctx.save_for_backward(
            x, w_gate, w_up, w_down, g, u, w_sorted,
            route.order, route.tok, route.pos, route.offsets, blk.expert, blk.start, blk.length,
        )  # fmt: skip
        ctx.programs = blk.programs
        ctx.weights_dtype = weights.dtype
        return y

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        x, w_gate, w_up, w_down, g, u, w_sorted, order, tok, pos, offsets, b_e, b_s, b_l = ctx.saved_tensors
        route = _Routing(order, tok, pos, offsets, _RowBlocks(b_e, b_s, b_l, ctx.programs))
        need_x, _, need_w, need_g, need_u, need_d = ctx.needs_input_grad
        dy = dy.contiguous()  # autograd may hand over an expanded (stride-0) gradient, e.g. from .sum()
        dx, dws, dwg, dwu, dwd = _backward(
            dy, x, route, w_sorted, w_gate, w_up, w_down, g, u, (need_x, need_w, need_g, need_u, need_d)
        )
        dweights = None
        if dws is not None:
            dweights = torch.empty_like(dws)
            dweights[order] = dws  # sorted rows back to assignments t·k + j
            dweights = dweights.view(pos.shape).to(ctx.weights_dtype)
        return dx, None, dweights, dwg if need_g else None, dwu if need_u else None, dwd


def moe_swiglu_triton(
    x: torch.Tensor,
    indices: torch.Tensor,
    weights: torch.Tensor,
    w_gate: torch.Tensor,
    w_up: torch.Tensor,
    w_down: torch.Tensor,
) -> torch.Tensor:
    """Top-k mixture of SwiGLU experts through the Triton kernels; same contract as `moe_swiglu_reference`.

    x [T, D] and the expert weights must share one of fp32/fp16/bf16; weights [T, k] may be any float dtype.
    Non-contiguous expert weights and routing tensors are made contiguous (a copy); x is read through its strides.
    """
    check_moe_args(x, indices, weights, w_gate, w_up, w_down)
    kernel_dtypes = (torch.float32, torch.float16, torch.bfloat16)
    if not x.dtype == w_gate.dtype == w_up.dtype == w_down.dtype or x.dtype not in kernel_dtypes:
        raise ValueError(
            f"x and expert weights must share one of fp32/fp16/bf16, got {x.dtype}, {w_gate.dtype}, "
            f"{w_up.dtype}, {w_down.dtype}"
        )
    w_gate, w_up, w_down = w_gate.contiguous(), w_up.contiguous(), w_down.contiguous()
    indices, weights = indices.contiguous(), weights.contiguous()
    if x.shape[0] == 0 or indices.shape[1] == 0:
        return x.new_zeros(x.shape)  # as the reference: nothing routed, no graph
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, weights, w_gate, w_up, w_down)):
        return MoESwiGLUFunction.apply(x, indices, weights, w_gate, w_up, w_down)
    route = _route(indices, w_gate.shape[0], _tiles(x.dtype).block_m)
    return _forward(x, route, weights, w_gate, w_up, w_down, save=False)[0]


__all__ = ["MoESwiGLUFunction", "moe_swiglu_triton"]
