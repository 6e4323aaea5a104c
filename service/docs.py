"""The OpenAPI document, with request examples that fit the models this process serves.

A static example cannot fit every model (lookback, variates and step differ per model), so each task's
endpoint gets, per served model of that task, the model's own example input (the bundle's
`example_input`, which warm-up has checked to be a valid request), and the path's `name` an example per
served model: `/docs` "Try it out" and a fuzzer reach the 200 path. The document is rebuilt when the
served versions change (hot reload), and kept otherwise. Every operation that takes a JSON body also
declares the 415 that `service.deps.json_body` answers to any other content type.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI

from service.store import LoadedModel, ModelStore
from service.task import ServiceTask


def example_body(model: LoadedModel, task: ServiceTask) -> dict[str, Any] | None:
    """The model's example input as a request body of `task` (only the request's fields, nulls left out)."""
    example = model.predictor.meta.get("example_input")
    if not isinstance(example, Mapping):
        return None
    fields = task.request.model_fields
    body = {k: v for k, v in example.items() if k in fields and v is not None}
    return body or None


def add_examples(schema: dict[str, Any], tasks: Mapping[str, ServiceTask], models: list[LoadedModel]) -> None:
    """Per task endpoint in `schema`, the served models' example bodies and their names as path examples."""
    for task in tasks.values():
        operation = schema.get("paths", {}).get(task.path, {}).get("post")
        if operation is None:
            continue
        bodies = {m.name: example_body(m, task) for m in models if m.predictor.task == task.name}
        examples = {name: body for name, body in bodies.items() if body is not None}
        if not examples:
            continue
        content = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if content is not None:
            content["examples"] = {
                name: {"summary": f"a valid request for model {name}", "value": body} for name, body in examples.items()
            }
        for param in operation.get("parameters", []):
            if param.get("in") == "path" and param.get("name") == "name":
                param["examples"] = {name: {"summary": f"model {name}", "value": name} for name in examples}


_UNSUPPORTED = {
    "description": "the body is not sent as JSON (`Content-Type: application/json`)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
}


def declare_json_only(schema: dict[str, Any]) -> None:
    """A 415 on every operation whose request body is JSON (where the route did not declare it)."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            content = operation.get("requestBody", {}).get("content", {}) if isinstance(operation, dict) else {}
            if "application/json" in content:
                operation.setdefault("responses", {}).setdefault("415", copy.deepcopy(_UNSUPPORTED))


def install_openapi(app: FastAPI, tasks: Mapping[str, ServiceTask], store: ModelStore) -> None:
    """`app.openapi()` (what `/openapi.json` and `/docs` serve) with the served models' examples."""
    built: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        models = store.models()
        key = tuple((m.name, m.version) for m in models)
        if key not in built:
            app.openapi_schema = None  # FastAPI's own build, from the routes, each time the models change
            schema = copy.deepcopy(FastAPI.openapi(app))
            add_examples(schema, tasks, models)
            declare_json_only(schema)
            built.clear()
            built[key] = schema
        return built[key]

    app.openapi = openapi  # type: ignore[method-assign]
