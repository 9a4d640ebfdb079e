"""Fixtures for tests with a real LiveKit server in the loop (a pytest plugin of conftest).

Everything runs inside the run's network namespace (``tests/conftest.py``):

- ``livekit``: ``livekit-server`` (the pinned build from ``deploy/livekit/install.sh``) bound
  to the namespace's veth address, for the whole run. Without the binary the tests that use it
  skip, naming the install script; with ``BRIDGE_REQUIRE_LIVEKIT=1`` (CI) they fail instead.
- ``realtime_sim``: ``bridge sim`` (echo) in a process of its own, journaling every frame; at
  the end of the run every server event in the journal must validate against the SDK's models.
- ``bridge_worker``: ``bridge start`` in a process of its own, exactly as a pod runs it:
  registered with the server under the agent name ``bridge-test``, dispatched explicitly,
  JSON logs to a file (:meth:`Worker.records`), metrics and readiness on port 9102.
- :func:`dispatch`, :func:`token` and :func:`join`: put the agent in a room with dispatch
  metadata, mint caller tokens, join callers (:class:`~bridge.room.caller.RoomCaller`).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.local import netns, processes
from bridge.local.livekit_server import INSTALL_HINT, Credentials, LocalLiveKit, find_binary
from bridge.pod.settings import child_environment
from tests.realtime_schema import check_journal

REPO_ROOT = Path(__file__).resolve().parent.parent
AGENT_NAME = "bridge-test"
METRICS_PORT = 9102
REQUIRE_ENV = "BRIDGE_REQUIRE_LIVEKIT"

# The worker's profiles: the tests pick non-default ones through dispatch metadata.
PROFILES = """
[defaults]
model = "gpt-realtime"

[profiles.default]
instructions = "You are a test agent."
voice = "marin"

[profiles.echo-test]
instructions = "Say back what you hear."
voice = "cedar"
input = "linked"
overridable = ["voice"]
[profiles.echo-test.turn_detection]
type = "server_vad"
silence_duration_ms = 400

[profiles.browser-test]
instructions = "Say back what you hear; captions both ways."
voice = "cedar"
input = "linked"
overridable = ["voice", "speed"]
[profiles.browser-test.turn_detection]
type = "server_vad"
silence_duration_ms = 400
[profiles.browser-test.input_transcription]
model = "gpt-4o-mini-transcribe"

[profiles.mix-test]
instructions = "Everyone in the room is heard."
voice = "sage"
input = "mix"
[profiles.mix-test.turn_detection]
type = "server_vad"
silence_duration_ms = 400
"""


def _unavailable() -> str | None:
    from tests import conftest

    if conftest.NETNS is None:
        return "a real LiveKit server needs a network namespace (root and iproute2)"
    if find_binary() is None:
        return f"livekit-server is not installed: run {INSTALL_HINT}"
    return None


def require_livekit() -> None:
    """Skip (locally) or fail (CI) when the real server cannot run here."""
    skip_or_fail(_unavailable(), REQUIRE_ENV)


def skip_or_fail(reason: str | None, require_env: str) -> None:
    """Nothing when ``reason`` is None; else skip, or fail where ``require_env`` is 1 (CI)."""
    if reason is None:
        return
    if os.environ.get(require_env) == "1":
        pytest.fail(f"{require_env}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess: no proxies, no stray bridge or LiveKit settings."""
    return child_environment(fresh=True, **extra)


@pytest.fixture(scope="session")
def livekit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Credentials]:
    require_livekit()
    from tests import conftest

    assert conftest.NETNS is not None
    server = LocalLiveKit(tmp_path_factory.mktemp("livekit"), bind=conftest.NETNS.host)
    with server:
        yield server.credentials


@dataclass
class SimProcess:
    process: subprocess.Popen[bytes]
    url: str
    journal: Path


def start_sim(work: Path, *args: str, namespace: netns.Namespace | None = None) -> SimProcess:
    """``bridge sim`` (echo unless ``args`` say otherwise) journaling every frame in ``work``;
    inside ``namespace`` if one is given (else this process's own)."""
    journal = work / "journal.jsonl"
    argv = [sys.executable, "-m", "bridge", "sim", "--port", "0", "--journal", str(journal)]
    argv += args
    with (work / "sim.stderr").open("wb") as stderr:
        process = subprocess.Popen(
            namespace.command(argv) if namespace is not None else argv,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=clean_env(),
        )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 30)
    line = process.stdout.readline().decode().strip() if ready else ""
    prefix = "realtime simulator listening on "
    assert line.startswith(prefix), f"bridge sim did not start: {line!r}"
    return SimProcess(process, line.removeprefix(prefix), journal)


