"""The denoise task's predictor: EEG of any length, rate and montage in, cleaned EEG out, around a bundle.

The bundle's `transform` (written by `data.eeg.windows.DenoiseDataModule.transform_state`):
{channels (the model's template, in order), sfreq, window (samples), l_freq, h_freq, line_freq,
average_reference, dataset, min_present (optional, default 0.5)}.

One request's path (the same steps training applied to its recordings, `data.eeg.readers.preprocess`):
1. units to µV; average reference over the request's non-EOG channels;
2. zero-phase band-pass to the model's band (and notch) at the request's own rate;
3. onto the model's template (`data.eeg.channels.channel_map`): named channels are copied, missing template
   channels interpolated by spherical splines (at least `min_present` of them must be sent);
4. resampled to the model's rate (rational polyphase: 160 → 256 Hz is 8/5);
5. cut into windows of the model's length every half window, cleaned (all windows of all requests of a
   batch share forward passes), stitched by tapered overlap-add (`data.eeg.stitch`);
6. resampled back to the request's rate and length; each request channel that is a template channel gets
   its cleaned row, every other channel (not in the template, or an eye channel) comes back band-passed
   and average-referenced only, and is listed as `uncleaned`; values in the request's unit.
So the answer is average-referenced and band-limited to the model's band (1–50 Hz for ART's recipes).

Shapes: C request channels, N template channels, T samples (request rate), T' samples (model rate),
K windows, W window samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from data.eeg.channels import channel_map, is_eog
from data.eeg.readers import Preprocessing, band_pass, resample
from data.eeg.stitch import overlap_windows, stitch, window_starts
from inference.bundle import BundleError
from inference.predictor import BundledPredictor, Cancelled, Reason, Refused, add_checkpoints
from inference.tasks.denoise.request import (
    MAX_CHANNELS,
    MAX_WINDOWS,
    MIN_SECONDS,
    DenoiseInput,
    DenoiseOutput,
    parse_request,
    refuse,
)

WINDOWS_PER_PASS = 16  # windows per forward pass: bounds the memory of one batch (attention is T² per window)


@dataclass
class Prepared:
    """One input on its way: band-passed request data [C, T] (µV), template windows [K, N, W], starts, T'."""

    inp: DenoiseInput
    banded: np.ndarray
    windows: np.ndarray
    starts: list[int]
    length: int


