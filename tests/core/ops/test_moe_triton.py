"""Triton mixture-of-SwiGLU-experts vs the reference loop (the spec): forward and every gradient, odd shapes.

Tiers: `interpret` tests run the kernels through the Triton interpreter on CPU in fp32 (or compiled on a
GPU when there is one); the sm_90 build checks the compiled code path without a GPU; `gpu` tests check
bf16/fp16 parity on CUDA and skip elsewhere. Errors are relative RMS, ||a - b|| / ||b||, per tensor.
"""

from __future__ import annotations

import logging
import textwrap

import pytest
import torch
from triton_tier import CUDA, DEVICE, compile_for_cuda_in_a_fresh_process, rel_rms  # first: interpreter set-up

pytest.importorskip("triton")  # the kernel modules imported below need it

from core.nn.moe import MoEFeedForward  # noqa: E402
from core.ops.dispatch import KernelUnavailableError, used_impls  # noqa: E402
from core.ops.moe import moe_swiglu, route_topk  # noqa: E402
from core.ops.moe.reference import moe_swiglu_reference  # noqa: E402
from core.ops.moe.triton import moe_swiglu_triton  # noqa: E402

FP32_TOL = 1e-5  # measured <= 3.1e-7 on these shapes (interpreter); the rest is headroom for GPU order/TF32x3
GRAD_NAMES = ("dx", "dweights", "dw_gate", "dw_up", "dw_down")


