"""Moirai-MoE (Liu et al. 2024, arXiv:2410.10469), on Moirai's any-variate patched transformer (Woo et
al. ICML 2024). Official inference code: SalesforceAIResearch/uni2ts `src/uni2ts/model/moirai_moe/`.

Pipeline for a window x [B, L, N] (NaN = missing):
1. Instance scaling per series from its observed context (`instance_scale`); missing values become 0
   and travel with an observed mask.
2. Patching and any-variate flattening (`patchify`): each variate's context is left-padded (unobserved)
   to a multiple of P and cut into C non-overlapping patches; all variates' patches form one token
   sequence, *time-major* (token c·N + v is patch c of variate v), with `variate_id` and `time_id`.
3. Input projection Linear(2P → D) of [patch values, observed mask].
4. A decoder-only transformer of pre-RMSNorm blocks: attention with QK-norm, RoPE on the first half of
   each head's dims by `time_id`, Moirai's learned binary attention bias per head (same / different
   variate) and causality over time (token (v, p) sees (v', p') iff p' <= p), all in one additive bias;
   then a top-k mixture of SwiGLU experts (`core.nn.MoEFeedForward`) or, with `dense=True`, a dense
   SwiGLU; a final RMSNorm.
5. The mixture head (`distribution.py`): the token of patch p gives, for each of the P values of patch
   p + 1 of its variate, a Student-t / Normal(σ₀) / negative-binomial / log-normal mixture.

Forecasting decodes patch by patch: the context is encoded once into a KV cache; each step embeds one new
patch per variate (a sample, or the mixture mean for the point forecast) and runs only those N tokens
through the layers. Sample paths are batch rows (the context cache is repeated S times).

Legend: B batch, L history steps, H horizon, N variates, P patch size, C = ⌈L/P⌉ context patches,
Hp = ⌈H/P⌉ horizon patches, T tokens (= patches·N), D d_model, h heads, E = D/h head dim,
S sample paths, Q quantile levels, X experts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from core.nn import MoEFeedForward, RMSNorm
from core.nn.moe import kmeans
from core.ops.attention import attention
from core.ops.rope import apply_rope
from forecasters.moirai_moe.config import MoiraiMoEConfig
from forecasters.moirai_moe.distribution import MixtureHead, PatchMixture

# Patching and scaling: pure functions.


def instance_scale(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-series statistics of the observed (non-NaN) context: x [B, L, N] -> (loc, scale) [B, 1, N].

    loc = mean of the observed values, scale = sqrt(var + eps) with the unbiased variance (Bessel's
    correction; 0 for a single observation), as uni2ts' `PackedStdScaler` (minimum_scale 1e-5). The
    statistics carry no gradient. Raises ValueError when a series has no observed value at all.
    """
    loc, scale, count = _observed_stats(x, eps)
    if bool((count == 0).any()):
        b, _, v = (count == 0).nonzero()[0].tolist()
        raise ValueError(f"history is all missing for variate {v} (batch row {b})")
    return loc, scale


