"""Reference LayerNorm and RMSNorm in plain PyTorch: the specification the Triton kernels are tested against.

Shapes: any leading dims, normalised over the last one. With M = the product of the leading dims
(the rows) and N the last dim: x [..., N] (viewed as [M, N]), weight [N], bias [N].
Statistics and the affine map run in fp32 whatever the input dtype; the output has the input's dtype,
so a bf16 model gets fp32-accurate normalisation and bf16 activations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_affine(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None) -> None:
    n = x.shape[-1]
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != (n,):
            raise ValueError(f"{name} must have shape ({n},) to match x's last dim, got {tuple(p.shape)}")


def layer_norm_reference(
    x: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None, eps: float = 1e-5
) -> torch.Tensor:
    """(x − mean) / sqrt(var + eps) · weight + bias over the last dim; var is the biased (1/N) variance."""
    _check_affine(x, weight, bias)
    w = None if weight is None else weight.float()
    b = None if bias is None else bias.float()
    # torch's own LayerNorm in fp32 is the spec: it is what nn.LayerNorm computes for fp32 models.
    return F.layer_norm(x.float(), (x.shape[-1],), w, b, eps).to(x.dtype)


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
    """x / sqrt(mean(x²) + eps) · weight over the last dim (Zhang & Sennrich 2019), no centring, no bias."""
    _check_affine(x, weight, None)
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + eps)  # [..., N]
    if weight is not None:
        y = y * weight.float()
    return y.to(x.dtype)
