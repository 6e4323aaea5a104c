"""Moirai's mixture output head (Woo et al. ICML 2024, §3.2.3; uni2ts `distribution/mixture.py` and
the four component files): every predicted value is a mixture of four distributions,

    p(y) = w_T · StudentT(y; ν, μ_T, σ_T) + w_N · Normal(y; μ_N, σ₀) + w_NB · NegBin(y; r, ℓ)
         + w_LN · LogNormal(y; μ_LN, σ_LN),                w = softmax(weight logits),

- Student-t with ν = 2 + softplus(·) > 2 (a finite variance) — the generalist;
- Normal with a fixed small scale σ₀ (`normal_scale`, 1e-3): a near-point mass for (near-)constant
  stretches, only its location is predicted;
- Negative binomial (total count r = softplus(·), logits ℓ; mean r·e^ℓ) — count data. `log_prob` is
  evaluated on any non-negative real with lgamma, so on integers it equals
  `torch.distributions.NegativeBinomial`; it is −∞ below 0;
- Log-normal (μ, σ = softplus(·)) — positive, right-skewed data; −∞ at y ≤ 0.

Everything lives in the model's *scaled* space (instance-standardised values). Standardised series
straddle 0, so the negative binomial gets weight only on the non-negative values of a patch and the
log-normal only on the positive ones: where a component's support excludes y, its log-probability is
−∞ and the mixture falls back on the other components (a log-sum-exp that is safe with −∞ terms,
with no NaN in the gradient).

Sampling takes an optional `torch.Generator` so that forecasts are reproducible and cached decoding
can be checked against recomputation draw for draw. `torch.distributions` samplers do not take one,
so the Gamma variates (Student-t's χ², the negative binomial's Gamma–Poisson mixture) are drawn
here with Marsaglia & Tsang's method.

Shapes: `...` any leading dims (usually [B, tokens, P] with P the patch size); K = 4 components;
NUM_PARAMS = 12 raw parameters per predicted value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

COMPONENTS = ("student_t", "normal", "negative_binomial", "log_normal")
# Raw head outputs per value: 4 weight logits, Student-t (df, loc, scale), Normal (loc),
# negative binomial (total_count, logits), log-normal (loc, scale).
NUM_PARAMS = 12
_LOG_2PI = math.log(2.0 * math.pi)
_EXP_CLAMP = 30.0  # exponents in `mean` are clamped here so a point forecast stays finite


def _positive(raw: torch.Tensor) -> torch.Tensor:
    """softplus, floored at the dtype's eps (uni2ts' scale domain map)."""
    return F.softplus(raw).clamp_min(torch.finfo(raw.dtype).eps)


def sample_gamma(concentration: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gamma(α, rate 1) draws of α's shape (Marsaglia & Tsang 2000), reproducible under `generator`.

    α ≥ 1: d = α − 1/3, c = 1/√(9d); draw z ~ N(0,1), u ~ U(0,1), v = (1 + cz)³ and accept d·v when
    v > 0 and log u < z²/2 + d − d·v + d·log v (acceptance > 95 %; rejected entries are redrawn).
    α < 1: a Gamma(α + 1) draw times u^(1/α). The generator is consumed in a fixed order for given α.
    """
    alpha = concentration.detach()
    flat = alpha.reshape(-1)
    boost = flat < 1
    a = torch.where(boost, flat + 1.0, flat)
    d = a - 1.0 / 3.0
    c = torch.rsqrt(9.0 * d)
    out = torch.empty_like(a)
    pending = torch.arange(a.numel(), device=a.device)
    while pending.numel():
        dd, cc = d[pending], c[pending]
        z = torch.randn(dd.shape, generator=generator, device=a.device, dtype=a.dtype)
        u = torch.rand(dd.shape, generator=generator, device=a.device, dtype=a.dtype)
        v = (1.0 + cc * z) ** 3
        ok = (v > 0) & (torch.log(u) < 0.5 * z * z + dd - dd * v + dd * torch.log(v.clamp_min(1e-30)))
        out[pending[ok]] = (dd * v)[ok]
        pending = pending[~ok]
    if bool(boost.any()):
        u = torch.rand(a.shape, generator=generator, device=a.device, dtype=a.dtype)
        out = torch.where(boost, out * u.pow(1.0 / flat.clamp_min(1e-30)), out)
    return out.reshape(alpha.shape)


