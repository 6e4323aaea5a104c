"""Schemathesis against the app's own OpenAPI, over ASGI in process (no network): whatever a client
sends, no 5xx, and every response (status code, content type, body) is one the schema declares.

Bounded: at most `MAX_EXAMPLES` generated requests per operation and phase, positive and negative. The
path's `name` is fuzzed like everything else (mostly 404s), so each case that targets a model is sent a
second time with a served name to fuzz the body against a real model.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from service import Settings, create_app
from service.settings import parse_model_ref
from service.store import ModelStore
from tests.service.service_fixtures import make_bundle

MAX_EXAMPLES = 30
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
KEY = "fuzz-key-fuzz-key-fuzz-key"


def _store() -> ModelStore:
    """Two tiny models, loaded (weights in memory) from bundles in a folder removed right after."""
    store = ModelStore()
    with tempfile.TemporaryDirectory(prefix="seer-fuzz-") as tmp:
        root = Path(tmp)
        store.load(parse_model_ref(f"m={make_bundle(root / 'm')}"))
        store.load(parse_model_ref(f"plain={make_bundle(root / 'plain', calendar=False, seed=1)}"))
    return store


# Module level: `parametrize` needs the schema at collection time.
STORE = _store()
# max_wait 0: requests come one at a time here, waiting for company would only slow the run down.
open_schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(Settings(max_wait_ms=0), store=STORE))
auth_schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(Settings(max_wait_ms=0, api_key=KEY), store=STORE)
)

fuzz_settings = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,  # nothing written to .hypothesis/
    suppress_health_check=list(HealthCheck),
)


def _check(case: Any, **kwargs: Any) -> None:
    case.call_and_validate(checks=CHECKS, **kwargs)
    if "name" in (case.path_parameters or {}):
        for name in ("m", "plain"):
            case.path_parameters = {**case.path_parameters, "name": name}
            case.call_and_validate(checks=CHECKS, **kwargs)


@open_schema.parametrize()
@fuzz_settings
def test_fuzz_open(case: Any) -> None:
    _check(case)


@auth_schema.parametrize()
@fuzz_settings
def test_fuzz_with_api_key(case: Any) -> None:
    _check(case)  # no token: 401 on /v1/*, declared
    _check(case, headers={"Authorization": f"Bearer {KEY}"})


def test_every_error_status_is_declared() -> None:
    """The forecast operation declares each status the service can answer with."""
    spec = open_schema.raw_schema["paths"]["/v1/models/{name}/forecast"]["post"]
    assert {"200", "400", "401", "404", "413", "422", "503", "504"} <= set(spec["responses"])
    assert spec["requestBody"]["content"]["application/json"]["schema"]["required"] == ["history"]
