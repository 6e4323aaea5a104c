"""EEG pairs cut into windows, and the LightningDataModule of the denoise recipes.

Each recording is read, preprocessed (`data.eeg.readers.preprocess`: average reference, band-pass,
resampling to the model's rate), cleaned by ICA (`data.eeg.pairs.ica_pair`) and mapped onto the model's
channel template (`data.eeg.channels.channel_map`, the same linear map for noisy and clean). Splits are by
time inside each recording, never by random windows: the first `split[0]` of its duration trains, the next
`split[1]` validates, the rest tests; a window never straddles two parts. Train windows start every
`hop_s`; validation and test windows do not overlap. The EOG that makes the ocular semi-synthetic pairs
is split the same way, so a test pair's artifact was never seen in training either.

Per window: an ICA pair (kind "ica"), and per artifact kind in `artifacts` `synthetic_per_window`
semi-synthetic pairs (clean part of the ICA pair + artifact at an SNR in `snr_range`, drawn afresh each
time in training, fixed by the seed for validation and test, where every SNR of `test_snrs` is used).
Loaders yield `data.schemas.DenoiseBatch`.

Shapes: N template channels, T window samples, E EOG channels.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from data.eeg.channels import ART_CHANNELS, channel_map
from data.eeg.pairs import KINDS, emg_artifact, eog_artifact, ica_pair, mix
from data.eeg.readers import Preprocessing, Recording, preprocess, read_recording
from data.eeg.sources import cache_dir, expand_recordings, recording_key, recording_path
from data.schemas import DenoiseBatch, DenoiseExample, DenoiseWindow, SeerDataModule

if TYPE_CHECKING:
    from data.series.corpus import CorpusConfig

PARTS = ("train", "val", "test")


@dataclass(frozen=True, kw_only=True)
class DenoiseDataConfig:
    """The denoise recipes' data: which recordings, the model's channels and rate, windows and pairs."""

    uses_corpus: ClassVar[bool] = False

    # Comma-separated catalogue names, files, folders (every EEG file in them) or globs.
    dataset: str = "eegmmidb-s001r01,eeglab-sample"
    channels: tuple[str, ...] = ART_CHANNELS  # the model's template, in its order
    sfreq: float = 256.0
    window_s: float = 4.0
    hop_s: float = 1.0  # train windows start this often; val/test windows do not overlap
    l_freq: float = 1.0
    h_freq: float = 50.0
    line_freq: float | None = None  # notch at the mains frequency (and harmonics) inside the band
    artifacts: tuple[str, ...] = ("eog", "emg")  # semi-synthetic kinds mixed in beside the ICA pairs
    synthetic_per_window: int = 1
    snr_range: tuple[float, float] = (-7.0, 2.0)
    test_snrs: tuple[float, ...] = tuple(float(s) for s in range(-7, 3))  # every 1 dB from -7 to 2
    val_snrs: tuple[float, ...] = (-7.0, -4.0, -1.0, 2.0)  # validation runs every epoch: fewer levels
    eog_recording: str = "eeglab-sample"  # whose recorded EOG channels make the ocular artifacts
    ica_components: int = 20
    ica_threshold: float = 0.8
    classifier: str = "auto"  # auto (ICLabel if installed) | iclabel | criteria
    split: tuple[float, float] = (0.7, 0.1)  # train and validation fractions of each recording's duration
    max_seconds: float = 0.0  # > 0: only the first seconds of each recording (smoke runs)
    batch_size: int = 16
    seed: int = 0
    num_workers: int = 0

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.hop_s <= 0 or self.batch_size < 1 or self.synthetic_per_window < 0:
            raise ValueError("window_s and hop_s must be > 0, batch_size >= 1, synthetic_per_window >= 0")
        if not self.dataset.strip(", ") or not self.channels:
            raise ValueError("dataset and channels must not be empty")
        unknown = [a for a in self.artifacts if a not in ("eog", "emg")]
        if unknown:
            raise ValueError(f"artifacts must be among eog, emg; got {unknown}")
        lo, hi = self.snr_range
        if lo > hi:
            raise ValueError(f"snr_range must be (low, high), got {self.snr_range}")
        if min(self.split) <= 0 or sum(self.split) >= 1:
            raise ValueError(f"split must be two positive fractions summing to < 1, got {self.split}")
        Preprocessing(sfreq=self.sfreq, l_freq=self.l_freq, h_freq=self.h_freq)  # validates the band

    @property
    def recordings(self) -> list[str]:
        """`dataset` expanded: catalogue names as they are, folders and globs to their EEG files (sorted)."""
        return expand_recordings(self.dataset)

    @property
    def window(self) -> int:
        """T, samples per window."""
        return int(round(self.window_s * self.sfreq))

    @property
    def lookback(self) -> int:
        return self.window

    @property
    def horizon(self) -> int:
        return self.window

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(sfreq=self.sfreq, l_freq=self.l_freq, h_freq=self.h_freq, line_freq=self.line_freq)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def datamodule(self, corpus: CorpusConfig | None = None) -> DenoiseDataModule:
        if corpus is not None:
            raise ValueError("the denoise data takes no pretraining corpus")
        return DenoiseDataModule(self)

    def for_bundle(self, transform: Mapping[str, Any]) -> DenoiseDataConfig:
        """This data shaped like a bundle's transform (its channels, rate, window and band), to test it."""
        sfreq = float(transform["sfreq"])
        return replace(
            self,
            channels=tuple(transform["channels"]),
            sfreq=sfreq,
            window_s=int(transform["window"]) / sfreq,
            l_freq=float(transform["l_freq"]),
            h_freq=float(transform["h_freq"]),
            line_freq=transform.get("line_freq"),
        )


