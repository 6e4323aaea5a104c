"""Reference attention (the spec), the fused SDPA route against it, and the dispatcher. Triton kernel parity
tests are in test_attention_triton.py."""

import logging
import math

import pytest
import torch

from core.ops.attention import attention, attention_fused
from core.ops.attention.reference import attention_reference
from core.ops.dispatch import KernelUnavailableError, requested_impl, resolve_impl, used_impls


def naive(q, k, v, bias=None, mask=None):
    """Textbook softmax(QKᵀ/√d + bias)V with an explicit boolean keep-mask, in float64."""
    s = q.double() @ k.double().transpose(-1, -2) / math.sqrt(q.shape[-1])
    if bias is not None:
        s = s + bias.double()
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return (torch.softmax(s, -1) @ v.double()).float()


@pytest.mark.parametrize("lq,lk,d", [(1, 1, 16), (63, 63, 24), (5, 9, 80)])
def test_matches_textbook_softmax(lq, lk, d):
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, lq, d), torch.randn(2, 3, lk, d), torch.randn(2, 3, lk, d)
    bias = torch.randn(1, 3, lq, lk)
    torch.testing.assert_close(attention_reference(q, k, v), naive(q, k, v), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(attention_reference(q, k, v, bias=bias), naive(q, k, v, bias), rtol=1e-4, atol=1e-5)


def test_causal_and_key_padding():
    torch.manual_seed(1)
    q, k, v = torch.randn(2, 2, 6, 8), torch.randn(2, 2, 6, 8), torch.randn(2, 2, 6, 8)
    causal = torch.ones(6, 6).tril().bool()
    torch.testing.assert_close(
        attention_reference(q, k, v, causal=True), naive(q, k, v, mask=causal), rtol=1e-4, atol=1e-5
    )
    pad = torch.tensor([[False] * 4 + [True] * 2, [False] * 6])
    keep = ~pad[:, None, None, :]
    torch.testing.assert_close(
        attention_reference(q, k, v, key_padding_mask=pad), naive(q, k, v, mask=keep), rtol=1e-4, atol=1e-5
    )
    # The first query only sees key 0 under a causal mask: its output is exactly v[..., 0, :].
    torch.testing.assert_close(attention_reference(q, k, v, causal=True)[..., 0, :], v[..., 0, :])


def test_fully_masked_rows_are_zero_not_nan_and_gradients_stay_finite():
    q = torch.randn(1, 1, 3, 8, requires_grad=True)
    k, v = torch.randn(1, 1, 3, 8), torch.randn(1, 1, 3, 8)
    out = attention_reference(q, k, v, key_padding_mask=torch.ones(1, 3, dtype=torch.bool))
    assert torch.equal(out, torch.zeros_like(out))
    out.sum().backward()
    assert torch.isfinite(q.grad).all()


def test_extreme_logits_are_stable():
    q = torch.randn(1, 2, 7, 16) * 1e4
    k, v = torch.randn(1, 2, 7, 16) * 1e4, torch.randn(1, 2, 7, 16)
    out = attention_reference(q, k, v, bias=torch.full((1, 1, 7, 7), -1e4))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, naive(q, k, v), rtol=1e-3, atol=1e-3)


def test_low_precision_inputs_keep_dtype():
    q = torch.randn(1, 1, 4, 16, dtype=torch.bfloat16)
    out = attention_reference(q, q, q)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), naive(q.float(), q.float(), q.float()), rtol=2e-2, atol=2e-2)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\[B, H, L, D\]"):
        attention_reference(torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="key_padding_mask"):
        q = torch.randn(1, 1, 2, 4)
        attention_reference(q, q, q, key_padding_mask=torch.zeros(2, 2, dtype=torch.bool))


def test_dispatch_auto_takes_the_fused_route_on_cpu_with_one_log_line(caplog, monkeypatch):
    monkeypatch.delenv("SEER_KERNELS", raising=False)
    q = torch.randn(1, 1, 4, 8)
    with caplog.at_level(logging.INFO, logger="seer.kernels"):
        attention(q, q, q)
        attention(q, q, q)
    assert used_impls()["attention"] == "fused"
    assert sum("attention" in r.message for r in caplog.records) <= 1
    # A call SDPA cannot take as the spec says (a float bias on bf16 inputs) goes to the reference, saying why.
    qb = q.bfloat16()
    with caplog.at_level(logging.INFO, logger="seer.kernels"):
        attention(qb, qb, qb, bias=torch.zeros(1, 1, 4, 4))
    assert used_impls()["attention"] == "reference"
    assert any("fused: a float bias with torch.bfloat16" in r.message for r in caplog.records)


