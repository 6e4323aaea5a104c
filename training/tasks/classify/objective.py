"""The classify objective: loss, metrics, what early stopping watches and the figure, on `ClassifyBatch`es.

- Loss: cross-entropy of the logits `model(flows, pad_mask)`, each window weighted by its batch
  `weight` (the data's class weights against imbalance, or 1 when the loader samples classes
  instead): sum(w·CE) / sum(w).
- Metrics (`training.tasks.classify.metrics`), over every window of the split: `loss` (unweighted mean
  cross-entropy), `accuracy`, `error`, `macro_f1`, `weighted_f1`, `f1_gap`, `f1_<k>` per class,
  `benign_fpr`, `detection_rate`, `fpr_at_95`; the test split also counts its windows.
- Early stopping may watch `val_loss` (default), `val_error` or `val_f1_gap` (all lower-is-better,
  as the run's early stopping and best-weights keeping expect).
- Figure: the confusion matrix of the data's evaluation flows (the test split), classified through
  the serving predictor rebuilt from the bundle, from the recorded values: the plot checks the whole
  serving path, not only the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn
from torchmetrics import MeanMetric, Metric, SumMetric

from data.flows.readers import TARGET
from data.schemas import ClassifyBatch, ClassifyExample
from inference.tasks.classify import ClassifyPredictor
from training.tasks.classify.metrics import ConfusionScore, FprAtDetection
from training.tasks.classify.plots import confusion_figure

SCORES = ("accuracy", "error", "macro_f1", "weighted_f1", "f1_gap", "benign_fpr", "detection_rate")


def n_classes(model: nn.Module) -> int:
    """K of a classify model (its config's `n_classes`, the task contract's logits width)."""
    config: Any = model.config
    return int(config.n_classes)


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """[K, K] counts, rows true class, columns predicted."""
    return np.bincount(truth * k + pred, minlength=k * k).reshape(k, k)


@dataclass(frozen=True)
class ClassifyObjective:
    task: str = "classify"
    monitors: tuple[str, ...] = ("val_loss", "val_error", "val_f1_gap")
    default_monitor: str = "val_loss"

    def metrics(self, model: nn.Module, split: str) -> dict[str, Metric]:
        k = n_classes(model)
        out: dict[str, Metric] = {"loss": MeanMetric()}
        out.update({name: ConfusionScore(k, name) for name in SCORES})
        out.update({f"f1_{i}": ConfusionScore(k, f"f1_{i}") for i in range(k)})
        out["fpr_at_95"] = FprAtDetection()
        if split == "test":
            out["windows"] = SumMetric()
        return out

    def loss(self, model: nn.Module, batch: ClassifyBatch) -> torch.Tensor:
        ce = F.cross_entropy(model(batch.flows, batch.pad_mask), batch.label, reduction="none")  # [B]
        return (ce * batch.weight).sum() / batch.weight.sum().clamp_min(1e-12)

    def update(self, model: nn.Module, batch: ClassifyBatch, metrics: Mapping[str, Metric]) -> None:
        logits = model(batch.flows, batch.pad_mask)  # [B, K]
        for name, metric in metrics.items():
            if name == "loss":
                metric.update(F.cross_entropy(logits, batch.label), weight=batch.size)
            elif name == "windows":
                metric.update(batch.size)
            else:
                metric.update(logits, batch.label)

    def bundle_meta(self, model: nn.Module) -> dict[str, Any]:
        return {}

    def figures(self, bundle: Path, example: ClassifyExample) -> dict[str, Figure]:
        p = ClassifyPredictor.load(bundle)
        probs = p.score_frame(example.frame)  # [T, K]
        truth = p.transform.class_index(example.frame[TARGET])
        matrix = confusion_matrix(truth, probs.argmax(axis=1), len(p.classes))
        acc = np.trace(matrix) / max(matrix.sum(), 1)
        title = f"{p.name}: {example.title}, accuracy {acc:.3f}"
        return {"plots/confusion_matrix.png": confusion_figure(matrix, p.classes, title)}


CLASSIFY_OBJECTIVE = ClassifyObjective()
