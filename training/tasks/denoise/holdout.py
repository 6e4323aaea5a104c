"""The denoise task's retraining holdout: fresh EEG recordings, their last test windows, ICA-cleaned targets.

1. Fresh data: every EEG file (EDF/BDF/FIF/SET) the pattern matches, each read to check it
   (`data.eeg.readers.read_recording`); the challenger trains on a folder holding copies of them (an
   EEGLAB `.set` with its `.fdt`), which the recipe's data reads as its `dataset`.
2. Holdout: the last W non-overlapping windows of the recordings' test parts (the challenger's split: the
   last part of each recording's duration), taken in file order from the end; more than fit is an error
   that says how many do.
3. Scores: both models clean the same preprocessed noisy windows on the champion's template and rate;
   the target is the recording's ICA cleaning (`data.eeg.pairs.ica_pair`); RRMSE_t and RRMSE_s per window
   (`training.tasks.denoise.metrics`), averaged (lower is better).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from data.eeg.readers import read_recording
from data.eeg.sources import EEG_SUFFIXES
from data.eeg.windows import DenoiseDataConfig, paired_recording, part_bounds
from training.tasks.denoise.metrics import window_metrics
from training.tasks.holdout import FreshData, HoldoutWindows, match_files

if TYPE_CHECKING:
    from inference.tasks.denoise import DenoisePredictor
    from training.recipes import Recipe


@dataclass(frozen=True)
class EEGHoldout:
    """The holdout payload: the data settings both models are scored with, and how many windows."""

    data: DenoiseDataConfig
    count: int


def test_window_count(seconds: float, data: DenoiseDataConfig) -> int:
    """Non-overlapping windows in the test part of a recording of this duration (at the data's rate)."""
    _, _, a, b = part_bounds(int(round(seconds * data.sfreq)), data.split)
    return len(range(a, b - data.window + 1, data.window))


@dataclass(frozen=True)
class DenoiseHoldout:
    """`training.tasks.holdout.Holdout` for denoisers (see the module docstring)."""

    task: str = "denoise"
    metrics: tuple[str, ...] = ("rrmse_t", "rrmse_s")

    def read(self, pattern: str) -> FreshData:
        files = [f for f in match_files(pattern) if f.suffix.lower() in EEG_SUFFIXES]
        if not files:
            raise FileNotFoundError(f"no EEG files ({', '.join(EEG_SUFFIXES)}) match {pattern!r}")
        seconds = [read_recording(f).seconds for f in files]  # RecordingError (a ValueError) names the file
        rows = int(sum(seconds))
        describe = {"recordings": str(len(files)), "seconds": f"{sum(seconds):.1f}"}
        return FreshData(files=files, rows=rows, payload=seconds, describe=describe)

    def write(self, fresh: FreshData, directory: Path, stem: str) -> Path:
        folder = directory / stem
        folder.mkdir(parents=True, exist_ok=True)
        for f in fresh.files:
            shutil.copy2(f, folder / f.name)
            fdt = f.with_suffix(".fdt")
            if f.suffix.lower() == ".set" and fdt.is_file():
                shutil.copy2(fdt, folder / fdt.name)
        return folder

    def windows(self, fresh: FreshData, recipe: Recipe, count: int) -> HoldoutWindows:
        if not isinstance(recipe.data, DenoiseDataConfig):
            raise ValueError(f"recipe {recipe.name} has no EEG data section ({type(recipe.data).__name__})")
        data = replace(recipe.data, dataset=",".join(str(f) for f in fresh.files))
        fit: int = sum(test_window_count(s, data) for s in fresh.payload)
        if count > fit:
            raise ValueError(
                f"holdout_windows={count} does not fit in the fresh recordings' test parts: {fit} windows of "
                f"{data.window_s:g} s fit; lower holdout_windows or add recordings"
            )
        describe = {"window_s": f"{data.window_s:g}"}
        return HoldoutWindows(count=count, payload=EEGHoldout(data, count), describe=describe)

    def incomparable(self, champion: DenoisePredictor, challenger: DenoisePredictor) -> str | None:
        if champion.channels != challenger.channels or champion.sfreq != challenger.sfreq:
            return (
                f"cleans {len(champion.channels)} channels at {champion.sfreq:g} Hz, the challenger "
                f"{len(challenger.channels)} at {challenger.sfreq:g} Hz: not comparable on one holdout"
            )
        return None

    def score(self, predictor: DenoisePredictor, fresh: FreshData, windows: HoldoutWindows) -> dict[str, float]:
        held: EEGHoldout = windows.payload
        data = replace(held.data, channels=tuple(predictor.channels), sfreq=predictor.sfreq)
        data = replace(data, window_s=predictor.window / predictor.sfreq)
        noisy, clean = _last_windows(data, held.count)
        pred = predictor.clean_windows(noisy)
        values = window_metrics(*(torch.from_numpy(a) for a in (noisy, clean, pred)))
        return {name: float(values[name].mean()) for name in self.metrics}


def _last_windows(data: DenoiseDataConfig, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The last `count` non-overlapping test windows over the recordings (from the end of the last file):
    noisy and ICA-clean [count, N, W]."""
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    for name in reversed(data.recordings):
        rec = paired_recording(name, data)
        a, b = rec.part("test")
        for start in reversed(range(a, b - data.window + 1, data.window)):
            pairs.append((rec.noisy[:, start : start + data.window], rec.clean[:, start : start + data.window]))
            if len(pairs) == count:
                break
        if len(pairs) == count:
            break
    if len(pairs) < count:
        raise ValueError(f"only {len(pairs)} test windows in the fresh recordings, {count} asked")
    return np.stack([p[0] for p in pairs]).astype(np.float64), np.stack([p[1] for p in pairs]).astype(np.float64)


DENOISE_HOLDOUT = DenoiseHoldout()
