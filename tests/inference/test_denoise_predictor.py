"""The denoise predictor: request rules (each refusal says what to send), the signal path (montage mapping,
resampling, windows) and its exactness for the identity model, batching, warm-up and the pyfunc input."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from data.eeg.readers import Preprocessing, band_pass
from inference.predictor import CostModel, Reason, Refused, load_predictor, request_cost
from inference.tasks.denoise import DenoiseInput, DenoisePredictor
from tests.inference.denoise_bundles import CHANNELS, SFREQ, WINDOW, eeg, make_denoise_bundle


class Identity(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x * self.w


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> DenoisePredictor:
    p = load_predictor(make_denoise_bundle(tmp_path_factory.mktemp("b")))
    assert isinstance(p, DenoisePredictor)
    return p


def request(**over):
    return {"sfreq": SFREQ, "channels": CHANNELS, "data": eeg().tolist(), **over}


@pytest.mark.parametrize(
    "change, field, needle",
    [
        ({"sfreq": None}, "sfreq", "sfreq is required"),
        ({"sfreq": 10.0}, "sfreq", "between 64 and 4096 Hz"),
        ({"sfreq": True}, "sfreq", "a number of Hz"),
        ({"unit": "kV"}, "unit", "unit must be one of"),
        ({"channels": ["Pz", "Cz", "O1", "O2"]}, "channels", "expected channels (10-10 names"),
        ({"channels": ["Fp1", "FP1.", "Cz", "Oz"]}, "channels", "more than once"),
        ({"channels": ["Fp1", "", "Cz", "Oz"]}, "channels.1", "non-empty label"),
        ({"data": eeg(3).tolist()}, "data", "must hold 4 rows"),
        ({"data": [[1.0, 2.0]] * 3 + [[1.0]]}, "data.3", "same T samples"),
        ({"data": [["a", "b"]] * 4}, "data", "numbers only"),
        ({"data": eeg(seconds=0.5).tolist()}, "data", "must span 1 to"),
        ({"data": (eeg() * 1e-6).tolist()}, "data", "look like volts"),
        ({"data": (eeg() * 1e6).tolist()}, "data", "not EEG in µV"),
    ],
)
def test_each_rule_refuses_with_what_to_send(predictor, change, field, needle):
    reason = predictor.parse(request(**change))
    assert isinstance(reason, Reason), reason
    assert needle in reason.message and reason.field == field, reason


def test_nan_too_long_and_unit_conversion(predictor):
    data = eeg()
    data[2, 7] = np.nan
    reason = predictor.parse(request(data=data))
    assert isinstance(reason, Reason) and reason.field == "data.2.7"
    long = predictor.parse(request(data=eeg(seconds=predictor.max_seconds + 1)))
    assert isinstance(long, Reason) and long.status == 413
    volts = predictor.parse(request(data=(eeg() * 1e-6).tolist(), unit="V"))
    assert isinstance(volts, DenoiseInput) and volts.unit_scale == 1e6
    np.testing.assert_allclose(volts.data, eeg(), rtol=1e-12)


def test_the_identity_model_gives_back_the_band_passed_input_exactly(predictor):
    ident = replace(predictor, model=Identity())  # same transform, the model replaced by the identity
    for seconds in (1.0, 1.3, 7.9):  # shorter than, between and many windows long
        x = eeg(seconds=seconds)
        out = ident.denoise(x, CHANNELS, SFREQ)
        ref = x - x.mean(axis=0, keepdims=True)
        expected = band_pass(ref, SFREQ, Preprocessing(sfreq=SFREQ, l_freq=1.0, h_freq=40.0))
        # Exact up to the float32 the model computes in (the stitching itself is exact in float64: test_eeg_pairs).
        np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-5)


def test_other_rates_and_montages_go_through_the_same_path(predictor):
    # 160 Hz, different order, old names, an extra channel and an eye channel; Oz missing (interpolated).
    channels = ["cz", "EOG1", "FP2.", "Pz", "O1", "fp1", "O2"]
    x = eeg(len(channels), seconds=3.0, sfreq=160.0)
    inp = predictor.parse({"sfreq": 160.0, "channels": channels, "data": x.tolist()})
    assert isinstance(inp, DenoiseInput)
    (out,) = predictor.predict_batch([inp])
    assert out.data.shape == x.shape and np.isfinite(out.data).all()
    assert out.cleaned == ["cz", "FP2.", "fp1"] and out.uncleaned == ["EOG1", "Pz", "O1", "O2"]


def test_batches_answer_each_input_alone(predictor):
    a, b = predictor.parse(request()), predictor.parse(request(data=eeg(seed=3) * 2))
    alone = [predictor.predict_batch([x])[0].data for x in (a, b)]
    together = [o.data for o in predictor.predict_batch([a, b])]
    for x, y in zip(alone, together, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-4)
    bad = replace(a, data=a.data * 1e300)  # passed parse once; its variance overflows in the model
    outs = predictor.predict_batch([bad, b])
    assert isinstance(outs[0], Refused) and not isinstance(outs[1], Exception)


def test_cost_counts_model_windows(predictor):
    assert isinstance(predictor, CostModel)
    inp = predictor.parse(request(data=eeg(seconds=2.0)))
    cost, refusal = request_cost(predictor, inp)
    assert cost == len(range(0, 256 - WINDOW + 1, WINDOW // 2)) and refusal is None
    assert predictor.describe()["max_cost"] == predictor.max_cost == 64


def test_warm_up_describe_and_pyfunc(predictor):
    predictor.warm_up()
    info = predictor.describe()
    assert info["channels"] == CHANNELS and info["sfreq"] == SFREQ and info["window"] == WINDOW
    assert info["min_present_channels"] == 2 and info["reference"] == "average"
    frame = pd.DataFrame(eeg(seconds=1.5).T, columns=CHANNELS)
    out = predictor.pyfunc_predict(frame)
    assert list(out.columns) == CHANNELS and out.shape == frame.shape
    answer = predictor.pyfunc_predict(request())
    assert set(answer) == {"data", "cleaned", "uncleaned"}
    with pytest.raises(Refused, match="must hold 4 rows"):
        predictor.pyfunc_predict(request(data=eeg(2).tolist()))
