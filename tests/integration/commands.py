"""The command line of every program the compose stack runs, built in one place.

The native integration fixtures start exactly these argv lists, and `test_compose.py` checks that each
`command:` in docker-compose.yml is the same program + subcommand with the same flags (values differ:
hostnames, ports and paths are the only things compose and the native run may disagree on).
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

# Flags that take no value; every other `--flag` takes the next token (or `--flag=value`).
SWITCHES = frozenset({"--serve-artifacts", "--no-serve-artifacts", "--smoke", "--once"})

# The first champion of the integration story: the `--smoke` model trained with a learning rate so
# high (Adam moves every weight by ~lr per step) that its forecasts are off by orders of magnitude,
# so a properly trained challenger beats it by a margin no training noise can flip. A smoke run
# registers as `<name>-smoke` unless `registered_name` is set: here it must be the real name.
BAD_FIRST_TRAIN_ARGS = ("--smoke", "--set", "trainer.lr=10", "--set", "registered_name=itransformer-etth1")


def mlflow_server(
    *, backend_store_uri: str, artifacts_destination: str, host: str, port: int | str, allowed_hosts: str, workers: int
) -> list[str]:
    """PostgreSQL backend store, proxied artifact store; `--allowed-hosts` or MLflow answers 403 to
    requests whose Host header is e.g. the compose service name (its /health passes regardless)."""
    return [
        "mlflow",
        "server",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--backend-store-uri",
        backend_store_uri,
        "--artifacts-destination",
        artifacts_destination,
        "--serve-artifacts",
        "--allowed-hosts",
        allowed_hosts,
    ]


def seer_train(recipe: str, *args: str) -> list[str]:
    return ["seer", "train", recipe, *args]


def seer_serve(models: str, host: str, port: int | str) -> list[str]:
    return ["seer", "serve", "--models", models, "--host", host, "--port", str(port)]


def seer_retrain(jobs: str, *, once: bool = False) -> list[str]:
    return ["seer", "retrain", "--jobs", jobs, *(["--once"] if once else [])]


def executable(argv: list[str]) -> list[str]:
    """argv with its program taken from this interpreter's environment (the venv's console scripts)."""
    return [str(Path(sys.executable).with_name(argv[0])), *argv[1:]]


@dataclass(frozen=True)
class Shape:
    """What must agree between two invocations of one program: program, subcommand, positionals, flags."""

    program: tuple[str, str]
    positionals: tuple[str, ...]
    flags: frozenset[str]
    values: tuple[tuple[str, str], ...]

    def value(self, flag: str) -> str:
        return dict(self.values)[flag]


def shape(argv: list[str] | str) -> Shape:
    tokens = shlex.split(argv) if isinstance(argv, str) else list(argv)
    if len(tokens) < 2:
        raise ValueError(f"not a `program subcommand ...` command: {tokens}")
    program = (Path(tokens[0]).name, tokens[1])
    positionals: list[str] = []
    flags: set[str] = set()
    values: list[tuple[str, str]] = []
    rest = tokens[2:]
    i = 0
    while i < len(rest):
        token = rest[i]
        if token.startswith("--"):
            name, eq, value = token.partition("=")
            flags.add(name)
            if eq:
                values.append((name, value))
            elif name not in SWITCHES and i + 1 < len(rest):
                values.append((name, rest[i + 1]))
                i += 1
        else:
            positionals.append(token)
        i += 1
    return Shape(program, tuple(positionals), frozenset(flags), tuple(values))
