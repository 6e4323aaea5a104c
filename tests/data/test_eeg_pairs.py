"""EEG pairs and windows: the semi-synthetic mix hits the requested SNR exactly (clean + artifact = noisy),
ICA pairs clean what they should, splits are by time, and windows stitch back exactly."""

import numpy as np
import pytest
import torch

from data.eeg.channels import ART_CHANNELS
from data.eeg.pairs import KINDS, emg_artifact, eog_artifact, ica_pair, mix, snr_db
from data.eeg.readers import Recording
from data.eeg.stitch import overlap_windows, stitch, window_starts
from data.eeg.windows import PARTS, DenoiseDataConfig
from data.schemas import DenoiseBatch

SMALL = dict(
    dataset="eegmmidb-s001r01", sfreq=128.0, window_s=0.5, hop_s=0.5, max_seconds=40.0, ica_components=8,
    test_snrs=(-7.0, 2.0), val_snrs=(-7.0,), batch_size=8,
)  # fmt: skip


@pytest.mark.parametrize("snr", [-7.0, -3.5, 0.0, 2.0])
def test_mixing_hits_the_requested_snr_and_adds_exactly_the_artifact(snr):
    rng = np.random.default_rng(0)
    clean, artifact = rng.normal(size=(4, 256)), rng.normal(size=(4, 256)) * 7
    noisy = mix(clean, artifact, snr)
    added = noisy - clean
    assert snr_db(clean, added) == pytest.approx(snr, abs=1e-9)
    lam = added[0, 0] / artifact[0, 0]
    np.testing.assert_allclose(clean + lam * artifact, noisy, atol=1e-12)  # clean + λ·artifact = noisy


def test_ocular_artifacts_fall_off_from_the_eyes_and_flip_sides():
    t = np.linspace(0, 2, 256)
    eog = np.stack([np.sin(2 * np.pi * t), np.cos(2 * np.pi * t)])
    art = eog_artifact(eog, ART_CHANNELS)
    rms = np.sqrt((art**2).mean(axis=1))
    fp, oz = rms[ART_CHANNELS.index("Fp1")], rms[ART_CHANNELS.index("Oz")]
    assert fp > 10 * oz
    horizontal = eog_artifact(np.stack([eog[0], -eog[0]]), ART_CHANNELS)  # vertical part cancels
    f7, f8 = horizontal[ART_CHANNELS.index("F7")], horizontal[ART_CHANNELS.index("F8")]
    assert np.corrcoef(f7, f8)[0, 1] < -0.99


def test_muscle_artifacts_are_high_frequency():
    art = emg_artifact(ART_CHANNELS, 512, 128.0, 50.0, np.random.default_rng(0))
    spectrum = np.abs(np.fft.rfft(art, axis=1)) ** 2
    freqs = np.fft.rfftfreq(512, 1 / 128.0)
    assert spectrum[:, freqs < 15].sum() < 1e-3 * spectrum.sum()  # the burst envelope leaks a little
    rms = np.sqrt((art**2).mean(axis=1))
    assert rms[ART_CHANNELS.index("T7")] > rms[ART_CHANNELS.index("Cz")]


def test_ica_criteria_remove_a_known_blink_source():
    # Three brain-like sources and one blink train mixed into 8 channels; EOG channel = the blink source.
    rng = np.random.default_rng(1)
    sfreq, n = 128.0, 128 * 40
    t = np.arange(n) / sfreq
    brain = np.stack([np.sin(2 * np.pi * f * t + p) for f, p in ((10, 0), (6, 1), (13, 2))]) * 10
    blink = np.zeros(n)
    for c in rng.uniform(1, 39, size=16):
        blink += 150 * np.exp(-0.5 * ((t - c) / 0.08) ** 2)
    names = ("Fp1", "Fp2", "F3", "F4", "C3", "C4", "O1", "O2")
    brain_mix, blink_mix = rng.normal(size=(8, 3)), np.linspace(1.0, 0.05, 8)[:, None]
    clean = brain_mix @ brain + 0.05 * rng.normal(size=(8, n))
    rec = Recording(
        data=clean + blink_mix * blink, channels=names, sfreq=sfreq, eog=blink[None], eog_channels=("EOG1",)
    )
    pair = ica_pair(rec, n_components=4, classifier="criteria", seed=0)
    assert pair.classifier == "criteria" and "eye blink" in pair.labels
    before = np.corrcoef(rec.data[0], blink)[0, 1]
    after = np.corrcoef(pair.clean[0], blink)[0, 1]
    assert before > 0.9 and abs(after) < 0.2

    def centred_rms(x):  # ICA keeps each channel's mean (the blink train's offset): compare around it
        return np.sqrt(((x - x.mean(axis=1, keepdims=True)) ** 2).mean())

    assert centred_rms(pair.clean - clean) < 0.01 * centred_rms(rec.data - clean)


@pytest.mark.parametrize("length", [7, 64, 100, 257])
def test_window_and_stitch_round_trip_is_exact_for_the_identity(length):
    x = np.random.default_rng(0).normal(size=(3, length))
    windows, starts = overlap_windows(x, 64, 32)
    assert windows.shape[1:] == (3, 64) and starts == window_starts(max(length, 64), 64, 32)
    assert starts[-1] + 64 == max(length, 64)  # the last window is flush with the end
    np.testing.assert_allclose(stitch(windows, starts, length), x, rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def dm():
    module = DenoiseDataConfig(**SMALL).datamodule()
    module.setup()
    return module


def test_splits_are_by_time_and_windows_never_straddle_them(dm):
    rec = dm.recs[0]
    assert rec.bounds == (0, 3584, 4096, 5120)  # 40 s at 128 Hz: 70 % / 10 % / 20 %
    T = dm.config.window
    for part in PARTS:
        a, b = rec.part(part)
        for spec in dm.specs(part):
            assert a <= spec.start and spec.start + T <= b
    test_starts = {s.start for s in dm.specs("test") if KINDS[s.kind] == "ica"}
    assert test_starts == set(range(4096, 5120 - T + 1, T))  # non-overlapping test windows
    assert rec.info["classifier"] in ("iclabel", "criteria") and rec.noisy.shape == (30, 5120)


def test_the_loaders_yield_typed_batches_of_every_kind(dm):
    batch = next(iter(dm.test_dataloader()))
    assert isinstance(batch, DenoiseBatch) and batch.noisy.shape == (8, 30, 64) and batch.clean.shape == (8, 30, 64)
    items = [dm.dataset("test")[i] for i in range(len(dm.dataset("test")))]
    kinds = {KINDS[w.kind] for w in items}
    assert kinds == {"ica", "eog", "emg"}
    for w in items:
        if KINDS[w.kind] in ("eog", "emg"):  # clean + artifact at the stated SNR
            assert snr_db(w.clean.double().numpy(), (w.noisy - w.clean).double().numpy()) == pytest.approx(
                w.snr_db, abs=1e-3
            )
    again = [dm.dataset("test")[i] for i in range(len(items))]
    assert all(torch.equal(a.noisy, b.noisy) for a, b in zip(items, again, strict=True))  # fixed by the seed
    ex = dm.example_input()
    assert len(ex["channels"]) == 30 and len(ex["data"][0]) == 4 * 128 and ex["sfreq"] == 128.0
