import os

import pytest
import torch

# Tests never touch the developer's ./mlflow.db; each test that needs a store makes its own.
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

# Without a GPU, Triton kernels run in the interpreter (the `interpret` tier). Triton decides whether
# its language helpers are interpreted when it is first imported — and Lightning imports it — so the
# variable is set here, before any test module is collected. `auto` dispatch never picks the
# interpreter (core.ops.dispatch), so only tests that ask for `impl="triton"` run kernels this way.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none on this machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    """A fresh SQLite MLflow store (and artifact root) in a temporary directory."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri
