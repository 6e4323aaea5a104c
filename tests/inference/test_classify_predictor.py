"""The classify predictor: request rules (unknown, missing and mistyped fields named; unseen categorical
values served as "other"), each flow scored with the window ending at it, batch-mates that change
nothing, files scored in chunks exactly as in one pass, and another NetFlow v2 capture read as it is."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from inference.predictor import Reason, Refused, load_predictor
from inference.tasks.classify import ClassifyPredictor
from inference.tasks.classify.bulk import CsvChunks, ParquetSink, csv_chunks, parquet_chunks, score_file
from tests.inference.classify_bundles import W, flows_body, kdd_flows, make_bundle, nf_flows


@pytest.fixture(scope="module")
def nf(tmp_path_factory) -> ClassifyPredictor:
    p = load_predictor(make_bundle(tmp_path_factory.mktemp("nf") / "b"))
    assert isinstance(p, ClassifyPredictor)
    return p


@pytest.fixture(scope="module")
def kdd(tmp_path_factory) -> ClassifyPredictor:
    return load_predictor(make_bundle(tmp_path_factory.mktemp("kdd") / "b", kdd=True))  # type: ignore[return-value]


def reason(p: ClassifyPredictor, flows) -> Reason:
    out = p.parse({"flows": flows})
    assert isinstance(out, Reason), out
    return out


def test_describe_and_warm_up(nf, kdd):
    nf.warm_up()
    kdd.warm_up()
    d = nf.describe()
    assert d["window"] == W and d["format"] == "netflow-v2" and d["classes"][0] == d["benign_class"] == "Benign"
    assert (
        "L4_DST_PORT" in d["categorical_features"] and "IPV4_SRC_ADDR" not in d["features"] + d["categorical_features"]
    )
    assert kdd.describe()["classes"] == ["benign", "attack"] and kdd.max_cost == 64 / 512


def test_request_rules_name_the_field_to_fix(nf, kdd):
    assert reason(nf, None).field == "flows"
    assert "at least one" in reason(nf, []).message
    r = reason(nf, flows_body(65))
    assert r.status == 413 and "at most 64" in r.message and "/classify/bulk" in r.message
    r = reason(nf, [{**flows_body(1)[0], "IN_BYTE": 3}])
    assert r.field == "flows.0" and "unknown fields 'IN_BYTE'" in r.message
    bad = flows_body(3)
    del bad[2]["L4_DST_PORT"], bad[2]["IN_PKTS"]
    r = reason(nf, bad)
    assert r.field == "flows.2" and "['IN_PKTS', 'L4_DST_PORT']" in r.message
    for value, why in (
        ("5", "must be a number, got str"),
        (True, "got bool"),
        (float("nan"), "finite"),
        (10**400, "finite"),
    ):
        bad = flows_body(2)
        bad[1]["OUT_BYTES"] = value
        r = reason(nf, bad)
        assert r.field == "flows.1.OUT_BYTES" and why in r.message, r
    bad = flows_body(1, kdd=True)
    bad[0]["protocol_type"] = 6
    assert reason(kdd, bad).field == "flows.0.protocol_type"
    assert isinstance(nf.parse({"flows": [{**f, "IPV4_SRC_ADDR": None} for f in flows_body(2)]}), object)


def test_unseen_categorical_values_are_other_and_addresses_are_ignored(nf):
    flows = flows_body(5)
    strange = [
        {**f, "L4_DST_PORT": 61_000 + i, "L7_PROTO": 999.5, "IPV4_SRC_ADDR": "10.9.9.9"} for i, f in enumerate(flows)
    ]
    a, b = (
        nf.parse({"flows": strange}),
        nf.parse({"flows": [{**f, "L4_DST_PORT": 33_333, "L7_PROTO": 12.25} for f in flows]}),
    )
    assert not isinstance(a, Reason) and not isinstance(b, Reason)
    assert np.array_equal(a.flows, b.flows)  # both "other" (code 0)
    port = len(nf.transform.numeric) + nf.transform.categorical.index("L4_DST_PORT")
    assert (a.flows[:, port] == 0).all()


def test_each_flow_is_scored_with_the_window_ending_at_it(nf):
    inp = nf.parse({"flows": flows_body(7)})
    (out,) = nf.predict_batch([inp])
    assert out.probabilities.shape == (7, len(nf.classes))
    np.testing.assert_allclose(out.probabilities.sum(1), 1.0, rtol=1e-5)
    x = torch.from_numpy(inp.flows)
    for t in (0, 2, 6):  # by hand: the flows up to t, left-padded to W
        rows = [max(r, 0) for r in range(t - W + 1, t + 1)]
        pad = torch.tensor([[r < 0 for r in range(t - W + 1, t + 1)]])
        with torch.no_grad():
            ref = torch.softmax(nf.model(x[rows][None], pad), -1)[0].numpy()
        np.testing.assert_allclose(out.probabilities[t], ref, rtol=1e-5, atol=1e-6)


def test_batch_mates_change_nothing_and_a_bad_input_fails_alone(nf):
    a, b = nf.parse({"flows": flows_body(5)}), nf.parse({"flows": flows_body(3, offset=20)})
    (alone,) = nf.predict_batch([b])
    together = nf.predict_batch([a, b])
    np.testing.assert_allclose(together[1].probabilities, alone.probabilities, rtol=1e-5, atol=1e-6)
    broken = type(a)(a.flows[:, :-1])  # wrong width: the model refuses it
    out = nf.predict_batch([a, broken, b])
    assert isinstance(out[1], Refused) and not isinstance(out[0], Exception) and not isinstance(out[2], Exception)


def test_files_are_scored_in_chunks_as_in_one_pass(nf, tmp_path):
    frame = nf_flows().head(300)
    whole = nf.score_frame(frame)
    data = frame.write_csv().encode()
    pieces = [data[i : i + 1000] for i in range(0, len(data), 1000)]  # lines cut anywhere
    got = list(score_file(nf, csv_chunks(nf, pieces, 70)))
    assert [first for first, _ in got] == [0, 70, 140, 210, 280]
    np.testing.assert_allclose(np.concatenate([p for _, p in got]), whole, rtol=1e-5, atol=1e-6)
    frame.write_parquet(tmp_path / "f.parquet", row_group_size=100)
    got = np.concatenate([p for _, p in score_file(nf, parquet_chunks(nf, tmp_path / "f.parquet", 77))])
    np.testing.assert_allclose(got, whole, rtol=1e-5, atol=1e-6)
    sink = ParquetSink(nf)
    body = b"".join(sink.write(first, p) for first, p in score_file(nf, csv_chunks(nf, [data], 100))) + sink.close()
    back = pl.read_parquet(body)
    assert back.height == frame.height and back["row"].to_list() == list(range(frame.height))
    np.testing.assert_allclose(back["p_Benign"].to_numpy(), whole[:, 0], rtol=1e-6)


def test_a_broken_csv_says_which_rows(nf):
    csv = CsvChunks(nf, 10)
    with pytest.raises(Refused, match="lacks the model's feature columns"):
        csv.feed(b"a,b,c\n1,2,3\n")
    text = nf_flows().head(30).write_csv()
    lines = text.splitlines()
    lines[25] = lines[25].replace(",", ",x", 1)  # a value that is not a number, in the 3rd chunk
    with pytest.raises(Refused, match=r"rows 20\.\.29"):
        list(score_file(nf, csv_chunks(nf, ["\n".join(lines).encode()], 10)))
    with pytest.raises(Refused, match="empty"):
        list(csv_chunks(nf, [b""], 10))
    with pytest.raises(Refused, match="longer than"):
        list(csv_chunks(nf, [text.split("\n", 1)[0].encode() + b"\n" + b"1" * 70_000], 10))


def test_another_netflow_v2_capture_scores_without_changes(nf, tmp_path):
    # Another NF-v2 dataset: the 43 standard features in another column order, no Dataset column, its own
    # hosts, ports and protocols never seen in training, and an extra column of the exporter's.
    other = (
        nf_flows()
        .slice(600, 200)
        .drop("Dataset")
        .with_columns(
            pl.lit("172.16.0.9").alias("IPV4_SRC_ADDR"),
            (pl.col("L4_DST_PORT") + 30_000).alias("L4_DST_PORT"),
            pl.lit(1.5).alias("EXPORTER_ID"),
        )
    )
    other = other.select(sorted(other.columns))
    path = tmp_path / "NF-ToN-IoT-v2-sample.csv"
    other.write_csv(path)
    probs = np.concatenate([p for _, p in score_file(nf, csv_chunks(nf, [path.read_bytes()], 64))])
    assert probs.shape == (200, len(nf.classes)) and np.isfinite(probs).all()
    np.testing.assert_allclose(probs, nf.score_frame(other), rtol=1e-5, atol=1e-6)


def test_pyfunc_takes_a_frame_of_flows(kdd):
    out = kdd.pyfunc_predict(kdd_flows().head(6).to_pandas())
    assert list(out.columns) == ["label", "probability", "benign", "attack"] and len(out) == 6
    assert set(out["label"]) <= {"benign", "attack"}