def make(t, e, k, d, f, dtype=torch.float32, empty=(), seed=0):
    """(x, indices, weights, w_gate, w_up, w_down): top-k routing of random logits; experts in `empty` get no token."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(t, d, generator=g)
    logits = torch.randn(t, e, generator=g)
    for j in empty:
        logits[:, j] = -1e4
    indices, weights = route_topk(logits, k)
    w_gate = torch.randn(e, d, f, generator=g) / d**0.5
    w_up = torch.randn(e, d, f, generator=g) / d**0.5
    w_down = torch.randn(e, f, d, generator=g) / f**0.5
    leaves = [v.to(DEVICE, dtype).requires_grad_() for v in (x, weights, w_gate, w_up, w_down)]
    x, weights, w_gate, w_up, w_down = leaves
    return x, indices.to(DEVICE), weights, w_gate, w_up, w_down


def run(fn, x, indices, weights, w_gate, w_up, w_down, dy):
    """Output and the gradients of (x, weights, w_gate, w_up, w_down) for upstream gradient dy."""
    y = fn(x, indices, weights, w_gate, w_up, w_down)
    return y, torch.autograd.grad(y, [x, weights, w_gate, w_up, w_down], dy)


def assert_parity(args, tol=FP32_TOL, reference_args=None):
    """Triton vs reference on `args` (the reference on `reference_args` when given, e.g. fp32 copies)."""
    ref_args = reference_args or args
    y_ref = moe_swiglu_reference(*ref_args)
    dy = torch.randn(y_ref.shape, generator=torch.Generator().manual_seed(99)).to(DEVICE)
    y_ref, g_ref = run(moe_swiglu_reference, *ref_args, dy.to(y_ref.dtype))
    y, grads = run(moe_swiglu_triton, *args, dy.to(args[0].dtype))
    assert y.dtype == args[0].dtype and y.shape == y_ref.shape
    errors = {"y": rel_rms(y, y_ref)}
    for name, gr, gr_ref, leaf in zip(GRAD_NAMES, grads, g_ref, [args[0], *args[2:]], strict=True):
        assert gr.shape == leaf.shape and gr.dtype == leaf.dtype, name
        assert torch.isfinite(gr).all(), name
        errors[name] = rel_rms(gr, gr_ref)
    assert all(err < tol for err in errors.values()), errors
    return y, grads, errors


# (id, T, E, k, D, F, experts without tokens)
CASES = [
    ("T37-E5-k2-D24-F40", 37, 5, 2, 24, 40, ()),
    ("T37-E5-k2-D24-F40-empty-experts", 37, 5, 2, 24, 40, (0, 3)),
    ("T1-E3-k1-D16-F16", 1, 3, 1, 16, 16, ()),
    ("T50-E4-k3-D33-F17", 50, 4, 3, 33, 17, ()),
    ("T21-E6-k2-D7-F9-last-empty", 21, 6, 2, 7, 9, (5,)),
]


@pytest.mark.interpret
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_forward_backward_match_reference(case):
    _, t, e, k, d, f, empty = case
    args = make(t, e, k, d, f, empty=empty)
    _, grads, _ = assert_parity(args)
    indices = args[1]
    for j in empty:  # no token reached expert j: exactly zero weight gradients, not garbage from torch.empty
        assert not (indices == j).any()
        for gr in grads[2:]:
            assert torch.equal(gr[j], torch.zeros_like(gr[j]))


@pytest.mark.interpret
def test_one_expert_takes_every_token_and_duplicate_slots_count_twice():
    x, indices, weights, w_gate, w_up, w_down = make(40, 4, 2, 24, 40, seed=1)
    skewed = torch.full_like(indices, 2)
    skewed[::3, 1] = 0  # expert 2 gets every token (twice for most), expert 0 some, experts 1 and 3 none
    assert_parity((x, skewed, weights, w_gate, w_up, w_down))


@pytest.mark.interpret
def test_strided_input_partial_grads_and_inference():
    x, indices, weights, w_gate, w_up, w_down = make(29, 5, 2, 24, 40, seed=2)
    xt = x.detach().t().contiguous().t()  # same values, column-major strides
    assert not xt.is_contiguous()
    xt.requires_grad_()
    frozen = [w.detach() for w in (weights, w_gate, w_up, w_down)]  # only x takes a gradient
    y = moe_swiglu_triton(xt, indices, *frozen)
    (dx,) = torch.autograd.grad(y, [xt], torch.ones_like(y))
    y_ref = moe_swiglu_reference(x, indices, *frozen)
    (dx_ref,) = torch.autograd.grad(y_ref, [x], torch.ones_like(y_ref))  # expanded-style ones gradient
    assert rel_rms(y, y_ref) < FP32_TOL and rel_rms(dx, dx_ref) < FP32_TOL
    with torch.no_grad():  # inference path: no autograd Function, no saved pre-activations
        y_inf = moe_swiglu_triton(x, indices, weights, w_gate, w_up, w_down)
    assert not y_inf.requires_grad and rel_rms(y_inf, y_ref) < FP32_TOL


@pytest.mark.interpret
def test_module_on_triton_matches_reference_module():
    torch.manual_seed(3)
    ref = MoEFeedForward(24, 40, 5, top_k=2, impl="reference").to(DEVICE)
    tri = MoEFeedForward(24, 40, 5, top_k=2, impl="triton").to(DEVICE)
    tri.load_state_dict(ref.state_dict())
    x = torch.randn(2, 13, 24, device=DEVICE)
    y_ref, y = ref(x), tri(x)
    (y_ref.square().sum() + ref.aux_loss).backward()
    (y.square().sum() + tri.aux_loss).backward()
    assert used_impls()["moe"] == "triton"
    assert rel_rms(y, y_ref) < FP32_TOL and torch.equal(tri.last_counts, ref.last_counts)
    for (name, p_ref), p in zip(ref.named_parameters(), tri.parameters(), strict=True):
        assert rel_rms(p.grad, p_ref.grad) < FP32_TOL, name


@pytest.mark.interpret
def test_fp16_matches_the_fp32_reference():
    # 16-bit storage of H, O, G, U, dG, dU in the interpreter (whose bf16 tl.dot is wrong on CPU in triton 3.9,
    # so bf16 is checked on GPU only). Measured <= 4.6e-4 against fp32 (fp16 rounds at 2^-11 ≈ 4.9e-4).
    args = make(37, 5, 2, 24, 40, dtype=torch.float16, empty=(1,), seed=7)
    fp32_args = tuple(a.detach().float().requires_grad_() if a.is_floating_point() else a for a in args)
    assert_parity(args, tol=2e-3, reference_args=fp32_args)


@pytest.mark.interpret
def test_autocast_casts_fp32_parameters_for_the_kernel():
    torch.manual_seed(8)
    moe = MoEFeedForward(24, 40, 5, top_k=2, impl="triton").to(DEVICE)
    x = torch.randn(19, 24, device=DEVICE)
    with torch.autocast(DEVICE, dtype=torch.float16):
        y = moe(x)
    assert y.dtype == torch.float16 and used_impls()["moe"] == "triton"
    y.float().square().sum().backward()
    assert moe.w_down.grad.dtype == torch.float32 and torch.isfinite(moe.w_down.grad).all()
    with torch.autocast(DEVICE, dtype=torch.float16):
        y_ref = moe_swiglu_reference(
            x.half(), *route_topk(moe.router(x), 2), *(w.half() for w in (moe.w_gate, moe.w_up, moe.w_down))
        )
    assert rel_rms(y, y_ref) < 2e-3


@pytest.mark.interpret
def test_dispatch_explicit_triton_runs_the_kernel():
    args = make(9, 3, 2, 16, 16, seed=4)
    y = moe_swiglu(*args, impl="triton")
    assert used_impls()["moe"] == "triton"
    assert rel_rms(y, moe_swiglu_reference(*args)) < FP32_TOL


@pytest.mark.interpret
def test_dispatch_keeps_uncovered_dtypes_on_the_reference(caplog, monkeypatch):
    monkeypatch.delenv("SEER_KERNELS", raising=False)
    args = [a.detach().double() if a.is_floating_point() else a for a in make(6, 3, 2, 16, 16, seed=5)]
    with pytest.raises(KernelUnavailableError, match="float64"):
        moe_swiglu(*args, impl="triton")
    with caplog.at_level(logging.INFO, logger="seer.kernels"):
        y = moe_swiglu(*args)
    assert used_impls()["moe"] == "reference" and y.dtype == torch.float64
    with pytest.raises(ValueError, match="share one of"):
        moe_swiglu_triton(*args)


@pytest.mark.interpret
@pytest.mark.skipif(CUDA, reason="checks the CPU fallback")
def test_auto_stays_on_reference_on_cpu_even_when_interpreting(monkeypatch):
    monkeypatch.delenv("SEER_KERNELS", raising=False)
    moe_swiglu(*make(5, 3, 2, 16, 16))
    assert used_impls()["moe"] == "reference"


@pytest.mark.interpret
def test_empty_batch_and_bad_shapes():
    x, indices, weights, w_gate, w_up, w_down = make(4, 3, 2, 16, 24)
    y = moe_swiglu_triton(x[:0], indices[:0], weights[:0], w_gate, w_up, w_down)
    assert y.shape == (0, 16)
    with pytest.raises(ValueError, match=r"w_down must be \[E, F, D\]"):
        moe_swiglu_triton(x, indices, weights, w_gate, w_up, w_down.transpose(1, 2))
    with pytest.raises(ValueError, match=r"\[T, k\]"):
        moe_swiglu_triton(x, indices[:, :1], weights, w_gate, w_up, w_down)


# Compiled code path without a GPU: build every kernel variant for sm_90 (TTIR -> PTX -> cubin) in a fresh
# process, with the 16-byte alignment the launcher specialises on (without it nothing gets pipelined), and
# check the tiles of `_tiles` do not spill registers (ptxas -v, when a ptxas that reads the PTX is bundled).
_COMPILE_SCRIPT = textwrap.dedent(
    """
    import os, re, subprocess, tempfile
    import torch, triton
    from triton.backends import backends
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    if "nvidia" not in backends:
        raise SystemExit("SKIP: triton has no nvidia backend")
    import core.ops.moe.triton as m

    bin_dir = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
    ptxas = [os.path.join(bin_dir, n) for n in ("ptxas-blackwell", "ptxas") if os.path.exists(os.path.join(bin_dir, n))]
    tmp = tempfile.mkdtemp()

    def spills(ptx):
        path = os.path.join(tmp, "k.ptx")
        open(path, "w").write(ptx)
        for exe in ptxas:
            out = subprocess.run([exe, "-arch=sm_90a", "-v", path, "-o", path + ".o"], capture_output=True, text=True)
            found = re.search(r"(\\d+) bytes spill stores", out.stderr)
            if out.returncode == 0 and found:
                return int(found.group(1))
        return None  # no bundled ptxas reads this PTX version: compile-only check

    def build(fn, types, flags, ones=(), odd=()):
        flags = dict(flags)
        opts = {k: flags.pop(k) for k in ("num_warps", "num_stages") if k in flags}
        flags.update({name: 1 for name in ones})  # unit strides: the launcher passes these as constexpr 1
        sig = {n: "constexpr" if n in flags else types.get(n, "i32") for n in fn.arg_names}
        attrs = {(i,): [["tt.divisibility", 16]] for i, n in enumerate(fn.arg_names)
                 if sig[n] != "constexpr" and n not in odd}
        kernel = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=flags, attrs=attrs),
                                target=GPUTarget("cuda", 90, 32), options=opts)
        spilled = spills(kernel.asm["ptx"])
        print(fn.__name__, flags.get("DUAL", ""), "spill", spilled)
        assert not spilled, f"{fn.__name__} spills {spilled} bytes with {flags}"

    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        t = m._tiles(dtype)
        P, I = "*" + name, "*i32"
        blocks = dict(BlkE=I, BlkStart=I, BlkLen=I)
        dot = dict(BLOCK_M=t.block_m, DOT_PRECISION=t.precision)
        bn, bk, w, s = t.dual
        opts = dict(BLOCK_N=bn, BLOCK_K=bk, num_warps=w, num_stages=s, **dot)
        build(m._gate_up_fwd_kernel, dict(X=P, Tok=I, Wg=P, Wu=P, H=P, G=P, U=P, **blocks), dict(SAVE=True, **opts),
              ones=("stride_xd", "stride_wf"))
        rows = dict(A1=P, B1=P, A2=P, B2=P, C=P, **blocks)
        build(m._rows_matmul_kernel, rows, dict(DUAL=True, **opts), ones=("stride_bk",))
        bn, bk, w, s = t.rows
        build(m._rows_matmul_kernel, rows, dict(DUAL=False, BLOCK_N=bn, BLOCK_K=bk, num_warps=w, num_stages=s, **dot),
              ones=("stride_bn",))
        build(m._unpermute_kernel, dict(O=P, Pos=I, S=P, Y=P),
              dict(TOP_K=2, HAS_SCALE=True, BLOCK_T=32, BLOCK_N=128, num_warps=4), odd=("T",))
        bn, bk, w, s = t.swiglu_bwd
        build(m._swiglu_bwd_kernel,
              dict(DY=P, Tok=I, Wd=P, G=P, U=P, Ws="*fp32", DG=P, DU=P, DWp="*fp32", **blocks),
              dict(BLOCK_N=bn, BLOCK_K=bk, num_warps=w, num_stages=s, **dot), ones=("stride_wdd",), odd=("R",))
        a, b, r, w, s = t.dw
        tiles = dict(BLOCK_R=r, DOT_PRECISION=t.precision, num_warps=w, num_stages=s)
        build(m._dw_gate_up_kernel, dict(X=P, Tok=I, DG=P, DU=P, Off=I, DWg=P, DWu=P),
              dict(BLOCK_D=a, BLOCK_F=b, **tiles), ones=("stride_xd",))
        build(m._dw_down_kernel, dict(G=P, U=P, Ws="*fp32", DY=P, Tok=I, Off=I, DWd=P),
              dict(BLOCK_F=a, BLOCK_D=b, **tiles))
    print("compiled")
    """
)


def test_kernels_compile_for_cuda_without_a_gpu():
    compile_for_cuda_in_a_fresh_process(_COMPILE_SCRIPT, timeout=600)


# 16-bit inputs: G, U, H, O, dG, dU are stored in the input dtype (one rounding each, 2^-8 relative for
# bf16), so the kernel sits a few roundings from the fp32 answer. The reference run on the same 16-bit
# inputs is held to the same bound, so the bound says "no worse than the loop in this dtype". To be
# tightened to measured values once a GPU run records them.
LOW_PRECISION_TOL = {torch.bfloat16: 2e-2, torch.float16: 5e-3}


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize(
    "shape",
    [(2048, 8, 2, 256, 512, ()), (333, 6, 2, 200, 328, (4,)), (4096, 32, 2, 384, 1536, ())],
    ids=["T2048-E8-D256", "odd-T333-D200-F328-empty", "moirai-small-like-E32"],
)
def test_low_precision_parity_on_gpu(dtype, shape):
    t, e, k, d, f, empty = shape
    args = make(t, e, k, d, f, dtype=dtype, empty=empty, seed=6)
    fp32_args = tuple(a.detach().float().requires_grad_() if a.is_floating_point() else a for a in args)
    tol = LOW_PRECISION_TOL[dtype]
    _, _, errors = assert_parity(args, tol=tol, reference_args=fp32_args)
    y16 = moe_swiglu_reference(*args)
    assert rel_rms(y16, moe_swiglu_reference(*fp32_args)) < tol
    print(f"{dtype} {shape}: " + ", ".join(f"{n} {v:.1e}" for n, v in errors.items()))
