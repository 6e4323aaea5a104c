"""EEG recordings in, through MNE-Python: EDF/EDF+, BDF, FIF and EEGLAB .set/.fdt, one path for all.

`read_recording(path)` returns a `Recording`: EEG [C, T] in µV with canonical channel names
(`data.eeg.channels.canonical`), the EOG channels apart (by type or by name), the rate, and where it
came from. `preprocess(rec, ...)` is the chain every recipe and the service apply, in this order:
average reference over the EEG channels, zero-phase FIR band-pass (and a notch at the line frequency
when it lies inside the band), resampling to the common rate by a rational polyphase filter (160 Hz
→ 256 Hz is 8/5, not skipped as in ART's integer-only resampler).

Files are untrusted input: the size is bounded before MNE sees them, any reader error is a
`RecordingError` that names the file and the formats accepted.

Shapes: C EEG channels, E EOG channels, T samples.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data.eeg.channels import canonical, is_eog

FORMATS = {".edf": "EDF/EDF+", ".bdf": "BDF", ".fif": "FIF", ".set": "EEGLAB .set (+ .fdt)"}
MAX_FILE_BYTES = 512 * 2**20  # a file larger than this is refused before it is read
VOLTS_TO_UV = 1e6


class RecordingError(ValueError):
    """A file that cannot be read as EEG; the message names it and what is accepted."""


@dataclass(frozen=True)
class Recording:
    """EEG [C, T] and EOG [E, T] in µV at `sfreq` Hz, canonical channel names."""

    data: np.ndarray
    channels: tuple[str, ...]
    sfreq: float
    eog: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    eog_channels: tuple[str, ...] = ()
    source: str = ""

    @property
    def seconds(self) -> float:
        return self.data.shape[1] / self.sfreq

    def replace(self, **changes) -> Recording:
        return dataclasses.replace(self, **changes)

    def crop(self, start_s: float, stop_s: float) -> Recording:
        """The part between two times (seconds), both EEG and EOG."""
        a, b = int(round(start_s * self.sfreq)), int(round(stop_s * self.sfreq))
        eog = self.eog[:, a:b] if self.eog.size else self.eog
        return self.replace(data=self.data[:, a:b], eog=eog)


def _read_raw(path: Path):
    import mne

    suffix = path.suffix.lower()
    readers = {
        ".edf": mne.io.read_raw_edf,
        ".bdf": mne.io.read_raw_bdf,
        ".fif": mne.io.read_raw_fif,
        ".set": mne.io.read_raw_eeglab,
    }
    if suffix not in readers:
        accepted = ", ".join(f"{k} ({v})" for k, v in FORMATS.items())
        raise RecordingError(f"{path.name}: unsupported file type {suffix!r}; accepted: {accepted}")
    if not path.is_file():
        raise RecordingError(f"{path}: no such file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise RecordingError(f"{path.name}: {size} bytes is over the {MAX_FILE_BYTES}-byte limit")
    try:
        return readers[suffix](str(path), preload=True, verbose="error")
    except Exception as e:  # MNE raises many kinds on malformed headers
        raise RecordingError(f"{path.name} cannot be read as {FORMATS[suffix]}: {e}") from None


def read_recording(path: str | Path) -> Recording:
    """A recording's EEG and EOG channels in µV with canonical names (see the module docstring)."""
    path = Path(path)
    raw = _read_raw(path)
    types = raw.get_channel_types()
    eeg, eog = [], []
    for i, (name, kind) in enumerate(zip(raw.ch_names, types, strict=True)):
        if kind == "eog" or is_eog(name):
            eog.append(i)
        elif kind == "eeg":
            eeg.append(i)
    if not eeg:
        raise RecordingError(f"{path.name}: no EEG channels (channel types: {sorted(set(types))})")
    values = raw.get_data() * VOLTS_TO_UV  # MNE holds volts
    if not np.isfinite(values).all():
        raise RecordingError(f"{path.name}: the samples hold NaN or infinite values")
    names = tuple(canonical(raw.ch_names[i]) for i in eeg)
    return Recording(
        data=values[eeg],
        channels=names,
        sfreq=float(raw.info["sfreq"]),
        eog=values[eog] if eog else np.zeros((0, values.shape[1])),
        eog_channels=tuple(canonical(raw.ch_names[i]) for i in eog),
        source=path.name,
    )