@dataclass(frozen=True)
class PairedRecording:
    """One recording on the template: noisy and ICA-clean [N, T] (µV), its part boundaries in samples."""

    name: str
    noisy: np.ndarray
    clean: np.ndarray
    bounds: tuple[int, int, int, int]  # 0, end of train, end of val, T
    info: dict[str, Any]

    def part(self, name: str) -> tuple[int, int]:
        i = PARTS.index(name)
        return self.bounds[i], self.bounds[i + 1]


def part_bounds(n: int, split: tuple[float, float]) -> tuple[int, int, int, int]:
    return 0, int(round(n * split[0])), int(round(n * (split[0] + split[1]))), n


def load_recording(name: str, c: DenoiseDataConfig) -> Recording:
    """A recording read and preprocessed (cut to `max_seconds` first when set)."""
    rec = read_recording(recording_path(name))
    if c.max_seconds > 0:
        rec = rec.crop(0.0, min(c.max_seconds, rec.seconds))
    return preprocess(rec, c.preprocessing)


def paired_recording(name: str, c: DenoiseDataConfig) -> PairedRecording:
    """ICA pair of one recording on the template, cached on disk by everything that decides it."""
    key = json.dumps(
        [recording_key(name), c.channels, c.sfreq, c.l_freq, c.h_freq, c.line_freq, c.ica_components, c.ica_threshold,
         c.classifier, c.max_seconds, c.seed, 1],
        default=str,
    )  # fmt: skip
    path = cache_dir() / "pairs" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            noisy, clean, info = z["noisy"], z["clean"], json.loads(str(z["info"]))
    else:
        rec = load_recording(name, c)
        pair = ica_pair(
            rec, n_components=c.ica_components, threshold=c.ica_threshold, classifier=c.classifier, seed=c.seed
        )
        cmap = channel_map(rec.channels, c.channels)
        noisy, clean = cmap.apply(rec.data), cmap.apply(pair.clean)
        info = {
            "classifier": pair.classifier,
            "kept": list(pair.kept),
            "labels": list(pair.labels),
            "interpolated": cmap.interpolated,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, noisy=noisy.astype(np.float32), clean=clean.astype(np.float32), info=json.dumps(info))
        tmp.replace(path)
    noisy, clean = noisy.astype(np.float32), clean.astype(np.float32)
    return PairedRecording(name, noisy, clean, part_bounds(noisy.shape[1], c.split), info)


@dataclass(frozen=True)
class PairSpec:
    """One item of a split: recording, start sample, kind, SNR (None: drawn per call), EOG start, noise seed."""

    rec: int
    start: int
    kind: int
    snr: float | None = None
    eog_start: int = -1
    seed: int = 0


class PairDataset(Dataset):
    """`DenoiseWindow`s from `PairSpec`s over paired recordings and an EOG source [E, T_eog]."""

    def __init__(self, recs: list[PairedRecording], specs: list[PairSpec], eog: np.ndarray, c: DenoiseDataConfig):
        self.recs, self.specs, self.c = recs, specs, c
        self.eog = eog
        self.window = c.window
        self.rng = np.random.default_rng(c.seed)

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, i: int) -> DenoiseWindow:
        s = self.specs[i]
        rec, T = self.recs[s.rec], self.window
        clean = rec.clean[:, s.start : s.start + T]
        kind = KINDS[s.kind]
        if kind == "ica":
            return self._window(rec.noisy[:, s.start : s.start + T], clean, s.kind, float("nan"))
        if kind == "clean":
            return self._window(clean, clean, s.kind, float("nan"))
        random = s.snr is None
        snr = float(self.rng.uniform(*self.c.snr_range)) if random else float(s.snr)  # type: ignore[arg-type]
        if kind == "eog":
            start = int(self.rng.integers(0, self.eog.shape[1] - T + 1)) if random else s.eog_start
            artifact = eog_artifact(self.eog[:, start : start + T], self.c.channels)
        else:
            rng = self.rng if random else np.random.default_rng(s.seed)
            artifact = emg_artifact(self.c.channels, T, self.c.sfreq, self.c.h_freq, rng)
        return self._window(mix(clean, artifact, snr), clean, s.kind, snr)

    @staticmethod
    def _window(noisy: np.ndarray, clean: np.ndarray, kind: int, snr: float) -> DenoiseWindow:
        return DenoiseWindow(
            noisy=torch.from_numpy(np.ascontiguousarray(noisy, dtype=np.float32)),
            clean=torch.from_numpy(np.ascontiguousarray(clean, dtype=np.float32)),
            kind=kind,
            snr_db=snr,
        )


