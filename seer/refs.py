"""Model references checked before a command uses them, so a mistake is one line that says what exists
and what to type, not an MLflow traceback.

`check_serve_refs` checks a `--models` list (the grammar is `service.settings.parse_model_ref`'s) and,
for registry refs, that the name, alias or version exists; `check_model_uri` does the same for
`seer evaluate --model`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any


class RefError(ValueError):
    """A model reference that does not resolve; the message is the one line to print."""


def _client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=os.environ.get("MLFLOW_REGISTRY_URI") or uri)


def serve_tracking_uri() -> str:
    """The tracking URI `seer serve` will use: `service.settings.Settings`' rule (MLFLOW_TRACKING_URI, then
    SEER_TRACKING_URI, else `sqlite:///mlflow.db`), so the check looks where the service will."""
    return os.environ.get("MLFLOW_TRACKING_URI") or os.environ.get("SEER_TRACKING_URI") or "sqlite:///mlflow.db"


def registered_names(uri: str) -> list[str]:
    return sorted(m.name for m in _client(uri).search_registered_models())


def _versions(client: Any, name: str) -> list[str]:
    return sorted((str(v.version) for v in client.search_model_versions(f"name = '{name}'")), key=int)


def check_registered(name: str, uri: str, *, alias: str | None = None, version: str | None = None) -> None:
    """Raise `RefError` unless model `name` exists in the registry at `uri` with that alias/version."""
    from mlflow.exceptions import MlflowException

    client = _client(uri)
    names = registered_names(uri)
    if name not in names:
        have = ", ".join(names[:12]) or "none yet (`seer train RECIPE` or `seer pretrained register NAME` adds one)"
        raise RefError(f"no registered model {name!r} in {uri}; registered: {have}")
    versions = _versions(client, name)
    aliases = dict(client.get_registered_model(name).aliases or {})
    shown = ", ".join(f"@{a} → {v}" for a, v in sorted(aliases.items())) or "no aliases"
    hint = f"{name} has versions {', '.join(versions)} ({shown}): serve e.g. {name}/{versions[-1]}"
    if alias is not None:
        try:
            client.get_model_version_by_alias(name, alias)
        except MlflowException:
            raise RefError(f"{name} has no alias @{alias}; {hint}") from None
    if version is not None and version not in versions:
        raise RefError(f"{name} has no version {version}; {hint}")


def check_serve_refs(models: str, uri: str) -> None:
    """Every ref of a `--models` list parses and resolves (local paths exist, registry entries exist)."""
    from service.settings import parse_model_refs

    try:
        refs = parse_model_refs(models)
    except ValueError as e:
        raise RefError(str(e)) from None
    for ref in refs:
        if ref.path is not None:
            if not Path(ref.path).exists():
                raise RefError(f"{ref}: no such path {ref.path}")
            continue
        check_registered(ref.name, uri, alias=ref.alias, version=ref.version)


_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def check_model_uri(model_uri: str, uri: str) -> None:
    """A `seer evaluate --model` value: a local path, or `models:/NAME@ALIAS` / `models:/NAME/VERSION`."""
    if Path(model_uri).exists():
        return
    m = _MODELS_URI.match(model_uri)
    if m is None:
        raise RefError(f"--model {model_uri!r}: expected models:/NAME@ALIAS, models:/NAME/VERSION or an existing path")
    check_registered(m["name"], uri, alias=m["alias"], version=m["version"])
