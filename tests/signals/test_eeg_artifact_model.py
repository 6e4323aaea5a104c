"""ART's own facts (Chuang et al. 2024; official code CNElab-Plus/ArtifactRemovalTransformer); the contract
every model meets is in tests/inference/test_model_conformance.py.

The layers are checked against a reference: PyTorch's own pre-norm `nn.TransformerEncoderLayer` /
`nn.TransformerDecoderLayer` (`norm_first=True`, ReLU), the same maths as the official code's
`SublayerConnection` layers, given the same weights."""

import math

import pytest
import torch
from torch import nn

from signals import eeg_inputs
from signals.eeg_artifact import ART, ARTConfig
from signals.eeg_artifact.model import ARTDecoderLayer, ARTEncoderLayer, sinusoidal_positions


def test_art_default_is_the_official_size():
    # make_model(30, 30, N=2, d_model=128, d_ff=2048, h=8): about 2.5 M parameters, 4 s at 256 Hz = 1024 tokens.
    cfg = ARTConfig()
    assert (cfg.n_channels, cfg.window, cfg.d_model, cfg.n_heads, cfg.d_ff) == (30, 1024, 128, 8, 2048)
    assert (cfg.e_layers, cfg.d_layers, cfg.dropout) == (2, 2, 0.1)
    n = sum(p.numel() for p in ART(cfg).parameters())
    assert 2.4e6 < n < 2.6e6, n


def test_art_one_token_per_time_sample_from_a_1x1_convolution():
    cfg = ARTConfig.tiny()
    model = ART(cfg).eval()
    seen = {}
    model.encoder[0].register_forward_hook(lambda m, i, o: seen.update(tokens=o.shape))
    (x,) = eeg_inputs(cfg, 3, torch.Generator().manual_seed(0))
    model(x)
    assert seen["tokens"] == (3, cfg.window, cfg.d_model)  # T tokens of width D
    conv = model.src_embed.conv
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (cfg.n_channels, cfg.d_model, (1,))
    assert model.generator.out_features == cfg.n_channels


def test_art_positions_are_the_sinusoids_of_vaswani_et_al():
    pe = sinusoidal_positions(50, 16)
    pos, i = 17, 3
    assert pe[pos, 2 * i].item() == pytest.approx(math.sin(pos / 10000 ** (2 * i / 16)), abs=1e-6)
    assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(pos / 10000 ** (2 * i / 16)), abs=1e-6)


def test_art_output_follows_an_affine_change_of_units():
    # Each window is z-scored inside the model and mapped back: µV in, µV out (×a + b in, ×a + b out).
    model = ART(ARTConfig.tiny()).eval()
    (x,) = eeg_inputs(model.config, 2, torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(25.0 * x + 3.0), 25.0 * model(x) + 3.0, rtol=1e-4, atol=1e-3)


def test_art_takes_shorter_windows_and_refuses_other_shapes():
    cfg = ARTConfig.tiny()
    model = ART(cfg).eval()
    assert model(torch.randn(1, cfg.n_channels, cfg.window // 2)).shape == (1, cfg.n_channels, cfg.window // 2)
    for bad in (torch.randn(1, cfg.n_channels + 1, cfg.window), torch.randn(1, cfg.n_channels, cfg.window + 1)):
        with pytest.raises(ValueError, match="expected x"):
            model(bad)


def _copy_attention(ours, ref: nn.MultiheadAttention) -> None:
    w = torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight])
    b = torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias])
    ref.in_proj_weight.data.copy_(w)
    ref.in_proj_bias.data.copy_(b)
    ref.out_proj.weight.data.copy_(ours.out_proj.weight)
    ref.out_proj.bias.data.copy_(ours.out_proj.bias)


def _copy_norm(ours, ref: nn.LayerNorm) -> None:
    ref.weight.data.copy_(ours.weight)
    ref.bias.data.copy_(ours.bias)


def test_art_encoder_layer_matches_the_pre_norm_reference():
    cfg = ARTConfig.tiny(dropout=0.0)
    torch.manual_seed(0)
    ours = ARTEncoderLayer(cfg).eval()
    ref = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, 0.0, "relu", batch_first=True, norm_first=True)
    _copy_attention(ours.attn, ref.self_attn)
    ref.linear1.load_state_dict(ours.ff.w1.state_dict())
    ref.linear2.load_state_dict(ours.ff.w2.state_dict())
    _copy_norm(ours.norm1, ref.norm1)
    _copy_norm(ours.norm2, ref.norm2)
    x = torch.randn(2, 9, cfg.d_model)
    torch.testing.assert_close(ours(x), ref.eval()(x), rtol=1e-5, atol=1e-5)


def test_art_decoder_layer_matches_the_pre_norm_reference_with_a_causal_mask():
    cfg = ARTConfig.tiny(dropout=0.0)
    torch.manual_seed(0)
    ours = ARTDecoderLayer(cfg).eval()
    ref = nn.TransformerDecoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, 0.0, "relu", batch_first=True, norm_first=True)
    _copy_attention(ours.self_attn, ref.self_attn)
    _copy_attention(ours.cross_attn, ref.multihead_attn)
    ref.linear1.load_state_dict(ours.ff.w1.state_dict())
    ref.linear2.load_state_dict(ours.ff.w2.state_dict())
    for mine, theirs in zip(ours.norms, (ref.norm1, ref.norm2, ref.norm3), strict=True):
        _copy_norm(mine, theirs)
    x, memory = torch.randn(2, 9, cfg.d_model), torch.randn(2, 9, cfg.d_model)
    mask = nn.Transformer.generate_square_subsequent_mask(9)
    torch.testing.assert_close(ours(x, memory), ref.eval()(x, memory, tgt_mask=mask), rtol=1e-5, atol=1e-5)
    # The mask is real: a change at the last decoder input sample changes no earlier output of the self-attention
    # path when the memory is fixed (cross-attention sees the whole memory, not the decoder's future).
    y = x.clone()
    y[:, -1] += 5.0
    torch.testing.assert_close(ours(y, memory)[:, :-1], ours(x, memory)[:, :-1], rtol=1e-5, atol=1e-5)


def test_art_overfits_one_noisy_to_clean_pair():
    # A tiny overfit in the task's own terms: learn to remove a fixed artifact from one window.
    torch.manual_seed(0)
    cfg = ARTConfig.tiny(dropout=0.0)
    model = ART(cfg).train()
    t = torch.arange(cfg.window) / 32.0
    clean = torch.stack([torch.sin(2 * math.pi * (k + 1) * t) for k in range(cfg.n_channels)])[None]
    blink = torch.exp(-((t - 0.5) ** 2) / 0.005)[None, None] * torch.tensor([3.0, 2.0, 0.5, 0.1])[None, :, None]
    noisy = clean + blink
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(200):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(noisy), clean)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.05 * first
