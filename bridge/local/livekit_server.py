"""A local LiveKit server for tries, the console, benchmarks and tests.

:class:`LocalLiveKit` runs the real ``livekit-server`` (installed by
``deploy/livekit/install.sh`` into the repository's ``.tools/bin``, or found on ``PATH``) with a
configuration that keeps everything on the machine: signalling bound to the address it is
given, no external-IP discovery, STUN pointed at a dead local port (the default list names
public servers and is also sent to every client), TURN off, a fresh key and secret per run.
WebRTC needs a non-loopback interface; on a machine whose own interfaces must not carry the
traffic, start it inside a namespace (:mod:`bridge.local.netns`) and bind its address.

One node needs no Redis; nodes of a cluster share one (``redis=``) and each needs its own ports
(``ports=``).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from bridge.errors import BridgeError
from bridge.local import processes

REPO_TOOLS = Path(__file__).resolve().parents[2] / ".tools" / "bin"
INSTALL_HINT = "deploy/livekit/install.sh"
DEAD_STUN = "127.0.0.1:9"  # discard port: nothing answers, nothing leaves the machine


class LocalServerError(BridgeError):
    """The local LiveKit server could not be found or did not start."""


def find_binary(name: str = "livekit-server") -> Path | None:
    """The installed binary: the repository's ``.tools/bin`` first, then ``PATH``."""
    local = REPO_TOOLS / name
    if local.is_file():
        return local
    found = shutil.which(name)
    return Path(found) if found else None


@dataclass(frozen=True, slots=True)
class Credentials:
    """Where a LiveKit server is and how to sign tokens for it."""

    url: str  # ws://HOST:PORT
    api_key: str
    api_secret: str = field(repr=False)

    @property
    def http_url(self) -> str:
        return "http" + self.url.removeprefix("ws")


@dataclass(frozen=True, slots=True)
class Ports:
    http: int = 7880  # signalling, the Twirp API and the workers' /agent socket
    rtc_tcp: int = 7881  # ICE over TCP
    rtc_udp: int = 7882  # one UDP mux port for every peer connection

    def shifted(self, by: int) -> Ports:
        """The same layout ``by`` ports higher (a second node on the same address)."""
        return Ports(self.http + by, self.rtc_tcp + by, self.rtc_udp + by)


def server_config(
    bind: str,
    credentials: Credentials,
    *,
    ports: Ports = Ports(),
    redis: str | None = None,
    node_ip: str | None = None,
    log_level: str = "info",
) -> str:
    """The YAML a ``livekit-server --config`` run takes (keys inline: a local run only)."""
    lines = [
        f"port: {ports.http}",
        f"bind_addresses: [{bind!r}]",
        "rtc:",
        f"  tcp_port: {ports.rtc_tcp}",
        f"  udp_port: {ports.rtc_udp}",
        "  use_external_ip: false",
        f"  stun_servers: [{DEAD_STUN!r}]",
        "  enable_loopback_candidate: false",
    ]
    if node_ip:
        lines.append(f"  node_ip: {node_ip!r}")
    lines += [
        "turn:",
        "  enabled: false",
        "keys:",
        f"  {credentials.api_key}: {credentials.api_secret}",
        "room:",
        "  empty_timeout: 30",
        "  departure_timeout: 5",
        "logging:",
        f"  level: {log_level}",
        "  json: true",
    ]
    if redis:
        lines += ["redis:", f"  address: {redis!r}"]
    return "\n".join(lines) + "\n"


class LocalLiveKit:
    """A ``livekit-server`` process; a context manager that starts it and stops it.

    ``bind`` is the address it listens on (signalling) and advertises (media); ``workdir``
    holds its config and log (``livekit-server.log``).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        bind: str,
        binary: Path | None = None,
        ports: Ports = Ports(),
        redis: str | None = None,
        name: str = "livekit-server",
        api_key: str = "bridge-local",
        api_secret: str | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        found = binary or find_binary()
        if found is None:
            raise LocalServerError(f"livekit-server is not installed: run {INSTALL_HINT}")
        self.binary = found
        self.workdir = workdir
        self.bind = bind
        self.ports = ports
        self.redis = redis
        self.name = name
        self.start_timeout = start_timeout
        secret = api_secret or secrets.token_urlsafe(32)
        self.credentials = Credentials(f"ws://{bind}:{ports.http}", api_key, secret)
        self.log_path = workdir / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalLiveKit:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the server and wait until it answers ``GET /`` (raises with its log's tail)."""
        if self._answers():  # another server: its answers would pass for ours
            raise LocalServerError(f"something already answers on {self.credentials.url}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / f"{self.name}.yaml"
        config.write_text(
            server_config(self.bind, self.credentials, ports=self.ports, redis=self.redis)
        )
        config.chmod(0o600)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(self.binary), "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + self.start_timeout
        while not self._answers():
            if not self.running:
                raise LocalServerError(f"{self.name} exited at start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise LocalServerError(f"{self.name} did not answer in time:\n{self.log_tail()}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.credentials.http_url + "/", timeout=1) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit within ``timeout`` (idempotent)."""
        process, self._process = self._process, None
        if process is not None:
            processes.stop(process, timeout)

    def kill(self) -> None:
        """SIGKILL at once: a node lost, for failure tests."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def main(argv: list[str] | None = None) -> int:
    """``python -m bridge.local.livekit_server --bind ADDR``: a local server until Ctrl-C.

    Prints the ``LIVEKIT_*`` lines to export for ``bridge start``, ``bridge try
    --livekit-url`` and ``bridge bench --room livekit --livekit-url``. ``ADDR`` must be an
    address of a real interface (WebRTC ignores loopback): a laptop's LAN address, or a
    network namespace's.
    """
    import argparse
    import signal
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m bridge.local.livekit_server")
    parser.add_argument("--bind", required=True, help="the address to serve on (not 127.0.0.1)")
    parser.add_argument("--port", type=int, default=Ports().http, help="signalling port (7880)")
    args = parser.parse_args(argv)
    ports = Ports().shifted(args.port - Ports().http)
    with tempfile.TemporaryDirectory(prefix="livekit-") as work:
        try:
            server = LocalLiveKit(Path(work), bind=args.bind, ports=ports)
            server.start()
        except LocalServerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        creds = server.credentials
        print(f"LIVEKIT_URL={creds.url}")
        print(f"LIVEKIT_API_KEY={creds.api_key}")
        print(f"LIVEKIT_API_SECRET={creds.api_secret}", flush=True)
        print(f"# log: {server.log_path}; Ctrl-C stops it", file=sys.stderr)
        stop = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop)
        try:
            signal.sigwait(stop)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