@dataclass
class DenoisePredictor(BundledPredictor):
    """EEG in µV (any rate, length and montage within the rules) -> the same EEG cleaned (module docstring)."""

    task: ClassVar[str] = "denoise"
    model: nn.Module
    meta: dict[str, Any]

    def __post_init__(self) -> None:
        t = self.meta["transform"]
        missing = [k for k in ("channels", "sfreq", "window", "l_freq", "h_freq") if k not in t]
        if missing:
            raise BundleError(f"{self.name}: the denoise transform lacks {missing}")
        self.preprocessing = Preprocessing(
            sfreq=float(t["sfreq"]), l_freq=float(t["l_freq"]), h_freq=float(t["h_freq"]), line_freq=t.get("line_freq")
        )
        add_checkpoints(self.model)  # a server may stop (or pause) a request's windows between layers

    @property
    def channels(self) -> list[str]:
        return list(self.meta["transform"]["channels"])

    @property
    def sfreq(self) -> float:
        return self.preprocessing.sfreq

    @property
    def window(self) -> int:
        return int(self.meta["transform"]["window"])

    @property
    def hop(self) -> int:
        return max(1, self.window // 2)

    @property
    def min_present(self) -> float:
        return float(self.meta["transform"].get("min_present", 0.5))

    @property
    def max_cost(self) -> float:
        """The most model windows one request may need (`inference.predictor.CostModel`): the transform's
        `max_cost`, else MAX_WINDOWS."""
        return float(self.meta["transform"].get("max_cost") or MAX_WINDOWS)

    @property
    def max_seconds(self) -> float:
        """The longest request: max_cost windows at half-window hops, at the model's rate."""
        return ((int(self.max_cost) - 1) * self.hop + self.window) / self.sfreq

    def cost(self, inp: DenoiseInput) -> float:
        """The input's work in model windows (the reference request is one window): its length at the
        model's rate cut every half window."""
        length = int(round(inp.data.shape[1] * self.sfreq / inp.sfreq))
        return float(len(window_starts(length, self.window, self.hop)))

    def too_costly(self, inp: DenoiseInput, cost: float) -> Reason:
        seconds = inp.data.shape[1] / inp.sfreq
        return Reason(
            f"this request is too much work: {seconds:.3g} s of EEG needs {cost:.0f} model windows, one request "
            f"may need at most {self.max_cost:.0f} ({self.max_seconds:.3g} s; `max_cost` in the model info): send "
            "the recording in consecutive parts",
            "data",
            413,
        )

    @property
    def example_input(self) -> dict[str, Any]:
        return dict(self.meta.get("example_input") or {})

    def describe(self) -> dict[str, Any]:
        p = self.preprocessing
        return {
            "channels": self.channels,
            "sfreq": self.sfreq,
            "window": self.window,
            "window_s": self.window / self.sfreq,
            "band": [p.l_freq, p.h_freq],
            "line_freq": p.line_freq,
            "reference": "average",
            "units": "uV",
            "min_seconds": MIN_SECONDS,
            "max_seconds": self.max_seconds,
            "max_channels": MAX_CHANNELS,
            "min_present_channels": int(np.ceil(self.min_present * len(self.channels))),
            "max_cost": self.max_cost,
        }

    def parse(self, request: DenoiseInput | Mapping[str, Any]) -> DenoiseInput | Reason:
        """The request (a `DenoiseInput`, or a mapping of the JSON fields `sfreq`, `channels`, `data`, `unit`)
        as a validated `DenoiseInput`, or the first `Reason` it cannot be served (rules: `request.py`)."""
        return parse_request(self, request)

    def validate(self, request: DenoiseInput | Mapping[str, Any]) -> Reason | None:
        parsed = self.parse(request)
        return parsed if isinstance(parsed, Reason) else None

    def _prepare(self, inp: DenoiseInput) -> Prepared:
        """Steps 1-5a of the module docstring for one input."""
        x = inp.data
        if self.meta["transform"].get("average_reference", True):
            eeg = [i for i, c in enumerate(inp.channels) if not is_eog(c)]
            x = x.copy()
            x[eeg] -= x[eeg].mean(axis=0, keepdims=True)
        banded = band_pass(x, inp.sfreq, self.preprocessing)  # [C, T]
        template = channel_map(inp.channels, tuple(self.channels), self.min_present).apply(banded)  # [N, T]
        at_rate = resample(template, inp.sfreq, self.sfreq)  # [N, T']
        windows, starts = overlap_windows(at_rate, self.window, self.hop)
        return Prepared(inp, banded, windows, starts, at_rate.shape[1])

    def _finish(self, prep: Prepared, cleaned: np.ndarray) -> DenoiseOutput:
        """Steps 5b-6: stitched windows [K, N, W] -> the answer in the request's channels, rate and unit."""
        inp = prep.inp
        at_rate = stitch(cleaned, prep.starts, prep.length)  # [N, T']
        back = resample(at_rate, self.sfreq, inp.sfreq)  # [N, ~T]
        T = inp.data.shape[1]
        back = back[:, :T] if back.shape[1] >= T else np.pad(back, ((0, 0), (0, T - back.shape[1])), mode="edge")
        out = prep.banded.copy()
        cleaned_rows = []
        for n, i in enumerate(inp.recorded):
            if i >= 0 and not is_eog(inp.channels[i]):
                out[i] = back[n]
                cleaned_rows.append(i)
        if not np.isfinite(out).all():
            raise refuse("the cleaned signal is not finite for this input; check its units and values", "data")
        done = set(cleaned_rows)
        return DenoiseOutput(
            data=out / inp.unit_scale,
            cleaned=[inp.channels[i] for i in sorted(done)],
            uncleaned=[c for i, c in enumerate(inp.channels) if i not in done],
        )

    @torch.no_grad()
    def clean_windows(self, windows: np.ndarray) -> np.ndarray:
        """Trusts its input: template windows [K, N, W] (µV) -> cleaned [K, N, W], WINDOWS_PER_PASS at a time."""
        device = next(self.model.parameters()).device
        out = []
        for k in range(0, len(windows), WINDOWS_PER_PASS):
            x = torch.from_numpy(np.ascontiguousarray(windows[k : k + WINDOWS_PER_PASS], dtype=np.float32))
            out.append(self.model(x.to(device)).float().cpu().numpy().astype(np.float64))
        return np.concatenate(out) if out else np.zeros_like(windows)

    def predict_batch(self, inputs: Sequence[DenoiseInput]) -> list[DenoiseOutput | Exception]:
        """Blocking: one answer (or one exception) per input accepted by `parse`, in order. The windows of all
        inputs share forward passes; when a pass raises, each input is retried alone, so only the input at
        fault fails."""
        prepared: list[Prepared | Exception] = []
        for inp in inputs:
            try:
                prepared.append(self._prepare(inp))
            except Exception as e:
                prepared.append(_as_refusal(e))
        ok = [p for p in prepared if isinstance(p, Prepared)]
        try:
            cleaned = self.clean_windows(np.concatenate([p.windows for p in ok])) if ok else None
        except Cancelled as e:  # nobody waits for any of them: no retry
            return [p if isinstance(p, Exception) else e for p in prepared]
        except Exception as e:
            if len(ok) <= 1:
                return [p if isinstance(p, Exception) else _as_refusal(e) for p in prepared]
            return [self.predict_batch([inp])[0] for inp in inputs]
        answers: list[DenoiseOutput | Exception] = []
        offset = 0
        for p in prepared:
            if isinstance(p, Exception):
                answers.append(p)
                continue
            k = len(p.windows)
            try:
                answers.append(self._finish(p, cleaned[offset : offset + k]))  # type: ignore[index]
            except Exception as e:
                answers.append(_as_refusal(e))
            offset += k
        return answers

    def denoise(self, data: np.ndarray, channels: Sequence[str], sfreq: float, unit: str = "uV") -> np.ndarray:
        """The checked array API: data [C, T] in `unit` -> cleaned [C, T] in `unit`; `Refused` (a ValueError)
        when the input breaks a request rule."""
        parsed = self.parse({"sfreq": sfreq, "channels": list(channels), "data": np.asarray(data), "unit": unit})
        if isinstance(parsed, Reason):
            raise Refused(parsed)
        (out,) = self.predict_batch([parsed])
        if isinstance(out, Exception):
            raise out
        return out.data

    def warm_up(self) -> None:
        """One request on the bundle's example input (or, without one, a synthetic window of the template at
        the model's rate): it must be a valid request and come back with its shape and finite."""
        example = self.example_input
        if not example.get("data"):
            rng = np.random.default_rng(0)
            data = 20 * rng.standard_normal((len(self.channels), self.window))
            example = {"sfreq": self.sfreq, "channels": self.channels, "data": data}
        inp = self.parse(example)
        if isinstance(inp, Reason):
            raise ValueError(f"the example input is not a valid request: {inp.message}")
        (out,) = self.predict_batch([inp])
        if isinstance(out, Exception):
            raise ValueError(f"warm-up on the example input failed: {out}") from out
        if out.data.shape != inp.data.shape or not np.isfinite(out.data).all():
            raise ValueError(f"warm-up output has shape {out.data.shape}, expected {inp.data.shape}, or is not finite")

    def pyfunc_predict(self, model_input: Any) -> Any:
        """The MLflow pyfunc `predict`: a DataFrame (one column per channel, one row per sample at the model's
        rate) -> the cleaned DataFrame; or a request dict -> `{"data", "cleaned", "uncleaned"}`."""
        if isinstance(model_input, dict):
            inp = self.parse(model_input)
            if isinstance(inp, Reason):
                raise Refused(inp)
            (out,) = self.predict_batch([inp])
            if isinstance(out, Exception):
                raise out
            return {"data": out.data.tolist(), "cleaned": out.cleaned, "uncleaned": out.uncleaned}
        frame = pd.DataFrame(model_input)
        cleaned = self.denoise(frame.to_numpy(dtype=np.float64).T, [str(c) for c in frame.columns], self.sfreq)
        return pd.DataFrame(cleaned.T, columns=frame.columns)


def _as_refusal(e: Exception) -> Exception:
    """A ValueError raised on one input (filters, channel maps) is that input's fault: a refusal naming data."""
    if isinstance(e, ValueError) and not isinstance(e, Refused):
        return refuse(str(e), "data")
    return e
