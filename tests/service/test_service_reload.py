"""Hot reload on a real MLflow registry (SQLite in tmp_path) with tiny bundles: the alias moves and the
service swaps; a broken version is refused while the old one serves; an unreachable tracking server
changes nothing for clients; `POST /admin/reload` is authenticated; a swap under load fails nothing.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from service import Settings, create_app
from tests.service.service_fixtures import make_bundle

NAME = "tiny"
KEY = "k" * 24
AUTH = {"Authorization": f"Bearer {KEY}"}


class Registry:
    """A SQLite-backed registry holding versions of the tiny bundle; artifacts under tmp_path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.client = MlflowClient(self.uri)
        self.exp = self.client.create_experiment("reload", artifact_location=(root / "artifacts").as_uri())
        self.client.create_registered_model(NAME)

    def register(self, bundle: Path, alias: str | None = "champion") -> str:
        run = self.client.create_run(self.exp)
        self.client.log_artifacts(run.info.run_id, str(bundle), "model")
        self.client.set_terminated(run.info.run_id)
        mv = self.client.create_model_version(NAME, f"{run.info.artifact_uri}/model", run.info.run_id)
        if alias:
            self.client.set_registered_model_alias(NAME, alias, mv.version)
        return str(mv.version)

    def move(self, version: str) -> None:
        self.client.set_registered_model_alias(NAME, "champion", version)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reload-bundles")
    good = {f"v{s}": make_bundle(root / f"v{s}", seed=s) for s in (1, 2)}
    broken = root / "broken"
    shutil.copytree(good["v1"], broken)
    weights = broken / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated: no longer loads
    return {**good, "broken": broken}


@pytest.fixture
def registry(tmp_path: Path, bundles: dict[str, Path]) -> Registry:
    reg = Registry(tmp_path)
    assert reg.register(bundles["v1"]) == "1"
    return reg


def app_for(reg: Registry, **overrides: object) -> TestClient:
    settings = Settings(models=f"{NAME}@champion", tracking_uri=reg.uri, **{"reload_interval_s": 0, **overrides})
    return TestClient(create_app(settings), client=("127.0.0.1", 50000))


def forecast(c: TestClient, headers: dict[str, str] | None = None) -> tuple[int, str | None]:
    ex = c.get(f"/v1/models/{NAME}", headers=headers).json()["example_input"]
    r = c.post(f"/v1/models/{NAME}/forecast", json=ex, headers=headers)
    return r.status_code, r.json()["model"]["version"] if r.status_code == 200 else r.text


def metric(c: TestClient, line_start: str) -> float:
    for line in c.get("/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_poll_loop_serves_the_version_the_alias_moves_to(registry: Registry, bundles: dict[str, Path]) -> None:
    with app_for(registry, reload_interval_s=0.1) as c:
        assert forecast(c) == (200, "1")
        registry.register(bundles["v2"])
        deadline = time.monotonic() + 30
        while forecast(c)[1] != "2":
            assert time.monotonic() < deadline, c.get("/readyz").json()
            time.sleep(0.05)
        assert c.get(f"/v1/models/{NAME}").json()["version"] == "2"
        assert metric(c, f'seer_model_reloads_total{{model="{NAME}"}}') == 1
        assert f'seer_model_info{{alias="champion",model="{NAME}",version="2"}} 1.0' in c.get("/metrics").text


def test_a_broken_version_is_refused_once_and_the_old_one_keeps_serving(
    registry: Registry, bundles: dict[str, Path]
) -> None:
    with app_for(registry) as c:
        assert registry.register(bundles["broken"]) == "2"
        report = c.post("/admin/reload").json()
        assert report["models"][NAME]["action"] == "refused" and report["models"][NAME]["version"] == "1"
        assert forecast(c) == (200, "1")
        ready = c.get("/readyz")
        assert ready.status_code == 200
        entry = ready.json()["reload"][NAME]
        assert entry["version"] == "1" and entry["status"] == "ready" and entry["refused"]["version"] == "2"
        assert "weights" in entry["refused"]["error"]
        failures = f'seer_model_reload_failures_total{{model="{NAME}"}}'
        assert metric(c, failures) == 1
        # Not retried while the alias stays on the refused version.
        assert c.post("/admin/reload").json()["models"][NAME]["action"] == "refused earlier"
        assert metric(c, failures) == 1
        # The alias moves on to a good version: the refusal is forgotten and the swap happens.
        registry.register(bundles["v2"])
        assert c.post("/admin/reload").json()["models"][NAME] == {"action": "swapped", "version": "3", "previous": "1"}
        assert "refused" not in c.get("/readyz").json()["reload"][NAME]
        assert forecast(c) == (200, "3")


def test_an_unreachable_tracking_server_changes_nothing_for_clients(registry: Registry) -> None:
    with app_for(registry, reload_backoff_max_s=60) as c:
        store, reloader = c.app.state.store, c.app.state.reloader  # type: ignore[attr-defined]
        store.tracking_uri = "http://127.0.0.1:9"  # nothing listens on the discard port
        start = time.monotonic()
        report = c.post("/admin/reload").json()
        assert time.monotonic() - start < 10  # MLflow's own retries (minutes) are off for these calls
        assert report["models"][NAME]["action"] == "unreachable" and report["tracking"].startswith("unreachable")
        c.post("/admin/reload")
        assert reloader.failures == 2 and reloader.next_delay() == 0  # interval 0: polling is off anyway
        assert forecast(c) == (200, "1")
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["reload"][NAME]["tracking"].startswith("unreachable")
        store.tracking_uri = registry.uri  # back
        assert c.post("/admin/reload").json() == {
            "models": {NAME: {"action": "unchanged", "version": "1"}},
            "tracking": "ok",
        }
        assert reloader.failures == 0


def test_backoff_doubles_and_is_capped(registry: Registry) -> None:
    reloader = create_app(
        Settings(models=f"{NAME}@champion", tracking_uri=registry.uri, reload_interval_s=2, reload_backoff_max_s=10)
    ).state.reloader
    delays = []
    for failures in range(5):
        reloader.failures = failures
        delays.append(reloader.next_delay())
    assert delays == [2, 4, 8, 10, 10]


def test_admin_reload_needs_the_token_when_one_is_set(registry: Registry) -> None:
    with app_for(registry, api_key=KEY) as c:
        assert c.post("/admin/reload").status_code == 401
        assert c.post("/admin/reload", headers={"Authorization": "Bearer wrong-token-wrong-token"}).status_code == 401
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 200 and r.json()["models"][NAME]["action"] == "unchanged"


def test_without_a_token_admin_reload_is_for_loopback_clients_only(registry: Registry) -> None:
    with app_for(registry) as c:
        assert c.post("/admin/reload").status_code == 200  # 127.0.0.1
    settings = Settings(models=f"{NAME}@champion", tracking_uri=registry.uri, reload_interval_s=0)
    with TestClient(create_app(settings), client=("10.1.2.3", 40000)) as remote:
        r = remote.post("/admin/reload")
        assert r.status_code == 403 and "SEER_API_KEY" in r.json()["detail"]


def test_local_refs_are_not_watched(tmp_path: Path, bundles: dict[str, Path]) -> None:
    with TestClient(create_app(Settings(models=f"m={bundles['v1']}")), client=("127.0.0.1", 1)) as c:
        assert "reload" not in c.get("/readyz").json()
        assert c.post("/admin/reload").json() == {"models": {}, "tracking": "ok"}


def test_swaps_under_a_concurrent_request_loop_fail_nothing(registry: Registry, bundles: dict[str, Path]) -> None:
    registry.register(bundles["v2"], alias=None)  # v2, not yet @champion
    with app_for(registry) as c:
        ex = c.get(f"/v1/models/{NAME}").json()["example_input"]
        stop = threading.Event()
        seen: list[list[tuple[int, str]]] = [[] for _ in range(4)]

        def loop(out: list[tuple[int, str]]) -> None:
            while not stop.is_set():
                r = c.post(f"/v1/models/{NAME}/forecast", json=ex)
                out.append((r.status_code, r.json()["model"]["version"] if r.status_code == 200 else r.text))

        threads = [threading.Thread(target=loop, args=(out,)) for out in seen]
        for t in threads:
            t.start()
        try:
            for version in ("2", "1", "2", "1", "2"):
                time.sleep(0.1)
                registry.move(version)
                assert c.post("/admin/reload").json()["models"][NAME]["action"] == "swapped"
            time.sleep(0.1)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        answers = [a for out in seen for a in out]
        assert answers and all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200][:3]
        assert {v for _, v in answers} == {"1", "2"}
        assert metric(c, f'seer_model_reloads_total{{model="{NAME}"}}') == 5


