"""Flow records (`data.flows`): the formats' feature schemas, polars readers that say what is wrong,
FlowTransformer's pre-processing fit on train rows only (log scaling, top-k with "other" for unseen
values), and windows that never hold flows of two splits."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from data.flows.formats import NETFLOW_V2, NSL_KDD, NSL_KDD_CATEGORIES
from data.flows.readers import TARGET, check_frame, read_flows, with_target
from data.flows.sources import CATALOGUE, DATASET_DIR, load_flows, ratio_split
from data.flows.transform import CLIP, MAX_KNOTS, FlowTransform, category_keys
from data.flows.windows import ClassifyDataConfig, FlowWindows, class_weights, window_rows
from data.series.readers import DataFormatError
from tests.inference.classify_bundles import fit_transform, kdd_flows, nf_flows


def test_feature_schemas_follow_the_standards():
    assert len(NETFLOW_V2.features) == 43 and len(NSL_KDD.features) == 41
    assert len(NETFLOW_V2.used) == 37 and len(NETFLOW_V2.categorical) == 9  # FlowTransformer's unified_flow_format
    assert {"IPV4_SRC_ADDR", "IPV4_DST_ADDR"} <= set(NETFLOW_V2.unused)  # addresses are never features
    assert not set(NETFLOW_V2.label_columns) & set(NETFLOW_V2.used) and "difficulty" not in NSL_KDD.used
    field_names = (DATASET_DIR / "nsl_kdd_field_names.csv").read_text().split()
    assert [line.split(",")[0] for line in field_names] == list(NSL_KDD.features)
    symbolic = [line.split(",")[0] for line in field_names if line.endswith("symbolic")]
    assert symbolic == list(NSL_KDD.string_features)
    shipped = (DATASET_DIR / "nsl_kdd_attack_types.csv").read_bytes().decode().split("\r")  # CR-only line ends
    for attack, category in (line.split(",") for line in shipped if line and not line.startswith("unknown")):
        assert NSL_KDD_CATEGORIES[attack] == category


def test_readers_check_columns_types_and_missing_values(tmp_path):
    frame = nf_flows().head(20)
    path = tmp_path / "flows.csv"
    frame.drop("L4_DST_PORT", "IN_BYTES").write_csv(path)
    with pytest.raises(DataFormatError, match=r"missing netflow-v2 feature columns \['L4_DST_PORT', 'IN_BYTES'\]"):
        read_flows(path)
    frame.with_columns(pl.lit("many").alias("IN_PKTS")).write_csv(path)
    with pytest.raises(DataFormatError, match=r"\['IN_PKTS'\] must hold numbers"):
        read_flows(path)
    frame.with_columns(
        pl.when(pl.col("OUT_BYTES") > 0).then(None).otherwise(pl.col("OUT_BYTES")).alias("OUT_BYTES")
    ).write_csv(path)
    with pytest.raises(DataFormatError, match=r"missing values in \['OUT_BYTES'\]"):
        read_flows(path)
    with pytest.raises(DataFormatError, match="unsupported flow file"):
        read_flows(tmp_path / "x.json") if (tmp_path / "x.json").write_text("{}") else None
    frame.select(reversed(frame.columns)).write_parquet(tmp_path / "flows.parquet")  # any column order
    assert read_flows(tmp_path / "flows.parquet").columns == list(NETFLOW_V2.known_columns)


def test_label_modes():
    nf = with_target(nf_flows(), NETFLOW_V2, "binary")
    assert set(nf[TARGET]) == {"benign", "attack"}
    assert (nf.filter(pl.col(TARGET) == "benign")["Attack"] == "Benign").all()
    kdd = with_target(kdd_flows(), NSL_KDD, "category")
    assert set(kdd[TARGET]) <= {"normal", "dos", "probe", "r2l", "u2r"}
    with pytest.raises(ValueError, match="label modes"):
        with_target(nf_flows(), NETFLOW_V2, "category")


def test_category_keys_make_6_and_6_0_one_value():
    assert category_keys(pl.Series([6, 17])).to_list() == ["6", "17"]
    assert category_keys(pl.Series([6.0, 7.178, -3.0])).to_list() == ["6", "7.178", "-3"]
    assert category_keys(pl.Series(["tcp"])).to_list() == ["tcp"]


def test_numbers_are_log_scaled_with_train_min_and_range():
    frame = pl.DataFrame({c: [0.0] * 4 for c in NETFLOW_V2.used}).with_columns(
        pl.Series("IN_BYTES", [10.0, 20.0, 110.0, 60.0]), pl.Series("L4_DST_PORT", [80, 80, 443, 22])
    )
    t = FlowTransform.fit(frame, NETFLOW_V2, top_k=2, classes=["a", "b"], benign="a", window=2)
    j = t.numeric.index("IN_BYTES")
    assert (t.numeric_min[j], t.numeric_range[j]) == (10.0, 100.0)
    test = frame.with_columns(pl.Series("IN_BYTES", [10.0, 60.0, 5.0, 1e300]))  # a min, a middle, below, absurd
    x = t.encode(test)[:, j]
    np.testing.assert_allclose(x[:2], [0.0, np.log1p(50) / np.log1p(100)], rtol=1e-6)
    assert x[2] == 0.0 and x[3] == CLIP  # below the train minimum: 0 (no NaN); far above: clipped
    assert (t.encode(test)[:, t.numeric.index("IN_PKTS")] == 0).all()  # constant in training


def test_quantile_scaling_is_the_train_cdf_and_saturates_outside_the_train_range():
    frame = pl.DataFrame({c: [0.0] * 4 for c in NETFLOW_V2.used}).with_columns(
        pl.Series("IN_BYTES", [10.0, 20.0, 110.0, 20.0]), pl.Series("L4_DST_PORT", [80, 80, 443, 22])
    )
    fit = dict(top_k=2, classes=["a", "b"], benign="a", window=2)
    t = FlowTransform.fit(frame, NETFLOW_V2, scaling="quantile", **fit)  # type: ignore[arg-type]
    j = t.numeric.index("IN_BYTES")
    assert t.knots[j] == (10.0, 20.0, 110.0) and t.cdf[j] == (0.25, 0.75, 1.0)
    test = frame.with_columns(pl.Series("IN_BYTES", [5.0, 20.0, 50.0, 1e300]))  # below, a knot, between, absurd
    np.testing.assert_allclose(t.encode(test)[:, j], [0.0, 0.75, 0.75, 1.0])  # a step; beyond the range: 1
    nan = t.encode(test.with_columns(pl.Series("IN_BYTES", [float("nan")] * 4)))[:, j]
    assert (nan == 0).all()
    assert (t.encode(test)[:, t.numeric.index("IN_PKTS")] == 1).all()  # constant in training: F = 1 at it
    again = FlowTransform.from_dict(t.to_dict())
    assert again == t and np.array_equal(again.encode(test), t.encode(test))
    old = {k: v for k, v in t.to_dict().items() if k not in ("scaling", "knots", "cdf")}  # a bundle from before
    assert FlowTransform.from_dict(old).scaling == "log"
    for bad in ({"cdf": [[0.5, 0.2, 1.0]] * len(t.numeric)}, {"knots": []}, {"scaling": "rank"}):
        with pytest.raises(ValueError, match="quantile|scaling"):
            FlowTransform.from_dict({**t.to_dict(), **bad})
    big = pl.concat([frame] * 300, how="vertical").with_columns(pl.Series("IN_BYTES", np.arange(1200.0)))
    q = FlowTransform.fit(big, NETFLOW_V2, scaling="quantile", **fit)  # type: ignore[arg-type]
    assert len(q.knots[j]) == MAX_KNOTS  # 1200 distinct values: the train quantiles as knots and q.cdf[j][-1] == 1.0
    np.testing.assert_allclose(q.encode(big)[:, j], np.arange(1, 1201) / 1200, atol=1 / MAX_KNOTS * 2.5)


def test_top_k_codes_with_other_for_unseen_values():
    frame = nf_flows()
    t = fit_transform(frame, NETFLOW_V2, "attack")
    port = t.categorical.index("L4_DST_PORT")
    counts = category_keys(frame["L4_DST_PORT"]).value_counts(sort=True)
    assert t.levels[port][0] == counts["L4_DST_PORT"][0]  # the most frequent value has code 1
    codes = t.encode(frame.head(3).with_columns(pl.Series("L4_DST_PORT", [int(t.levels[port][0]), 65000, 65001])))
    col = codes[:, len(t.numeric) + port]
    assert col.tolist() == [1.0, 0.0, 0.0]  # unseen ports are "other" (0), not the most frequent value (1)
    assert len(t.levels[port]) <= t.top_k and t.n_levels == t.top_k + 1
    again = FlowTransform.from_dict(t.to_dict())
    assert again == t and np.array_equal(again.encode(frame), t.encode(frame))


def test_the_transform_is_fit_on_train_rows_only():
    dm = ClassifyDataConfig(dataset="nsl-kdd", max_rows=300, window=4).datamodule()
    dm.setup()
    a, b = dm.split.train
    train = dm.frame.slice(a, b - a)
    j = dm.transform.numeric.index("src_bytes")
    assert dm.transform.numeric_min[j] == train["src_bytes"].min()
    assert dm.transform.numeric_min[j] + dm.transform.numeric_range[j] == train["src_bytes"].max()
    assert dm.model_dims() == {"window": 4, "n_numeric": 33, "n_categorical": 7, "n_levels": 33, "n_classes": 2}


def test_splits_are_by_file_and_position():
    frame, fmt, split = load_flows("nsl-kdd")
    assert fmt is NSL_KDD and split.test == (25192, 25192 + 22544)  # KDDTest+ whole, after KDDTrain+_20Percent
    assert split.train == (0, int(25192 * 0.9)) and split.val == (int(25192 * 0.9), 25192)
    assert ratio_split(1000) == type(split)(train=(0, 700), val=(700, 800), test=(800, 1000))
    assert set(CATALOGUE) == {"nsl-kdd", "nf-bot-iot-v2"}


def test_windows_end_at_their_target_and_never_cross_a_split():
    rows, pad = window_rows(np.array([10, 11, 15]), start=10, window=4)
    assert rows.tolist() == [[10, 10, 10, 10], [11, 11, 10, 11], [12, 13, 14, 15]]
    assert pad.tolist() == [[True, True, True, False], [True, True, False, False], [False] * 4]
    # Mark every flow with its row number and check what each part's windows hold.
    flows = torch.arange(30, dtype=torch.float32)[:, None]
    labels = torch.zeros(30, dtype=torch.long)
    for start, end in [(0, 20), (20, 25), (25, 30)]:
        batch = FlowWindows(flows, labels, start, end, window=8)[list(range(end - start))]
        seen = batch.flows[..., 0][~batch.pad_mask]
        assert seen.min() >= start and seen.max() < end  # nothing from another part
        assert batch.flows[:, -1, 0].tolist() == list(range(start, end))  # every flow is a target, in order
        assert not batch.pad_mask[:, -1].any()


def test_training_windows_are_shortened_at_random_and_weighted_by_class():
    flows, labels = torch.zeros(100, 2), torch.tensor([0] * 90 + [1] * 10)
    w = class_weights(labels.numpy(), 3, power=1.0)
    assert w[2] == 0 and w[1] / w[0] == pytest.approx(9.0) and w[labels.numpy()].mean() == pytest.approx(1.0)
    assert class_weights(labels.numpy(), 2, power=0.0).tolist() == [1.0, 1.0]
    torch.manual_seed(0)
    batch = FlowWindows(flows, labels, 0, 100, window=8, weights=torch.from_numpy(w), truncate_prob=0.5)[
        list(range(8, 100))
    ]
    short = batch.pad_mask.any(dim=1)
    assert 0.3 < short.float().mean() < 0.7 and not batch.pad_mask[:, -1].any()
    torch.testing.assert_close(batch.weight, torch.tensor(w, dtype=torch.float32)[batch.label])


def test_a_netflow_file_is_a_dataset_with_batches_and_a_request_shaped_example(tmp_path):
    path = tmp_path / "capture.parquet"
    nf_flows().write_parquet(path)  # any NetFlow v2 file: split 70/10/20 by position
    dm = ClassifyDataConfig(dataset=str(path), labels="attack", batch_size=16).datamodule()
    dm.setup()
    assert dm.split.test == (960, 1200)
    batch = next(iter(dm.train_dataloader()))
    assert batch.flows.shape == (16, 8, 37) and batch.pad_mask.dtype == torch.bool and batch.label.dtype == torch.long
    assert batch.size == 16 and dm.transform.classes[0] == "Benign"  # class 0 is benign
    assert sum(b.size for b in dm.test_dataloader()) == 240  # every test flow, none dropped
    example = dm.example_input()["flows"]
    assert len(example) == 8 and set(example[0]) == set(dm.transform.features)
    assert dm.transform_state()["labels"] == "attack" and dm.evaluation_example().frame.height == 240
    assert ClassifyDataConfig(dataset=str(path)).label_mode == "binary"  # a file's default
    frame = check_frame(nf_flows().head(5), NETFLOW_V2)
    assert frame.columns == list(NETFLOW_V2.known_columns)


def test_a_bundles_data_is_encoded_with_the_bundles_own_transform(tmp_path):
    path = tmp_path / "capture.parquet"
    nf_flows().write_parquet(path)
    t = fit_transform(nf_flows().head(100), NETFLOW_V2, "attack", window=4)  # fitted on other rows
    data = ClassifyDataConfig(dataset=str(path)).for_bundle({**t.to_dict(), "labels": "attack"})
    assert (data.window, data.labels, data.top_k) == (4, "attack", t.top_k) and "fitted" not in data.to_dict()
    dm = data.datamodule()
    dm.setup()
    assert dm.transform == t  # not refit on the file's train rows
