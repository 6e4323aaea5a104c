"""What every Triton kernel test file shares: the interpreter tier set-up and the error measure.

Tiers: `interpret` tests run kernels through the Triton interpreter on CPU in fp32 (compiled on a GPU
when there is one); `gpu` tests check low-precision parity on CUDA and skip elsewhere.

triton.language's own @jit helpers are made interpreted or compiled at the first `import triton`, so
on a CPU machine the interpreter must be on before that import. `tests/conftest.py` sets
`TRITON_INTERPRET=1` before collection; importing this module also switches it on around the first
import (for a file run on its own) and puts the variable back, so tests that check "explicit triton
on CPU without the interpreter raises" still see it unset. The `interpret` fixture turns it on per test.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"

if not CUDA and "triton" not in sys.modules:
    _saved = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        pytest.importorskip("triton")
        import triton.language  # noqa: F401
    finally:
        if _saved is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = _saved
triton = pytest.importorskip("triton")

from triton.runtime.interpreter import InterpretedFunction  # noqa: E402

INTERPRETER_READY = isinstance(triton.language.zeros, InterpretedFunction)


@pytest.fixture
def interpret(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run this test's kernels in the interpreter on CPU (a no-op on CUDA)."""
    if CUDA:
        return
    if not INTERPRETER_READY:  # tests/conftest.py sets the variable before anything imports triton
        pytest.fail("triton was imported in compiled mode before TRITON_INTERPRET=1 was set (see tests/conftest.py)")
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def rel_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a − b|| / ||b|| in float64 (||b|| = 0 counts as 1)."""
    a, b = a.double(), b.double()
    denom = b.norm().item()
    return (a - b).norm().item() / (denom if denom > 0 else 1.0)
