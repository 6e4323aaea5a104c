"""The hot reloader's calls to the MLflow registry: made to fail fast, and their failures told apart.

A registry that answers (an error code about the request: an alias or version that does not exist, a
bad parameter, no permission) has said something about one model: a `ModelProblem`, that model's alone.
One that does not answer (refused connection, timeout, a 5xx) is `TrackingUnreachable`: every model's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

# MLflow's HTTP client retries a refused connection 7 times with exponential backoff (minutes per call);
# the reloader backs off on its own, so its calls fail fast (unless the environment says otherwise).
_FAIL_FAST = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}


@contextlib.contextmanager
def fail_fast() -> Iterator[None]:
    """MLflow's HTTP calls within: no retries, a 15 s timeout (unless the environment sets them)."""
    added = [k for k in _FAIL_FAST if k not in os.environ]
    os.environ.update({k: _FAIL_FAST[k] for k in added})
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


class TrackingUnreachable(Exception):
    """The tracking server did not answer: retry later, no model is at fault."""


class ModelProblem(Exception):
    """The registry answered, about this model only: its alias or version cannot be served (retried later)."""


# MLflow error codes of an answer about the request (the server is up): not the server's state.
_ANSWERS = frozenset(
    {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND", "BAD_REQUEST", "INVALID_STATE"}
    | {"PERMISSION_DENIED", "UNAUTHENTICATED", "RESOURCE_ALREADY_EXISTS"}
)


def why(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:500]


def answered(e: BaseException) -> bool:
    """Whether the exception is the registry's answer (an error code about the request), not silence."""
    return str(getattr(e, "error_code", "")) in _ANSWERS
