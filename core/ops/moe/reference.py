"""Reference mixture-of-experts SwiGLU in plain PyTorch: the specification every kernel is tested against.

Shapes: T tokens (leading dims flattened), D model dim, F expert hidden dim, E experts, k experts per token.
  x [T, D]; indices [T, k] int64 in [0, E); weights [T, k] (any float dtype)
  w_gate, w_up [E, D, F]; w_down [E, F, D]; y [T, D] in x's dtype

    y[t] = Σ_j weights[t, j] · ( (silu(x[t] @ w_gate[e]) * (x[t] @ w_up[e])) @ w_down[e] ),  e = indices[t, j]

The loop below runs one expert at a time over the tokens routed to it, as the released Moirai-MoE code
(uni2ts `MoEFeedForward`) does. Precision: the three GEMMs run in the input dtype (on CUDA, cuBLAS
accumulates 16-bit GEMMs in fp32), the SwiGLU (silu · up) and the weighted sum over the k experts run
in fp32, and y is cast back to x's dtype once. For fp32 inputs that is plain fp32 throughout; tests of
16-bit kernels compare against this reference run on fp32 copies of the inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def route_topk(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k routing: the k largest logits per token and their softmax-renormalised weights.

    logits [T, E] -> (indices [T, k] int64, weights [T, k] in logits' dtype).
    indices are sorted by decreasing logit. weights = softmax over the k *selected* logits only (computed in
    fp32), so each token's weights sum to 1 whatever k is; this is the Mixtral / Moirai-MoE convention, not
    the Switch / GShard one (softmax over all E logits, then top-k without renormalising).
    Gradients flow to logits through the weights; the selection itself is piecewise constant.
    """
    if logits.dim() != 2:
        raise ValueError(f"route_topk expects logits [T, E], got {tuple(logits.shape)}")
    if not 1 <= k <= logits.shape[-1]:
        raise ValueError(f"route_topk: k={k} must be in [1, E={logits.shape[-1]}]")
    top, indices = torch.topk(logits, k, dim=-1, largest=True, sorted=True)
    weights = torch.softmax(top.float(), dim=-1).to(logits.dtype)
    return indices, weights


def check_moe_args(
    x: torch.Tensor,
    indices: torch.Tensor,
    weights: torch.Tensor,
    w_gate: torch.Tensor,
    w_up: torch.Tensor,
    w_down: torch.Tensor,
) -> None:
    """Raise ValueError unless the arguments have the shapes of the legend above (values are not checked)."""
    if x.dim() != 2:
        raise ValueError(f"moe_swiglu expects x [T, D], got {tuple(x.shape)}")
    if w_gate.dim() != 3 or w_up.shape != w_gate.shape:
        raise ValueError(f"w_gate and w_up must both be [E, D, F], got {tuple(w_gate.shape)}, {tuple(w_up.shape)}")
    n_exp, d, f = w_gate.shape
    if w_down.shape != (n_exp, f, d):
        raise ValueError(f"w_down must be [E, F, D] = {(n_exp, f, d)}, got {tuple(w_down.shape)}")
    if x.shape[1] != d:
        raise ValueError(f"x has D={x.shape[1]} but the experts take D={d}")
    if indices.dim() != 2 or indices.shape[0] != x.shape[0] or weights.shape != indices.shape:
        raise ValueError(
            f"indices and weights must both be [T, k] with T={x.shape[0]}, got {tuple(indices.shape)}, "
            f"{tuple(weights.shape)}"
        )
    if indices.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"indices must be int64 or int32, got {indices.dtype}")
    if not weights.is_floating_point():
        raise ValueError(f"weights must be floating point, got {weights.dtype}")


def moe_swiglu_reference(
    x: torch.Tensor,
    indices: torch.Tensor,
    weights: torch.Tensor,
    w_gate: torch.Tensor,
    w_up: torch.Tensor,
    w_down: torch.Tensor,
) -> torch.Tensor:
    """y [T, D] = Σ_j weights[t, j] · SwiGLU-expert_{indices[t, j]}(x[t]); a loop over experts (see module doc).

    Differentiable w.r.t. x, weights, w_gate, w_up and w_down through autograd. An expert that receives no
    token is skipped (its weights get zero gradient). A token listing the same expert twice gets it twice.
    """
    check_moe_args(x, indices, weights, w_gate, w_up, w_down)
    y = torch.zeros(x.shape, device=x.device, dtype=torch.float32)  # [T, D] fp32 accumulator
    # unbind, not w[e]: one view per expert whose backward stacks the E gradients once, where E separate
    # w[e] selects would each scatter into a zero [E, D, F] gradient (O(E²·D·F) work in the backward).
    experts = zip(w_gate.unbind(0), w_up.unbind(0), w_down.unbind(0), strict=True)
    for e, (wg, wu, wd) in enumerate(experts):
        tok, slot = (indices == e).nonzero(as_tuple=True)  # the assignments routed to expert e
        if tok.numel() == 0:
            continue
        xe = x[tok]  # [n_e, D]
        hidden = F.silu((xe @ wg).float()) * (xe @ wu).float()  # [n_e, F] fp32
        out = hidden.to(wd.dtype) @ wd  # [n_e, D]
        # index_put_(accumulate) rather than index_add_: on CPU with several threads index_add_ runs a
        # parallel scatter that measured ~100x slower here; a token listing expert e twice adds twice.
        y.index_put_((tok,), weights[tok, slot].float()[:, None] * out.float(), accumulate=True)
    return y.to(x.dtype)


__all__ = ["check_moe_args", "moe_swiglu_reference", "route_topk"]