def stop_sim(sim: SimProcess) -> None:
    """Stop it; every server event it journaled must validate against the SDK's models."""
    processes.stop(sim.process)
    checked, problems = check_journal(sim.journal)
    assert not problems, f"{len(problems)} of {checked} simulator events: {problems[:5]}"


@pytest.fixture(scope="session")
def realtime_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    require_livekit()
    sim = start_sim(tmp_path_factory.mktemp("sim"))
    yield sim
    stop_sim(sim)


def journal_frames(sim: SimProcess, since: float, direction: str = "in") -> list[dict[str, Any]]:
    """Frames of the simulator's journal after ``since`` (``time.monotonic()``: one clock
    for every process of the machine), client→server (``in``) or server→client (``out``)."""
    frames = []
    for line in sim.journal.read_text().splitlines():
        entry = json.loads(line)
        if entry["t"] >= since and entry["dir"] == direction and "frame" in entry:
            frames.append(entry["frame"])
    return frames


@dataclass
class Worker:
    """A ``bridge start`` process registered with the test server."""

    process: subprocess.Popen[bytes]
    log: Path
    metrics_port: int

    def records(self, event: str | None = None) -> list[dict[str, Any]]:
        """Its JSON log records so far (those named ``event`` only, when given)."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if event is None or record.get("event") == event:
                found.append(record)
        return found

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            return str(reply.read().decode())

    def ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/readyz"
            with urllib.request.urlopen(url, timeout=1) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False


def start_worker(
    work: Path,
    livekit: Credentials,
    sim: SimProcess,
    *,
    agent_name: str = AGENT_NAME,
    metrics_port: int = METRICS_PORT,
    profiles_text: str = PROFILES,
    **settings: str,
) -> Worker:
    """``bridge start`` with the test profiles (or ``profiles_text``); returns once it is
    registered (``/readyz``)."""
    profiles = work / "profiles.toml"
    profiles.write_text(profiles_text)
    log = work / f"worker-{metrics_port}.log"
    settings.setdefault("BRIDGE_LIVEKIT_HEALTH_PORT", "0")  # 8081 is one per namespace
    env = clean_env(
        LIVEKIT_URL=livekit.url,
        LIVEKIT_API_KEY=livekit.api_key,
        LIVEKIT_API_SECRET=livekit.api_secret,
        LIVEKIT_AGENT_NAME=agent_name,
        BRIDGE_REALTIME_URL=sim.url,
        BRIDGE_PROFILES=str(profiles),
        BRIDGE_METRICS_PORT=str(metrics_port),
        BRIDGE_LOG_FORMAT="json",
        **settings,
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "start"],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    worker = Worker(process, log, metrics_port)
    deadline = time.monotonic() + 60
    while not worker.ready():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"bridge start did not register:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    return worker


def stop_worker(worker: Worker, timeout: float = 30) -> int:
    return processes.stop(worker.process, timeout)


@pytest.fixture(scope="session")
def bridge_worker(
    tmp_path_factory: pytest.TempPathFactory, livekit: Credentials, realtime_sim: SimProcess
) -> Iterator[Worker]:
    worker = start_worker(
        tmp_path_factory.mktemp("worker"),
        livekit,
        realtime_sim,
        BRIDGE_EMPTY_ROOM_GRACE="2",
        BRIDGE_IDLE_PROCESSES="0",  # every job starts its own thread: the race of a burst
    )
    yield worker
    stop_worker(worker)


def room_name(prefix: str = "room") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def token(livekit: Credentials, room: str, identity: str, *, kind: str = "") -> str:
    """A caller's token for ``room`` (``kind``: "" standard, or "sip" as LiveKit SIP mints)."""
    from livekit import api

    grant = api.VideoGrants(room_join=True, room=room)
    minted = api.AccessToken(livekit.api_key, livekit.api_secret).with_identity(identity)
    if kind:
        minted = minted.with_kind(kind)  # type: ignore[arg-type]
    return minted.with_grants(grant).to_jwt()


async def dispatch(livekit: Credentials, room: str, metadata: dict[str, Any]) -> None:
    """Send the bridge (``bridge-test``) to ``room`` with ``metadata``, as a backend would."""
    from livekit import api

    async with api.LiveKitAPI(livekit.http_url, livekit.api_key, livekit.api_secret) as lk:
        await lk.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(
                agent_name=AGENT_NAME, room=room, metadata=json.dumps(metadata)
            )
        )


async def open_rooms(livekit: Credentials) -> set[str]:
    """The names of the rooms the server has open now."""
    from livekit import api

    async with api.LiveKitAPI(livekit.http_url, livekit.api_key, livekit.api_secret) as lk:
        listed = await lk.room.list_rooms(api.ListRoomsRequest())
    return {room.name for room in listed.rooms}
