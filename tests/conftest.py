import os

import pytest

# Tests never touch the developer's ./mlflow.db; each test that needs a store makes its own.
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


def pytest_collection_modifyitems(config, items):
    import torch

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
