"""Noisy/clean training pairs, two real procedures.

(a) ICA pairs, as ART makes them: decompose the recording with MNE's extended-infomax ICA, classify the
    components, rebuild the EEG from the brain components only (clean target); the recording itself is
    the noisy input. Classifier: ICLabel (`mne-icalabel`, its network ships with the package and runs
    offline) keeping "brain" components with probability >= 0.8 (ART's rule); when `mne-icalabel` is
    not installed (or `classifier="criteria"`), rule-based criteria flag artifact components instead:
    correlation with the EOG channels (or, without EOG channels, with the frontal-most channels), a
    kurtosis z-score (blinks are peaky), and the share of power above 20 Hz (muscle).
(b) Semi-synthetic pairs, the EEGdenoiseNet recipe (Zhang et al., J Neural Eng 2021): clean EEG plus an
    artifact at a controlled SNR, noisy = clean + λ·artifact with
    SNR = 10·log10(RMS(clean) / RMS(λ·artifact)) (EEGdenoiseNet's definition: 10·log10 of an amplitude
    ratio) drawn in [-7, 2] dB. Ocular artifacts are the *recorded* EOG (EEGLAB's EOG1/EOG2) spread over
    the scalp with a weight that decays with distance from the eyes (vertical component: same sign
    everywhere; horizontal: opposite signs left and right); muscle artifacts are band-limited (20 Hz to
    the band edge) noise in bursts, strongest on temporal channels.

Shapes: N channels, T samples, E EOG channels.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from data.eeg.channels import FRONTAL, standard_montage
from data.eeg.readers import VOLTS_TO_UV, Recording

CLASSIFIERS = ("auto", "iclabel", "criteria")
KINDS = ("ica", "eog", "emg", "clean")  # how a pair was made (the batch carries the index)


def snr_db(signal: np.ndarray, noise: np.ndarray) -> float:
    """EEGdenoiseNet's SNR: 10·log10(RMS(signal) / RMS(noise))."""
    return float(10.0 * np.log10(_rms(signal) / max(_rms(noise), 1e-12)))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def mix(clean: np.ndarray, artifact: np.ndarray, snr: float) -> np.ndarray:
    """clean + λ·artifact with λ set so that snr_db(clean, λ·artifact) = snr. [N, T] each."""
    lam = _rms(clean) / (max(_rms(artifact), 1e-12) * 10.0 ** (snr / 10.0))
    return clean + lam * artifact


def icalabel_available() -> bool:
    return importlib.util.find_spec("mne_icalabel") is not None


@dataclass(frozen=True)
class IcaPair:
    """clean [C, T] (µV) rebuilt from the kept components of the recording; which classifier decided."""

    clean: np.ndarray
    kept: tuple[int, ...]
    labels: tuple[str, ...]
    classifier: str


def _raw(rec: Recording):
    import mne

    names = list(rec.channels) + list(rec.eog_channels)
    types = ["eeg"] * len(rec.channels) + ["eog"] * len(rec.eog_channels)
    data = np.vstack([rec.data, rec.eog]) if rec.eog.size else rec.data
    raw = mne.io.RawArray(data / VOLTS_TO_UV, mne.create_info(names, rec.sfreq, types), verbose="error")
    raw.set_montage(standard_montage(), match_case=False, on_missing="ignore", verbose="error")
    return raw


