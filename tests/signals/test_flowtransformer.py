"""FlowTransformer's own facts (Manocchio et al. 2023; liamdm/FlowTransformer): the input encodings, the
encoder vs causal block, the four heads, padding, and the official code's defects fixed. The contract
every model meets is in tests/inference/test_model_conformance.py."""

import pytest
import torch
import torch.nn.functional as F

from signals import flow_inputs
from signals.nids_flow import FlowTransformer, FlowTransformerConfig

HEADS = ("last", "cls", "gap", "flatten")


def inputs(cfg, batch=4, seed=0):
    return flow_inputs(cfg, batch, torch.Generator().manual_seed(seed))


def capture(model, module):
    seen = {}
    module.register_forward_hook(lambda m, i, o: seen.update(inp=i[0], out=o))
    return seen


def test_defaults_are_the_official_demo():
    c = FlowTransformerConfig()
    assert (c.window, c.d_model, c.n_layers, c.d_ff, c.n_heads) == (8, 64, 2, 128, 2)
    assert (c.encoding, c.block, c.head, c.mlp, c.mlp_dropout, c.n_levels) == (
        "record",
        "encoder",
        "last",
        (128,),
        0.1,
        33,
    )
    assert FlowTransformerConfig.from_dict(c.to_dict()) == c and c.to_dict()["mlp"] == [128]
    for bad in ({"head": "max"}, {"block": "decoder"}, {"encoding": "onehot"}, {"n_classes": 1}, {"mlp": (0,)}):
        with pytest.raises(ValueError):
            FlowTransformerConfig.tiny(**bad)


def stack(model, flows, pad=None):
    """Every token out of the model's whole block stack (what the heads read from)."""
    tokens = model.embed(flows)
    if pad is not None:
        tokens = tokens.masked_fill(pad[..., None], 0.0)
    if model.cls_token is not None:
        tokens = torch.cat([tokens, model.cls_token.expand(len(flows), 1, -1)], dim=1)
        pad = None if pad is None else torch.cat([pad, pad.new_zeros(len(flows), 1)], dim=1)
    with torch.no_grad():
        return model.blocks(tokens, causal=model.config.block == "causal", key_padding_mask=pad)


@pytest.mark.parametrize("head", HEADS)
def test_heads_give_the_documented_shapes(head):
    cfg = FlowTransformerConfig.tiny(head=head)
    model = FlowTransformer(cfg).eval()
    pooled = capture(model, model.classifier)
    flows, pad = inputs(cfg, batch=3)
    logits = model(flows, pad)
    assert logits.shape == (3, cfg.n_classes)
    h = stack(model, flows, pad)
    assert h.shape == (3, cfg.window + (head == "cls"), cfg.d_model)  # a CLS token joins after the last flow
    width = cfg.window * cfg.d_model if head == "flatten" else cfg.d_model
    assert pooled["inp"].shape == (3, width)
    if head in ("last", "cls"):
        torch.testing.assert_close(pooled["inp"], h[:, -1], rtol=1e-5, atol=1e-5)
    elif head == "gap":  # the mean over the flows present only
        keep = (~pad).float()[..., None]
        torch.testing.assert_close(pooled["inp"], (h * keep).sum(1) / keep.sum(1))
    else:
        torch.testing.assert_close(pooled["inp"], h.masked_fill(pad[..., None], 0).flatten(1))


@pytest.mark.parametrize("block", ["encoder", "causal"])
@pytest.mark.parametrize("head", ["last", "cls"])
def test_the_last_layer_runs_for_the_read_out_token_only(head, block):
    cfg = FlowTransformerConfig.tiny(head=head, block=block, n_layers=3)
    model = FlowTransformer(cfg).eval()
    pooled = capture(model, model.classifier)
    flows, pad = inputs(cfg, batch=5, seed=2)
    model(flows, pad)
    torch.testing.assert_close(pooled["inp"], stack(model, flows, pad)[:, -1], rtol=1e-5, atol=1e-5)


def test_causal_block_output_at_t_does_not_depend_on_later_flows():
    cfg = FlowTransformerConfig.tiny(block="causal", n_layers=2)
    model = FlowTransformer(cfg).eval()
    flows, _ = inputs(cfg, batch=2)
    t = 1
    later = flows.clone()
    later[:, t + 1 :, : cfg.n_numeric] = torch.rand_like(later[:, t + 1 :, : cfg.n_numeric])
    later[:, t + 1 :, cfg.n_numeric :] = (later[:, t + 1 :, cfg.n_numeric :] + 1) % cfg.n_levels
    before, after = stack(model, flows), stack(model, later)
    torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], rtol=0, atol=1e-6)
    assert not torch.allclose(after[:, t + 1 :], before[:, t + 1 :])  # the later flows were read there
    # The encoder block is bidirectional: there, the same change reaches position t.
    enc = FlowTransformer(cfg.replace(block="encoder")).eval()
    enc.load_state_dict(model.state_dict())
    assert not torch.allclose(stack(enc, later)[:, : t + 1], stack(enc, flows)[:, : t + 1])
    # And the model's answer (the last flow's) does read every flow.
    with torch.no_grad():
        assert not torch.allclose(model(later), model(flows))