@dataclass(frozen=True, kw_only=True)
class Preprocessing:
    """The chain of `preprocess`: target rate, band-pass edges, optional line frequency (notch)."""

    sfreq: float = 256.0
    l_freq: float = 1.0
    h_freq: float = 50.0
    line_freq: float | None = None
    average_reference: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.l_freq < self.h_freq < self.sfreq / 2:
            raise ValueError(f"need 0 < l_freq < h_freq < sfreq/2, got {self.l_freq}, {self.h_freq}, {self.sfreq}")


def band_pass(data: np.ndarray, sfreq: float, p: Preprocessing) -> np.ndarray:
    """Zero-phase FIR band-pass [l_freq, h_freq] (MNE's default firwin design), notch at the line
    frequency and its harmonics inside the band. data [C, T] -> [C, T]."""
    import mne

    x = np.asarray(data, dtype=np.float64)
    h = min(p.h_freq, 0.45 * sfreq)  # a low-rate input is band-passed up to below its own Nyquist
    x = mne.filter.filter_data(x, sfreq, p.l_freq, h, verbose="error", pad="reflect_limited")
    if p.line_freq:
        freqs = np.arange(p.line_freq, h + 1e-9, p.line_freq)
        if len(freqs):
            x = mne.filter.notch_filter(x, sfreq, freqs, verbose="error")
    return x


def resample(data: np.ndarray, sfreq: float, target: float) -> np.ndarray:
    """[C, T] at `sfreq` -> [C, round(T · target / sfreq)] at `target` (polyphase, rational ratio)."""
    import mne

    if sfreq == target:
        return np.asarray(data, dtype=np.float64)
    return mne.filter.resample(np.asarray(data, dtype=np.float64), up=target, down=sfreq, verbose="error")


def average_reference(data: np.ndarray) -> np.ndarray:
    """[C, T] minus the mean over channels at each sample."""
    return data - data.mean(axis=0, keepdims=True)


def preprocess(rec: Recording, p: Preprocessing) -> Recording:
    """Average reference, band-pass (+ notch), resample to `p.sfreq`, for EEG and EOG alike (EOG is
    not re-referenced)."""
    eeg = average_reference(rec.data) if p.average_reference else rec.data
    eeg = resample(band_pass(eeg, rec.sfreq, p), rec.sfreq, p.sfreq)
    no_eog = np.zeros((0, eeg.shape[1]))
    eog = resample(band_pass(rec.eog, rec.sfreq, p), rec.sfreq, p.sfreq) if rec.eog.size else no_eog
    return rec.replace(data=eeg, eog=eog, sfreq=p.sfreq)


def read_recording_bytes(content: bytes, suffix: str) -> Recording:
    """A recording sent as bytes (an upload): written to a temporary file of that suffix and read."""
    import tempfile

    if suffix.lower() not in FORMATS or suffix.lower() == ".set":
        accepted = ", ".join(k for k in FORMATS if k != ".set")
        raise RecordingError(f"an upload must be one file of type {accepted} (an EEGLAB .set needs its .fdt)")
    if len(content) > MAX_FILE_BYTES:
        raise RecordingError(f"{len(content)} bytes is over the {MAX_FILE_BYTES}-byte limit")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix.lower()}"
        path.write_bytes(content)
        rec = read_recording(path)
    return rec.replace(source="upload")


def fif_bytes(rec: Recording) -> bytes:
    """The recording (EEG, then EOG) as a FIF file's bytes, in volts as FIF stores them."""
    import tempfile

    import mne

    names = list(rec.channels) + list(rec.eog_channels)
    types = ["eeg"] * len(rec.channels) + ["eog"] * len(rec.eog_channels)
    data = np.vstack([rec.data, rec.eog]) if rec.eog.size else rec.data
    raw = mne.io.RawArray(data / VOLTS_TO_UV, mne.create_info(names, rec.sfreq, types), verbose="error")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cleaned_raw.fif"
        raw.save(path, verbose="error")
        return path.read_bytes()