def _observed_stats(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`instance_scale`'s (loc, scale) and the observed count, all [B, 1, N]; loc is 0 where count is 0."""
    observed = ~torch.isnan(x)
    count = observed.sum(dim=1, keepdim=True)  # [B, 1, N]
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    loc = torch.where(observed, x, zero).sum(dim=1, keepdim=True) / count.clamp_min(1)
    sq = torch.where(observed, x - loc, zero).square().sum(dim=1, keepdim=True)
    var = sq / (count - 1).clamp_min(1)
    return loc.detach(), torch.sqrt(var + eps).detach(), count


def token_ids(
    n_patches: int, n_variates: int, start: int = 0, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(variate_id, time_id), both int64 [n_patches·N], of a time-major token block whose first patch
    index is `start`: token i is patch start + i // N of variate i % N."""
    variate_id = torch.arange(n_variates, device=device).repeat(n_patches)
    time_id = torch.arange(start, start + n_patches, device=device).repeat_interleave(n_variates)
    return variate_id, time_id


def patchify(x: torch.Tensor, patch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Any-variate flattening: x [B, L, N] -> (patches [B, C·N, P], variate_id [C·N], time_id [C·N]).

    L is left-padded with NaN (unobserved) to C·P, C = ⌈L/P⌉; token c·N + v holds steps
    [c·P, (c+1)·P) of the padded series of variate v. Values are copied as they are (NaN stays NaN);
    `unpatchify` inverts it exactly.
    """
    if x.dim() != 3:
        raise ValueError(f"patchify expects x [B, L, N], got {tuple(x.shape)}")
    b, length, n = x.shape
    pad = -length % patch_size
    if pad:
        x = F.pad(x, (0, 0, pad, 0), value=float("nan"))
    c = (length + pad) // patch_size
    patches = x.reshape(b, c, patch_size, n).transpose(2, 3).reshape(b, c * n, patch_size)
    variate_id, time_id = token_ids(c, n, device=x.device)
    return patches, variate_id, time_id


def unpatchify(patches: torch.Tensor, n_variates: int, length: int) -> torch.Tensor:
    """Inverse of `patchify`: patches [B, C·N, P] (time-major) -> x [B, length, N], the last `length`
    steps (left padding dropped)."""
    b, t, p = patches.shape
    if t % n_variates:
        raise ValueError(f"{t} tokens do not split into {n_variates} variates")
    c = t // n_variates
    if not 0 <= length <= c * p:
        raise ValueError(f"length {length} is not within the {c * p} patched steps")
    x = patches.reshape(b, c, n_variates, p).transpose(2, 3).reshape(b, c * p, n_variates)
    return x[:, c * p - length :]


# The transformer.


@dataclass
class KVCache:
    """Keys and values of every token encoded so far, per layer, with those tokens' ids.

    layers[i] = (k, v), each [B, h, T, E] (keys after QK-norm and RoPE); variate_id, time_id [T]."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]
    variate_id: torch.Tensor
    time_id: torch.Tensor

    def __len__(self) -> int:
        return int(self.time_id.numel())

    def repeat_interleave(self, repeats: int) -> KVCache:
        """Each batch row repeated `repeats` times in place (row b·S + s = row b): one per sample path."""
        return KVCache(
            layers=[(k.repeat_interleave(repeats, 0), v.repeat_interleave(repeats, 0)) for k, v in self.layers],
            variate_id=self.variate_id,
            time_id=self.time_id,
        )


class SwiGLU(nn.Module):
    """Dense gated feed-forward W_down(silu(W_gate x) · W_up x), no biases (as uni2ts): [..., D] -> [..., D]."""

    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.w_gate = nn.Linear(d_model, d_ff, bias=False)
        self.w_up = nn.Linear(d_model, d_ff, bias=False)
        self.w_down = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))


class AnyVariateAttention(nn.Module):
    """Multi-head self-attention over flattened (variate, patch) tokens.

    q, k get a per-head RMSNorm (QK-norm), then RoPE by `time_id` on the first `rope_fraction` of each
    head's dims. The additive bias is Moirai's binary attention bias — `var_bias[1, j]` for a
    same-variate pair, `var_bias[0, j]` otherwise, for head j — with −∞ where the key's patch index is
    later than the query's. No projection biases (uni2ts `bias=False`)."""

    def __init__(self, config: MoiraiMoEConfig):
        super().__init__()
        c = config
        self.n_heads, self.head_dim = c.n_heads, c.head_dim
        self.rope_fraction, self.rope_base = c.rope_fraction, c.rope_base
        self.impl = c.attn_impl
        self.q_proj = nn.Linear(c.d_model, c.d_model, bias=False)
        self.k_proj = nn.Linear(c.d_model, c.d_model, bias=False)
        self.v_proj = nn.Linear(c.d_model, c.d_model, bias=False)
        self.out_proj = nn.Linear(c.d_model, c.d_model, bias=False)
        self.q_norm = RMSNorm(c.head_dim)
        self.k_norm = RMSNorm(c.head_dim)
        # [2, h]: row 0 = different variate, row 1 = same variate (uni2ts BinaryAttentionBias: Embedding(2, h)).
        self.var_bias = nn.Parameter(torch.randn(2, c.n_heads))

    def attn_bias(
        self, q_variate: torch.Tensor, q_time: torch.Tensor, k_variate: torch.Tensor, k_time: torch.Tensor
    ) -> torch.Tensor:
        """Ids [Lq] (queries) and [Lk] (keys) -> additive bias [1, h, Lq, Lk] (binary bias, −∞ for future keys)."""
        same = q_variate[:, None] == k_variate[None, :]  # [Lq, Lk]
        w = self.var_bias[:, :, None, None]  # [2, h, 1, 1]
        bias = torch.where(same, w[1], w[0])  # [h, Lq, Lk]
        future = k_time[None, :] > q_time[:, None]
        return bias.masked_fill(future, float("-inf")).unsqueeze(0)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # [B, L, D] -> [B, h, L, E]
        b, l, _ = x.shape
        return x.view(b, l, self.n_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,  # [B, Lq, D]
        variate_id: torch.Tensor,  # [Lq]
        time_id: torch.Tensor,  # [Lq]
        key_variate_id: torch.Tensor,  # [Lk]: past keys then these Lq tokens
        key_time_id: torch.Tensor,  # [Lk]
        past: tuple[torch.Tensor, torch.Tensor] | None = None,  # cached (k, v) [B, h, Lk − Lq, E]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """-> (output [B, Lq, D], (k, v) [B, h, Lk, E] to cache)."""
        q = self.q_norm(self._heads(self.q_proj(x)))
        k = self.k_norm(self._heads(self.k_proj(x)))
        v = self._heads(self.v_proj(x))
        q = apply_rope(q, time_id, fraction=self.rope_fraction, base=self.rope_base)
        k = apply_rope(k, time_id, fraction=self.rope_fraction, base=self.rope_base)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        bias = self.attn_bias(variate_id, time_id, key_variate_id, key_time_id).to(q.dtype)
        out = attention(q, k, v, bias=bias, impl=self.impl)  # [B, h, Lq, E]
        b, _, lq, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, lq, -1)), (k, v)