def test_record_encoding_is_a_linear_map_of_numbers_and_one_hot_codes():
    cfg = FlowTransformerConfig.tiny(encoding="record")
    emb = FlowTransformer(cfg).embed
    flows, _ = inputs(cfg)
    numeric, codes = flows[..., : cfg.n_numeric], flows[..., cfg.n_numeric :].long()
    one_hot = F.one_hot(codes, cfg.n_levels).flatten(2).float()  # [B, W, Nc·V]
    weight = torch.cat([emb.numeric.weight, emb.table.weight.T], dim=1)  # the official Dense over the concatenation
    expected = torch.cat([numeric, one_hot], dim=-1) @ weight.T + emb.numeric.bias
    torch.testing.assert_close(emb(flows), expected, rtol=1e-5, atol=1e-5)


def test_categorical_encoding_has_one_small_embedding_per_feature():
    cfg = FlowTransformerConfig.tiny(encoding="categorical", embed_dim=3)
    emb = FlowTransformer(cfg).embed
    assert emb.table.weight.shape == (cfg.n_categorical * cfg.n_levels, 3)
    assert emb.project.in_features == cfg.n_numeric + cfg.n_categorical * 3
    flows, _ = inputs(cfg)
    other = flows.clone()
    other[..., cfg.n_numeric] = (other[..., cfg.n_numeric] + 1) % cfg.n_levels  # first categorical feature only
    changed = (emb(other) - emb(flows)).abs().sum(-1)
    assert bool((changed > 0).all())


@pytest.mark.parametrize("block", ["encoder", "causal"])
@pytest.mark.parametrize("head", HEADS)
def test_padded_flows_change_nothing(block, head):
    cfg = FlowTransformerConfig.tiny(block=block, head=head)
    model = FlowTransformer(cfg).eval()
    flows, pad = inputs(cfg, batch=6, seed=3)
    assert pad.any()
    noise = flows.clone()
    noise[pad] = torch.cat(
        [torch.rand(int(pad.sum()), cfg.n_numeric) * 9, torch.zeros(int(pad.sum()), cfg.n_categorical)], -1
    )
    with torch.no_grad():
        torch.testing.assert_close(model(noise, pad), model(flows, pad), rtol=1e-5, atol=1e-6)


def test_the_encoder_block_keeps_the_input_residual():
    # The official block normalises attention_output + ffn_output: with both zero, every flow maps to the
    # same vector. With the residual kept, different flows stay different.
    cfg = FlowTransformerConfig.tiny(n_layers=1, dropout=0.0)
    model = FlowTransformer(cfg).eval()
    layer = model.blocks.layers[0]
    with torch.no_grad():
        for lin in (layer.attn.out_proj, layer.ff_out):
            lin.weight.zero_()
            lin.bias.zero_()
    flows, _ = inputs(cfg)
    h = stack(model, flows)
    assert (h[:, 0] - h[:, 1]).abs().max() > 1e-2


def test_bad_inputs_are_refused():
    cfg = FlowTransformerConfig.tiny()
    model = FlowTransformer(cfg)
    flows, pad = inputs(cfg)
    with pytest.raises(ValueError, match="expected flows"):
        model(flows[..., :-1])
    bad = flows.clone()
    bad[0, 0, -1] = cfg.n_levels  # a code past the table
    with pytest.raises(ValueError, match="categorical codes"):
        model(bad)
    last = pad.clone()
    last[:, -1] = True
    with pytest.raises(ValueError, match="target"):
        model(flows, last)
    with pytest.raises(ValueError, match="pad_mask"):
        model(flows, pad.float())


def test_learns_a_rule_that_needs_the_earlier_flows():
    # Label = the first flow's first categorical code is 1: only attention to earlier flows can tell.
    torch.manual_seed(0)
    cfg = FlowTransformerConfig.tiny(n_classes=2, dropout=0.0, mlp_dropout=0.0)
    model = FlowTransformer(cfg).train()
    flows, _ = inputs(cfg, batch=32, seed=5)
    label = (flows[:, 0, cfg.n_numeric] == 1).long()
    flows[label == 0, 0, cfg.n_numeric] = 2.0
    flows[:, 1:, cfg.n_numeric] = 3.0  # the code appears nowhere else
    assert 4 < int(label.sum()) < 28
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        F.cross_entropy(model(flows), label).backward()
        opt.step()
    with torch.no_grad():
        assert (model.eval()(flows).argmax(-1) == label).float().mean() == 1.0