def test_one_models_registry_problem_stops_no_other_reload(registry: Registry, bundles: dict[str, Path]) -> None:
    """Issue 14: a deleted alias or a version without artifacts was "tracking server unreachable" for every
    model, and the models after it in the loop were skipped. Now it is that model's problem alone."""
    other = "other"
    client = registry.client
    client.create_registered_model(other)

    def register_other(bundle: Path) -> tuple[str, Path]:
        run = client.create_run(registry.exp)
        client.log_artifacts(run.info.run_id, str(bundle), "model")
        mv = client.create_model_version(other, f"{run.info.artifact_uri}/model", run.info.run_id)
        client.set_registered_model_alias(other, "champion", mv.version)
        return str(mv.version), Path(run.info.artifact_uri.removeprefix("file://")) / "model"

    register_other(bundles["v1"])
    settings = Settings(models=f"{other}@champion,{NAME}@champion", tracking_uri=registry.uri, reload_interval_s=0)
    with TestClient(create_app(settings), client=("127.0.0.1", 50000)) as c:
        # The other model's new version has lost its artifacts; this one's alias moves to a good version.
        version, artifacts = register_other(bundles["v2"])
        shutil.rmtree(artifacts)
        registry.register(bundles["v2"])
        report = c.post("/admin/reload").json()
        assert report["tracking"] == "ok", report
        assert report["models"][NAME] == {"action": "swapped", "version": "2", "previous": "1"}
        assert (
            report["models"][other]["action"] == "failed" and f"version {version}" in report["models"][other]["error"]
        )
        assert forecast(c) == (200, "2")
        entry = c.get("/readyz").json()["reload"][other]
        assert entry["version"] == "1" and entry["tracking"] == "ok" and "cannot download" in entry["problem"]
        # Its alias deleted: the registry's answer, for it alone; this model's next move still swaps.
        client.delete_registered_model_alias(other, "champion")
        registry.move("1")
        report = c.post("/admin/reload").json()
        assert report["models"][other]["action"] == "failed" and "champion" in report["models"][other]["error"]
        assert report["models"][NAME]["action"] == "swapped" and report["tracking"] == "ok"
        assert c.app.state.reloader.failures == 0  # type: ignore[attr-defined]  # no backoff: the server answered
        # The alias comes back: the problem is gone.
        client.set_registered_model_alias(other, "champion", "1")
        assert c.post("/admin/reload").json()["models"][other] == {"action": "unchanged", "version": "1"}
        assert "problem" not in c.get("/readyz").json()["reload"][other]
