"""Classification scores accumulated over every window of a split (torchmetrics states, so a test
figure is the split's exact value, not a mean of batch values).

Class 0 is benign (the classify data's convention, `data.flows.windows`); every other class is an
attack. Scores:
- from the K×K confusion matrix (rows = true class, columns = predicted): `accuracy`, `error`
  (1 - accuracy), `macro_f1`, `weighted_f1` (per-class F1 weighted by true counts), `f1_gap`
  (1 - macro F1), `f1_<k>` per class, `benign_fpr` (benign windows labelled as any attack, over benign
  windows), `detection_rate` (attack windows labelled as any attack, over attack windows);
- from the attack score s = 1 - P(benign) of every window: `fpr_at_95` (the benign FPR at the
  threshold that flags 95 % of the attack windows: what an operator tunes the alarm to).
F1 of a class with no true and no predicted window is 0 (and counts in the macro mean), as in
scikit-learn's `zero_division=0`.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

DETECTION = 0.95  # the detection rate `fpr_at_95` holds fixed


def f1_scores(matrix: np.ndarray) -> np.ndarray:
    """Per-class F1 [K] of a confusion matrix [K, K] (rows true, columns predicted)."""
    tp = np.diag(matrix).astype(np.float64)
    true, pred = matrix.sum(axis=1), matrix.sum(axis=0)
    denom = true + pred
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def matrix_score(matrix: np.ndarray, name: str) -> float:
    """One named score of a confusion matrix (see the module docstring)."""
    total = matrix.sum()
    if name in ("accuracy", "error"):
        acc = float(np.trace(matrix) / total) if total else 0.0
        return acc if name == "accuracy" else 1.0 - acc
    f1 = f1_scores(matrix)
    if name in ("macro_f1", "f1_gap"):
        return float(f1.mean()) if name == "macro_f1" else 1.0 - float(f1.mean())
    if name == "weighted_f1":
        true = matrix.sum(axis=1)
        return float((f1 * true).sum() / true.sum()) if true.sum() else 0.0
    if name.startswith("f1_"):
        return float(f1[int(name[3:])])
    if name == "benign_fpr":
        benign = matrix[0].sum()
        return float(matrix[0, 1:].sum() / benign) if benign else 0.0
    if name == "detection_rate":
        attacks = matrix[1:].sum()
        return float(matrix[1:, 1:].sum() / attacks) if attacks else 0.0
    raise ValueError(f"unknown confusion-matrix score {name!r}")


def fpr_at_detection(score: np.ndarray, attack: np.ndarray, detection: float = DETECTION) -> float:
    """The benign false-positive rate at the highest threshold that still flags `detection` of the attacks
    (flagged: attack score >= threshold)."""
    attacks, benign = score[attack], score[~attack]
    if not len(attacks) or not len(benign):
        return 0.0
    k = int(np.ceil(detection * len(attacks)))  # attacks that must be flagged
    threshold = np.sort(attacks)[::-1][k - 1]
    return float((benign >= threshold).mean())


class ConfusionScore(Metric):
    """A confusion matrix over every window of the split; `compute()` is one named score of it."""

    full_state_update = False
    matrix: torch.Tensor

    def __init__(self, n_classes: int, score: str):
        super().__init__()
        self.n_classes, self.score = n_classes, score
        self.add_state("matrix", default=torch.zeros(n_classes, n_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        pred = logits.argmax(dim=-1)
        flat = target.long() * self.n_classes + pred
        self.matrix += torch.bincount(flat, minlength=self.n_classes**2).view(self.n_classes, self.n_classes)

    def compute(self) -> torch.Tensor:
        return torch.tensor(matrix_score(self.matrix.cpu().numpy(), self.score), dtype=torch.float32)


class FprAtDetection(Metric):
    """The benign FPR at a fixed detection rate, from every window's attack score."""

    full_state_update = False
    scores: list[torch.Tensor]
    attack: list[torch.Tensor]

    def __init__(self, detection: float = DETECTION):
        super().__init__()
        self.detection = detection
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("attack", default=[], dist_reduce_fx="cat")

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        self.scores.append(1.0 - torch.softmax(logits.float(), dim=-1)[:, 0])
        self.attack.append(target != 0)

    def compute(self) -> torch.Tensor:
        # The batches' tensors, or one tensor once a data-parallel run gathered every process's states.
        if isinstance(self.scores, list) and not self.scores:
            return torch.tensor(0.0)
        score = dim_zero_cat(self.scores).cpu().numpy()
        attack = dim_zero_cat(self.attack).cpu().numpy()
        return torch.tensor(fpr_at_detection(score, attack, self.detection), dtype=torch.float32)
