"""The FNO baseline's own facts (Li et al. 2021): the spectral convolution against a naive DFT, periodic
translation equivariance, the parameter budget beside IFactFormer-m, rollout."""

import itertools
import math

import pytest
import torch

from forecasters import rollout_inputs
from forecasters.fno import FNO, FNOConfig
from forecasters.fno.model import FNOSpectralConv


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread; two threads on a loaded 2-core box spin for seconds per call."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def build(**over) -> FNO:
    torch.manual_seed(0)
    return FNO(FNOConfig.tiny(**over))


def field(cfg: FNOConfig, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return rollout_inputs(cfg, batch, torch.Generator().manual_seed(seed))[0]


def naive_spectral_conv(v: torch.Tensor, weight: torch.Tensor, modes: tuple[int, ...]) -> torch.Tensor:
    """Textbook definition, one kept frequency k at a time: X_k = Σ_n v_n e^{−2πi k·n/N}, Y_k = X_k R_k,
    y_n = Re Σ_k c_k Y_k e^{+2πi k·n/N} / Π N, where c_k = 2 counts the conjugate twin −k of a last-axis
    frequency 0 < k_d < N_d/2 (real output) and 1 otherwise. R_k for the lowest m (k = 0..m−1) and highest m
    (k = −m..−1) on each full axis come from corner blocks in the order of itertools.product."""
    spatial = v.shape[2:]
    n = torch.stack(torch.meshgrid(*[torch.arange(s, dtype=torch.float64) for s in spatial], indexing="ij"))
    out = torch.zeros(v.shape[0], weight.shape[2], *spatial, dtype=torch.float64)
    signed = [[list(range(m)), list(range(-m, 0))] for m in modes[:-1]]
    for f, choice in enumerate(itertools.product(*[(0, 1)] * (len(modes) - 1))):
        axes = [signed[a][c] for a, c in enumerate(choice)] + [list(range(modes[-1]))]
        for idx in itertools.product(*[range(len(ks)) for ks in axes]):
            k = [axes[a][i] for a, i in enumerate(idx)]
            phase = sum(2 * math.pi * k[a] * n[a] / spatial[a] for a in range(len(spatial)))
            x_k = torch.einsum("bi...,...->bi", v.to(torch.complex128), torch.exp(-1j * phase))  # [B, D_in]
            y_k = x_k @ weight[(f, slice(None), slice(None), *idx)]  # [B, D_out]
            c = 2.0 if 0 < k[-1] < spatial[-1] / 2 else 1.0
            out += c * (y_k.reshape(*y_k.shape, *[1] * len(spatial)) * torch.exp(1j * phase)).real
    return out / math.prod(spatial)


@pytest.mark.parametrize("shape, modes", [((6, 7, 5), (2, 3, 2)), ((7, 8), (3, 5))])  # odd sizes; 2D keeps Nyquist
def test_spectral_conv_matches_a_naive_dft(shape, modes):
    torch.manual_seed(0)
    conv = FNOSpectralConv(3, 2, modes).double()
    v = torch.randn(2, 3, *shape, dtype=torch.float64)
    want = naive_spectral_conv(v, torch.view_as_complex(conv.weight.detach()), modes)
    torch.testing.assert_close(conv(v), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("grid", [(8, 6, 4), (7, 5)])
def test_fno_maps_a_field_to_the_next_and_refuses_other_grids(grid):
    model = build(grid=grid, n_components=len(grid)).eval()
    u = field(model.config)
    assert model(u).shape == u.shape and bool(torch.isfinite(model(u)).all())
    assert model.rollout(u, 3).shape == (u.shape[0], 3, *u.shape[1:])
    with pytest.raises(ValueError, match="expected u of shape"):
        model(u[:, :-1])


def test_fno_default_is_sized_like_ifactformer_m():
    # Same 32×33×16 grid and 3 components; IFactFormer-m's default has 1,163,187 trained parameters.
    model = FNO(FNOConfig())
    per_layer = 4 * 16 * 16 * (6 * 6 * 4) * 2  # 4 corners × D² × kept modes × (real, imag)
    assert n_params(model) == 4 * (per_layer + 16 * 16 + 16) + (3 + 3 + 1) * 16 + 17 * 128 + 129 * 3 == 1_183_411
    assert abs(n_params(model) / 1_163_187 - 1) < 0.02
    with pytest.raises(ValueError, match="exceed"):
        FNOConfig(modes=(17, 6, 4))  # 17 > 32 // 2: the two signs would overlap


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_fno_without_grid_features_commutes_with_periodic_shifts():
    # Spectral and 1×1 convolutions commute with circular shifts; only the appended coordinates break it.
    model = build(grid_features=False).eval()
    u = field(model.config)
    shift, dims = (3, 1, 2), (1, 2, 3)
    with torch.no_grad():
        torch.testing.assert_close(model(u.roll(shift, dims)), model(u).roll(shift, dims), rtol=1e-5, atol=1e-6)
        with_grid = build(grid_features=True).eval()
        assert not torch.allclose(with_grid(u.roll(shift, dims)), with_grid(u).roll(shift, dims), atol=1e-4)


def test_rollout_is_repeated_forward_and_gradients_reach_every_parameter():
    model = build().eval()
    u = field(model.config)
    out = model.rollout(u, 3)
    with torch.no_grad():
        manual = [model(u)]
        for _ in range(2):
            manual.append(model(manual[-1]))
    torch.testing.assert_close(out, torch.stack(manual, 1), rtol=0, atol=0)
    assert not out.requires_grad
    model.train()(u).pow(2).mean().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not dead, f"parameters without gradient: {dead}"
    cfg = FNOConfig.tiny()
    assert FNOConfig.from_dict({**cfg.to_dict(), "grid": list(cfg.grid), "modes": list(cfg.modes)}) == cfg


def test_overfits_one_pair_of_fields():
    model = build(grid=(8, 6), n_components=2).train()
    g = torch.Generator().manual_seed(3)
    u0, u1 = torch.randn(1, 8, 6, 2, generator=g), torch.randn(1, 8, 6, 2, generator=g)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(200):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(u0), u1)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
