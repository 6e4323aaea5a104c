"""ProbSparse self-attention (Zhou et al., Informer, AAAI 2021) in plain PyTorch: the spec.

Shapes: B batch, H heads, Lq/Lk query/key length, D head dim, S = sampled keys per query,
u = selected ("active") queries per head.
  q [B, H, Lq, D], k [B, H, Lk, D], v [B, H, Lk, Dv]

The algorithm, as the official code (zhouhaoyi/Informer2020 `models/attn.py`) runs it:
1. `sample_keys`: S = min(c·⌈ln Lk⌉, Lk) key indices per query, uniformly with replacement,
   one draw shared by every batch element and head: `index [Lq, S]`.
2. `query_sparsity`: each query's sparsity measurement over its sampled dot products,
   M(q_i) = max_s q_i·k_{index[i,s]} − (Σ_s q_i·k_{index[i,s]}) / Lk  (divided by Lk, not S, as
   the official code does; the scale 1/√D is left out, a positive factor cannot change the ranking).
3. `select_queries`: the top u = min(c·⌈ln Lq⌉, Lq) queries by M, per batch element and head.
4. `sparse_attention`: those u queries attend to every key with a full softmax (scaled), and their
   outputs replace the "lazy" rows of the initial context, which is mean(V) over keys (encoder) or
   the cumulative sum of V along time (masked decoder self-attention, Lq == Lk; a selected query at
   position p then sees keys j <= p only).
Gradients flow through the selected queries' attention and through the lazy fill; the sampling and
the ranking are discrete and carry none.
"""

from __future__ import annotations

import math

import torch


def n_sampled(length: int, factor: int) -> int:
    """c·⌈ln L⌉ capped at L: sampled keys per query (for Lk) or selected queries (for Lq)."""
    if length < 1 or factor < 1:
        raise ValueError(f"length and factor must be >= 1, got {length}, {factor}")
    return min(factor * math.ceil(math.log(length)), length) if length > 1 else 1


def sample_keys(
    lq: int, lk: int, factor: int, *, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """`index [Lq, S]` (int64): S sampled key positions per query, with replacement."""
    s = n_sampled(lk, factor)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    index = torch.randint(lk, (lq, s), generator=generator, device=gen_device)
    return index.to(device)


def query_sparsity(q: torch.Tensor, k: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """M [B, H, Lq] (fp32): max minus Lk-normalised sum of each query's sampled dot products.

    Memory O(Lq · S · D) for the gathered keys, S ~ ln Lk; never the [Lq, Lk] score matrix.
    """
    b, h, lq, d = q.shape
    lk = k.shape[-2]
    with torch.no_grad():  # M only ranks queries: no gradient flows through it
        k_sample = k.float().index_select(2, index.reshape(-1)).view(b, h, lq, -1, d)  # [B, H, Lq, S, D]
        qk = torch.matmul(q.float().unsqueeze(-2), k_sample.transpose(-2, -1)).squeeze(-2)  # [B, H, Lq, S]
        return qk.max(dim=-1).values - qk.sum(dim=-1) / lk


def select_queries(m: torch.Tensor, u: int) -> torch.Tensor:
    """`top [B, H, u]` (int64): the u most "active" queries by the measurement M [B, H, Lq]."""
    return m.topk(u, dim=-1, sorted=False).indices


def lazy_context(v: torch.Tensor, lq: int, causal: bool) -> torch.Tensor:
    """The output of queries left out: mean(V) for every row, or cumsum(V) under the causal mask."""
    if causal:
        if lq != v.shape[-2]:
            raise ValueError(f"causal ProbSparse attention needs Lq == Lk, got {lq} and {v.shape[-2]}")
        return v.cumsum(dim=-2)
    return v.mean(dim=-2, keepdim=True).expand(*v.shape[:2], lq, v.shape[-1])


def sparse_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    top: torch.Tensor,
    *,
    causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    """Full softmax attention for the queries in `top [B, H, u]`, written over the lazy context."""
    b, h, lq, d = q.shape
    lk = k.shape[-2]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    rows = top.unsqueeze(-1)  # [B, H, u, 1]
    q_top = q.gather(2, rows.expand(b, h, top.shape[-1], d))  # [B, H, u, D]
    scores = torch.matmul(q_top.float(), k.float().transpose(-2, -1)) * scale  # [B, H, u, Lk]
    if causal:
        keys = torch.arange(lk, device=q.device)
        scores = scores.masked_fill(keys > rows, float("-inf"))
    out_top = torch.matmul(torch.softmax(scores, dim=-1), v.float()).to(v.dtype)  # [B, H, u, Dv]
    context = lazy_context(v, lq, causal)
    return context.scatter(2, rows.expand(b, h, top.shape[-1], v.shape[-1]), out_top)


def probsparse_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    factor: int = 5,
    causal: bool = False,
    index: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """ProbSparse attention `[B, H, Lq, Dv]`; `index [Lq, S]` fixes the key sample (else drawn)."""
    _check(q, k, v, causal)
    lq, lk = q.shape[-2], k.shape[-2]
    if index is None:
        index = sample_keys(lq, lk, factor, generator=generator, device=q.device)
    top = select_queries(query_sparsity(q, k, index), n_sampled(lq, factor))
    return sparse_attention_reference(q, k, v, top, causal=causal, scale=scale)


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"ProbSparse attention expects [B, H, L, D] tensors, got {tuple(q.shape)}")
    if q.shape[:2] != k.shape[:2] or k.shape[:3] != v.shape[:3] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"incompatible q/k/v shapes {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(f"causal ProbSparse attention needs Lq == Lk, got {q.shape[-2]} and {k.shape[-2]}")
