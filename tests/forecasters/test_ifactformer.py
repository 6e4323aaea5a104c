"""IFactFormer-m's own facts (Yang, Wang & Wang; official code huiyu-2002/IFactFormer-m): the parallel
factorized, softmax-free kernel integral, the weight-shared implicit iteration, RoPE in physical
coordinates, the official parameter count, rollout."""

import copy
import math

import pytest
import torch

from core.ops.rope import rope_reference
from forecasters import rollout_inputs
from forecasters.ifactformer import IFactFormer, IFactFormerConfig
from forecasters.ifactformer.model import factorized_kernel_integral, rope_physical


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread; two threads on a loaded 2-core box spin for seconds per call."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def build(**over) -> IFactFormer:
    torch.manual_seed(0)
    return IFactFormer(IFactFormerConfig.tiny(**over))


def field(cfg: IFactFormerConfig, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return rollout_inputs(cfg, batch, torch.Generator().manual_seed(seed))[0]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("grid", [(8, 6, 4), (7, 5)])
def test_ifactformer_maps_a_field_to_the_next_and_refuses_other_grids(grid):
    model = build(grid=grid, n_components=len(grid)).eval()
    u = field(model.config)
    assert model(u).shape == u.shape and bool(torch.isfinite(model(u)).all())
    assert model.rollout(u, 3).shape == (u.shape[0], 3, *u.shape[1:])
    with pytest.raises(ValueError, match="expected u of shape"):
        model(u[:, :-1])
    with pytest.raises(ValueError, match="expected u of shape"):
        model(u[..., :-1])


def test_ifactformer_default_has_the_official_parameter_count():
    # The official code (configs/IFactFormer.yml, libs/ at its current commit) on the 32×33×16 channel grid:
    # 1,163,331 parameters, of which 144 are the frozen Gaussian Fourier matrix (a buffer here). The paper's
    # 1.18 M (1,181,763 in main.ipynb) came from its first commit, whose block had an extra bias-free
    # Linear(96,96)-GELU-Linear(96,96) after the output MLP (18,432 more), removed upstream in 003b490.
    model = IFactFormer(IFactFormerConfig())
    assert n_params(model) == 1_163_187
    assert model.rff.shape == (3, 48) and not model.rff.requires_grad
    assert n_params(model) + model.rff.numel() == 1_163_331 == 1_181_763 - 18_432
    qk = model.block.kernels[0].to_q
    assert (qk.in_features, qk.out_features) == (96, 5 * 3 * 96)  # 5 heads × (3 × 96) query dims
    assert model.block.out_in.in_features == 3 * 5 * 96  # three axis outputs concatenated ("-m")


def naive_parallel(v, kernels):
    """Loop reference: out[b, h, x, y, z, a·C + c] = Σ_j K_a[b, h, i_a, j] v[... j at axis a ...]."""
    b, h, nx, ny, nz, c = v.shape
    out = torch.zeros(b, h, nx, ny, nz, 3 * c, dtype=v.dtype)
    kx, ky, kz = kernels
    for i in range(nx):
        for j in range(ny):
            for k in range(nz):
                out[:, :, i, j, k, :c] = torch.einsum("bhn,bhnc->bhc", kx[:, :, i], v[:, :, :, j, k])
                out[:, :, i, j, k, c : 2 * c] = torch.einsum("bhn,bhnc->bhc", ky[:, :, j], v[:, :, i, :, k])
                out[:, :, i, j, k, 2 * c :] = torch.einsum("bhn,bhnc->bhc", kz[:, :, k], v[:, :, i, j, :])
    return out


def test_factorized_kernel_integral_matches_a_naive_loop_and_is_linear():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(2, 3, 5, 4, 3, 2, generator=g, dtype=torch.float64)  # [B, H, X, Y, Z, C]
    kernels = [torch.randn(2, 3, n, n, generator=g, dtype=torch.float64) for n in (5, 4, 3)]  # signed: no softmax
    out = factorized_kernel_integral(v, kernels, parallel=True)
    torch.testing.assert_close(out, naive_parallel(v, kernels))
    # Chained (FactFormer / IFactFormer-o): the tensor product of the three axis operators.
    chained = torch.einsum("bhil,bhjm,bhkn,bhlmnc->bhijkc", *kernels, v)
    torch.testing.assert_close(factorized_kernel_integral(v, kernels, parallel=False), chained)
    # A linear integral operator: no normalisation over keys, so it is linear in the value field.
    w = torch.randn(v.shape, generator=g, dtype=torch.float64)
    torch.testing.assert_close(
        factorized_kernel_integral(2 * v - w, kernels), 2 * out - factorized_kernel_integral(w, kernels)
    )


def test_each_axis_branch_depends_only_on_the_block_input_and_its_own_kernel():
    # "-m": the axis integrals run in parallel on the same value field; changing the y kernel changes the
    # y block of the concatenated output and nothing else. Chained, every output depends on every kernel.
    g = torch.Generator().manual_seed(1)
    v = torch.randn(1, 2, 4, 5, 3, 3, generator=g)
    kernels = [torch.randn(1, 2, n, n, generator=g) for n in (4, 5, 3)]
    bumped = [kernels[0], kernels[1] + 1.0, kernels[2]]
    a, b = factorized_kernel_integral(v, kernels), factorized_kernel_integral(v, bumped)
    torch.testing.assert_close(a[..., :3], b[..., :3], rtol=0, atol=0)
    torch.testing.assert_close(a[..., 6:], b[..., 6:], rtol=0, atol=0)
    assert not torch.allclose(a[..., 3:6], b[..., 3:6])
    assert not torch.allclose(
        factorized_kernel_integral(v, kernels, parallel=False), factorized_kernel_integral(v, bumped, parallel=False)
    )
    # The same inside the model's block: zero the y kernel's queries and only the y channels change.
    model = build(grid=(4, 5, 3)).eval()
    block, h = model.block, model.lift(field(model.config))
    before = block.mix(h, model.coords()).unflatten(-1, (2, 3, 8))  # [B, *S, heads, axis, C]
    with torch.no_grad():
        block.kernels[1].to_q.weight.zero_()
    after = block.mix(h, model.coords()).unflatten(-1, (2, 3, 8))
    torch.testing.assert_close(after[..., [0, 2], :], before[..., [0, 2], :], rtol=0, atol=0)
    assert after[..., 1, :].abs().max() == 0 and before[..., 1, :].abs().max() > 0


def test_swapping_two_axes_with_their_branches_swaps_the_output():
    # Every layer outside the axis branches is pointwise or permutation-invariant over the grid, and no
    # axis is privileged: transposing X and Y of the input while exchanging the X and Y branches (pool,
    # kernel, their channel blocks in the output map and the Fourier-feature rows) transposes the output.
    model = build(grid=(6, 6), n_components=2).eval()
    swapped = copy.deepcopy(model)
    blk = swapped.block
    blk.pools = torch.nn.ModuleList([blk.pools[1], blk.pools[0]])
    blk.kernels = torch.nn.ModuleList([blk.kernels[1], blk.kernels[0]])
    for pool, axis in zip(blk.pools, (0, 1), strict=True):
        pool.axis = axis
    heads, c = model.config.n_heads, model.config.head_dim
    perm = torch.arange(heads * 2 * c).view(heads, 2, c)[:, [1, 0]].reshape(-1)  # (head, axis, c), axes swapped
    with torch.no_grad():
        blk.out_in.weight.copy_(model.block.out_in.weight[:, perm])
        swapped.rff.copy_(model.rff[[1, 0]])
    u = field(model.config)
    with torch.no_grad():
        torch.testing.assert_close(swapped(u.transpose(1, 2)), model(u).transpose(1, 2), rtol=1e-5, atol=1e-6)


def test_implicit_layer_is_one_block_applied_k_times():
    sizes = {k: n_params(build(n_iterations=k)) for k in (1, 3, 10)}
    assert len(set(sizes.values())) == 1  # weights shared: depth costs no parameters
    model = build(n_iterations=4).eval()
    u = field(model.config)
    with torch.no_grad():
        h = model.lift(u)
        for _ in range(4):
            h = h + model.block(h, model.coords()) / 4
        torch.testing.assert_close(model(u), model.project(h), rtol=0, atol=0)
        assert not torch.allclose(build(n_iterations=2)(u), model(u))


def test_rope_in_physical_coordinates_matches_core_and_is_relative():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 7, 12, generator=g)
    # At integer coordinates and scale 1 it is core's RoPE op (full rotation, rotate-half layout).
    torch.testing.assert_close(rope_physical(x, torch.arange(7.0), 1.0), rope_reference(x, torch.arange(7)))
    # The axis kernel depends on coordinates only through their differences.
    model = build(grid=(7, 5), n_components=2).eval()
    kernel = model.block.kernels[0]
    tokens = torch.randn(2, 7, model.config.width, generator=g)
    coords = torch.linspace(0, 2 * math.pi, 7)
    with torch.no_grad():
        near, far = kernel(tokens, coords), kernel(tokens, coords + 3.7)
        torch.testing.assert_close(near, far, rtol=1e-4, atol=1e-6)
        assert not torch.allclose(near, kernel(tokens, coords * 1.5), rtol=1e-4, atol=1e-6)


