"""The nn.Modules over the norm and RoPE ops: `LayerNorm`, `RMSNorm`, `RotaryEmbedding` and the encoder layer's
norms, on CPU through the references (the ops themselves are tested in tests/core/ops/test_norm_rope.py)."""

import pytest
import torch
from torch import nn

from core.nn import LayerNorm, RMSNorm, RotaryEmbedding, TransformerEncoderLayer
from core.ops.norm import rms_norm_reference
from core.ops.rope import rope_reference


def test_layer_norm_module_is_interchangeable_with_nn_layer_norm():
    torch.manual_seed(5)
    ours, theirs = LayerNorm(24), nn.LayerNorm(24)
    assert set(ours.state_dict()) == set(theirs.state_dict()) == {"weight", "bias"}
    assert torch.equal(ours.weight, torch.ones(24)) and torch.equal(ours.bias, torch.zeros(24))
    nn.init.normal_(theirs.weight)
    nn.init.normal_(theirs.bias)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 5, 24)
    torch.testing.assert_close(ours(x), theirs(x))
    assert LayerNorm(24, bias=False).bias is None
    assert not list(LayerNorm(24, elementwise_affine=False).parameters())


def test_rms_norm_module():
    torch.manual_seed(6)
    norm = RMSNorm(16, eps=1e-6)
    assert set(norm.state_dict()) == {"weight"}
    nn.init.normal_(norm.weight)
    x = torch.randn(3, 16)
    torch.testing.assert_close(norm(x), rms_norm_reference(x, norm.weight, 1e-6))


def test_encoder_keeps_layer_norm_state_dict_keys():
    layer = TransformerEncoderLayer(d_model=16, n_heads=2, d_ff=32)
    keys = set(layer.state_dict())
    assert {"norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"} <= keys
    assert isinstance(layer.norm1, LayerNorm)


def test_rotary_embedding_module():
    torch.manual_seed(7)
    rope = RotaryEmbedding(16)  # fraction 0.5: 8 rotated dims
    assert rope.rotary_dims == 8
    q, k = torch.randn(2, 2, 5, 16), torch.randn(2, 2, 5, 16)
    qr, kr = rope(q, k)
    torch.testing.assert_close(qr, rope_reference(q, torch.arange(5), fraction=0.5))
    torch.testing.assert_close(kr, rope_reference(k, torch.arange(5), fraction=0.5))
    with pytest.raises(ValueError, match="odd"):
        RotaryEmbedding(10)
