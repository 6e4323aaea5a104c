"""`POST /v1/models/{name}/denoise` and `/denoise/file` over HTTP with a tiny ART bundle: answers in the
request's channels, rate and unit; every client mistake a 4xx that says what to fix; a real EDF cleaned
end to end (FIF back)."""

from pathlib import Path

import mne
import numpy as np
import pytest

from data.eeg.sources import recording_path
from tests.inference.denoise_bundles import CHANNELS, SFREQ, eeg, make_denoise_bundle
from tests.service.service_fixtures import assert_4xx, make_bundle

URL = "/v1/models/{}/denoise"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return {
        "eeg": make_denoise_bundle(root / "eeg"),
        "eeg-long": make_denoise_bundle(root / "long", max_cost=400, name="art-long"),
        "m": make_bundle(root / "m"),
    }


def body(**over):
    return {"sfreq": SFREQ, "channels": CHANNELS, "data": eeg().tolist(), **over}


def test_denoise_answers_in_the_requests_channels_rate_and_length(client):
    channels = ["Fp1", "FP2", "EOG1", "Cz", "Oz"]
    x = eeg(5, seconds=2.5, sfreq=250.0)
    r = client.post(URL.format("eeg"), json={"sfreq": 250.0, "channels": channels, "data": x.tolist()})
    assert r.status_code == 200, r.text
    out = r.json()
    assert np.asarray(out["data"]).shape == x.shape and out["channels"] == channels and out["sfreq"] == 250.0
    assert out["cleaned"] == ["Fp1", "FP2", "Cz", "Oz"] and out["uncleaned"] == ["EOG1"]
    assert out["model"] == {"name": "eeg", "version": "local"}
    again = client.post(URL.format("eeg"), json={"sfreq": 250.0, "channels": channels, "data": x.tolist()})
    assert again.json()["data"] == out["data"]  # deterministic


def test_model_info_says_what_a_request_may_hold(client):
    info = client.get("/v1/models/eeg").json()
    assert info["task"] == "denoise" and info["channels"] == CHANNELS and info["sfreq"] == SFREQ
    assert info["window"] == 64 and info["band"] == [1.0, 40.0] and info["max_cost"] == 64
    assert info["max_seconds"] == pytest.approx((63 * 32 + 64) / 128) and info["example_input"]["channels"] == CHANNELS


@pytest.mark.parametrize(
    "payload, status, needle, field",
    [
        (body(channels=["Fp1", "Pz", "O1", "O2"]), 422, "expected channels (10-10 names", "channels"),
        (body(sfreq="128"), 422, "sfreq", "sfreq"),
        (body(sfreq=5.0), 422, "between 64 and 4096 Hz", "sfreq"),
        (body(data=[[1, 2]] * 4), 422, "must span 1 to", "data"),
        (body(data=eeg(seconds=40.0).tolist()), 413, "must span 1 to", "data"),
        (body(data=(eeg() * 1e-6).tolist()), 422, 'set "unit": "V"', "data"),
        (body(extra=1), 422, "unknown field", "extra"),
        ({"channels": CHANNELS, "data": eeg().tolist()}, 422, "sfreq is required", "sfreq"),
    ],
)
def test_client_mistakes_are_4xx_saying_what_to_fix(client, payload, status, needle, field):
    assert_4xx(client.post(URL.format("eeg"), json=payload), status, needle, field=field)


def test_wrong_task_content_type_and_unknown_model(client):
    assert_4xx(
        client.post(URL.format("m"), json=body()), 404, "model m is a forecast model: POST /v1/models/m/forecast"
    )
    r = client.post("/v1/models/eeg/forecast", json={"history": [[1.0]]})
    assert_4xx(r, 404, "model eeg is a denoise model: POST /v1/models/eeg/denoise")
    assert_4xx(client.post(URL.format("nope"), json=body()), 404, "unknown model 'nope'")
    r = client.post(URL.format("eeg"), content="sfreq=128", headers={"content-type": "text/plain"})
    assert r.status_code == 415


def test_a_real_edf_is_cleaned_end_to_end_and_comes_back_as_fif(client, tmp_path):
    edf = recording_path("eegmmidb-s001r01").read_bytes()  # 64 channels at 160 Hz, 61 s, real blinks
    upload = {"content-type": "application/octet-stream"}
    r = client.post(URL.format("eeg-long") + "/file?format=edf", content=edf, headers=upload)
    assert r.status_code == 200, r.text[:300]
    assert set(r.headers["x-seer-cleaned"].split(",")) == set(CHANNELS)  # the file's order; FC5 etc. uncleaned
    (tmp_path / "out_raw.fif").write_bytes(r.content)
    raw = mne.io.read_raw_fif(tmp_path / "out_raw.fif", preload=True, verbose="error")
    assert len(raw.ch_names) == 64 and raw.info["sfreq"] == 160.0 and raw.n_times == 9760
    assert np.isfinite(raw.get_data()).all()
    # The same file on the 16 s model is too much work for one request: a 413 saying what to do.
    r = client.post(URL.format("eeg") + "/file?format=edf", content=edf, headers=upload)
    assert_4xx(r, 413, "send longer recordings in parts")
    assert_4xx(client.post(URL.format("eeg-long") + "/file?format=edf", content=b"junk" * 100, headers=upload), 422,
               "cannot be read as EDF")  # fmt: skip
    r = client.post(URL.format("eeg-long") + "/file?format=edf", content=edf, headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert client.post(URL.format("eeg-long") + "/file?format=set", content=edf, headers=upload).status_code == 422


def test_a_recording_of_another_lab_goes_through_the_same_path(client):
    # The EEGLAB sample: 32 channels (two EOG) at 128 Hz, another montage (no Fp1/Fp2: interpolated), sent in mV.
    from data.eeg.readers import read_recording

    rec = read_recording(recording_path("eeglab-sample")).crop(10.0, 14.0)
    channels = [*rec.channels, *rec.eog_channels]
    data = np.vstack([rec.data, rec.eog]) / 1000.0
    r = client.post(
        URL.format("eeg"), json={"sfreq": rec.sfreq, "channels": channels, "data": data.tolist(), "unit": "mV"}
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert np.asarray(out["data"]).shape == data.shape and out["cleaned"] == ["Cz", "Oz"]
    assert np.abs(np.asarray(out["data"])).max() < 1.0  # answered in mV, as asked
    r = client.post(URL.format("eeg"), json={"sfreq": rec.sfreq, "channels": channels[:8], "data": data[:8].tolist()})
    assert_4xx(r, 422, "only 0 of the model's 4 channels", "expected channels", field="channels")