def test_rollout_is_repeated_forward_and_keeps_no_graph_in_eval():
    model = build().eval()
    u = field(model.config)
    out = model.rollout(u, 3)
    manual, step = [], u
    with torch.no_grad():
        for _ in range(3):
            step = model(step)
            manual.append(step)
    torch.testing.assert_close(out, torch.stack(manual, 1), rtol=0, atol=0)
    assert not out.requires_grad
    with pytest.raises(ValueError, match="steps"):
        model.rollout(u, 0)
    assert model.train().rollout(u, 2).requires_grad  # training unrolls through time (pushforward/BPTT)


def test_gradients_reach_every_parameter_and_config_round_trips():
    model = build(variant="o").train()
    model(field(model.config)).pow(2).mean().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not dead, f"parameters without gradient: {dead}"
    cfg = IFactFormerConfig.tiny()
    as_json = {**cfg.to_dict(), "grid": list(cfg.grid), "domain": list(cfg.domain)}
    assert IFactFormerConfig.from_dict(as_json) == cfg
    for bad in ({"grid": (8,)}, {"domain": (1.0, 1.0)}, {"width": 14}, {"variant": "x"}, {"n_iterations": 0}):
        with pytest.raises(ValueError):
            IFactFormerConfig.tiny(**bad)


def test_overfits_one_pair_of_fields():
    model = build(grid=(8, 6), n_components=2).train()
    g = torch.Generator().manual_seed(3)
    u0, u1 = torch.randn(1, 8, 6, 2, generator=g), torch.randn(1, 8, 6, 2, generator=g)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(u0), u1)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
