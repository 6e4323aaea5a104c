"""Fused LayerNorm and RMSNorm forward and backward kernels in Triton.

Shapes: the input is viewed as X [M, N] (M rows = product of the leading dims, N = normalised dim);
W, B [N]; the forward saves Mean, Rstd [M] (fp32) for the backward. DW/DB partials are [P, N] with
P row blocks.

Layout (after Liger-Kernel's `layer_norm.py`/`rms_norm.py` and the Triton tutorial 05):
- forward: one program per row, the whole row in one block (BLOCK_N = next power of two ≥ N, the
  tail masked), statistics in fp32. The variance is two-pass (centre, then square) so rows with a
  large offset (1e4 + small noise) do not cancel catastrophically as E[x²] − E[x]² would.
- backward: P programs, each walking a contiguous block of rows. dx is per row; dW/dB are
  accumulated in fp32 registers across the block and written as one [N] partial per program, then
  summed on the host. That keeps the reduction deterministic (no atomics) and P × N small.
Loads are cast to fp32 and stores back to the tensor's dtype, so fp16/bf16 accumulate in fp32. Every
launch goes through `core.ops.triton_utils.launch` (the convention all ops share; an empty input launches
nothing).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from core.ops.triton_utils import launch, unit_stride_last

# One row must fit a block; past this a row-split kernel would be needed (no Seer model is near it).
MAX_FUSED_N = 65536


@triton.jit
def _layer_norm_fwd_kernel(
    X,  # [M, N] input
    Y,  # [M, N] output
    W,  # [N] weight (unused without HAS_WEIGHT)
    B,  # [N] bias (unused without HAS_BIAS)
    Mean,  # [M] fp32, saved for the backward
    Rstd,  # [M] fp32, 1 / sqrt(var + eps)
    stride_x,
    stride_y,
    N,
    eps,
    HAS_WEIGHT: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)  # int64 offsets: M·N can pass 2³¹ for large activations
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    x = tl.load(X + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=0) / N
    xc = tl.where(mask, x - mean, 0.0)  # the masked tail must not count in the variance
    var = tl.sum(xc * xc, axis=0) / N
    rstd = 1.0 / tl.sqrt(var + eps)
    y = xc * rstd
    if HAS_WEIGHT:
        y = y * tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        y = y + tl.load(B + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(Y + row * stride_y + cols, y.to(Y.dtype.element_ty), mask=mask)
    tl.store(Mean + row, mean)
    tl.store(Rstd + row, rstd)


@triton.jit
def _layer_norm_bwd_kernel(
    X,  # [M, N] forward input
    DY,  # [M, N] upstream gradient
    DX,  # [M, N] output: input gradient
    W,  # [N]
    Mean,  # [M] fp32
    Rstd,  # [M] fp32
    DW,  # [P, N] fp32 partial weight gradients, one row per program
    DB,  # [P, N] fp32 partial bias gradients
    stride_x,
    stride_dy,
    stride_dx,
    M,
    N,
    rows_per_program,
    HAS_WEIGHT: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    pid = tl.program_id(0)
    row_start = pid * rows_per_program
    row_end = tl.minimum(row_start + rows_per_program, M)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    if HAS_WEIGHT:
        w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    dw = tl.zeros([BLOCK_N], dtype=tl.float32)
    db = tl.zeros([BLOCK_N], dtype=tl.float32)
    for i in range(0, row_end - row_start):
        row64 = row_start.to(tl.int64) + i  # int64 offsets, as in the forward
        x = tl.load(X + row64 * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + row64 * stride_dy + cols, mask=mask, other=0.0).to(tl.float32)
        mean = tl.load(Mean + row64)
        rstd = tl.load(Rstd + row64)
        xhat = tl.where(mask, (x - mean) * rstd, 0.0)
        wdy = dy * w if HAS_WEIGHT else dy  # constexpr condition: only the taken side is compiled
        # dx = rstd · (wdy − mean(wdy) − xhat · mean(wdy · xhat)): the gradient through mean and var.
        c1 = tl.sum(xhat * wdy, axis=0) / N
        c2 = tl.sum(wdy, axis=0) / N
        dx = (wdy - (xhat * c1 + c2)) * rstd
        tl.store(DX + row64 * stride_dx + cols, dx.to(DX.dtype.element_ty), mask=mask)
        if HAS_WEIGHT:
            dw += dy * xhat
        if HAS_BIAS:
            db += dy
    if HAS_WEIGHT:
        tl.store(DW + pid * N + cols, dw, mask=mask)
    if HAS_BIAS:
        tl.store(DB + pid * N + cols, db, mask=mask)


@triton.jit
def _rms_norm_fwd_kernel(
    X,  # [M, N]
    Y,  # [M, N]
    W,  # [N]
    Rstd,  # [M] fp32, 1 / sqrt(mean(x²) + eps)
    stride_x,
    stride_y,
    N,
    eps,
    HAS_WEIGHT: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    x = tl.load(X + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / N + eps)
    y = x * rstd
    if HAS_WEIGHT:
        y = y * tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(Y + row * stride_y + cols, y.to(Y.dtype.element_ty), mask=mask)
    tl.store(Rstd + row, rstd)


@triton.jit
def _rms_norm_bwd_kernel(
    X,  # [M, N]
    DY,  # [M, N]
    DX,  # [M, N]
    W,  # [N]
    Rstd,  # [M] fp32
    DW,  # [P, N] fp32 partials
    stride_x,
    stride_dy,
    stride_dx,
    M,
    N,
    rows_per_program,
    HAS_WEIGHT: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    pid = tl.program_id(0)
    row_start = pid * rows_per_program
    row_end = tl.minimum(row_start + rows_per_program, M)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    if HAS_WEIGHT:
        w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    dw = tl.zeros([BLOCK_N], dtype=tl.float32)
    for i in range(0, row_end - row_start):
        row64 = row_start.to(tl.int64) + i  # int64 offsets, as in the forward
        x = tl.load(X + row64 * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + row64 * stride_dy + cols, mask=mask, other=0.0).to(tl.float32)
        rstd = tl.load(Rstd + row64)
        xhat = x * rstd  # the masked tail is 0 already (x loads as 0)
        wdy = dy * w if HAS_WEIGHT else dy  # constexpr condition: only the taken side is compiled
        # dx = rstd · (wdy − xhat · mean(wdy · xhat)): no mean term, RMSNorm does not centre.
        c = tl.sum(xhat * wdy, axis=0) / N
        dx = (wdy - xhat * c) * rstd
        tl.store(DX + row64 * stride_dx + cols, dx.to(DX.dtype.element_ty), mask=mask)
        if HAS_WEIGHT:
            dw += dy * xhat
    if HAS_WEIGHT:
        tl.store(DW + pid * N + cols, dw, mask=mask)


def _block_settings(n: int) -> tuple[int, int]:
    """(BLOCK_N, num_warps) for a row of n elements: wider rows get more warps (Liger's `calculate_settings`)."""
    if n > MAX_FUSED_N:
        raise ValueError(f"the fused norm kernels hold one row in a block; N={n} exceeds {MAX_FUSED_N}")
    block = triton.next_power_of_2(n)
    num_warps = 4
    if block >= 32768:
        num_warps = 32
    elif block >= 8192:
        num_warps = 16
    elif block >= 2048:
        num_warps = 8
    return block, num_warps


def _row_blocks(m: int, device: torch.device) -> tuple[int, int]:
    """(programs, rows_per_program) for the backward: a few programs per SM on CUDA, 4 under the interpreter.

    Under the interpreter 4 blocks still exercise the per-block partials and the uneven last block.
    """
    target = 4 * torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 4
    rows_per_program = max(1, triton.cdiv(m, max(1, min(target, m))))  # m = 0: no programs, not a 0 division
    return triton.cdiv(m, rows_per_program), rows_per_program


def _as_rows(t: torch.Tensor) -> torch.Tensor:
    """[..., N] -> [M, N] with unit stride along N (a copy only when the input needs one)."""
    return unit_stride_last(t.reshape(-1, t.shape[-1]))


def _check(x: torch.Tensor, *params: torch.Tensor | None) -> None:
    n = x.shape[-1]
    for p in params:
        if p is not None and (tuple(p.shape) != (n,) or p.device != x.device):
            raise ValueError(f"norm parameters must be ({n},) on {x.device}, got {tuple(p.shape)} on {p.device}")


def _sum_partials(partials: torch.Tensor, param: torch.Tensor | None, needed: bool) -> torch.Tensor | None:
    """dW or dB: the [P, N] fp32 per-row-block partials summed over blocks, in the parameter's dtype."""
    return partials.sum(dim=0).to(param.dtype) if needed and param is not None else None


def _partials(programs: int, n: int, param: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """A zeroed [P, N] fp32 buffer for one parameter's partials; a 1-element dummy pointer when it is absent."""
    return torch.zeros((programs, n) if param is not None else (1,), dtype=torch.float32, device=like.device)


class LayerNormFunction(torch.autograd.Function):
    """Saves the input rows and the fp32 mean/rstd [M]; the backward recomputes x̂ rather than keeping y."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        _check(x, weight, bias)
        x2 = _as_rows(x)  # [M, N]
        m, n = x2.shape
        block, num_warps = _block_settings(n)
        y = torch.empty((m, n), dtype=x.dtype, device=x.device)
        mean = torch.empty(m, dtype=torch.float32, device=x.device)
        rstd = torch.empty(m, dtype=torch.float32, device=x.device)
        # A missing weight/bias is passed as a placeholder pointer (x2); HAS_* keeps it unread.
        launch(_layer_norm_fwd_kernel, (m,),
            x2, y, x2 if weight is None else weight, x2 if bias is None else bias, mean, rstd,
            x2.stride(0), y.stride(0), n, eps,
            HAS_WEIGHT=weight is not None, HAS_BIAS=bias is not None, BLOCK_N=block, num_warps=num_warps,
        )  # fmt: skip
        ctx.save_for_backward(x2, weight, bias, mean, rstd)
        return y.view(x.shape)

    @staticmethod
    def backward(ctx, dy):
        x2, weight, bias, mean, rstd = ctx.saved_tensors
        m, n = x2.shape
        dy2 = _as_rows(dy)  # [M, N]
        block, num_warps = _block_settings(n)
        programs, rows_per_program = _row_blocks(m, x2.device)
        dx = torch.empty((m, n), dtype=x2.dtype, device=x2.device)
        dw, db = _partials(programs, n, weight, x2), _partials(programs, n, bias, x2)  # [P, N] fp32 each
        launch(_layer_norm_bwd_kernel, (programs,),
            x2, dy2, dx, x2 if weight is None else weight, mean, rstd, dw, db,
            x2.stride(0), dy2.stride(0), dx.stride(0), m, n, rows_per_program,
            HAS_WEIGHT=weight is not None, HAS_BIAS=bias is not None, BLOCK_N=block, num_warps=num_warps,
        )  # fmt: skip
        needs = ctx.needs_input_grad
        return dx.view(dy.shape), _sum_partials(dw, weight, needs[1]), _sum_partials(db, bias, needs[2]), None


class RMSNormFunction(torch.autograd.Function):
    """Saves the input rows and the fp32 rstd [M]; the backward recomputes x̂ = x · rstd."""

    @staticmethod
    def forward(ctx, x, weight, eps):
        _check(x, weight)
        x2 = _as_rows(x)  # [M, N]
        m, n = x2.shape
        block, num_warps = _block_settings(n)
        y = torch.empty((m, n), dtype=x.dtype, device=x.device)
        rstd = torch.empty(m, dtype=torch.float32, device=x.device)
        launch(_rms_norm_fwd_kernel, (m,),
            x2, y, x2 if weight is None else weight, rstd, x2.stride(0), y.stride(0), n, eps,
            HAS_WEIGHT=weight is not None, BLOCK_N=block, num_warps=num_warps,
        )  # fmt: skip
        ctx.save_for_backward(x2, weight, rstd)
        return y.view(x.shape)

    @staticmethod
    def backward(ctx, dy):
        x2, weight, rstd = ctx.saved_tensors
        m, n = x2.shape
        dy2 = _as_rows(dy)  # [M, N]
        block, num_warps = _block_settings(n)
        programs, rows_per_program = _row_blocks(m, x2.device)
        dx = torch.empty((m, n), dtype=x2.dtype, device=x2.device)
        dw = _partials(programs, n, weight, x2)  # [P, N] fp32
        launch(_rms_norm_bwd_kernel, (programs,),
            x2, dy2, dx, x2 if weight is None else weight, rstd, dw,
            x2.stride(0), dy2.stride(0), dx.stride(0), m, n, rows_per_program,
            HAS_WEIGHT=weight is not None, BLOCK_N=block, num_warps=num_warps,
        )  # fmt: skip
        return dx.view(dy.shape), _sum_partials(dw, weight, ctx.needs_input_grad[1]), None


def layer_norm_triton(
    x: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None, eps: float = 1e-5
) -> torch.Tensor:
    """LayerNorm of x [..., N] through the fused kernels (reached via `core.ops.norm.layer_norm`)."""
    return LayerNormFunction.apply(x, weight, bias, eps)


def rms_norm_triton(x: torch.Tensor, weight: torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
    """RMSNorm of x [..., N] through the fused kernels (reached via `core.ops.norm.rms_norm`)."""
    return RMSNormFunction.apply(x, weight, eps)
