"""Issue 14, slow clients: a real server (`service.server.uvicorn_config`, in a thread, on loopback) closes
connections that hold a partial request past the header or body deadline, closes idle keep-alive
connections, and answers 503 past its connection cap. Before, a connection holding a partial request
stayed open for over a minute. The socket timeouts below are generous ceilings, many times the deadlines
set, so that a busy machine cannot make them flaky; nothing is timed.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from seer.procs import free_port
from service import Settings, create_app
from service.server import uvicorn_config
from tests.service.service_fixtures import make_bundle

CEILING_S = 30.0  # how long a socket waits for the server to act (the deadlines are 0.5 s)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("limits") / "m")


@contextmanager
def running(bundle: Path, **settings: Any) -> Iterator[int]:
    port = free_port()
    options = Settings(models=f"m={bundle}", port=port, log_requests=False, **settings)
    config = uvicorn_config(options, create_app(options))  # not the serving process's app: no gc.freeze here
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(CEILING_S)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=CEILING_S)
    sock.settimeout(CEILING_S)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Read until the server closes (True) or the ceiling passes (False); any answer bytes are skipped."""
    try:
        while sock.recv(65536):
            pass
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_partial_requests_and_idle_connections_are_closed(bundle: Path) -> None:
    with running(bundle, header_timeout_s=0.5, body_timeout_s=0.5, keepalive_timeout_s=1) as port:
        silent = connect(port)  # connects, sends nothing
        partial_headers = connect(port)
        partial_headers.sendall(b"POST /v1/models/m/forecast HTTP/1.1\r\nHost: x\r\nContent-Type: applic")
        partial_body = connect(port)
        head = b"POST /v1/models/m/forecast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        partial_body.sendall(head + b"Content-Length: 1000\r\n\r\n" + b'{"history": [[1, 2')
        keep_alive = connect(port)
        keep_alive.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert keep_alive.recv(65536).startswith(b"HTTP/1.1 200")
        for sock in (silent, partial_headers, partial_body, keep_alive):
            assert closed_by_server(sock)
            sock.close()
        # A client that sends its request in time is served as before.
        ok = connect(port)
        ok.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert ok.recv(65536).startswith(b"HTTP/1.1 200")
        ok.close()


def test_past_the_connection_cap_new_requests_get_503(bundle: Path) -> None:
    with running(bundle, max_connections=3, header_timeout_s=CEILING_S) as port:
        idle = [connect(port) for _ in range(3)]
        time.sleep(0.2)  # let the server accept them (not a timing assertion: it only needs to have)
        extra = connect(port)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert extra.recv(65536).startswith(b"HTTP/1.1 503")
        for sock in (*idle, extra):
            sock.close()
        deadline = time.monotonic() + CEILING_S
        while True:  # the server notices the closed ones, then serves again
            again = connect(port)
            again.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = again.recv(65536)
            again.close()
            if answer.startswith(b"HTTP/1.1 200"):
                break
            assert time.monotonic() < deadline, answer[:200]
            time.sleep(0.1)
