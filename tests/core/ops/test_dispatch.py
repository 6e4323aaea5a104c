"""The dispatcher's one "why not" (`resolve_impl(..., unsupported=)`) and the layout rules of core/ops.

The dispatcher is checked on a stand-in op registered for the test, on a `cuda` device object: deciding never
touches the device, so these run on CPU.
"""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

import pytest
import torch

from core.ops import dispatch
from core.ops.dispatch import KernelUnavailableError, resolve_impl, used_impls

OPS_DIR = Path(dispatch.__file__).resolve().parent
OPS = sorted(p.name for p in OPS_DIR.iterdir() if (p / "__init__.py").exists())
CUDA_DEVICE = torch.device("cuda")  # a device object only: nothing is allocated on it


@pytest.fixture
def fake_op(monkeypatch: pytest.MonkeyPatch) -> str:
    """A registered op whose kernel the dispatcher would pick on CUDA, with fresh warn/used bookkeeping."""
    monkeypatch.setattr(dispatch, "_TRITON_OPS", {"fake"})
    monkeypatch.setattr(dispatch, "_warned", set())
    monkeypatch.setattr(dispatch, "_used", {})
    monkeypatch.setattr(dispatch, "_triton_importable", lambda: True)
    monkeypatch.delenv("SEER_KERNELS", raising=False)
    return "fake"


def test_covered_calls_resolve_as_before(fake_op):
    assert resolve_impl(fake_op, CUDA_DEVICE) == "triton"
    assert resolve_impl(fake_op, CUDA_DEVICE, "reference", unsupported="anything") == "reference"
    assert resolve_impl(fake_op, CUDA_DEVICE, "triton", unsupported=None) == "triton"
    assert used_impls() == {fake_op: "triton"}


def test_auto_falls_back_with_one_log_line_per_reason(fake_op, caplog):
    with caplog.at_level(logging.INFO, logger="seer.kernels"):
        for _ in range(3):
            assert resolve_impl(fake_op, CUDA_DEVICE, unsupported="dropout_p=0.1: no dropout") == "reference"
        assert resolve_impl(fake_op, CUDA_DEVICE, unsupported="head dim 160 > 128") == "reference"
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "kernel fake: using the PyTorch reference (dropout_p=0.1: no dropout)",
        "kernel fake: using the PyTorch reference (head dim 160 > 128)",
    ]
    assert used_impls() == {fake_op: "reference"}


def test_explicit_triton_raises_naming_the_reason(fake_op, monkeypatch):
    expected = "impl='triton' requested for 'fake' but it cannot run: no dropout"
    with pytest.raises(KernelUnavailableError, match=expected):
        resolve_impl(fake_op, CUDA_DEVICE, "triton", unsupported="no dropout")
    # The op's own reason comes first, even where the device could not run the kernel either.
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(KernelUnavailableError, match="no dropout"):
        resolve_impl(fake_op, torch.device("cpu"), "triton", unsupported="no dropout")
    monkeypatch.setenv("SEER_KERNELS", "triton")  # the environment asks explicitly too
    with pytest.raises(KernelUnavailableError, match="no dropout"):
        resolve_impl(fake_op, CUDA_DEVICE, unsupported="no dropout")


