"""Signal models: EEG artifact removal (task `denoise`) and network intrusion detection (task
`classify`). `SPECS` lists them for `inference.registry`; empty until the first model lands."""

from __future__ import annotations

from typing import Any

import torch

from core.registry import ModelSpec
from signals.eeg_artifact import ART, ARTConfig
from signals.nids_flow import FlowTransformer, FlowTransformerConfig


def eeg_inputs(config: Any, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """`(x [B, N, T],)`: a window of N channels × T samples (unit scale; ART z-scores each window itself, so its
    output scales with its input)."""
    return (torch.randn(batch, config.n_channels, config.window, generator=generator),)


def flow_inputs(config: Any, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """`(flows [B, W, F], pad_mask [B, W])`: W encoded flows per window (numeric values in [0, 1), then
    categorical codes in [0, n_levels)), some windows left-padded (True = no flow; never the last)."""
    numeric = torch.rand(batch, config.window, config.n_numeric, generator=generator)
    codes = torch.randint(0, config.n_levels, (batch, config.window, config.n_categorical), generator=generator)
    present = torch.randint(1, config.window + 1, (batch, 1), generator=generator)  # flows in each window
    pad_mask = torch.arange(config.window)[None, :] < config.window - present  # [B, W], left padding
    return torch.cat([numeric, codes.float()], dim=-1), pad_mask


SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="art",
        task="denoise",
        config_cls=ARTConfig,
        model_cls=ART,
        paper="Chuang et al., ART: An Artifact Removal Transformer for Reconstructing Noise-Free Multi-Channel "
        "EEG Signals, arXiv:2409.07326, 2024",
        example_inputs=eeg_inputs,
    ),
    ModelSpec(
        name="flowtransformer",
        task="classify",
        config_cls=FlowTransformerConfig,
        model_cls=FlowTransformer,
        paper="Manocchio et al., FlowTransformer: A Transformer Framework for Flow-based Network Intrusion "
        "Detection Systems, arXiv:2304.14746, 2023",
        example_inputs=flow_inputs,
    ),
)
