"""Service settings from the environment (`SEER_*`), validated once at startup.

`SEER_MODELS` lists the models to serve, comma-separated. A ref is either
  NAME@ALIAS   a registered model version in MLflow, found by alias (`models:/NAME@ALIAS` works too),
  NAME/VERSION one registered version by number (`models:/NAME/3` too; not watched: a version never moves), or
  NAME=PATH    a local bundle directory, or an MLflow model directory holding one (`artifacts/bundle/`).
NAME is the name the model is served under (`/v1/models/NAME`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_REF_FORMS = (
    "expected NAME@ALIAS or NAME/VERSION (MLflow registry) or NAME=PATH (local bundle or MLflow model directory)"
)


@dataclass(frozen=True)
class ModelRef:
    """One entry of `SEER_MODELS`: exactly one of `alias` or `version` (registry) or `path` (local) is set."""

    name: str
    alias: str | None = None
    path: str | None = None
    version: str | None = None

    @property
    def source(self) -> str:
        if self.version is not None:
            return f"models:/{self.name}/{self.version}"
        return f"models:/{self.name}@{self.alias}" if self.alias is not None else str(self.path)

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}/{self.version}"
        return f"{self.name}@{self.alias}" if self.alias is not None else f"{self.name}={self.path}"


def parse_model_ref(text: str) -> ModelRef:
    """`"name@alias"`, `"name/3"` or `"name=path"` -> ModelRef; a ValueError says what is wrong with the ref."""
    raw = text.strip()
    if "=" in raw:  # a path may contain '@', so '=' decides first
        name, path = (part.strip() for part in raw.split("=", 1))
        if not path:
            raise ValueError(f"bad model ref {text!r}: empty PATH; {_REF_FORMS}")
        ref = ModelRef(name=name, path=path)
    elif "@" in raw:
        name, alias = (part.strip() for part in raw.removeprefix("models:/").split("@", 1))
        if not _NAME.match(alias):
            raise ValueError(f"bad model ref {text!r}: alias {alias!r} is not a valid alias; {_REF_FORMS}")
        ref = ModelRef(name=name, alias=alias)
    elif "/" in raw.removeprefix("models:/"):
        name, version = (part.strip() for part in raw.removeprefix("models:/").split("/", 1))
        if not version.isdigit() or int(version) < 1:
            raise ValueError(f"bad model ref {text!r}: version {version!r} is not a number >= 1; {_REF_FORMS}")
        ref = ModelRef(name=name, version=str(int(version)))
    else:
        raise ValueError(f"bad model ref {text!r}: {_REF_FORMS}")
    if not _NAME.match(ref.name):
        raise ValueError(f"bad model ref {text!r}: NAME {ref.name!r} must match {_NAME.pattern}; {_REF_FORMS}")
    return ref


def parse_model_refs(text: str) -> list[ModelRef]:
    """A comma-separated list of refs; names must be unique since they become URL paths."""
    refs = [parse_model_ref(part) for part in text.split(",") if part.strip()]
    names = [r.name for r in refs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"model names must be unique in SEER_MODELS; repeated: {', '.join(dupes)}")
    return refs


class Settings(BaseSettings):
    """Everything the service reads from its environment; a bad value fails at startup, not per request.

    A validation error never shows the value it refused (`hide_input_in_errors`): the API key must not
    reach a log through a typo in another setting or its own."""

    model_config = SettingsConfigDict(
        env_prefix="SEER_", extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    models: str = Field(default="", description="comma-separated model refs: NAME@ALIAS or NAME=PATH")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1, description="larger request bodies get 413")
    device: str = "cpu"
    max_batch_size: int = Field(default=32, ge=1, le=1024, description="most requests per forward pass, per model")
    max_wait_ms: float = Field(
        default=1.0, ge=0.0, le=1000.0, description="how long the first request of a batch waits for company"
    )
    max_queue: int = Field(default=1024, ge=1, description="requests waiting per model before new ones get 503")
    request_timeout_s: float = Field(
        default=30.0, gt=0.0, le=3600.0, description="queueing + inference per request; past it, 504"
    )
    api_key: SecretStr = Field(
        default=SecretStr(""), description="bearer token for /v1/* and /admin/* (16+ characters); empty turns auth off"
    )
    heavy_cost: float = Field(
        default=4.0,
        gt=0.0,
        description="requests costing more than this many of the model's reference request run in its heavy lane",
    )
    header_timeout_s: float = Field(
        default=10.0, gt=0.0, description="a connection's request line and headers must arrive within this"
    )
    body_timeout_s: float = Field(default=30.0, gt=0.0, description="a request's body must arrive within this")
    keepalive_timeout_s: float = Field(default=5.0, gt=0.0, description="idle keep-alive connections close after this")
    max_connections: int = Field(
        default=1024, ge=1, description="open connections (and requests in flight) past which new requests get 503"
    )
    cors_origins: str = Field(
        default="", description="comma-separated origins a browser may call from (CORS); empty: none (off)"
    )
    torch_threads: int = Field(
        default=1,
        ge=0,
        description="torch intra-op threads for `seer serve` (0: torch's default, one per core); see server.py",
    )
    log_requests: bool = Field(default=True, description="one JSON line per request on the `service.access` logger")
    reload_interval_s: float = Field(
        default=10.0,
        ge=0.0,
        description="how often each NAME@ALIAS ref is checked for a new version (hot reload); 0 turns it off",
    )
    reload_backoff_max_s: float = Field(
        default=300.0, gt=0.0, description="longest wait between checks while the tracking server is unreachable"
    )
    tracking_uri: str = Field(
        default="sqlite:///mlflow.db",
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "SEER_TRACKING_URI"),
        description="MLflow tracking (and registry) URI for NAME@ALIAS refs",
    )

    @field_validator("models")
    @classmethod
    def _check_models(cls, value: str) -> str:
        parse_model_refs(value)  # raises with the offending ref named
        return value

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if not re.match(r"^(cpu|cuda(:\d+)?|mps)$", value):
            raise ValueError(f"device must be cpu, cuda, cuda:N or mps, got {value!r}")
        return value

    @field_validator("api_key")
    @classmethod
    def _check_api_key(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value()
        if key and (len(key) < 16 or not re.fullmatch(r"[\x21-\x7e]+", key)):
            raise ValueError(  # says what is wrong, never the key itself
                "SEER_API_KEY must be empty (auth off) or at least 16 printable ASCII characters without spaces, "
                "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: str) -> str:
        for origin in (o.strip() for o in value.split(",") if o.strip()):
            if origin != "*" and not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d+)?", origin):
                raise ValueError(f"SEER_CORS_ORIGINS: {origin!r} is not an origin like https://app.example.com")
        return value

    @model_validator(mode="after")
    def _check_timing(self) -> Settings:
        if self.request_timeout_s * 1000.0 <= self.max_wait_ms:
            raise ValueError(
                f"SEER_REQUEST_TIMEOUT_S ({self.request_timeout_s} s) must exceed SEER_MAX_WAIT_MS "
                f"({self.max_wait_ms} ms), or every request could time out while its batch fills"
            )
        return self

    def model_refs(self) -> list[ModelRef]:
        return parse_model_refs(self.models)

    @property
    def key(self) -> str:
        """The API key as text ("" when auth is off)."""
        return self.api_key.get_secret_value()

    def origins(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]
