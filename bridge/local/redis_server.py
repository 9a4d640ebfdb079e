"""A local Redis for a LiveKit node that takes phone calls (or nodes of one cluster).

The LiveKit server keeps SIP trunks and dispatch rules in Redis (its SIP API answers only with
Redis configured), and reaches the SIP service and other nodes over it. :class:`LocalRedis`
runs Debian's ``redis-server`` (``deploy/livekit/install-sip.sh`` installs it) bound to one
address and port, with nothing persisted: no RDB snapshots, no append-only file, its working
directory a scratch folder.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from bridge.local import processes
from bridge.local.livekit_server import LocalServerError

INSTALL_HINT = "deploy/livekit/install-sip.sh"


class LocalRedis:
    """A ``redis-server`` process; a context manager that starts it and stops it."""

    def __init__(
        self,
        workdir: Path,
        *,
        bind: str = "127.0.0.1",
        port: int = 6390,
        start_timeout: float = 15.0,
    ) -> None:
        found = shutil.which("redis-server")
        if found is None:
            raise LocalServerError(f"redis-server is not installed: run {INSTALL_HINT}")
        self.binary = found
        self.workdir = workdir
        self.bind = bind
        self.port = port
        self.start_timeout = start_timeout
        self.log_path = workdir / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``HOST:PORT``, as LiveKit's ``redis.address`` takes it."""
        return f"{self.bind}:{self.port}"

    def __enter__(self) -> LocalRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start it and wait until it answers ``PING`` (raises with its log's tail)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            self.binary,
            "--bind", self.bind,
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--protected-mode", "no",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + self.start_timeout
        while not self.answers():
            if self._process.poll() is not None:
                raise LocalServerError(f"redis-server exited at start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise LocalServerError(f"redis-server did not answer in time:\n{self.log_tail()}")
            time.sleep(0.05)

    def answers(self) -> bool:
        """It answers ``PING`` with ``+PONG``."""
        try:
            with socket.create_connection((self.bind, self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit within ``timeout`` (idempotent)."""
        process, self._process = self._process, None
        if process is not None:
            processes.stop(process, timeout)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
