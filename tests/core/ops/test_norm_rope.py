"""LayerNorm, RMSNorm and RoPE ops: the references (the spec) always; the Triton kernels under the interpreter.

Tiers (STYLE rule 6, set up in `triton_tier.py`): plain tests check the references against hand-computed
values and torch; `interpret` tests run the Triton kernels through `TRITON_INTERPRET=1` in fp32 on odd
shapes, forward and backward, with relative-RMS tolerances (on a GPU they run compiled); `gpu` tests check
bf16 parity on a CUDA device. The nn.Modules over these ops are tested in tests/core/nn/test_norm_rope_modules.py.
"""

import math
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from triton_tier import CUDA, DEVICE, compile_for_cuda_in_a_fresh_process, rel_rms  # first: interpreter set-up

from core.ops.dispatch import KernelUnavailableError, used_impls
from core.ops.norm import layer_norm, layer_norm_reference, rms_norm, rms_norm_reference
from core.ops.rope import apply_rope, rope_reference

ROWS, HIDDEN = (1, 7, 33), (24, 80, 257)


def _grads(out: torch.Tensor, inputs: list[torch.Tensor], dy: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(out, inputs, dy))


# References: hand-checked values and torch.


def test_layer_norm_reference_hand_checked():
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    # mean 2.5, biased var 1.25 -> (x − 2.5)/√1.25 = (−3, −1, 1, 3)/√5.
    expected = torch.tensor([[-3.0, -1.0, 1.0, 3.0]]) / math.sqrt(5.0)
    torch.testing.assert_close(layer_norm_reference(x, eps=0.0), expected)
    w, b = torch.tensor([1.0, 2.0, 0.5, -1.0]), torch.tensor([0.0, 1.0, 0.0, 2.0])
    torch.testing.assert_close(layer_norm_reference(x, w, b, eps=0.0), expected * w + b)


def test_rms_norm_reference_hand_checked():
    x = torch.tensor([[3.0, 4.0], [2.0, -2.0]])
    # mean(x²) = 12.5 and 4 -> x/√12.5 and x/2.
    expected = torch.tensor([[3.0 / math.sqrt(12.5), 4.0 / math.sqrt(12.5)], [1.0, -1.0]])
    torch.testing.assert_close(rms_norm_reference(x, eps=0.0), expected)
    w = torch.tensor([1.0, 0.5])
    torch.testing.assert_close(rms_norm_reference(x, w, eps=0.0), expected * w)


def test_layer_norm_reference_is_torch_layer_norm():
    torch.manual_seed(0)
    ln = nn.LayerNorm(80)
    nn.init.normal_(ln.weight)
    nn.init.normal_(ln.bias)
    x = torch.randn(3, 7, 80)
    torch.testing.assert_close(layer_norm_reference(x, ln.weight, ln.bias, ln.eps), ln(x))
    # bf16 in, statistics in fp32, bf16 out: one rounding away from the fp32 result.
    xb = x.bfloat16()
    out = layer_norm_reference(xb, ln.weight, ln.bias, ln.eps)
    assert out.dtype == torch.bfloat16
    assert rel_rms(out, ln(xb.float())) < 1e-2


def test_references_reject_mismatched_params():
    with pytest.raises(ValueError, match="weight"):
        layer_norm_reference(torch.randn(2, 4), torch.ones(5))
    with pytest.raises(ValueError, match="bias"):
        layer_norm_reference(torch.randn(2, 4), None, torch.ones(3))
    with pytest.raises(ValueError, match="weight"):
        rms_norm_reference(torch.randn(2, 4), torch.ones(5))