@dataclass
class PatchMixture:
    """The four-component mixture, elementwise over `...` (all fields share one shape).

    Fields are the *constrained* parameters: `logits` [..., 4] (unnormalised log-weights, order of
    `COMPONENTS`), `t_df` (> 2), `t_loc`, `t_scale` (> 0), `n_loc`, `normal_scale` (a float),
    `nb_total_count` (> 0), `nb_logits`, `ln_loc`, `ln_scale` (> 0).
    """

    logits: torch.Tensor
    t_df: torch.Tensor
    t_loc: torch.Tensor
    t_scale: torch.Tensor
    n_loc: torch.Tensor
    normal_scale: float
    nb_total_count: torch.Tensor
    nb_logits: torch.Tensor
    ln_loc: torch.Tensor
    ln_scale: torch.Tensor

    @classmethod
    def from_raw(cls, raw: torch.Tensor, normal_scale: float) -> PatchMixture:
        """raw [..., NUM_PARAMS] (a linear head's output) -> the mixture, through the domain maps."""
        if raw.shape[-1] != NUM_PARAMS:
            raise ValueError(f"expected {NUM_PARAMS} raw parameters in the last dim, got {tuple(raw.shape)}")
        r = raw.unbind(-1)
        return cls(
            logits=raw[..., :4],
            t_df=2.0 + F.softplus(r[4]),
            t_loc=r[5],
            t_scale=_positive(r[6]),
            n_loc=r[7],
            normal_scale=normal_scale,
            nb_total_count=_positive(r[8]),
            nb_logits=r[9],
            ln_loc=r[10],
            ln_scale=_positive(r[11]),
        )

    @property
    def shape(self) -> torch.Size:
        return self.t_loc.shape

    @property
    def log_weights(self) -> torch.Tensor:  # [..., 4]
        return torch.log_softmax(self.logits, dim=-1)

    # Component log-densities (y has the mixture's shape; out-of-support values give −inf).

    def student_t_log_prob(self, y: torch.Tensor) -> torch.Tensor:
        df, z = self.t_df, (y - self.t_loc) / self.t_scale
        return (
            torch.lgamma(0.5 * (df + 1.0))
            - torch.lgamma(0.5 * df)
            - 0.5 * torch.log(df * math.pi)
            - torch.log(self.t_scale)
            - 0.5 * (df + 1.0) * torch.log1p(z * z / df)
        )

    def normal_log_prob(self, y: torch.Tensor) -> torch.Tensor:
        s = self.normal_scale
        return -0.5 * ((y - self.n_loc) / s) ** 2 - math.log(s) - 0.5 * _LOG_2PI

    def negative_binomial_log_prob(self, y: torch.Tensor) -> torch.Tensor:
        r, lg = self.nb_total_count, self.nb_logits
        ok = y >= 0
        ys = torch.where(ok, y, torch.zeros_like(y))  # a safe value where y is outside the support
        lp = (
            r * F.logsigmoid(-lg)
            + ys * F.logsigmoid(lg)
            + torch.lgamma(r + ys)
            - torch.lgamma(1.0 + ys)
            - torch.lgamma(r)
        )
        return torch.where(ok, lp, torch.full_like(lp, -math.inf))

    def log_normal_log_prob(self, y: torch.Tensor) -> torch.Tensor:
        ok = y > 0
        log_y = torch.log(torch.where(ok, y, torch.ones_like(y)))
        z = (log_y - self.ln_loc) / self.ln_scale
        lp = -0.5 * z * z - torch.log(self.ln_scale) - 0.5 * _LOG_2PI - log_y
        return torch.where(ok, lp, torch.full_like(lp, -math.inf))

    def component_log_probs(self, y: torch.Tensor) -> torch.Tensor:
        """y [...] -> [..., 4] log-densities of each component (order of `COMPONENTS`)."""
        return torch.stack(
            [
                self.student_t_log_prob(y),
                self.normal_log_prob(y),
                self.negative_binomial_log_prob(y),
                self.log_normal_log_prob(y),
            ],
            dim=-1,
        )

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        """y [...] -> log p(y) [...] = logsumexp_k(log w_k + log p_k(y)).

        Student-t and Normal have full support, so at least one term is finite; −inf terms contribute
        exactly 0 to the sum and to the gradient."""
        return torch.logsumexp(self.log_weights + self.component_log_probs(y), dim=-1)

    @property
    def component_means(self) -> torch.Tensor:
        """[..., 4]: μ_T (ν > 2), μ_N, r·e^ℓ, exp(μ + σ²/2); exponents clamped at 30 to stay finite."""
        nb = self.nb_total_count * torch.exp(self.nb_logits.clamp(max=_EXP_CLAMP))
        ln = torch.exp((self.ln_loc + 0.5 * self.ln_scale**2).clamp(max=_EXP_CLAMP))
        return torch.stack([self.t_loc, self.n_loc, nb, ln], dim=-1)

    @property
    def mean(self) -> torch.Tensor:
        """E[y] [...] = Σ_k w_k · mean_k; differentiable (the point forecast feeds on it)."""
        return (torch.softmax(self.logits, dim=-1) * self.component_means).sum(-1)

    @torch.no_grad()
    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One draw per element: [...]. A component is picked by its weight, then drawn from.

        All four components are drawn for every element (then one is kept), so the generator is
        consumed in an order that depends only on the shape and on the Gamma rejection steps."""
        dev, dt = self.t_loc.device, self.t_loc.dtype
        probs = torch.softmax(self.logits.float(), dim=-1)  # [..., 4]
        u = torch.rand(self.shape, generator=generator, device=dev, dtype=torch.float32)
        choice = (u[..., None] > probs.cumsum(-1)[..., :-1]).sum(-1)  # [...] in 0..3

        def normal() -> torch.Tensor:
            return torch.randn(self.shape, generator=generator, device=dev, dtype=dt)

        chi2 = 2.0 * sample_gamma(0.5 * self.t_df, generator)
        student = self.t_loc + self.t_scale * normal() * torch.rsqrt((chi2 / self.t_df).clamp_min(1e-30))
        gauss = self.n_loc + self.normal_scale * normal()
        rate = sample_gamma(self.nb_total_count, generator) * torch.exp(self.nb_logits.clamp(max=_EXP_CLAMP))
        negbin = torch.poisson(rate, generator=generator)
        lognorm = torch.exp((self.ln_loc + self.ln_scale * normal()).clamp(max=_EXP_CLAMP))
        draws = torch.stack([student, gauss, negbin, lognorm], dim=-1)  # [..., 4]
        return draws.gather(-1, choice[..., None]).squeeze(-1)

    def repeat_interleave(self, repeats: int, dim: int = 0) -> PatchMixture:
        """Every parameter repeated `repeats` times along `dim` (one copy per sample path)."""

        def rep(t: torch.Tensor) -> torch.Tensor:
            return t.repeat_interleave(repeats, dim=dim)

        return PatchMixture(
            logits=rep(self.logits),
            t_df=rep(self.t_df),
            t_loc=rep(self.t_loc),
            t_scale=rep(self.t_scale),
            n_loc=rep(self.n_loc),
            normal_scale=self.normal_scale,
            nb_total_count=rep(self.nb_total_count),
            nb_logits=rep(self.nb_logits),
            ln_loc=rep(self.ln_loc),
            ln_scale=rep(self.ln_scale),
        )


class MixtureHead(nn.Module):
    """One Linear(D → P·12) per token: the mixture of each of the P values of the *next* patch.

    h [..., D] -> PatchMixture of shape [..., P]. A single fused projection (uni2ts keeps one Linear
    per parameter; the two are the same maths up to how the weight matrix is split)."""

    def __init__(self, d_model: int, patch_size: int, normal_scale: float):
        super().__init__()
        self.patch_size = patch_size
        self.normal_scale = normal_scale
        self.proj = nn.Linear(d_model, patch_size * NUM_PARAMS)

    def forward(self, h: torch.Tensor) -> PatchMixture:
        raw = self.proj(h).unflatten(-1, (self.patch_size, NUM_PARAMS))  # [..., P, 12]
        return PatchMixture.from_raw(raw, self.normal_scale)


__all__ = ["COMPONENTS", "NUM_PARAMS", "MixtureHead", "PatchMixture", "sample_gamma"]
