"""Helpers for starting servers as separate processes: a free loopback port, and waiting until an
HTTP endpoint answers 200 (used by `seer demo`, the benchmarks and the end-to-end tests)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen | None = None, log: Path | None = None, timeout: float = 180.0) -> None:
    """Poll `url` until it answers 200; fail early, with the log's tail, if `proc` exits first."""

    def tail() -> str:
        return log.read_text()[-4000:] if log is not None and log.exists() else ""

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before {url} answered:\n{tail()}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f} s:\n{tail()}")
