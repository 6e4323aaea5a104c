"""Autoregressive rollout of a one-step model: the loop every rollout model shares."""

from __future__ import annotations

import torch
from torch import nn


def autoregress(step: nn.Module, u: torch.Tensor, steps: int) -> torch.Tensor:
    """`u [B, *S, V] -> [B, steps, *S, V]`: `step` applied `steps` times, each time to its own last output.

    A graph is kept only while `step` trains with gradients on, so in eval memory does not grow with the
    horizon."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    outs = []
    with torch.set_grad_enabled(step.training and torch.is_grad_enabled()):
        for _ in range(steps):
            u = step(u)
            outs.append(u)
    return torch.stack(outs, dim=1)
