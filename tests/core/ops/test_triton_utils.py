"""The shared launch toolbox (`core.ops.triton_utils`): the one launch helper, interpreter re-wrapping, padding."""

from __future__ import annotations

import pytest
import torch
from triton_tier import DEVICE  # first: interpreter set-up

triton = pytest.importorskip("triton")

import triton.language as tl  # noqa: E402
from triton.runtime.interpreter import InterpretedFunction  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402

from core.ops import triton_utils  # noqa: E402
from core.ops.triton_utils import dot_precision, launch, launchable, pad_dim, unit_stride_last  # noqa: E402


@triton.jit
def _add_one_kernel(X, Y, N, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    tl.store(Y + offs, tl.load(X + offs, mask=mask) + 1.0, mask=mask)


@pytest.mark.interpret
def test_launch_runs_a_kernel_over_its_grid():
    x = torch.arange(37, dtype=torch.float32, device=DEVICE)
    y = torch.zeros_like(x)
    launch(_add_one_kernel, (triton.cdiv(37, 16),), x, y, 37, BLOCK=16)
    assert torch.equal(y, x + 1)


@pytest.mark.interpret
def test_traceable_launch_goes_through_wrap_triton(monkeypatch):
    wrapped = []

    def wrap_triton(kernel):
        wrapped.append(kernel)
        return kernel

    monkeypatch.setattr(torch.library, "wrap_triton", wrap_triton)
    x = torch.arange(5, dtype=torch.float32, device=DEVICE)
    y = torch.zeros_like(x)
    launch(_add_one_kernel, (1,), x, y, 5, BLOCK=16)
    assert wrapped == []  # outside a triton_op: launched directly
    launch(_add_one_kernel, (1,), x, y, 5, BLOCK=16, traceable=True)
    assert len(wrapped) == 1 and torch.equal(y, x + 1)


@pytest.mark.interpret
@pytest.mark.skipif(DEVICE == "cuda", reason="checks the interpreter re-wrap")
def test_a_kernel_decorated_in_compiled_mode_is_rewrapped_for_the_interpreter():
    compiled = JITFunction(_add_one_kernel.fn)  # as if its module had been imported without TRITON_INTERPRET
    runnable = launchable(compiled)
    assert isinstance(runnable, InterpretedFunction) and launchable(compiled) is runnable  # cached
    x = torch.arange(5, dtype=torch.float32)
    y = torch.zeros_like(x)
    launch(compiled, (1,), x, y, 5, BLOCK=16)
    assert torch.equal(y, x + 1)


def test_an_empty_grid_launches_nothing():
    class NotAKernel:  # any attempt to wrap or launch it would raise
        pass

    launch(NotAKernel(), (0, 4))
    launch(NotAKernel(), (3, 0))


@pytest.mark.skipif(DEVICE == "cuda", reason="checks the interpreter guard")
def test_interpreting_without_interpreted_triton_helpers_raises(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(triton_utils.tl, "zeros", object())  # as if triton had been imported in compiled mode
    with pytest.raises(RuntimeError, match="before the first `import triton`"):
        launchable(_add_one_kernel)


def test_padding_precision_and_strides():
    assert [pad_dim(d) for d in (1, 16, 17, 80, 128)] == [16, 16, 32, 128, 128]
    assert dot_precision(torch.float32) == "tf32x3" and dot_precision(torch.bfloat16) == "tf32"
    x = torch.randn(4, 6)
    assert unit_stride_last(x) is x
    xt = x.t()
    assert unit_stride_last(xt).stride(-1) == 1 and torch.equal(unit_stride_last(xt), xt)
