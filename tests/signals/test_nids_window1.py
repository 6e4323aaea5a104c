"""FlowTransformer with a window of one flow (`data.window=1`, the `window1` variant of
bench/nids_accuracy.py): every head works and a flow's label depends on that flow alone, since NSL-KDD's
rows are not a time-ordered stream."""

import pytest
import torch

from signals import flow_inputs
from signals.nids_flow import FlowTransformer, FlowTransformerConfig


@pytest.mark.parametrize("head", ["last", "cls", "gap", "flatten"])
@pytest.mark.parametrize("block", ["encoder", "causal"])
def test_a_window_of_one_scores_each_flow_on_its_own(head, block):
    torch.manual_seed(0)
    cfg = FlowTransformerConfig.tiny(window=1, head=head, block=block)
    model = FlowTransformer(cfg).eval()
    flows, _ = flow_inputs(cfg, 5, torch.Generator().manual_seed(1))  # [5, 1, F]
    logits = model(flows, torch.zeros(5, 1, dtype=torch.bool))
    assert logits.shape == (5, cfg.n_classes) and torch.isfinite(logits).all()
    one_by_one = torch.cat([model(flows[i : i + 1]) for i in range(5)])  # no batch-mate changes an answer
    torch.testing.assert_close(logits, one_by_one, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(logits[0], logits[1])  # it does read the flow
