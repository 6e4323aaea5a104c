"""Schemathesis against the app's own OpenAPI, over ASGI in process (no network): whatever a client
sends, no 5xx, and every response (status code, content type, body) is one the schema declares.

Bounded: at most `MAX_EXAMPLES` generated requests per operation and phase, positive and negative. The
path's `name` is fuzzed like everything else (mostly 404s), so each case that targets a model is sent a
second time with a served name to fuzz the body against a real model.

The fuzzer must also reach the 200 path of every POST endpoint, with and without the key (issue 14: the
schema's only example fitted no model): the OpenAPI's examples are the served models' own, and
`test_every_post_endpoint_reaches_200` sends what schemathesis makes of them. The open service is called
as from the host itself (loopback), where `POST /admin/reload` answers without a key.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from service import Settings, create_app
from service.settings import parse_model_ref
from service.store import ModelStore
from tests.inference.classify_bundles import make_bundle as make_classify_bundle
from tests.inference.denoise_bundles import make_denoise_bundle
from tests.inference.rollout_bundles import make_rollout_bundle
from tests.service.service_fixtures import make_bundle

MAX_EXAMPLES = 30
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
KEY = "fuzz-key-fuzz-key-fuzz-key"


def _store() -> ModelStore:
    """Tiny models of every served task (two forecasters), loaded (weights in memory) from bundles in a
    folder removed right after."""
    store = ModelStore()
    with tempfile.TemporaryDirectory(prefix="seer-fuzz-") as tmp:
        root = Path(tmp)
        store.load(parse_model_ref(f"m={make_bundle(root / 'm')}"))
        store.load(parse_model_ref(f"plain={make_bundle(root / 'plain', calendar=False, seed=1)}"))
        store.load(parse_model_ref(f"eeg={make_denoise_bundle(root / 'eeg')}"))
        store.load(parse_model_ref(f"nids={make_classify_bundle(root / 'nids')}"))
        store.load(parse_model_ref(f"flow={make_rollout_bundle(root / 'flow')}"))
    return store


def on_loopback(app: Any) -> Any:
    """The app as called from the host itself (client 127.0.0.1)."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await app({**scope, "client": ("127.0.0.1", 50000)} if scope["type"] == "http" else scope, receive, send)

    return wrapped


# Module level: `parametrize` needs the schema at collection time.
STORE = _store()
# max_wait 0: requests come one at a time here, waiting for company would only slow the run down.
open_schema = schemathesis.openapi.from_asgi(
    "/openapi.json", on_loopback(create_app(Settings(max_wait_ms=0), store=STORE))
)
auth_schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(Settings(max_wait_ms=0, api_key=KEY), store=STORE)
)
AUTH = {"Authorization": f"Bearer {KEY}"}

fuzz_settings = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,  # nothing written to .hypothesis/
    suppress_health_check=list(HealthCheck),
)


def _targets(path: str) -> list[str]:
    """Served names to send a case of `path` to: the models of the endpoint's task (a model endpoint ends
    in its task), or every name for a path that takes any model; one forecaster always, for the 404
    naming the right endpoint when the task differs."""
    task = path.rsplit("/", 1)[-1]
    names = [m.name for m in STORE.models() if m.predictor.task == task] or [m.name for m in STORE.models()]
    return list(dict.fromkeys([*names, "m"]))


def _check(case: Any, **kwargs: Any) -> None:
    case.call_and_validate(checks=CHECKS, **kwargs)
    if "name" in (case.path_parameters or {}):
        for name in _targets(case.path):
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
    _check(case, headers=AUTH)


@pytest.mark.parametrize(("schema", "headers"), [(open_schema, None), (auth_schema, AUTH)], ids=["open", "key"])
def test_every_post_endpoint_reaches_200(schema: Any, headers: dict[str, str] | None) -> None:
    """Schemathesis' cases from each POST operation's examples (its own positive cases where it has none):
    every POST endpoint answers some of them with a 200, none with a 5xx or off-schema. Every endpoint of
    a task this store serves a model of, that is: another task's endpoint has no model to answer with."""
    statuses: dict[str, Counter[int]] = {}
    for result in schema.include(method="POST").get_all_operations():
        operation = result.ok()
        seen = statuses.setdefault(operation.path, Counter())
        strategies = operation.get_strategies_from_examples() or [operation.as_strategy()]
        for strategy in strategies:
            send(strategy, seen, headers)
    served = {m.predictor.task for m in STORE.models()}
    expected = {t.path for t in create_app(Settings(), store=STORE).state.tasks.values() if t.name in served}
    assert expected and expected | {"/admin/reload"} <= set(statuses), statuses
    for path in expected | {"/admin/reload"}:
        assert statuses[path][200] > 0, (path, statuses[path])


def send(strategy: Any, seen: Counter[int], headers: dict[str, str] | None) -> None:
    """Call and check up to 10 cases of `strategy`, counting their statuses in `seen`."""

    @given(case=strategy)
    @settings(max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def one(case: Any) -> None:
        seen[case.call_and_validate(checks=CHECKS, headers=headers).status_code] += 1

    one()


def test_every_error_status_is_declared() -> None:
    """The forecast operation declares each status the service can answer with."""
    spec = open_schema.raw_schema["paths"]["/v1/models/{name}/forecast"]["post"]
    assert {"200", "400", "401", "404", "413", "422", "503", "504"} <= set(spec["responses"])
    assert spec["requestBody"]["content"]["application/json"]["schema"]["required"] == ["history"]
