"""The compose stack, started natively (no Docker engine here): PostgreSQL from the Debian packages in a
temporary data directory on a loopback port, and `mlflow server` on it with a proxied artifact store —
the same commands docker-compose.yml runs (tests/integration/commands.py builds both).

PostgreSQL refuses to run as root; as root the server runs as the system user `seerpg` (created if
missing) through `runuser`. `.ci/run` installs the `postgresql` package when no `initdb` is found.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from seer.procs import free_port, wait_http

from .commands import executable, mlflow_server

PG_USER = "seerpg"  # the OS user that owns and runs the cluster when the tests run as root
DB_USER = DB_NAME = "mlflow"


def pg_bin(name: str) -> str | None:
    """A PostgreSQL program: on PATH, else Debian's /usr/lib/postgresql/<major>/bin (newest major)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    candidates.sort(key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return candidates[-1] if candidates else None


def _as_pg_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    if shutil.which("runuser"):
        return ["runuser", "-u", PG_USER, "--", *argv]
    import shlex

    return ["su", "-s", "/bin/sh", PG_USER, "-c", shlex.join(argv)]


def _ensure_pg_user() -> None:
    if os.geteuid() != 0:
        return
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            check=True,
            capture_output=True,
        )


def _run(argv: list[str], what: str, timeout: float = 120) -> None:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if out.returncode:
        raise RuntimeError(f"{what} failed ({out.returncode}): {out.stdout[-2000:]}{out.stderr[-2000:]}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster with database `mlflow`; yields the SQLAlchemy URI."""
    initdb, pg_ctl, createdb = pg_bin("initdb"), pg_bin("pg_ctl"), pg_bin("createdb")
    if not (initdb and pg_ctl and createdb):
        why = "PostgreSQL is not installed (.ci/run installs it: apt-get install postgresql)"
        if os.environ.get("CI"):  # in CI the stack test is the point: a missing server is a failure
            pytest.fail(why)
        pytest.skip(why)
    _ensure_pg_user()
    root = Path(tempfile.mkdtemp(prefix="seer-pg-"))  # under /tmp, which every user may traverse
    data, sockets, logfile = root / "data", root / "sock", root / "postgres.log"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, PG_USER)
        shutil.chown(sockets, PG_USER)
    port = free_port()
    try:
        _run(_as_pg_user([initdb, "-D", str(data), "-U", DB_USER, "--auth=trust", "-E", "UTF8", "--no-sync"]), "initdb")
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
        start = [pg_ctl, "-D", str(data), "-l", str(logfile), "-o", options, "-w", "-t", "60", "start"]
        _run(_as_pg_user(start), "pg_ctl start")
        _run([createdb, "-h", "127.0.0.1", "-p", str(port), "-U", DB_USER, DB_NAME], "createdb")
        yield f"postgresql+psycopg2://{DB_USER}@127.0.0.1:{port}/{DB_NAME}"
    finally:
        if (data / "postmaster.pid").exists():
            stop = [pg_ctl, "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"]
            subprocess.run(_as_pg_user(stop), capture_output=True, timeout=90)
        shutil.rmtree(root, ignore_errors=True)


def stop_process(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process group this test started (the server and its workers), then SIGKILL."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass


class TrackingServer:
    """`mlflow server` on the PostgreSQL store with a proxied artifact store, on one fixed port, so that a
    test can kill it (`stop`) and bring it back (`start`) where its clients expect it."""

    def __init__(self, backend_store_uri: str, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.argv = mlflow_server(
            backend_store_uri=backend_store_uri,
            artifacts_destination=str(root / "mlartifacts"),
            host="127.0.0.1",
            port=self.port,
            allowed_hosts="127.0.0.1,127.0.0.1:*,localhost,localhost:*",
            workers=1,
        )
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = self.root / f"mlflow-server-{self.starts}.log"
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                executable(self.argv), cwd=self.root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_http(f"{self.uri}/health", self.proc, log)
        # /health passes even when the Host check would refuse every API call: check a real one.
        r = httpx.get(f"{self.uri}/api/2.0/mlflow/experiments/search", params={"max_results": 1}, timeout=30)
        assert r.status_code == 200, r.text

    def stop(self, hard: bool = False) -> None:
        """SIGKILL (`hard`, a crash) or SIGTERM the server's process group."""
        if self.proc is None:
            return
        if hard and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        stop_process(self.proc, timeout=10)  # it may wait on idle keep-alive connections; nothing to save
        self.proc = None


@pytest.fixture(scope="session")
def tracking_server(postgres, tmp_path_factory) -> Iterator[TrackingServer]:
    """The MLflow server, started; tests may stop and restart it (same port, same store)."""
    server = TrackingServer(postgres, tmp_path_factory.mktemp("mlflow-server"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_uri(tracking_server: TrackingServer) -> str:
    """The MLflow server's tracking URI."""
    return tracking_server.uri
