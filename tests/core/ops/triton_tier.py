"""What every op test file shares: the Triton interpreter tier, the error measure and the compile check.

Tiers: plain tests check the references (the spec) and the dispatcher; `interpret` tests (marked
`@pytest.mark.interpret`) run kernels through the Triton interpreter on CPU in fp32 (compiled on a GPU
when there is one); `gpu` tests check low-precision parity on CUDA and skip elsewhere; the compile tests
build every kernel variant for sm_90 without a GPU (`compile_for_cuda_in_a_fresh_process`).

triton.language's own @jit helpers are made interpreted or compiled at the first `import triton`, so
on a CPU machine the interpreter must be on before that import. `tests/conftest.py` sets
`TRITON_INTERPRET=1` before collection; importing this module also switches it on around the first
import (for a file run on its own) and puts the variable back, so tests that check "explicit triton
on CPU without the interpreter raises" still see it unset. The `interpret` fixture turns it on per test;
`conftest.py` next to this file requests it for every test marked `interpret`. Op kernel modules are
imported lazily by the ops (or by the test files, after this module), so they are decorated in that mode.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
ROOT = Path(__file__).resolve().parents[3]  # the repository: tests/core/ops/triton_tier.py

if not CUDA and "triton" not in sys.modules:
    _saved = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        import triton.language  # noqa: F401
    except ImportError:
        pass
    finally:
        if _saved is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = _saved

triton: ModuleType | None
try:
    import triton
    from triton.runtime.interpreter import InterpretedFunction
except ImportError:
    triton = None
    INTERPRETER_READY = False
else:
    INTERPRETER_READY = isinstance(triton.language.zeros, InterpretedFunction)


@pytest.fixture
def interpret(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run this test's kernels in the interpreter on CPU (a no-op on CUDA); skip without triton."""
    if CUDA:
        return
    if triton is None:
        pytest.skip("the triton package is not installed")
    if not INTERPRETER_READY:  # tests/conftest.py sets the variable before anything imports triton
        pytest.fail("triton was imported in compiled mode before TRITON_INTERPRET=1 was set (see tests/conftest.py)")
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def rel_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a − b|| / ||b|| in float64 (||b|| = 0 counts as 1): the parity measure of every kernel test."""
    a, b = a.detach().double(), b.detach().double()
    denom = b.norm().item()
    return (a - b).norm().item() / (denom if denom > 0 else 1.0)


def compile_for_cuda_in_a_fresh_process(script: str, timeout: int = 300) -> None:
    """Run `script` (it builds kernels for a CUDA target and prints "compiled") in a new Python process.

    The interpreter runs the kernels' Python, not Triton's compiler, so the compiled path is checked this way
    without a GPU: the child process imports triton without TRITON_INTERPRET. A script that exits with
    "SKIP: ..." on stderr (e.g. no nvidia backend) skips the test.
    """
    if triton is None:
        pytest.skip("the triton package is not installed")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"  # triton 3.9 warns when unset; 1 is its current default
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0 and "SKIP:" in proc.stderr:
        pytest.skip(proc.stderr.strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "compiled" in proc.stdout
