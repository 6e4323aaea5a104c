"""Sparse mixture-of-experts feed-forward (Moirai-MoE, Liu et al. 2024, arXiv:2410.10469).

`MoEFeedForward` replaces a dense SwiGLU feed-forward: each token goes to its top-k of E SwiGLU experts
(`core.ops.moe.moe_swiglu`, Triton grouped GEMMs on CUDA) and the outputs are mixed with the softmax of the
k selected router logits. Two routers:
- "learned": logits = x W_r with W_r a bias-free Linear(D, E), trained with the model; a Switch-Transformer
  load-balancing loss is exposed as `aux_loss` for the training loop to add (scaled by its own coefficient).
- "centroid": Moirai-MoE's token-cluster gating. Fixed centroids [E, D] (a buffer, e.g. `kmeans` over the
  hidden states of a pretrained dense model at this layer, then `set_centroids`), logits = −‖x − c_e‖, so
  each token goes to its k *nearest* centroids and nearer ones weigh more. No learned routing parameters.
  Note: the released uni2ts inference code (`MoEFeedForward.forward`) takes `topk(cdist(x, centroids))`,
  i.e. the k *farthest* centroids, weighted by softmax(+distance) (uni2ts issue #211, acknowledged by the
  authors, unresolved); the paper describes clustering-based (nearest-centroid) assignment, which is what
  this module does. To mimic the released behaviour, override `router_logits` to return +distance. (Its
  experts also carry biases, which these do not, so its checkpoints do not load here as they are.)

Shapes: T tokens (all leading dims flattened), D d_model, F d_ff (per-expert hidden), E n_experts, k top_k.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from core.ops.moe import moe_swiglu, route_topk

ROUTERS = ("learned", "centroid")


class MoEFeedForward(nn.Module):
    """Top-k mixture of SwiGLU experts over the last dim: x [..., D] -> y [..., D].

    y = Σ_j w_j · W_down[e_j]ᵀ (silu(W_gate[e_j]ᵀ x) * W_up[e_j]ᵀ x), (e_j, w_j) = `route_topk(logits, k)`.
    Parameters: `w_gate`, `w_up` [E, D, F], `w_down` [E, F, D] (no biases), `router.weight` [E, D] for the
    learned router; buffer `centroids` [E, D] for the centroid router.
    After each forward: `aux_loss` (a scalar; differentiable for the learned router, 0 for the centroid one)
    and `last_counts` (int64 [E], assignments per expert in that batch, out of T·k).
    """

    centroids: torch.Tensor  # buffer [E, D], centroid router only

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        n_experts: int,
        top_k: int = 2,
        *,
        router: str = "learned",
        impl: str = "auto",
    ):
        super().__init__()
        if router not in ROUTERS:
            raise ValueError(f"router must be one of {ROUTERS}, got {router!r}")
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k={top_k} must be in [1, n_experts={n_experts}]")
        self.d_model, self.d_ff, self.n_experts, self.top_k = d_model, d_ff, n_experts, top_k
        self.router_kind = router
        self.impl = impl
        self.w_gate = nn.Parameter(torch.empty(n_experts, d_model, d_ff))
        self.w_up = nn.Parameter(torch.empty(n_experts, d_model, d_ff))
        self.w_down = nn.Parameter(torch.empty(n_experts, d_ff, d_model))
        if router == "learned":
            self.router: nn.Linear | None = nn.Linear(d_model, n_experts, bias=False)
        else:
            self.router = None
            self.register_buffer("centroids", torch.zeros(n_experts, d_model))
        self.aux_loss: torch.Tensor = torch.zeros(())
        self.last_counts: torch.Tensor = torch.zeros(n_experts, dtype=torch.int64)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Experts as nn.Linear initialises its weight: U(−1/√fan_in, 1/√fan_in) (kaiming-uniform, a=√5),
        fan_in = D for gate/up and F for down; the learned router as its own Linear."""
        for w, fan_in in ((self.w_gate, self.d_model), (self.w_up, self.d_model), (self.w_down, self.d_ff)):
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(w, -bound, bound)
        if self.router is not None:
            self.router.reset_parameters()

    @torch.no_grad()
    def set_centroids(self, centroids: torch.Tensor) -> None:
        """Set the centroid router's centroids [E, D] (copied into the buffer, keeping its device and dtype)."""
        if self.router_kind != "centroid":
            raise ValueError("set_centroids needs router='centroid'")
        if tuple(centroids.shape) != (self.n_experts, self.d_model):
            raise ValueError(
                f"centroids must be [E, D] = {(self.n_experts, self.d_model)}, got {tuple(centroids.shape)}"
            )
        self.centroids.copy_(centroids)

    def router_logits(self, x: torch.Tensor) -> torch.Tensor:
        """x [T, D] -> logits [T, E]: the learned Linear, or −‖x − c_e‖₂ (fp32) for the centroid router."""
        if self.router is not None:
            return self.router(x)
        # The direct (non-matmul) Euclidean kernel: exact at small distances, where the |x|² + |c|² − 2x·c
        # expansion cancels, so the nearest-centroid ranking is right.
        return -torch.cdist(x.float(), self.centroids.float(), compute_mode="donot_use_mm_for_euclid_dist")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., D] -> [..., D]
        if x.shape[-1] != self.d_model:
            raise ValueError(f"expected last dim {self.d_model}, got {tuple(x.shape)}")
        flat = x.reshape(-1, self.d_model)  # [T, D]
        logits = self.router_logits(flat)  # [T, E]
        indices, weights = route_topk(logits, self.top_k)  # [T, k] each
        counts = torch.zeros(self.n_experts, dtype=torch.int64, device=x.device)
        counts.scatter_add_(0, indices.reshape(-1), torch.ones_like(indices.reshape(-1)))
        self.last_counts = counts
        self.aux_loss = self._balance_loss(logits, counts)
        y = moe_swiglu(flat, indices, weights, self.w_gate, self.w_up, self.w_down, impl=self.impl)
        return y.reshape(x.shape)

    def _balance_loss(self, logits: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Switch Transformer's load-balancing loss (Fedus et al. 2021, eq. 4) for top-k routing:
        E · Σ_e f_e · P_e, f_e = counts_e / (T·k) the fraction of assignments routed to e (no gradient),
        P_e = mean over tokens of softmax(logits)_e over all E experts (differentiable). Equals 1 when P is
        uniform, whatever the routing; grows as probability mass and load concentrate on the same experts.
        0 (a constant) for the centroid router and for an empty batch."""
        if self.router is None or logits.shape[0] == 0:
            return torch.zeros((), device=logits.device)
        frac = counts.float() / counts.sum()  # f [E]
        prob = torch.softmax(logits.float(), dim=-1).mean(0)  # P [E]
        return self.n_experts * (frac * prob).sum()

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, d_ff={self.d_ff}, n_experts={self.n_experts}, top_k={self.top_k}, "
            f"router={self.router_kind!r}, impl={self.impl!r}"
        )


@torch.no_grad()
def kmeans(h: torch.Tensor, k: int, iters: int = 20, seed: int = 0) -> torch.Tensor:
    """Plain k-means (Lloyd) with k-means++ seeding: h [T, D] -> centroids [k, D] in h's dtype and device.

    For the centroid router: run a dense model over training data, collect this layer's hidden states h, and
    `MoEFeedForward.set_centroids(kmeans(h, E))`. Seeding (Arthur & Vassilvitskii 2007): the first centre is a
    uniformly drawn point, each next one a point drawn with probability ∝ its squared distance to the
    nearest centre so far; deterministic for a given `seed` (a torch.Generator on h's device). Lloyd steps
    stop early when no assignment changes; a cluster left empty takes the point farthest from its centre.
    Work is in fp32 with O(T·k) memory per step.
    """
    if h.dim() != 2:
        raise ValueError(f"kmeans expects h [T, D], got {tuple(h.shape)}")
    n = h.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"kmeans: k={k} must be in [1, T={n}]")
    pts = h.float()
    gen = torch.Generator(device=pts.device).manual_seed(seed)
    first = torch.randint(n, (1,), generator=gen, device=pts.device)
    centroids = pts[first]  # [1, D]
    closest = torch.cdist(pts, centroids).squeeze(1).square()  # [T] squared distance to the nearest centre
    for _ in range(1, k):
        total = closest.sum()
        if total > 0:
            nxt = torch.multinomial(closest / total, 1, generator=gen)
        else:  # every point sits on a centre already (duplicates): any point will do
            nxt = torch.randint(n, (1,), generator=gen, device=pts.device)
        centroids = torch.cat([centroids, pts[nxt]])
        closest = torch.minimum(closest, torch.cdist(pts, pts[nxt]).squeeze(1).square())

    assign = torch.full((n,), -1, dtype=torch.int64, device=pts.device)
    for _ in range(iters):
        dist = torch.cdist(pts, centroids)  # [T, k]
        new_assign = dist.argmin(1)
        if torch.equal(new_assign, assign):
            break
        assign = new_assign
        sums = torch.zeros_like(centroids).index_add_(0, assign, pts)
        sizes = torch.bincount(assign, minlength=k)
        empty = (sizes == 0).nonzero().flatten()
        centroids = torch.where(sizes[:, None] > 0, sums / sizes.clamp_min(1)[:, None], centroids)
        if empty.numel():
            own = dist.gather(1, assign[:, None]).squeeze(1)  # each point's distance to its own centre
            far = own.topk(empty.numel()).indices
            centroids[empty] = pts[far]
    return centroids.to(h.dtype)


__all__ = ["MoEFeedForward", "kmeans"]