def test_auto_on_a_device_without_kernels_logs_the_device_reason(fake_op, caplog, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with caplog.at_level(logging.INFO, logger="seer.kernels"):
        assert resolve_impl(fake_op, torch.device("cpu"), unsupported="no dropout") == "reference"
    assert [r.getMessage() for r in caplog.records] == [
        "kernel fake: using the PyTorch reference (Triton needs a CUDA device (got cpu); set TRITON_INTERPRET=1 "
        "to interpret on CPU)"
    ]


@pytest.mark.parametrize(
    ("call", "why"),
    [
        (lambda: _attention(d=16, dropout_p=0.1), "dropout"),
        (lambda: _attention(d=160), "head dim 160"),
        (lambda: _attention(d=16, dtype=torch.float64), "float64"),
        (lambda: _probsparse(d=160), "head dim 160"),
        (lambda: _probsparse(d=16, dtype=torch.float64), "float64"),
        (lambda: _moe(torch.float64), "float64"),
        (lambda: _layer_norm(70000), "N=70000"),
    ],
    ids=["attention-dropout", "attention-wide", "attention-fp64", "probsparse-wide", "probsparse-fp64", "moe-fp64",
         "norm-wide"],
)  # fmt: skip
def test_every_op_passes_its_reason_to_the_dispatcher(call, why, monkeypatch):
    monkeypatch.setenv("SEER_KERNELS", "triton")
    with pytest.raises(KernelUnavailableError, match=why):
        call()


def _attention(d: int, dropout_p: float = 0.0, dtype: torch.dtype = torch.float32) -> None:
    from core.ops.attention import attention

    q = torch.randn(1, 1, 4, d, dtype=dtype)
    attention(q, q, q, dropout_p=dropout_p)


def _probsparse(d: int, dtype: torch.dtype = torch.float32) -> None:
    from core.ops.probsparse import probsparse_attention

    q = torch.randn(1, 1, 8, d, dtype=dtype)
    probsparse_attention(q, q, q)


def _moe(dtype: torch.dtype) -> None:
    from core.ops.moe import moe_swiglu

    x, w = torch.randn(3, 4, dtype=dtype), torch.randn(2, 4, 4, dtype=dtype)
    moe_swiglu(x, torch.zeros(3, 1, dtype=torch.int64), torch.ones(3, 1, dtype=dtype), w, w, w)


def _layer_norm(n: int) -> None:
    from core.ops.norm import layer_norm

    layer_norm(torch.randn(1, n))


# Layout: ops share Triton helpers through core/ops/triton_utils.py only, and launch through it.


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def test_the_five_ops_are_all_here():
    assert OPS == ["attention", "moe", "norm", "probsparse", "rope"]


@pytest.mark.parametrize("op", OPS)
def test_no_op_imports_a_sibling_op(op):
    for path in sorted((OPS_DIR / op).glob("*.py")):
        for name in _imports(path):
            parts = name.split(".")
            if parts[:2] == ["core", "ops"] and len(parts) > 2 and parts[2] in OPS:
                assert parts[2] == op, f"{path.relative_to(OPS_DIR)} imports {name}: share it through triton_utils"


@pytest.mark.parametrize("op", OPS)
def test_every_kernel_is_launched_through_triton_utils(op):
    source = (OPS_DIR / op / "triton.py").read_text()
    assert "core.ops.triton_utils" in _imports(OPS_DIR / op / "triton.py")
    kernels = set(re.findall(r"^def (_\w+_kernel)\(", source, flags=re.MULTILINE))
    assert kernels, f"{op}: no kernels found"
    assert not re.search(r"_kernel\)?\[", source), f"{op}: a kernel is indexed with a grid outside `launch`"
    calls = re.findall(r"\blaunch\((_\w+_kernel),(.*?)\)  # fmt: skip", source, flags=re.DOTALL)
    launched = {name for name, _ in calls}
    if op == "rope":  # one launcher takes the kernel as an argument
        launched = {k for k in kernels if re.search(rf"_rotate\({k},", source)}
    assert launched == kernels
    # Launches inside a torch.library.triton_op are traceable (wrap_triton); the others launch directly.
    in_triton_op = "torch.library.triton_op" in source
    assert all(("traceable=True" in args) == in_triton_op for _, args in calls), op


def test_auto_takes_the_fused_route_where_triton_cannot_run(fake_op, caplog, monkeypatch):
    """Triton first, then the op's fused PyTorch route, then the reference; the fused check runs only when
    that route is considered, and each fallback is logged once with both reasons."""
    monkeypatch.setattr(dispatch, "_FUSED_OPS", {"fake"})
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    calls: list[int] = []

    def check() -> None:
        calls.append(1)

    assert resolve_impl(fake_op, CUDA_DEVICE, fused_unsupported=check) == "triton" and not calls
    with caplog.at_level(logging.INFO, logger="seer.kernels"):
        assert resolve_impl(fake_op, torch.device("cpu"), fused_unsupported=check) == "fused"
        assert resolve_impl(fake_op, CUDA_DEVICE, unsupported="no dropout") == "fused"
        for _ in range(2):
            assert resolve_impl(fake_op, torch.device("cpu"), fused_unsupported="int8 inputs") == "reference"
    assert len(calls) == 1 and used_impls() == {fake_op: "reference"}
    messages = [r.getMessage() for r in caplog.records]
    assert messages[1] == "kernel fake: using the fused PyTorch op (no dropout)"
    assert messages[2].startswith("kernel fake: using the PyTorch reference (Triton needs a CUDA device")
    assert messages[2].endswith("; fused: int8 inputs)") and len(messages) == 3
    with pytest.raises(KernelUnavailableError, match="impl='fused' requested for 'fake' but it cannot run: int8"):
        resolve_impl(fake_op, CUDA_DEVICE, "fused", fused_unsupported="int8 inputs")
    monkeypatch.setattr(dispatch, "_FUSED_OPS", set())
    with pytest.raises(KernelUnavailableError, match="no fused implementation"):
        resolve_impl(fake_op, CUDA_DEVICE, "fused")
