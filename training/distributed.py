"""Training in several processes (Lightning's data-parallel strategy): where a process stands, and what it
shares.

`seer train RECIPE --set trainer.devices=N --set trainer.num_nodes=M` (strategy `auto` or `ddp`) runs the
whole command in N × M processes: Lightning's launcher starts the other local ranks by running the same
command again when the first fit begins; `torchrun` or SLURM's `srun` start every process themselves
(Lightning reads their environment). Every process loads the data, builds the model and runs the same
fits; each trains on its own shard (`data.schemas.SeerDataModule`), the gradients are averaged across the
processes every step, and the validation and test metrics add up across them (the objectives' torchmetrics
states are reduced when a metric is computed). The MLflow side has one owner: the process of global rank 0
opens the run, logs params, metrics, figures and the bundle, writes the checkpoints and registers the
model; the others open no run and log nothing, then take rank 0's result (`share_from_zero`).
"""

from __future__ import annotations

from typing import Any, TypeVar

import lightning as L
import torch.distributed as dist

from training.recipes import TrainerConfig

T = TypeVar("T")


def placement(t: TrainerConfig) -> dict[str, Any]:
    """The Trainer arguments that place a fit: its accelerator, processes per node, nodes and strategy."""
    return {"accelerator": t.accelerator, "devices": t.devices, "num_nodes": t.num_nodes, "strategy": t.strategy}


def world_size(t: TrainerConfig) -> int:
    """How many processes train together."""
    return t.devices * t.num_nodes


def launch_rank(t: TrainerConfig) -> int:
    """The global rank this process has in the fits of `t`, known before the first fit starts (the MLflow run
    is opened before it). Read the way Lightning reads it, from a Trainer of the same placement: its cluster
    environment (Lightning's own launcher, torchrun, SLURM, ...) and the node rank; 0 for one process."""
    if world_size(t) == 1:
        return 0
    probe = L.Trainer(
        **placement(t), logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    return int(probe.global_rank)


def share_from_zero(obj: T) -> T:
    """Rank 0's `obj` in every process of a data-parallel run (pickled and broadcast); `obj` itself in a
    one-process run. Every process must call it at the same point."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