class MoiraiMoEBlock(nn.Module):
    """Pre-norm block: x + Attn(RMSNorm x), then x + FFN(RMSNorm x); FFN = MoE (or dense SwiGLU)."""

    def __init__(self, config: MoiraiMoEConfig):
        super().__init__()
        c = config
        self.norm1 = RMSNorm(c.d_model)
        self.attn = AnyVariateAttention(c)
        self.norm2 = RMSNorm(c.d_model)
        self.ffn: nn.Module
        if c.dense:
            self.ffn = SwiGLU(c.d_model, c.dense_width)
        else:
            self.ffn = MoEFeedForward(c.d_model, c.d_expert, c.n_experts, c.top_k, router=c.router, impl=c.moe_impl)
        self.drop = nn.Dropout(c.dropout)

    def forward(
        self,
        x: torch.Tensor,
        variate_id: torch.Tensor,
        time_id: torch.Tensor,
        key_variate_id: torch.Tensor,
        key_time_id: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x [B, Lq, D] -> (x [B, Lq, D], (k, v) of this layer for the cache)."""
        a, kv = self.attn(self.norm1(x), variate_id, time_id, key_variate_id, key_time_id, past)
        x = x + self.drop(a)
        x = x + self.drop(self.ffn(self.norm2(x)))
        return x, kv


class MoiraiMoE(nn.Module):
    """Moirai-MoE forecaster; see the module docstring for the pipeline and the shape legend.

    Public API:
      forward(x, x_mark=None, y_mark=None) -> [B, H, N]  point forecast (greedy decoding of the mean)
      forecast_samples(x, horizon=None, num_samples=None, generator=None, use_cache=True) -> [B, S, H, N]
      quantiles(x, levels, num_samples=None, generator=None) -> [B, H, N, Q]
      loss(x, y, mask=None) -> scalar: NLL of every next patch (teacher forcing) + aux load-balancing
      expert_counts() -> [n_layers, X]; init_centroids(source, x); ffn_inputs(x)
    All in the units of x (the model scales each series internally).
    """

    def __init__(self, config: MoiraiMoEConfig):
        super().__init__()
        self.config = config
        c = config
        self.in_proj = nn.Linear(2 * c.patch_size, c.d_model)
        self.blocks = nn.ModuleList([MoiraiMoEBlock(c) for _ in range(c.n_layers)])
        self.norm = RMSNorm(c.d_model)
        self.head = MixtureHead(c.d_model, c.patch_size, c.normal_scale)
        self._counts: torch.Tensor | None = None  # [n_layers, X] since the last public call

    @property
    def uses_timestamps(self) -> bool:
        """Calendar features are not used; callers need not send timestamps."""
        return False

    @property
    def max_horizon(self) -> int:
        return self.config.max_horizon

    @property
    def aux_loss_weight(self) -> float:
        """Weight of `aux_loss()` inside `loss` (core.registry.AuxiliaryLoss)."""
        return self.config.aux_loss_weight

    # Building blocks (also used by the tests).

    def embed(self, patches: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """patches [B, T, P] (scaled; values where `observed` is False are ignored), observed [B, T, P]
        -> tokens [B, T, D] = Linear(2P → D)([values with missing set to 0, observed mask])."""
        observed = observed.to(torch.bool)
        values = torch.where(observed, patches, torch.zeros((), dtype=patches.dtype, device=patches.device))
        return self.in_proj(torch.cat([values, observed.to(values.dtype)], dim=-1))

    def encode(
        self,
        tokens: torch.Tensor,
        variate_id: torch.Tensor,
        time_id: torch.Tensor,
        cache: KVCache | None = None,
    ) -> tuple[torch.Tensor, KVCache]:
        """tokens [B, T, D] with ids [T] -> (hidden states [B, T, D] after the final norm, cache).

        With `cache`, the T new tokens attend to the cached ones as well (their patch indices must not
        precede the cache's), and the returned cache holds both; the given cache is not modified."""
        if cache is not None:
            key_variate_id = torch.cat([cache.variate_id, variate_id])
            key_time_id = torch.cat([cache.time_id, time_id])
        else:
            key_variate_id, key_time_id = variate_id, time_id
        layers = []
        x = tokens
        for i, block in enumerate(self.blocks):
            past = cache.layers[i] if cache is not None else None
            x, kv = block(x, variate_id, time_id, key_variate_id, key_time_id, past)
            layers.append(kv)
            self._record(i, cast(nn.Module, block.ffn))
        return self.norm(x), KVCache(layers, key_variate_id, key_time_id)

    def _record(self, layer: int, ffn: nn.Module) -> None:
        if isinstance(ffn, MoEFeedForward):
            counts = ffn.last_counts  # stays on its device: no host sync per layer while decoding
            if self._counts is None:
                self._counts = torch.zeros(
                    self.config.n_layers, self.config.n_experts, dtype=torch.int64, device=counts.device
                )
            self._counts[layer] += counts

    def _begin(self) -> None:
        self._counts = None

    def expert_counts(self) -> torch.Tensor:
        """[n_layers, X] int64: token-to-expert assignments (T·top_k per layer and pass) summed over the
        last public call (forward, loss, forecast_samples, quantiles, hidden_states)."""
        if self.config.dense:
            raise ValueError("a dense model (dense=True) has no experts")
        if self._counts is None:
            return torch.zeros(self.config.n_layers, self.config.n_experts, dtype=torch.int64)
        return self._counts.cpu().clone()

    def aux_loss(self) -> torch.Tensor:
        """Sum over layers of the experts' load-balancing loss of the last pass (0 unless router='learned')."""
        losses = [b.ffn.aux_loss for b in self.blocks if isinstance(b.ffn, MoEFeedForward)]
        if not losses or self.config.router != "learned":
            return torch.zeros((), device=self.in_proj.weight.device)
        return torch.stack([a.to(self.in_proj.weight.device) for a in losses]).sum()

    # Inputs.

    def _check_x(self, x: torch.Tensor, strict_length: bool) -> torch.Tensor:
        c = self.config
        ok = x.dim() == 3 and x.shape[1] >= 1 and x.shape[2] >= 1
        if not ok or (strict_length and x.shape[1] != c.lookback):
            length = c.lookback if strict_length else "L"
            raise ValueError(f"expected x of shape [B, {length}, N], got {tuple(x.shape)}")
        return x.to(self.in_proj.weight.dtype)

    def _check_horizon(self, horizon: int | None) -> int:
        horizon = self.config.horizon if horizon is None else int(horizon)
        if not 1 <= horizon <= self.config.max_horizon:
            raise ValueError(f"horizon {horizon} must be in [1, max_horizon={self.config.max_horizon}]")
        return horizon

    def _context(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, PatchMixture, KVCache, int]:
        """x [B, L, N] -> (loc, scale [B, 1, N], context tokens [B, C·N, D], the mixture of the first
        horizon patch [B, N, P], the context's KV cache, C)."""
        loc, scale = instance_scale(x, self.config.scale_eps)
        patches, variate_id, time_id = patchify((x - loc) / scale, self.config.patch_size)
        tokens = self.embed(patches, ~torch.isnan(patches))
        h, cache = self.encode(tokens, variate_id, time_id)
        n = x.shape[2]
        return loc, scale, tokens, self.head(h[:, -n:]), cache, patches.shape[1] // n

    def hidden_states(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, L, N] -> final hidden states of the context tokens [B, C·N, D] (time-major)."""
        self._begin()
        x = self._check_x(x, strict_length=False)
        loc, scale = instance_scale(x, self.config.scale_eps)
        patches, variate_id, time_id = patchify((x - loc) / scale, self.config.patch_size)
        return self.encode(self.embed(patches, ~torch.isnan(patches)), variate_id, time_id)[0]

    # Decoding.

    def _decode(
        self,
        x: torch.Tensor,
        horizon: int,
        num_samples: int | None,
        generator: torch.Generator | None,
        use_cache: bool,
    ) -> torch.Tensor:
        """Autoregressive decoding -> [B·S, H, N] in x's units (S = 1 and the mean when num_samples is None)."""
        b, _, n = x.shape
        p = self.config.patch_size
        loc, scale, ctx_tokens, dist, cache, c = self._context(x)
        s = 1 if num_samples is None else num_samples
        if s > 1:
            dist = dist.repeat_interleave(s)
            if use_cache:
                cache = cache.repeat_interleave(s)
            else:
                ctx_tokens = ctx_tokens.repeat_interleave(s, 0)
        n_steps = math.ceil(horizon / p)
        seq, seq_var, seq_time = [ctx_tokens], [cache.variate_id], [cache.time_id]
        patches = []
        for step in range(n_steps):
            patch = dist.mean if num_samples is None else dist.sample(generator)  # [B·S, N, P]
            patches.append(patch)
            if step == n_steps - 1:
                break
            token = self.embed(patch, torch.ones_like(patch, dtype=torch.bool))  # [B·S, N, D]
            var_id, time_id = token_ids(1, n, start=c + step, device=x.device)
            if use_cache:
                h, cache = self.encode(token, var_id, time_id, cache)
            else:  # recompute the whole sequence, as uni2ts does
                seq.append(token)
                seq_var.append(var_id)
                seq_time.append(time_id)
                h, _ = self.encode(torch.cat(seq, 1), torch.cat(seq_var), torch.cat(seq_time))
            dist = self.head(h[:, -n:])
        y = torch.stack(patches, dim=1)  # [B·S, Hp, N, P]
        y = y.transpose(2, 3).reshape(b * s, n_steps * p, n)[:, :horizon]  # [B·S, H, N]
        if s > 1:
            loc, scale = loc.repeat_interleave(s, 0), scale.repeat_interleave(s, 0)
        return y * scale + loc

    def forward(
        self, x: torch.Tensor, x_mark: torch.Tensor | None = None, y_mark: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Point forecast: x [B, lookback, N] (any N; NaN = missing) -> [B, H, N] in x's units.

        Greedy decoding: each horizon patch is the mixture *mean* of the previous step's prediction
        and is fed back as an observed patch (KV-cached). Differentiable. Calendar marks are ignored."""
        self._begin()
        x = self._check_x(x, strict_length=True)
        return self._decode(x, self.config.horizon, None, None, use_cache=True)

    @torch.no_grad()
    def forecast_samples(
        self,
        x: torch.Tensor,
        horizon: int | None = None,
        num_samples: int | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Sample paths: x [B, L, N] (any L, N; NaN = missing) -> [B, S, H, N] in x's units.

        Each step draws one value per element of the next patch of every variate from the mixture and
        feeds the drawn patch back. `generator` (on x's device) makes the draws reproducible;
        `use_cache=False` recomputes the whole sequence every step (same draws, more work)."""
        self._begin()
        x = self._check_x(x, strict_length=False)
        horizon = self._check_horizon(horizon)
        s = self.config.num_samples if num_samples is None else int(num_samples)
        if s < 1:
            raise ValueError(f"num_samples must be >= 1, got {s}")
        y = self._decode(x, horizon, s, generator, use_cache)
        return y.view(x.shape[0], s, horizon, x.shape[2])

    @torch.no_grad()
    def quantiles(
        self,
        x: torch.Tensor,
        levels: Sequence[float],
        num_samples: int | None = None,
        generator: torch.Generator | None = None,
        horizon: int | None = None,
    ) -> torch.Tensor:
        """Empirical quantiles of the sample paths: x [B, L, N] -> [B, H, N, Q] (levels in (0, 1))."""
        q = torch.as_tensor(list(levels), dtype=torch.float32)
        if q.dim() != 1 or q.numel() == 0 or bool(((q <= 0) | (q >= 1)).any()):
            raise ValueError(f"quantile levels must be a non-empty list in (0, 1), got {list(levels)}")
        paths = self.forecast_samples(x, horizon=horizon, num_samples=num_samples, generator=generator)
        out = torch.quantile(paths.float(), q.to(paths.device), dim=1)  # [Q, B, H, N]
        return out.permute(1, 2, 3, 0).to(paths.dtype)

    # Training.

    def loss(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Training objective (a differentiable scalar).

        x [B, L, N] context, y [B, H, N] its continuation (NaN = missing), mask [B, H, N] (optional;
        truthy = the target counts). Both are scaled with the statistics of x's observed values; the
        series [context, target] is patched (context left-padded, target right-padded) and run once
        with teacher forcing: the token of patch p predicts patch p + 1 of its variate, so context
        patches predict their next context patch and the last context patch + target patches predict
        the target. Returns the mean negative log-likelihood (scaled space) over the scored observed
        values, plus `aux_loss_weight` × the summed load-balancing loss (learned router).

        Scored patches (`config.scale_prefix`): with a fraction f, the window is scaled by the statistics
        of its first k of C context patches (k uniform in [⌈f·C⌉, C] per call in training mode, k = C in
        eval mode; a series with < 2 observed values in the prefix keeps its full-context statistics)
        and only patches k.. are scored, so no statistic has seen a value it is scored on. With None,
        every patch 1.. is scored under full-context statistics (teacher forcing over the context too).
        """
        self._begin()
        c = self.config
        x = self._check_x(x, strict_length=False)
        y = y.to(x.dtype)
        if y.dim() != 3 or y.shape[0] != x.shape[0] or y.shape[2] != x.shape[2] or y.shape[1] < 1:
            raise ValueError(f"expected y of shape [{x.shape[0]}, H, {x.shape[2]}], got {tuple(y.shape)}")
        n = x.shape[2]
        loc, scale = instance_scale(x, c.scale_eps)
        n_ctx = -(-x.shape[1] // c.patch_size)  # C context patches (left-padded)
        first = 1  # the first scored patch
        if c.scale_prefix is not None:
            lo = max(1, math.ceil(c.scale_prefix * n_ctx))
            first = int(torch.randint(lo, n_ctx + 1, ()).item()) if self.training else n_ctx
            steps = first * c.patch_size - (n_ctx * c.patch_size - x.shape[1])  # observed steps of the prefix
            p_loc, p_scale, count = _observed_stats(x[:, :steps], c.scale_eps)
            loc, scale = torch.where(count >= 2, p_loc, loc), torch.where(count >= 2, p_scale, scale)
        ys = (y - loc) / scale
        if mask is not None:
            if mask.shape != y.shape:
                raise ValueError(f"mask must have y's shape {tuple(y.shape)}, got {tuple(mask.shape)}")
            ys = torch.where(mask.bool(), ys, torch.full_like(ys, float("nan")))
        ys = F.pad(ys, (0, 0, 0, -ys.shape[1] % c.patch_size), value=float("nan"))  # right-pad the target
        ctx, _, _ = patchify((x - loc) / scale, c.patch_size)
        fut, _, _ = patchify(ys, c.patch_size)
        series = torch.cat([ctx, fut], dim=1)  # [B, (C + Hp)·N, P]
        variate_id, time_id = token_ids(series.shape[1] // n, n, device=x.device)
        inputs, targets = series[:, :-n], series[:, n:]  # patch p -> patch p + 1, same variate
        h, _ = self.encode(self.embed(inputs, ~torch.isnan(inputs)), variate_id[:-n], time_id[:-n])
        dist = self.head(h)  # [B, T − N, P]
        scored = time_id[n:] >= first  # target token j is patch time_id[n + j]
        observed = ~torch.isnan(targets) & scored[None, :, None]
        log_p = dist.log_prob(torch.where(observed, targets, torch.zeros_like(targets)))
        nll = -(log_p * observed).sum() / observed.sum().clamp_min(1)
        return nll + c.aux_loss_weight * self.aux_loss()

    # Token-cluster routing.

    @torch.no_grad()
    def ffn_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The normalised hidden states entering each layer's feed-forward over x's context tokens:
        one [B·C·N, D] tensor per layer (what the centroid router compares with its centroids)."""
        seen: list[torch.Tensor] = []
        hooks = [
            cast(nn.Module, b.ffn).register_forward_pre_hook(
                lambda _m, args: seen.append(args[0].reshape(-1, args[0].shape[-1]))
            )
            for b in self.blocks
        ]
        try:
            self.hidden_states(x)
        finally:
            for hook in hooks:
                hook.remove()
        return seen

    @torch.no_grad()
    def init_centroids(self, source: MoiraiMoE, x: torch.Tensor, iters: int = 20, seed: int = 0) -> None:
        """Moirai-MoE's token clusters: k-means (X clusters) of `source`'s feed-forward inputs over x,
        layer by layer, become this model's router centroids. `source` is usually the dense warm-up
        model (`dense=True`, same d_model and n_layers); this model needs router='centroid'."""
        c = self.config
        if c.dense or c.router != "centroid":
            raise ValueError("init_centroids needs an MoE model with router='centroid'")
        if (source.config.d_model, source.config.n_layers) != (c.d_model, c.n_layers):
            raise ValueError("the source model must have the same d_model and n_layers")
        for block, h in zip(self.blocks, source.ffn_inputs(x), strict=True):
            cast(MoEFeedForward, block.ffn).set_centroids(kmeans(h, c.n_experts, iters=iters, seed=seed))


__all__ = ["KVCache", "MoiraiMoE", "instance_scale", "patchify", "token_ids", "unpatchify"]
