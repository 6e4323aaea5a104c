"""The service tests' shared fixtures: a store and an app over the bundles a test module serves.

A module defines `bundles` (served name -> bundle path); `store` and `client` are built from it.
A module that needs another store or client defines its own, which wins over these.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service import Settings, create_app
from service.settings import parse_model_ref
from service.store import ModelStore


@pytest.fixture(scope="module")
def store(bundles: dict[str, Path]) -> ModelStore:
    s = ModelStore()
    s.load_all([parse_model_ref(f"{name}={path}") for name, path in bundles.items()])
    return s


@pytest.fixture(scope="module")
def client(bundles: dict[str, Path]) -> Iterator[TestClient]:
    refs = ",".join(f"{name}={path}" for name, path in bundles.items())
    with TestClient(create_app(Settings(models=refs))) as c:  # runs lifespan: load + warm up every model
        yield c
