"""EEG readers on the shipped recordings (channel counts, rates, units), name cleanup and the channel map,
preprocessing, and hostile files."""

import numpy as np
import pytest

from data.eeg.channels import ART_CHANNELS, ChannelMapError, canonical, channel_map, clean_name, is_eog
from data.eeg.readers import (
    Preprocessing,
    RecordingError,
    fif_bytes,
    preprocess,
    read_recording,
    read_recording_bytes,
)
from data.eeg.sources import CATALOGUE, expand_recordings, recording_path


@pytest.fixture(scope="module")
def eegmmidb():
    return read_recording(recording_path("eegmmidb-s001r01"))


@pytest.fixture(scope="module")
def eeglab():
    return read_recording(recording_path("eeglab-sample"))


def test_the_physionet_edf_reads_as_64_channels_at_160_hz_in_microvolts(eegmmidb):
    assert eegmmidb.data.shape == (64, 9760) and eegmmidb.sfreq == 160.0  # 61 records of 1 s
    assert eegmmidb.channels[:3] == ("FC5", "FC3", "FC1") and "Fp1" in eegmmidb.channels  # "Fc5." cleaned
    assert eegmmidb.eog.shape == (0, 9760)
    std = eegmmidb.data.std(axis=1)
    fp = std[[eegmmidb.channels.index(c) for c in ("Fp1", "Fpz", "Fp2")]]
    central = std[[eegmmidb.channels.index(c) for c in ("Cz", "Oz")]]
    # µV: blinks make the frontal channels ~100 µV, twice the central ones (SOURCE.md), never volts.
    assert 60 < fp.mean() < 150 and 20 < central.mean() < 80 and fp.mean() > 1.5 * central.mean()


def test_the_eeglab_set_reads_with_its_two_eog_channels_apart(eeglab):
    assert eeglab.data.shape == (30, 30504) and eeglab.sfreq == 128.0
    assert eeglab.eog_channels == ("EOG1", "EOG2") and eeglab.eog.shape == (2, 30504)
    assert eeglab.channels[0] == "Fpz"  # "FPz" in the file
    assert 5 < np.median(eeglab.data.std(axis=1)) < 50  # µV


def test_labels_of_other_labs_map_to_one_spelling():
    assert [canonical(n) for n in ("Fp1.", "FPZ", "EEG Fp2-REF", "T3", "t6", "Cz..", "af7")] == [
        "Fp1", "Fpz", "Fp2", "T7", "P8", "Cz", "AF7",
    ]  # fmt: skip
    assert clean_name("  O1 .") == "O1"
    assert is_eog("EOG1") and is_eog("VEOG") and is_eog("HEOG-L") and not is_eog("Fp1")


def test_the_channel_map_copies_recorded_channels_and_interpolates_missing_ones(eeglab):
    cmap = channel_map(tuple(eeglab.channels) + eeglab.eog_channels, ART_CHANNELS)
    assert len(cmap.interpolated) == 14 and "Fp1" in cmap.interpolated and "Cz" not in cmap.interpolated
    assert "EOG1" in cmap.unused and cmap.matrix.shape == (30, 32)
    cz = ART_CHANNELS.index("Cz")
    assert cmap.matrix[cz].tolist() == [1.0 if c == "Cz" else 0.0 for c in cmap.inputs]
    # Spherical-spline rows are weights that sum to 1 and never use an eye channel.
    np.testing.assert_allclose(cmap.matrix.sum(axis=1), 1.0, atol=1e-6)
    assert not cmap.matrix[:, [cmap.inputs.index("EOG1"), cmap.inputs.index("EOG2")]].any()
    with pytest.raises(ChannelMapError, match="expected channels .*Fp1.*missing"):
        channel_map(("Cz", "Pz", "Oz", "O1"), ART_CHANNELS)
    with pytest.raises(ChannelMapError, match="more than once"):
        channel_map(("Cz", "CZ."), ("Cz",))


def test_preprocessing_resamples_160_to_256_hz_and_band_passes(eegmmidb):
    p = Preprocessing(sfreq=256.0, l_freq=1.0, h_freq=40.0)
    out = preprocess(eegmmidb.crop(0.0, 10.0), p)
    assert out.sfreq == 256.0 and out.data.shape == (64, 2560)  # 8/5 × 1600: not skipped as non-integer
    np.testing.assert_allclose(out.data.mean(axis=0), 0.0, atol=1e-6)  # average reference
    spectrum = np.abs(np.fft.rfft(out.data, axis=1)) ** 2
    freqs = np.fft.rfftfreq(out.data.shape[1], 1 / 256.0)
    assert spectrum[:, freqs > 50].sum() < 1e-3 * spectrum[:, (freqs > 2) & (freqs < 35)].sum()


def test_fif_round_trip_and_uploads(eegmmidb, tmp_path):
    rec = eegmmidb.crop(0.0, 4.0)
    again = read_recording_bytes(fif_bytes(rec), ".fif")
    assert again.channels == rec.channels and again.sfreq == rec.sfreq
    np.testing.assert_allclose(again.data, rec.data, rtol=1e-5, atol=1e-4)
    edf = recording_path("eegmmidb-s001r01").read_bytes()
    assert read_recording_bytes(edf, ".edf").data.shape == (64, 9760)


def test_hostile_files_are_a_recording_error_naming_what_is_accepted(tmp_path):
    bad = tmp_path / "x.edf"
    bad.write_bytes(b"0       not an edf header" * 20)
    with pytest.raises(RecordingError, match="x.edf cannot be read as EDF"):
        read_recording(bad)
    with pytest.raises(RecordingError, match="unsupported file type '.csv'"):
        read_recording(tmp_path / "x.csv")
    with pytest.raises(RecordingError, match="an upload must be one file"):
        read_recording_bytes(b"", ".set")
    with pytest.raises(RecordingError, match="cannot be read"):
        read_recording_bytes(b"\x00" * 300, ".bdf")


def test_datasets_expand_from_names_folders_and_globs(tmp_path):
    assert expand_recordings("eegmmidb-s001r01, eeglab-sample") == list(CATALOGUE)
    (tmp_path / "b.edf").write_bytes(b"")
    (tmp_path / "a.fif").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    assert [p.rsplit("/", 1)[-1] for p in expand_recordings(str(tmp_path))] == ["a.fif", "b.edf"]
    with pytest.raises(FileNotFoundError, match="no EEG recording matches"):
        expand_recordings(str(tmp_path / "*.bdf"))
