"""The service split by task, with a task made up for the test (an "echo" task: a predictor
registered in `inference.tasks.PREDICTORS`, a `ServiceTask` in `service.tasks.TASKS`, both by
monkeypatching): each task's model info is the common fields plus its `describe()` block, a request to a
model of another task is a 404 naming the model's task and endpoint, and a bundle of a task the service
has no predictor or no endpoint for fails startup, saying so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import pytest
import torch
from fastapi import APIRouter, Depends, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel

import inference.tasks
import service.tasks
from inference.bundle import BUNDLE_FORMAT, read_meta
from inference.predictor import Reason, Refused
from service import Settings, create_app
from service.deps import V1, errors, json_body, model_of, refused, submit
from service.schemas import ModelInfo, ModelRefOut
from service.store import LoadedModel
from service.task import Job, ServiceTask, run_jobs
from tests.service.service_fixtures import assert_4xx, hourly_stamps, make_bundle, point_history

TASK = "echo"  # a task no family has: the test registers its predictor and endpoint


@dataclass
class EchoPredictor:
    """Returns each channel minus its mean; refuses data that is not `channels` × T."""

    task: ClassVar[str] = TASK
    meta: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> EchoPredictor:
        return cls(read_meta(path)[1])

    def parse(self, request: Any) -> np.ndarray | Reason:
        channels = self.meta["transform"]["channels"]
        data = np.asarray(request.get("data"), dtype=np.float64)
        if data.ndim != 2 or len(data) != len(channels):
            return Reason(f"data must be {len(channels)} channels × T samples", "data")
        return data

    def validate(self, request: Any) -> Reason | None:
        parsed = self.parse(request)
        return parsed if isinstance(parsed, Reason) else None

    def predict_batch(self, inputs: Sequence[np.ndarray]) -> list[Any]:
        return [
            x - x.mean(axis=1, keepdims=True) if np.isfinite(x).all() else Refused(Reason("NaN", "data"))
            for x in inputs
        ]

    def warm_up(self) -> None:
        self.predict_batch([np.zeros((len(self.meta["transform"]["channels"]), 4))])

    def describe(self) -> dict[str, Any]:
        return {"channels": self.meta["transform"]["channels"], "sfreq": self.meta["transform"]["sfreq"]}

    def pyfunc_predict(self, model_input: Any) -> Any:
        return self.predict_batch([np.asarray(model_input)])[0]


class EchoRequest(BaseModel):
    sfreq: float
    channels: list[str]
    data: list[list[float]]


class EchoResponse(BaseModel):
    data: list[list[float]]
    model: ModelRefOut


class EchoModelInfo(ModelInfo):
    task: Literal["echo"]
    channels: list[str]
    sfreq: float


router = APIRouter(**V1, tags=[TASK])


@router.post("/models/{name}/echo", response_model=EchoResponse, responses=errors(404, 422))
async def echo(
    model: Annotated[LoadedModel, Depends(model_of(TASK))],
    req: Annotated[EchoRequest, Depends(json_body(EchoRequest))],
    request: Request,
) -> EchoResponse:
    parsed = model.predictor.parse(dict(req))
    if isinstance(parsed, Reason):
        raise refused(parsed)
    result: EchoResponse = await submit(request, Job(model, parsed))
    return result


def answer(job: Job[np.ndarray], out: np.ndarray) -> EchoResponse:
    return EchoResponse(data=out.tolist(), model=ModelRefOut(name=job.model.name, version=job.model.version))


ECHO = ServiceTask(
    name=TASK,
    path="/v1/models/{name}/echo",
    router=router,
    request=EchoRequest,
    response=EchoResponse,
    info=EchoModelInfo,
    run_batch=lambda jobs: run_jobs(jobs, answer),
)


def echo_bundle(directory: Path, task: str = TASK) -> Path:
    """A bundle folder of the made-up task: config.json only (the echo predictor has no weights)."""
    directory.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": BUNDLE_FORMAT,
        "name": "echo-test",
        "model": "echo",
        "task": task,
        "model_config": {},
        "transform": {"channels": ["Fp1", "Fp2"], "sfreq": 256},
        "example_input": {"sfreq": 256, "channels": ["Fp1", "Fp2"], "data": [[1.0, 2.0], [3.0, 5.0]]},
    }
    (directory / "config.json").write_text(json.dumps(meta))
    return directory


@pytest.fixture
def with_predictor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(inference.tasks.PREDICTORS, TASK, EchoPredictor)


@pytest.fixture
def client(tmp_path: Path, with_predictor: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setitem(service.tasks.TASKS, TASK, ECHO)
    refs = f"m={make_bundle(tmp_path / 'm')},eeg={echo_bundle(tmp_path / 'eeg')}"
    with TestClient(create_app(Settings(models=refs, max_wait_ms=0))) as c:
        yield c


def test_each_task_serves_at_its_own_endpoint(client: TestClient) -> None:
    r = client.post("/v1/models/eeg/echo", json={"sfreq": 256, "channels": ["Fp1", "Fp2"], "data": [[1, 3], [2, 6]]})
    assert r.status_code == 200, r.text
    assert r.json() == {"data": [[-1.0, 1.0], [-2.0, 2.0]], "model": {"name": "eeg", "version": "local"}}
    r = client.post("/v1/models/m/forecast", json={"history": point_history(), "timestamps": hourly_stamps()})
    assert r.status_code == 200, r.text
    r = client.post("/v1/models/eeg/echo", json={"sfreq": 256, "channels": ["Fp1"], "data": [[1, 3]]})
    assert_4xx(r, 422, "data must be 2 channels × T samples", field="data")


def test_a_model_of_another_task_is_a_4xx_naming_its_endpoint(client: TestClient) -> None:
    r = client.post("/v1/models/eeg/forecast", json={"history": point_history()})
    detail = assert_4xx(r, 404, field="name")
    assert detail == "model eeg is a echo model: POST /v1/models/eeg/echo"
    r = client.post("/v1/models/m/echo", json={"sfreq": 256, "channels": [], "data": []})
    assert_4xx(r, 404, "model m is a forecast model: POST /v1/models/m/forecast", field="name")


def test_model_info_is_common_fields_and_the_task_block(client: TestClient) -> None:
    info = client.get("/v1/models/eeg").json()
    common = {"name": "eeg", "version": "local", "alias": None, "task": TASK, "model": "echo"}
    assert {k: info[k] for k in common} == common
    assert (info["channels"], info["sfreq"]) == (["Fp1", "Fp2"], 256.0)
    assert info["example_input"]["channels"] == ["Fp1", "Fp2"]
    forecaster = client.get("/v1/models/m").json()
    assert forecaster["task"] == "forecast" and forecaster["lookback"] == 16 and "channels" not in forecaster
    listed = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert listed["eeg"]["channels"] == ["Fp1", "Fp2"] and listed["eeg"]["example_input"] is None
    # OpenAPI: the info response is the served tasks' info schemas, told apart by `task`.
    spec = client.get("/openapi.json").json()
    schema = spec["paths"]["/v1/models/{name}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    refs = {s["$ref"].rsplit("/", 1)[-1] for s in schema["oneOf"]}
    served = {t.info.__name__ for t in service.tasks.TASKS.values()}
    assert "EchoModelInfo" in served and "ForecastModelInfo" in served
    assert refs == served and schema["discriminator"]["propertyName"] == "task"
    assert "/v1/models/{name}/echo" in spec["paths"] and "/v1/models/{name}/forecast" in spec["paths"]


def test_a_task_without_an_endpoint_fails_startup(tmp_path: Path, with_predictor: None) -> None:
    """The predictor loads it, but this service has no route for it: refused at startup, not per request."""
    app = create_app(Settings(models=f"eeg={echo_bundle(tmp_path / 'eeg')}"))
    refusal = "eeg=.*is a echo model; this service serves .*forecast.* models only"
    with pytest.raises(RuntimeError, match=refusal), TestClient(app):
        pass


def test_a_bundle_of_an_unknown_task_fails_startup(tmp_path: Path) -> None:
    app = create_app(Settings(models=f"x={echo_bundle(tmp_path / 'x', task='teleport')}"))
    with pytest.raises(RuntimeError, match="x=.*no predictor for task 'teleport'"), TestClient(app):
        pass
    assert app.state.store.status()["x"].startswith("failed: no predictor for task 'teleport'")