def test_explicit_fused_and_the_environment(monkeypatch):
    q = torch.randn(1, 1, 4, 8)
    attention(q, q, q, impl="fused")
    assert used_impls()["attention"] == "fused"
    monkeypatch.setenv("SEER_KERNELS", "reference")
    attention(q, q, q)
    assert used_impls()["attention"] == "reference"
    with pytest.raises(KernelUnavailableError, match="fused.*bfloat16"):
        attention(q.bfloat16(), q.bfloat16(), q.bfloat16(), bias=torch.zeros(4, 4), impl="fused")


FUSED_CASES = {
    "plain": {},
    "bias": {"bias": (1, 3, "lq", "lk")},
    "causal": {"causal": True},
    "causal-bias-pad": {"causal": True, "bias": (2, 1, "lq", "lk"), "pad": True},
    "pad": {"pad": True},
    "scale": {"scale": 0.3},
}


@pytest.mark.parametrize("lq,lk", [(7, 7), (5, 9)])
@pytest.mark.parametrize("case", FUSED_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_route_matches_the_reference_forward_and_backward(case, lq, lk, dtype):
    """SDPA through the fused route gives the spec's output and gradients for every feature: additive bias
    (its gradient too), bottom-right causal for Lq != Lk, key padding with one row wholly padded."""
    torch.manual_seed(0)
    spec = FUSED_CASES[case]
    q, k, v = (torch.randn(2, 3, n, 16, dtype=dtype, requires_grad=True) for n in (lq, lk, lk))
    kw: dict = {"causal": spec.get("causal", False), "scale": spec.get("scale")}
    inputs = [q, k, v]
    if "bias" in spec:
        shape = [{"lq": lq, "lk": lk}.get(d, d) for d in spec["bias"]]
        kw["bias"] = torch.randn(*shape, dtype=dtype, requires_grad=True)
        inputs.append(kw["bias"])
    if spec.get("pad"):
        pad = torch.zeros(2, lk, dtype=torch.bool)
        pad[0] = True  # every key of the first sequence padded: its rows must be zeros, not NaN
        pad[1, -2:] = True
        kw["key_padding_mask"] = pad
    grad = torch.randn(2, 3, lq, 16, dtype=dtype)
    outs = [fn(q, k, v, **kw) for fn in (attention_reference, attention_fused)]
    grads = [torch.autograd.grad(o, inputs, grad) for o in outs]
    tol = {"rtol": 1e-5, "atol": 1e-5}  # the reference computes in fp32 whatever the input
    torch.testing.assert_close(outs[1], outs[0], **tol)
    for got, want in zip(grads[1], grads[0], strict=True):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want, **tol)
    if spec.get("pad"):
        assert (outs[1][0] == 0).all()


def test_fused_route_takes_dropout_as_a_fraction_of_probabilities():
    """With dropout, SDPA drops attention probabilities like the reference: the mean output is kept."""
    torch.manual_seed(0)
    q, k = torch.zeros(1, 1, 64, 8), torch.zeros(1, 1, 64, 8)
    v = torch.ones(1, 1, 64, 8)  # uniform attention over ones: every output is 1 without dropout
    out = attention_fused(q, k, v, dropout_p=0.5)
    assert 0.9 < out.mean().item() < 1.1 and (out != 1).any()


def test_dispatch_explicit_triton_raises_and_env_overrides(monkeypatch):
    # Without the interpreter, a Triton kernel cannot run on CPU tensors.
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    cpu = torch.device("cpu")
    with pytest.raises(KernelUnavailableError, match="attention"):
        resolve_impl("attention", cpu, "triton")
    with pytest.raises(KernelUnavailableError, match="dropout"):  # the kernel has no dropout: explicit raises
        attention(
            torch.randn(1, 1, 2, 4), torch.randn(1, 1, 2, 4), torch.randn(1, 1, 2, 4), dropout_p=0.1, impl="triton"
        )
    monkeypatch.setenv("SEER_KERNELS", "triton")
    assert requested_impl("auto") == "triton"
    assert requested_impl("reference") == "reference"  # an explicit argument wins over the env
    with pytest.raises(KernelUnavailableError):
        attention(torch.randn(1, 1, 2, 4), torch.randn(1, 1, 2, 4), torch.randn(1, 1, 2, 4))
    monkeypatch.setenv("SEER_KERNELS", "cuda-please")
    with pytest.raises(ValueError, match="unknown kernel impl"):
        requested_impl()