def test_rope_reference_hand_checked():
    # D = 4, all rotated: pairs (0, 2) and (1, 3); inv_freq = (1, 10000^(−1/2) = 0.01); position 1.
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 1, 4)
    c0, s0, c1, s1 = math.cos(1.0), math.sin(1.0), math.cos(0.01), math.sin(0.01)
    expected = torch.tensor([1 * c0 - 3 * s0, 2 * c1 - 4 * s1, 3 * c0 + 1 * s0, 4 * c1 + 2 * s1]).view(1, 1, 1, 4)
    torch.testing.assert_close(rope_reference(x, torch.tensor([1]), fraction=1.0), expected)
    # fraction 0.5 of D = 8 rotates the same four dims; the other four pass through bit for bit.
    x8 = torch.cat([x, torch.tensor([5.0, 6.0, 7.0, 8.0]).view(1, 1, 1, 4)], dim=-1)
    out8 = rope_reference(x8, torch.tensor([1]), fraction=0.5)
    torch.testing.assert_close(out8[..., :4], expected)
    assert torch.equal(out8[..., 4:], x8[..., 4:])
    # Position 0 is the identity.
    torch.testing.assert_close(rope_reference(x8, torch.tensor([0]), fraction=0.5), x8)


def _relative_position_check(rope, device: str = "cpu") -> None:
    torch.manual_seed(3)
    d, rot = 24, 12
    q, k = torch.randn(1, 2, 1, d, device=device), torch.randn(1, 2, 1, d, device=device)

    def score(m: int, n: int) -> torch.Tensor:  # rotated-part q·k for q at position m, k at position n
        qr, kr = rope(q, torch.tensor([m], device=device)), rope(k, torch.tensor([n], device=device))
        assert torch.equal(qr[..., rot:], q[..., rot:]) and torch.equal(kr[..., rot:], k[..., rot:])
        return (qr[..., :rot] * kr[..., :rot]).sum(-1)

    base = score(3, 1)
    for shift in (1, 5, 40):
        torch.testing.assert_close(score(3 + shift, 1 + shift), base, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(score(5, 1), base, atol=1e-3)  # a different offset does change the score


def test_rope_reference_relative_position_property():
    _relative_position_check(lambda x, p: rope_reference(x, p, fraction=0.5))


def test_rope_batched_positions_match_per_sample_calls():
    torch.manual_seed(4)
    x, pos = torch.randn(2, 3, 5, 16), torch.tensor([[0, 1, 2, 3, 4], [7, 3, 9, 0, 2]])
    out = rope_reference(x, pos, fraction=0.5)
    for i in range(2):
        torch.testing.assert_close(out[i : i + 1], rope_reference(x[i : i + 1], pos[i], fraction=0.5))


def test_rope_rejects_bad_inputs():
    x = torch.randn(1, 2, 3, 10)
    with pytest.raises(ValueError, match="odd"):
        rope_reference(x, torch.arange(3), fraction=0.5)  # int(10 · 0.5) = 5
    with pytest.raises(ValueError, match="positions"):
        rope_reference(x, torch.arange(4))
    with pytest.raises(TypeError, match="integers"):
        rope_reference(x, torch.arange(3).float())
    with pytest.raises(ValueError, match=r"\[B, H, L, D\]"):
        rope_reference(torch.randn(3, 10), torch.arange(3))


# Triton kernels under the interpreter (fp32).


def _norm_case(op: str, rows: int, hidden: int, affine: bool, scale: float = 1.0, offset: float = 0.0):
    x = (offset + scale * torch.randn(rows, hidden)).to(DEVICE).requires_grad_()
    w = torch.randn(hidden, device=DEVICE).requires_grad_() if affine else None
    b = torch.randn(hidden, device=DEVICE).requires_grad_() if affine and op == "layer_norm" else None
    params = [p for p in (w, b) if p is not None]
    return x, w, b, params, torch.randn(rows, hidden, device=DEVICE)


def _run_norm(op: str, x, w, b, impl: str):
    if op == "layer_norm":
        return layer_norm(x, w, b, impl=impl) if impl else layer_norm_reference(x, w, b)
    return rms_norm(x, w, impl=impl) if impl else rms_norm_reference(x, w)


@pytest.mark.interpret
@pytest.mark.parametrize("op", ["layer_norm", "rms_norm"])
@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("affine", [True, False])
def test_norm_kernel_matches_reference(op, rows, hidden, affine):
    torch.manual_seed(rows * 1000 + hidden)
    x, w, b, params, dy = _norm_case(op, rows, hidden, affine)
    out = _run_norm(op, x, w, b, impl="triton")
    ref = _run_norm(op, x, w, b, impl="")
    assert rel_rms(out, ref) < 1e-5
    # dx, then dweight/dbias (summed from per-row-block partials) against autograd through the reference.
    for got, want in zip(_grads(out, [x, *params], dy), _grads(ref, [x, *params], dy), strict=True):
        assert rel_rms(got, want) < 1e-5


@pytest.mark.interpret
@pytest.mark.parametrize("op", ["layer_norm", "rms_norm"])
def test_norm_kernel_leading_dims_and_strided_input(op):
    torch.manual_seed(8)
    base = torch.randn(2, 5, 2 * 40, device=DEVICE)
    x = base[..., ::2].requires_grad_()  # [2, 5, 40], stride 2 along the normalised dim: copied to rows
    w = torch.randn(40, device=DEVICE).requires_grad_()
    b = torch.randn(40, device=DEVICE).requires_grad_() if op == "layer_norm" else None
    params = [p for p in (w, b) if p is not None]
    dy = torch.randn(2, 5, 40, device=DEVICE)
    out, ref = _run_norm(op, x, w, b, impl="triton"), _run_norm(op, x, w, b, impl="")
    assert out.shape == x.shape and rel_rms(out, ref) < 1e-5
    for got, want in zip(_grads(out, [x, *params], dy), _grads(ref, [x, *params], dy), strict=True):
        assert rel_rms(got, want) < 1e-5


@pytest.mark.interpret
@pytest.mark.parametrize("op", ["layer_norm", "rms_norm"])
def test_norm_kernel_large_values(op):
    torch.manual_seed(9)
    x, w, b, params, dy = _norm_case(op, 7, 257, True, scale=1e4)
    out, ref = _run_norm(op, x, w, b, impl="triton"), _run_norm(op, x, w, b, impl="")
    assert rel_rms(out, ref) < 1e-5
    for got, want in zip(_grads(out, [x, *params], dy), _grads(ref, [x, *params], dy), strict=True):
        assert rel_rms(got, want) < 1e-5


@pytest.mark.interpret
@pytest.mark.parametrize("noise", [1.0, 0.1])
def test_layer_norm_kernel_near_constant_rows(noise):
    """Rows of 1e4 + small noise: fp32 itself loses digits in the mean, so both sides are held to float64.

    A one-pass E[x²] − E[x]² variance would lose everything here (ulp(1e8) = 8 ≫ var); the two-pass
    kernel must be about as close to float64 as torch's own fp32 LayerNorm is.
    """
    torch.manual_seed(10)
    x, w, b, params, dy = _norm_case("layer_norm", 33, 257, True, scale=noise, offset=1e4)
    out, ref = layer_norm(x, w, b, impl="triton"), layer_norm_reference(x, w, b)
    x64 = x.detach().double().requires_grad_()
    exact = F.layer_norm(x64, (257,), w.double(), b.double(), 1e-5)  # [33, 257] float64 truth
    for got, want, truth in [
        (out, ref, exact),
        *zip(_grads(out, [x], dy), _grads(ref, [x], dy), _grads(exact, [x64], dy.double()), strict=True),
    ]:
        assert torch.isfinite(got).all()
        assert rel_rms(got, truth) <= 2 * rel_rms(want, truth) + 1e-6


@pytest.mark.interpret
@pytest.mark.parametrize("op", ["layer_norm", "rms_norm"])
def test_norm_kernel_constant_and_zero_rows(op):
    """var = 0 (LayerNorm) or mean(x²) = 0 (RMSNorm): the output is exactly the bias / zero, gradients finite."""
    x = torch.full((3, 24), 3.0 if op == "layer_norm" else 0.0, device=DEVICE, requires_grad=True)
    w, b = torch.randn(24, device=DEVICE).requires_grad_(), torch.randn(24, device=DEVICE).requires_grad_()
    out = layer_norm(x, w, b, impl="triton") if op == "layer_norm" else rms_norm(x, w, impl="triton")
    expected = b.detach().expand(3, 24) if op == "layer_norm" else torch.zeros(3, 24, device=DEVICE)
    assert torch.equal(out, expected)
    out.backward(torch.randn(3, 24, device=DEVICE))
    assert torch.isfinite(x.grad).all() and torch.isfinite(w.grad).all()


@pytest.mark.interpret
@pytest.mark.parametrize("fraction", [0.5, 1.0])
@pytest.mark.parametrize("d", [16, 24, 80])
@pytest.mark.parametrize("l", [1, 7, 33])
def test_rope_kernel_matches_reference(fraction, d, l):
    torch.manual_seed(d * 100 + l)
    x = torch.randn(2, 3, l, d, device=DEVICE, requires_grad=True)
    # Batched positions with gaps for the longer sequences, shared [L] positions otherwise.
    pos = (torch.randint(0, 500, (2, l)) if l > 1 else torch.tensor([11])).to(DEVICE)
    dy = torch.randn(2, 3, l, d, device=DEVICE)
    out = apply_rope(x, pos, fraction=fraction, impl="triton")
    ref = rope_reference(x, pos, fraction=fraction)
    assert rel_rms(out, ref) < 1e-5
    assert rel_rms(_grads(out, [x], dy)[0], _grads(ref, [x], dy)[0]) < 1e-5


@pytest.mark.interpret
def test_rope_kernel_strided_heads_and_relative_positions():
    torch.manual_seed(11)
    x = torch.randn(2, 7, 5, 24, device=DEVICE).transpose(1, 2)  # [B, H, L, D] view of [B, L, H, D], as from a Linear
    pos = torch.arange(7, device=DEVICE)
    assert rel_rms(apply_rope(x, pos, fraction=0.5, impl="triton"), rope_reference(x, pos, fraction=0.5)) < 1e-5
    _relative_position_check(lambda t, p: apply_rope(t, p, fraction=0.5, impl="triton"), DEVICE)


# Dispatch.


@pytest.mark.interpret
def test_explicit_triton_request_runs_the_kernel_and_is_recorded():
    x = torch.randn(3, 24, device=DEVICE)
    layer_norm(x, impl="triton")
    assert used_impls()["layer_norm"] == "triton"
    rms_norm(x, impl="triton")
    assert used_impls()["rms_norm"] == "triton"
    apply_rope(torch.randn(1, 1, 3, 8, device=DEVICE), torch.arange(3, device=DEVICE), impl="triton")
    assert used_impls()["rope"] == "triton"


@pytest.mark.skipif(CUDA, reason="checks the CPU fallback")
def test_auto_uses_the_reference_on_cpu_and_explicit_triton_without_interpreter_raises(monkeypatch):
    monkeypatch.delenv("SEER_KERNELS", raising=False)
    x = torch.randn(3, 24)
    layer_norm(x)
    assert used_impls()["layer_norm"] == "reference"
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(KernelUnavailableError, match="layer_norm"):
        layer_norm(x, impl="triton")
    with pytest.raises(KernelUnavailableError, match="rope"):
        apply_rope(torch.randn(1, 1, 3, 8), torch.arange(3), impl="triton")


# Compiled code path without a GPU: the interpreter runs the kernels' Python, not Triton's compiler, so
# build every kernel variant for sm_90 (TTIR -> PTX -> cubin with the bundled ptxas) in a fresh process.
_COMPILE_SCRIPT = textwrap.dedent(
    """
    import importlib
    import triton
    from triton.backends import backends
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    if "nvidia" not in backends:
        raise SystemExit("SKIP: triton has no nvidia backend")
    norm = importlib.import_module("core.ops.norm.triton")
    rope = importlib.import_module("core.ops.rope.triton")

    def build(fn, types, flags):  # every argument not named in `types` is an i32 scalar
        sig = {name: "constexpr" if name in flags else types.get(name, "i32") for name in fn.arg_names}
        triton.compile(ASTSource(fn=fn, signature=sig, constexprs=flags), target=GPUTarget("cuda", 90, 32))

    for dt in ("fp32", "bf16"):
        io = {k: "*" + dt for k in ("X", "Y", "W", "B", "DY", "DX")}
        stats = {k: "*fp32" for k in ("Mean", "Rstd", "DW", "DB")} | {"eps": "fp32"}
        for affine in (True, False):
            ln = {"HAS_WEIGHT": affine, "HAS_BIAS": affine, "BLOCK_N": 256}
            rms = {"HAS_WEIGHT": affine, "BLOCK_N": 256}
            build(norm._layer_norm_fwd_kernel, {**io, **stats}, ln)
            build(norm._layer_norm_bwd_kernel, {**io, **stats}, ln)
            build(norm._rms_norm_fwd_kernel, {**io, **stats}, rms)
            build(norm._rms_norm_bwd_kernel, {**io, **stats}, rms)
        for block_pass in (0, 8):
            for kernel in (rope._rope_fwd_kernel, rope._rope_bwd_kernel):
                a = kernel.arg_names
                ptrs = {a[0]: "*" + dt, a[1]: "*" + dt, "POS": "*i64", "INV_FREQ": "*fp32"}
                build(kernel, ptrs, {"BLOCK_H": 4, "BLOCK_HALF": 8, "BLOCK_PASS": block_pass})
    print("compiled")
    """
)


def test_kernels_compile_for_cuda_without_a_gpu():
    compile_for_cuda_in_a_fresh_process(_COMPILE_SCRIPT, timeout=300)


# bf16 on a GPU (skipped with a reason on CPU by conftest).


@pytest.mark.gpu
@pytest.mark.parametrize("op", ["layer_norm", "rms_norm"])
@pytest.mark.parametrize("rows,hidden", [(4099, 512), (333, 1000), (64, 8192)])
def test_norm_kernel_bf16_on_gpu(op, rows, hidden):
    torch.manual_seed(12)
    x = torch.randn(rows, hidden, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    w = torch.randn(hidden, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    b = torch.randn(hidden, device="cuda", dtype=torch.bfloat16, requires_grad=True) if op == "layer_norm" else None
    params = [p for p in (w, b) if p is not None]
    dy = torch.randn(rows, hidden, device="cuda", dtype=torch.bfloat16)
    out = _run_norm(op, x, w, b, impl="auto")
    assert used_impls()[op] == "triton"
    ref = _run_norm(op, x, w, b, impl="")
    assert out.dtype == torch.bfloat16 and rel_rms(out, ref) < 1e-2
    for got, want in zip(_grads(out, [x, *params], dy), _grads(ref, [x, *params], dy), strict=True):
        assert rel_rms(got, want) < 1e-2


@pytest.mark.gpu
@pytest.mark.parametrize("fraction", [0.5, 1.0])
def test_rope_kernel_bf16_on_gpu(fraction):
    torch.manual_seed(13)
    x = torch.randn(4, 8, 513, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    pos = torch.arange(513, device="cuda")
    dy = torch.randn_like(x)
    out = apply_rope(x, pos, fraction=fraction)
    assert used_impls()["rope"] == "triton"
    ref = rope_reference(x, pos, fraction=fraction)
    assert out.dtype == torch.bfloat16 and rel_rms(out, ref) < 1e-2
    assert rel_rms(_grads(out, [x], dy)[0], _grads(ref, [x], dy)[0]) < 1e-2
