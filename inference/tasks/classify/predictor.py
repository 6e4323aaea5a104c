"""The classify task's predictor: flow records in, class probabilities per flow out (transform → windows
→ model → softmax).

Each flow is scored with the window ending at it: the flow and the W-1 flows before it, left-padded
where there are fewer (the start of a request, of a file, of a split), exactly as training cut its
windows (`data.flows.windows`). Requests go through `parse` / `validate` (the rules, written once, are
in `request.py`); `predict_batch` trusts what `parse` accepted; `score` and `score_frame` are the array
and frame APIs (figures, holdouts, the bulk endpoint, benchmarks); `bulk.py` streams files through
`score` in chunks, carrying each chunk's last W-1 flows over as the next one's context.

The bundle's `transform` (`inference.bundle`) is `data.flows.transform.FlowTransform.to_dict()`:
{format, numeric, numeric_min, numeric_range, categorical, levels, top_k, classes, benign, window}, plus
`labels` (the label mode), `dataset`, `class_weights`, `balance` and optionally `max_flows` (the most
flows one request may hold, default 4096). Class 0 is the benign class.

Shapes: W' flows of a request, T flows scored at once, W window, F features, K classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import polars as pl
import torch
from torch import nn

from data.flows.formats import get_format
from data.flows.readers import check_frame
from data.flows.transform import FlowTransform
from inference.bundle import BundleError
from inference.predictor import BundledPredictor, Reason, Refused
from inference.tasks.classify.request import ClassifyInput, ClassifyOutput, parse_request, refuse

DEFAULT_MAX_FLOWS = 4096  # flows per JSON request: a bound on its work (one window per flow)
REFERENCE_FLOWS = 512  # the flows of the reference request (cost 1.0): a batch of a typical flow exporter
# Windows per forward pass: bounds the memory of scoring a long array or file. 1024 windows (~2 MiB per
# activation at width 64) stay in cache: the default-size model on 1 thread of the shared 2-core machine
# ran 12.9k windows/s at 1024, 5.5k at 4096, 8.3k at 256 (a timing loop over batch sizes, under load; the
# model rows of bench/nids_throughput.py time batches of 256, 1024 and 8192).
CHUNK = 1024


@dataclass
class ClassifyPredictor(BundledPredictor):
    """Flow classification around a bundle: the stored transform, windows, the model, probabilities."""

    task: ClassVar[str] = "classify"
    model: nn.Module
    meta: dict[str, Any]
    transform: FlowTransform = field(init=False)

    def __post_init__(self) -> None:
        try:
            self.transform = FlowTransform.from_dict(self.meta["transform"])
        except (KeyError, TypeError, ValueError) as e:
            raise BundleError(f"{self.name}: the bundle's flow transform is unusable: {e}") from e
        config: Any = self.model.config  # every classify model's config names its K (the task contract)
        n_classes = int(config.n_classes)
        if n_classes != len(self.transform.classes):
            raise BundleError(f"{self.name}: the model has {n_classes} classes, the transform names {self.classes}")

    @property
    def window(self) -> int:
        return self.transform.window

    @property
    def classes(self) -> list[str]:
        return list(self.transform.classes)

    @property
    def benign(self) -> str:
        return self.transform.benign

    @property
    def max_flows(self) -> int:
        return int(self.meta["transform"].get("max_flows") or DEFAULT_MAX_FLOWS)

    @property
    def known_columns(self) -> set[str]:
        """Every field a flow record may carry: the format's columns (the model reads `transform.features`)."""
        return set(get_format(self.transform.format).known_columns)

    @property
    def example_input(self) -> dict[str, Any]:
        return dict(self.meta.get("example_input") or {})

    def describe(self) -> dict[str, Any]:
        """The classify block of the model info: what a flow must hold and what comes back."""
        t = self.transform
        return {
            "window": t.window,
            "format": t.format,
            "features": list(t.numeric),
            "categorical_features": list(t.categorical),
            "classes": self.classes,
            "benign_class": self.benign,
            "labels": str(self.meta["transform"].get("labels") or ""),
            "max_flows": self.max_flows,
            "max_cost": self.max_cost,
        }

    @property
    def max_cost(self) -> float:
        """The most work one request may ask (`inference.predictor.CostModel`): max_flows windows, in units
        of the reference request's REFERENCE_FLOWS. One window is the same work whatever its flows hold."""
        return self.max_flows / REFERENCE_FLOWS

    def cost(self, parsed: ClassifyInput) -> float:
        return parsed.scored / REFERENCE_FLOWS

    def too_costly(self, parsed: ClassifyInput, cost: float) -> Reason:
        return Reason(f"{parsed.scored} flows is more than the {self.max_flows} one request may hold", "flows", 413)

    def parse(self, request: ClassifyInput | Mapping[str, Any]) -> ClassifyInput | Reason:
        """The request (`{"flows": [...]}` or a `ClassifyInput`) as encoded flows, or what to fix."""
        return parse_request(self, request)

    def validate(self, request: ClassifyInput | Mapping[str, Any]) -> Reason | None:
        parsed = self.parse(request)
        return parsed if isinstance(parsed, Reason) else None

    def predict_batch(self, inputs: Sequence[ClassifyInput]) -> list[ClassifyOutput | Exception]:
        """Blocking: the class probabilities of every flow of every input. The inputs' windows share forward
        passes; if one fails, each input is retried alone so the one at fault fails by itself."""
        try:
            return [ClassifyOutput(p) for p in self._score_many(inputs)]
        except Exception as e:
            if len(inputs) > 1:
                return [self.predict_batch([inp])[0] for inp in inputs]
            return [refuse(str(e), "flows") if isinstance(e, ValueError) and not isinstance(e, Refused) else e]

    def _score_many(self, inputs: Sequence[ClassifyInput]) -> list[np.ndarray]:
        """Each input's flows scored on windows of its own rows, all windows through the model together."""
        sizes = [len(inp.flows) for inp in inputs]
        starts = np.cumsum([0, *sizes[:-1]])  # each input's first row in the stacked table
        flows = np.concatenate([inp.flows for inp in inputs]) if len(inputs) > 1 else inputs[0].flows
        targets = np.concatenate(
            [s + np.arange(inp.context, n) for s, n, inp in zip(starts, sizes, inputs, strict=True)]
        )
        begin = np.repeat(starts, [inp.scored for inp in inputs])  # a window never reaches into another input
        probs = self._forward(flows, targets, begin)
        return np.split(probs, np.cumsum([inp.scored for inp in inputs])[:-1])

    def score(self, flows: np.ndarray, context: np.ndarray | None = None) -> np.ndarray:
        """Trusts its input: encoded flows [T, F] (+ the encoded flows recorded just before them, [c, F],
        c < W) -> probabilities [T, K] of the windows ending at each of the T flows."""
        c = 0 if context is None else len(context)
        rows = flows if not c else np.concatenate([context, flows])
        targets = np.arange(c, len(rows))
        return self._forward(rows, targets, np.zeros(len(targets), dtype=np.int64))

    @torch.no_grad()
    def _forward(self, flows: np.ndarray, targets: np.ndarray, begin: np.ndarray) -> np.ndarray:
        """Probabilities [len(targets), K] of the windows ending at `targets` (rows of `flows`); a window
        never reaches before its target's `begin` row (padding there instead)."""
        device = next(self.model.parameters()).device
        table = torch.from_numpy(np.ascontiguousarray(flows, dtype=np.float32)).to(device)  # [T, F]
        out = []
        for s in range(0, len(targets), CHUNK):
            t, b = targets[s : s + CHUNK], begin[s : s + CHUNK]
            rows = t[:, None] + np.arange(1 - self.window, 1)[None, :]  # [B, W]: oldest first, the target last
            pad = rows < b[:, None]  # before the target's own input: padding
            rows = np.where(pad, t[:, None], rows)
            x = table[torch.from_numpy(rows).to(device)]  # [B, W, F]
            logits = self.model(x, torch.from_numpy(pad).to(device))  # [B, K]
            out.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
        k = len(self.transform.classes)
        return np.concatenate(out) if out else np.zeros((0, k), np.float32)

    def score_frame(self, frame: pl.DataFrame, context: np.ndarray | None = None) -> np.ndarray:
        """Flows as a frame (a file's rows: the format's columns, checked) -> probabilities [T, K]."""
        checked = check_frame(frame, get_format(self.transform.format))
        return self.score(self.transform.encode(checked), context)

    def labels_of(self, probabilities: np.ndarray) -> list[str]:
        """The predicted class of each row (the most probable; for two classes that is p > 0.5)."""
        names = np.asarray(self.classes, dtype=object)
        return list(names[probabilities.argmax(axis=1)])

    def warm_up(self) -> None:
        """Classify the bundle's example flows through the service's path, which also validates the bundle:
        the example must be a valid request and every answer K finite probabilities summing to 1."""
        inp = self.parse(self.example_input)
        if isinstance(inp, Reason):
            raise ValueError(f"the example input is not a valid request: {inp.message}")
        (out,) = self.predict_batch([inp])
        if isinstance(out, Exception):
            raise ValueError(f"warm-up on the example input failed: {out}") from out
        p = out.probabilities
        if p.shape != (inp.scored, len(self.classes)) or not np.isfinite(p).all():
            raise ValueError(f"warm-up probabilities have shape {p.shape} or are not finite")
        if not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
            raise ValueError("warm-up probabilities do not sum to 1")

    def pyfunc_predict(self, model_input: Any) -> pd.DataFrame:
        """The MLflow pyfunc: flows (a DataFrame, one row per flow, or `{"flows": [...]}`) -> a DataFrame of
        `label`, `probability` and one probability column per class, one row per flow."""
        request = (
            model_input if isinstance(model_input, dict) else {"flows": pd.DataFrame(model_input).to_dict("records")}
        )
        inp = self.parse(request)
        if isinstance(inp, Reason):
            raise Refused(inp)
        (out,) = self.predict_batch([inp])
        if isinstance(out, Exception):
            raise out
        p = out.probabilities
        frame = pd.DataFrame(p, columns=self.classes)
        frame.insert(0, "probability", p.max(axis=1))
        frame.insert(0, "label", self.labels_of(p))
        return frame
