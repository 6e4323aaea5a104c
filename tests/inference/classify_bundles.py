"""Tiny classify bundles the data, inference, service and training tests share: a FlowTransformer (tiny)
with a transform fit on the first flows of the shipped NF-BoT-IoT-v2 file (multi-class `Attack`) or of
KDDTest+ (binary), and those flows as recorded. Imported as `tests.inference.classify_bundles` (not a
test module)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import polars as pl
import torch

from data.flows.formats import NETFLOW_V2, NSL_KDD, FlowFormat
from data.flows.readers import TARGET, benign_class, check_frame, with_target
from data.flows.sources import DATASET_DIR
from data.flows.transform import FlowTransform
from inference.bundle import save_bundle
from signals.nids_flow import FlowTransformer, FlowTransformerConfig

W = 4  # window of the tiny bundles
TOP_K = 8
ROWS = 1200


@functools.cache
def nf_flows(rows: int = ROWS) -> pl.DataFrame:
    """The first `rows` flows of NF-BoT-IoT-v2 (reduced), as read for training (every class appears)."""
    path = DATASET_DIR / "NF-BoT-IoT-v2_reduced.csv.gz"
    frame = pl.read_csv(path, n_rows=rows, schema_overrides={"IPV4_SRC_ADDR": pl.Utf8, "IPV4_DST_ADDR": pl.Utf8})
    return check_frame(frame, NETFLOW_V2)


@functools.cache
def kdd_flows(rows: int = ROWS) -> pl.DataFrame:
    names = [*NSL_KDD.features, *NSL_KDD.label_columns]
    frame = pl.read_csv(DATASET_DIR / "KDDTest+.txt.gz", has_header=False, new_columns=names, n_rows=rows)
    return check_frame(frame, NSL_KDD)


def fit_transform(frame: pl.DataFrame, fmt: FlowFormat, labels: str, window: int = W) -> FlowTransform:
    named = with_target(frame, fmt, labels)
    benign = benign_class(fmt, labels)
    names = sorted(set(named[TARGET].to_list()) - {benign})
    classes = ["benign", "attack"] if labels == "binary" else [benign, *names]
    return FlowTransform.fit(named, fmt, top_k=TOP_K, classes=classes, benign=benign, window=window)


def make_bundle(
    directory: Path, *, kdd: bool = False, head: str = "last", seed: int = 0, max_flows: int = 64, name: str = ""
) -> Path:
    """A tiny NetFlow v2 (multi-class) or NSL-KDD (binary) FlowTransformer bundle with random weights."""
    fmt, frame, labels = (NSL_KDD, kdd_flows(), "binary") if kdd else (NETFLOW_V2, nf_flows(), "attack")
    t = fit_transform(frame, fmt, labels)
    cfg = FlowTransformerConfig.tiny(
        window=W,
        n_numeric=len(t.numeric),
        n_categorical=len(t.categorical),
        n_levels=t.n_levels,
        n_classes=len(t.classes),
        head=head,
    )
    torch.manual_seed(seed)
    meta: dict[str, Any] = {
        "name": name or ("nids-kdd-test" if kdd else "nids-nf-test"),
        "model": "flowtransformer",
        "task": "classify",
        "model_config": cfg.to_dict(),
        "transform": {**t.to_dict(), "labels": labels, "dataset": "test", "max_flows": max_flows},
        "example_input": {"flows": frame.head(W).select(t.features).to_dicts()},
        "metrics": {"test_accuracy": 0.5},
    }
    return save_bundle(directory, FlowTransformer(cfg), meta)


def flows_body(n: int = 6, *, kdd: bool = False, offset: int = 0) -> list[dict[str, Any]]:
    """n recorded flows as a request's `flows` (every column of the file, labels included)."""
    frame = kdd_flows() if kdd else nf_flows()
    return frame.slice(offset, n).to_dicts()