def ica_pair(
    rec: Recording, *, n_components: int = 20, threshold: float = 0.8, classifier: str = "auto", seed: int = 0
) -> IcaPair:
    """(a) of the module docstring on a preprocessed (average-referenced, band-passed) recording."""
    import mne

    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {classifier!r}")
    use = "iclabel" if classifier == "auto" and icalabel_available() else classifier
    use = "criteria" if use == "auto" else use
    raw = _raw(rec)
    k = int(min(n_components, len(rec.channels) - 1))  # average reference removes one dimension
    ica = mne.preprocessing.ICA(
        n_components=k, method="infomax", fit_params={"extended": True}, random_state=seed, max_iter=500
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ica.fit(raw, picks="eeg", verbose="error")
        if use == "iclabel":
            labels, keep = _iclabel(raw, ica, threshold)
        else:
            labels, keep = _criteria(raw, ica, rec)
        clean = ica.apply(raw.copy(), include=list(keep), verbose="error").get_data(picks="eeg") * VOLTS_TO_UV
    return IcaPair(clean=clean, kept=tuple(keep), labels=tuple(labels), classifier=use)


def _iclabel(raw, ica, threshold: float) -> tuple[list[str], list[int]]:
    from mne_icalabel import label_components

    out = label_components(raw, ica, method="iclabel")
    labels = list(out["labels"])
    probs = np.asarray(out["y_pred_proba"])
    keep = [i for i, (lab, p) in enumerate(zip(labels, probs, strict=True)) if lab == "brain" and p >= threshold]
    return labels, keep


def _criteria(raw, ica, rec: Recording) -> tuple[list[str], list[int]]:
    """EOG correlation, kurtosis and high-frequency share (see the module docstring); the rest is brain."""
    sources = ica.get_sources(raw).get_data()  # [K, T]
    k = len(sources)
    labels = ["brain"] * k
    eye_refs = rec.eog if rec.eog.size else rec.data[[i for i, c in enumerate(rec.channels) if c in FRONTAL[:3]]]
    for ref in eye_refs:
        corr = np.abs([np.corrcoef(s, ref)[0, 1] for s in sources])
        z = (corr - corr.mean()) / (corr.std() + 1e-12)
        for hit in np.flatnonzero((z > 2.5) | (corr > 0.6)):
            labels[int(hit)] = "eye blink"
    centered = sources - sources.mean(axis=1, keepdims=True)
    kurt = (centered**4).mean(axis=1) / ((centered**2).mean(axis=1) ** 2) - 3.0
    zk = (kurt - kurt.mean()) / (kurt.std() + 1e-12)
    spectrum = np.abs(np.fft.rfft(centered, axis=1)) ** 2
    freqs = np.fft.rfftfreq(sources.shape[1], 1.0 / rec.sfreq)
    high = spectrum[:, freqs >= 20.0].sum(axis=1) / spectrum[:, freqs >= 1.0].sum(axis=1)
    for i in range(k):
        if labels[i] == "brain" and zk[i] > 2.5:
            labels[i] = "other"
        elif labels[i] == "brain" and high[i] > 0.5:
            labels[i] = "muscle artifact"
    return labels, [i for i, lab in enumerate(labels) if lab == "brain"]


@lru_cache(maxsize=16)
def _positions(channels: tuple[str, ...]) -> np.ndarray:
    """[N, 3] head-frame positions (m) of channels from the standard montage."""
    pos = standard_montage().get_positions()["ch_pos"]
    upper = {name.upper(): p for name, p in pos.items()}
    missing = [c for c in channels if c.upper() not in upper]
    if missing:
        raise ValueError(f"channels {missing} have no standard 10-05 position")
    return np.array([upper[c.upper()] for c in channels])


def eog_artifact(eog: np.ndarray, channels: tuple[str, ...]) -> np.ndarray:
    """Recorded EOG [E, T] (E >= 1) spread over `channels` -> [N, T]: a vertical component (mean of the EOG
    channels) weighted by exp(-distance from the eyes / 6 cm), and a horizontal one (their difference, when
    there are two) weighted by the same decay times the channel's left-right coordinate."""
    pos = _positions(channels)
    eyes = np.array([0.0, 0.11, 0.0])  # ~ in front of Fpz, at eye level (head frame, metres)
    decay = np.exp(-np.linalg.norm(pos - eyes, axis=1) / 0.06)  # [N]
    vertical = eog.mean(axis=0)
    out = decay[:, None] * vertical[None, :]
    if len(eog) >= 2:
        horizontal = 0.5 * (eog[0] - eog[1])
        lateral = np.clip(pos[:, 0] / 0.07, -1.0, 1.0)
        out = out + (decay * lateral)[:, None] * horizontal[None, :]
    return out


def emg_artifact(
    channels: tuple[str, ...], n_samples: int, sfreq: float, h_freq: float, rng: np.random.Generator
) -> np.ndarray:
    """Muscle-like noise [N, T]: white noise band-passed to [20 Hz, h_freq] by FFT masking, in 0.2–1 s bursts
    (a smooth random envelope), each channel weighted by how temporal and low it sits."""
    pos = _positions(channels)
    noise = rng.standard_normal((len(channels), n_samples))
    spec = np.fft.rfft(noise, axis=1)
    freqs = np.fft.rfftfreq(n_samples, 1.0 / sfreq)
    spec[:, (freqs < 20.0) | (freqs > h_freq)] = 0.0
    band = np.fft.irfft(spec, n=n_samples, axis=1)
    envelope = np.zeros(n_samples)
    t = np.arange(n_samples) / sfreq
    for _ in range(max(1, int(rng.integers(1, 4)))):
        centre, width = rng.uniform(0, t[-1] if n_samples > 1 else 0.0), rng.uniform(0.2, 1.0)
        envelope += np.exp(-0.5 * ((t - centre) / (width / 2.0)) ** 2)
    temporal = 0.3 + np.abs(pos[:, 0]) / 0.08 + np.clip(-pos[:, 2], 0, None) / 0.05
    return temporal[:, None] * band * envelope[None, :]
