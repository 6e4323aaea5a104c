"""Rotary position embedding on part of each head, forward and backward, in Triton.

Shapes: B batch, H heads, L tokens, D head dim, R = 2·HALF rotated dims.
  X, Y [B, H, L, D] (any strides with unit stride along D); POS [L] or [B, L] (int);
  INV_FREQ [HALF] fp32 (the reference's table, so both sides build θ from the same numbers).

One program per (b, l) token and block of BLOCK_H heads: θ = pos · inv_freq and its cos/sin are
computed once in registers and shared by every head of the token, so no [L, R/2] cos/sin table is
read from memory (Liger-Kernel's `rope.py` reads one). The pass-through dims R..D are copied by the
same program, so the output is written once. The backward is the same rotation by −θ (a rotation's
transpose is its inverse), applied to dY. Launches go through `core.ops.triton_utils.launch` (the
convention all ops share); `_rope_rotate_tile` is a @triton.jit helper, so this module is imported lazily
(by `core.ops.rope` on the first kernel call) and gets the interpreter mode in force then.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from core.ops.rope.reference import check_rope_inputs, rope_inv_freq, rope_rotary_dims
from core.ops.triton_utils import launch, unit_stride_last


@triton.jit
def _rope_rotate_tile(
    X,  # [B, H, L, D] input (x forward, dY backward)
    Y,  # [B, H, L, D] output (y forward, dX backward), contiguous
    POS,  # [L] or [B, L] integer positions
    INV_FREQ,  # [HALF] fp32
    stride_xb,
    stride_xh,
    stride_xl,  # X's D stride is 1 (checked by the launcher)
    stride_yb,
    stride_yh,
    stride_yl,
    stride_pb,  # 0 for [L] positions shared by the batch
    stride_pl,
    H,
    L,
    D,
    HALF,  # R / 2: pairs (i, i + HALF) for i < HALF
    SIGN: tl.constexpr,  # +1 rotates by θ (forward), −1 by −θ (backward)
    BLOCK_H: tl.constexpr,
    BLOCK_HALF: tl.constexpr,
    BLOCK_PASS: tl.constexpr,  # 0 when every dim rotates
):
    pid_bl = tl.program_id(0)
    pid_h = tl.program_id(1)
    b = (pid_bl // L).to(tl.int64)
    l = (pid_bl % L).to(tl.int64)

    i = tl.arange(0, BLOCK_HALF)
    i_mask = i < HALF
    pos = tl.load(POS + b * stride_pb + l * stride_pl).to(tl.float32)
    theta = pos * tl.load(INV_FREQ + i, mask=i_mask, other=0.0)  # [BLOCK_HALF], fp32 as in the reference
    cos = tl.cos(theta)[None, :]
    sin = (tl.sin(theta) * SIGN)[None, :]

    h = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
    h_mask = (h < H)[:, None]
    x_row = X + b * stride_xb + l * stride_xl + h.to(tl.int64)[:, None] * stride_xh  # [BLOCK_H, 1] pointers
    y_row = Y + b * stride_yb + l * stride_yl + h.to(tl.int64)[:, None] * stride_yh
    mask = h_mask & i_mask[None, :]  # [BLOCK_H, BLOCK_HALF]
    x1 = tl.load(x_row + i[None, :], mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(x_row + HALF + i[None, :], mask=mask, other=0.0).to(tl.float32)
    tl.store(y_row + i[None, :], (x1 * cos - x2 * sin).to(Y.dtype.element_ty), mask=mask)
    tl.store(y_row + HALF + i[None, :], (x2 * cos + x1 * sin).to(Y.dtype.element_ty), mask=mask)

    if BLOCK_PASS > 0:
        j = 2 * HALF + tl.arange(0, BLOCK_PASS)
        pass_mask = h_mask & (j < D)[None, :]  # [BLOCK_H, BLOCK_PASS]
        tl.store(y_row + j[None, :], tl.load(x_row + j[None, :], mask=pass_mask), mask=pass_mask)


# The two entry points differ only in SIGN; both keep the Names rule's `_<op>_fwd_kernel`/`_<op>_bwd_kernel`.
@triton.jit
def _rope_fwd_kernel(
    X,
    Y,
    POS,
    INV_FREQ,
    stride_xb,
    stride_xh,
    stride_xl,
    stride_yb,
    stride_yh,
    stride_yl,
    stride_pb,
    stride_pl,
    H,
    L,
    D,
    HALF,
    BLOCK_H: tl.constexpr,
    BLOCK_HALF: tl.constexpr,
    BLOCK_PASS: tl.constexpr,
):
    _rope_rotate_tile(
        X, Y, POS, INV_FREQ, stride_xb, stride_xh, stride_xl, stride_yb, stride_yh, stride_yl, stride_pb, stride_pl,
        H, L, D, HALF, 1.0, BLOCK_H, BLOCK_HALF, BLOCK_PASS,
    )  # fmt: skip


@triton.jit
def _rope_bwd_kernel(
    DY,
    DX,
    POS,
    INV_FREQ,
    stride_dyb,
    stride_dyh,
    stride_dyl,
    stride_dxb,
    stride_dxh,
    stride_dxl,
    stride_pb,
    stride_pl,
    H,
    L,
    D,
    HALF,
    BLOCK_H: tl.constexpr,
    BLOCK_HALF: tl.constexpr,
    BLOCK_PASS: tl.constexpr,
):
    _rope_rotate_tile(
        DY, DX, POS, INV_FREQ, stride_dyb, stride_dyh, stride_dyl, stride_dxb, stride_dxh, stride_dxl, stride_pb,
        stride_pl, H, L, D, HALF, -1.0, BLOCK_H, BLOCK_HALF, BLOCK_PASS,
    )  # fmt: skip


def _rotate(kernel, src: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """Run one rotation kernel over src [B, H, L, D]; returns a contiguous [B, H, L, D] result."""
    # Any head/token strides are fine (q/k are usually [B, L, H, D] transposed views); only D must be unit-stride.
    src = unit_stride_last(src)
    b, h, l, d = src.shape
    half = inv_freq.numel()
    out = torch.empty((b, h, l, d), dtype=src.dtype, device=src.device)
    if out.numel() == 0:  # before the tile sizes below, which divide by the head count
        return out
    stride_pb, stride_pl = (0, positions.stride(0)) if positions.dim() == 1 else positions.stride()
    block_half = triton.next_power_of_2(half)
    block_pass = triton.next_power_of_2(d - 2 * half) if d > 2 * half else 0
    # Up to 16 heads per program: enough work per token to amortise cos/sin, few enough to keep a
    # [BLOCK_H, BLOCK_HALF] tile in registers for head dims up to 256.
    block_h = min(triton.next_power_of_2(h), 16)
    grid = (b * l, triton.cdiv(h, block_h))
    # Positions [L] are shared by the batch: a zero batch stride reads the same row for every b.
    launch(kernel, grid,
        src, out, positions, inv_freq,
        src.stride(0), src.stride(1), src.stride(2), out.stride(0), out.stride(1), out.stride(2),
        stride_pb, stride_pl, h, l, d, half,
        BLOCK_H=block_h, BLOCK_HALF=block_half, BLOCK_PASS=block_pass,
    )  # fmt: skip
    return out


class RopeFunction(torch.autograd.Function):
    """Saves only positions and inv_freq: the backward rotates dY by −θ, so x itself is not kept."""

    @staticmethod
    def forward(ctx, x, positions, inv_freq):
        ctx.save_for_backward(positions, inv_freq)
        return _rotate(_rope_fwd_kernel, x, positions, inv_freq)

    @staticmethod
    def backward(ctx, dy):
        positions, inv_freq = ctx.saved_tensors
        return _rotate(_rope_bwd_kernel, dy, positions, inv_freq), None, None


def rope_triton(
    x: torch.Tensor, positions: torch.Tensor, *, fraction: float = 1.0, base: float = 10000.0
) -> torch.Tensor:
    """RoPE on x [B, H, L, D] through the kernels (reached via `core.ops.rope.apply_rope`); same checks as the spec."""
    check_rope_inputs(x, positions)
    rot = rope_rotary_dims(x.shape[-1], fraction)
    if rot == 0:
        return x
    positions = positions.to(x.device)
    return RopeFunction.apply(x, positions, rope_inv_freq(rot, base, x.device))