def window_starts(a: int, b: int, window: int, hop: int) -> list[int]:
    """Starts of the windows that fit entirely in [a, b)."""
    return list(range(a, b - window + 1, hop))


class DenoiseDataModule(SeerDataModule):
    """Reads, preprocesses and ICA-pairs the recordings; serves time-split windows (module docstring)."""

    def __init__(self, config: DenoiseDataConfig):
        super().__init__()
        self.config = config
        self._ready = False

    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        c = self.config
        self.recs = [paired_recording(name, c) for name in c.recordings]
        for r in self.recs:
            if r.part("test")[1] - r.part("test")[0] < c.window:
                raise ValueError(f"{r.name}: its test part is shorter than one {c.window_s:g} s window")
        eog = load_recording(c.eog_recording, c).eog if c.artifacts else np.zeros((1, 0))
        if "eog" in c.artifacts and not eog.size:
            raise ValueError(f"{c.eog_recording} has no EOG channels for the ocular pairs")
        self.eog_parts = {p: eog[:, slice(*part_bounds(eog.shape[1], c.split)[i : i + 2])] for i, p in enumerate(PARTS)}
        self._ready = True

    def specs(self, part: str) -> list[PairSpec]:
        """The items of one part: ICA windows, then the semi-synthetic ones (module docstring)."""
        self.setup()
        c, T = self.config, self.config.window
        hop = int(round(c.hop_s * c.sfreq)) if part == "train" else T
        starts = [(r, s) for r, rec in enumerate(self.recs) for s in window_starts(*rec.part(part), T, hop)]
        out = [PairSpec(r, s, KINDS.index("ica")) for r, s in starts]
        rng = np.random.default_rng([c.seed, PARTS.index(part)])
        eog_len = self.eog_parts[part].shape[1]
        for artifact in c.artifacts:
            kind = KINDS.index(artifact)
            if part == "train":
                out += [PairSpec(r, s, kind) for r, s in starts for _ in range(c.synthetic_per_window)]
                continue
            if artifact == "eog" and eog_len < T:
                raise ValueError(f"the {part} part of {c.eog_recording}'s EOG is shorter than one window")
            for snr in c.test_snrs if part == "test" else c.val_snrs:
                for r, s in starts:
                    eog_start = int(rng.integers(0, max(1, eog_len - T + 1)))
                    out.append(PairSpec(r, s, kind, float(snr), eog_start, int(rng.integers(2**31))))
        return out

    def dataset(self, part: str) -> PairDataset:
        return PairDataset(self.recs, self.specs(part), self.eog_parts[part], self.config)

    def loader(self, part: str) -> DataLoader:
        return DataLoader(
            self.dataset(part),
            batch_size=self.config.batch_size,
            shuffle=part == "train",
            drop_last=False,
            num_workers=self.config.num_workers,
            collate_fn=DenoiseBatch.collate,
        )

    def model_dims(self) -> dict[str, int]:
        return {"n_channels": len(self.config.channels), "window": self.config.window}

    def transform_state(self, model: nn.Module | None = None) -> dict[str, Any]:
        """What serving needs: the template channels, rate, window and band (`inference.tasks.denoise`)."""
        c = self.config
        return {
            "channels": list(c.channels),
            "sfreq": c.sfreq,
            "window": c.window,
            "l_freq": c.l_freq,
            "h_freq": c.h_freq,
            "line_freq": c.line_freq,
            "average_reference": True,
            "dataset": c.dataset,
        }

    def _test_stretch(self, seconds: float) -> tuple[np.ndarray, np.ndarray]:
        """The first `seconds` of the first recording's test part: noisy and ICA-clean [N, T]."""
        self.setup()
        rec = self.recs[0]
        a, b = rec.part("test")
        n = min(b - a, int(round(seconds * self.config.sfreq)))
        return rec.noisy[:, a : a + n], rec.clean[:, a : a + n]

    def example_input(self) -> dict[str, Any]:
        """The first 4 s (at least one window) of the first recording's test part, preprocessed, as a request."""
        noisy, _ = self._test_stretch(max(self.config.window_s, 4.0))
        c = self.config
        return {"sfreq": c.sfreq, "channels": list(c.channels), "data": np.round(noisy.astype(float), 2).tolist()}

    def signature_example(self) -> pd.DataFrame:
        """The example as MLflow's input example: one column per channel, one row per sample."""
        ex = self.example_input()
        return pd.DataFrame(np.asarray(ex["data"]).T, columns=ex["channels"])

    def evaluation_example(self) -> DenoiseExample:
        noisy, clean = self._test_stretch(max(2 * self.config.window_s, 8.0))
        c = self.config
        title = f"{self.recs[0].name}, start of the test part"
        return DenoiseExample(noisy=noisy, reference=clean, channels=list(c.channels), sfreq=c.sfreq, title=title)
