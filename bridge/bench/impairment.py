"""``bridge bench --impairment``: callers on an impaired network, the bridge against a direct
WebSocket.

    bridge bench --impairment [--condition SPEC]... [--paths webrtc,websocket] [--repeat K]
                 [--delay-ms D] [--json FILE] [--chart FILE.svg] [--keep DIR] [--uplink]

Everything runs on this machine, in network namespaces this command makes and removes (it
needs root): a *servers* namespace (the LiveKit server, ``bridge start``, ``bridge sim``
echo; the command itself moves into it) and a *caller* namespace behind the user-space
impaired link (``bridge.local.tun_link``). Each call is a caller process in the caller's
namespace (``bridge.local.impaired_caller``) speaking the same four turns (one talked
over) either way:

- ``webrtc``: a LiveKit participant (Opus over WebRTC, through the link to the server) with
  ``bridge start`` dispatched to its room, the bridge speaking WebSocket to the model on the
  good side;
- ``websocket``: the official ``openai`` SDK straight to the simulator through the link,
  playing deltas as a browser's ``WavStreamPlayer`` does (``bridge.local.ws_caller``).

The link is clean while the caller connects; the condition applies from the first word to
the end of the call (each call also runs probe streams both ways: the table's *measured*
columns are what the link really did during those calls). Conditions (``--condition``,
repeatable; default: :data:`DEFAULT_CONDITIONS`) are ``+``-joined terms, each optionally
``up:``/``down:`` for one direction only: ``loss=10`` (%), ``loss=10/3`` (in bursts of 3
packets on average, Gilbert–Elliott), ``jitter=30`` (ms), ``delay=80`` (ms, replaces
``--delay-ms``), ``reorder=1`` (%), ``outage=2@speaking`` or ``outage=2@listening`` (seconds,
both ways, 0.3 s into the caller's second utterance, or into hearing its reply), ``clean``.
Every condition has ``--delay-ms`` (default 25 ms) each way on top.

``--uplink`` measures the bridge's own hop instead: the callers' link stays clean, a second
link goes between ``bridge start`` and a simulator in a *model* namespace, and the
conditions apply there (default: clean, 10 % loss, 2 s outages); the table adds what the
bridge says of each call (reconnects, caller audio re-sent, lost, dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bridge.errors import BenchmarkError
from bridge.local import netns, processes
from bridge.local.caller_script import DEFAULT_TURNS, Turn
from bridge.local.impaired_call import (
    CallError,
    CallResult,
    Condition,
    Hop,
    Outage,
    Reach,
    run_call,
)
from bridge.local.impairment import Impairment
from bridge.local.livekit_server import INSTALL_HINT, LocalLiveKit, find_binary
from bridge.local.tun_link import Link, LinkError, caller_link, model_link
from bridge.pod.settings import child_environment, drop_proxy_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
AGENT_NAME = "bridge-impairment"
METRICS_PORT = 9110
SIM_PORT = 8790
PATHS = ("webrtc", "websocket")
ATTEMPTS = 3
# On a machine shared with other work, everything this command starts (the server, the
# bridge, the simulators: each path's servers alike) runs a little ahead of the rest (they
# inherit this), the callers further ahead (bridge.local.impaired_caller), the link ahead of
# all (SCHED_FIFO): what is measured is the paths, not the neighbours.
TESTBED_PRIORITY = -5

DEFAULT_CONDITIONS = (
    "clean",
    "loss=2",
    "loss=5",
    "loss=10",
    "loss=20",
    "loss=30",
    "loss=10/3",
    "jitter=30",
    "jitter=100",
    "outage=2@speaking",
    "outage=2@listening",
)
UPLINK_CONDITIONS = ("clean", "loss=10", "outage=2@speaking", "outage=2@listening")

PROFILES = """
[defaults]
model = "gpt-realtime"

[profiles.default]
instructions = "Say back what you hear."
voice = "cedar"
input = "linked"
[profiles.default.turn_detection]
type = "server_vad"
silence_duration_ms = 400
"""


# ---------------------------------------------------------------------- conditions


def parse_condition(spec: str, *, delay_ms: float = 25.0) -> Condition:
    """A :class:`Condition` from a spec (see the module docstring); ``ValueError`` if bad."""
    fields: dict[str, dict[str, float]] = {"up": {"delay_ms": delay_ms}, "down": {}}
    fields["down"] = dict(fields["up"])
    outage: Outage | None = None
    for term in (t.strip() for t in spec.split("+")):
        if not term or term == "clean":
            continue
        directions: tuple[str, ...] = ("up", "down")
        if term.startswith(("up:", "down:")):
            side, term = term.split(":", 1)
            directions = (side,)
        key, _, value = term.partition("=")
        if not value:
            raise ValueError(f"{spec!r}: {term!r} is not KEY=VALUE")
        try:
            if key == "outage":
                seconds, _, during = value.partition("@")
                if during not in ("speaking", "listening"):
                    raise ValueError("outage=SECONDS@speaking or @listening")
                if len(directions) == 1:
                    raise ValueError("an outage cuts both directions (no up: or down:)")
                length = float(seconds)
                if not (math.isfinite(length) and length > 0):
                    raise ValueError(f"an outage lasts a positive number of seconds, not {seconds}")
                outage = Outage(length, during)  # type: ignore[arg-type]
                continue
            if key == "loss":
                share, _, burst = value.partition("/")
                update = {"loss": float(share) / 100, "burst": float(burst or 1)}
            elif key == "jitter":
                update = {"jitter_ms": float(value)}
            elif key == "delay":
                update = {"delay_ms": float(value)}
            elif key == "reorder":
                update = {"reorder": float(value) / 100}
            else:
                raise ValueError(f"unknown term {key!r} (loss, jitter, delay, reorder, outage)")
        except ValueError as exc:
            raise ValueError(f"{spec!r}: {exc}") from None
        for side in directions:
            fields[side].update(update)
    try:
        up, down = Impairment(**fields["up"]), Impairment(**fields["down"])
    except ValueError as exc:
        raise ValueError(f"{spec!r}: {exc}") from None
    return Condition(spec, up, down, outage)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImpairmentOptions:
    conditions: tuple[str, ...] = DEFAULT_CONDITIONS
    paths: tuple[str, ...] = PATHS
    repeat: int = 1
    delay_ms: float = 25.0
    turns: tuple[Turn, ...] = DEFAULT_TURNS
    uplink: bool = False
    seed: int = 1
    keep_dir: Path | None = None
    # A call whose caller process fell this far behind its own clock (a loaded machine:
    # see ``Mouth.pause``) is run again, up to ATTEMPTS times; the figures keep the last.
    max_caller_stall_ms: float = 200.0
    parsed: tuple[Condition, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        if self.repeat < 1:
            raise ValueError("--repeat must be at least 1")
        unknown = set(self.paths) - set(PATHS)
        if unknown or not self.paths:
            raise ValueError(f"paths are webrtc and/or websocket, not {sorted(unknown)}")
        if self.uplink and set(self.paths) != {"webrtc"}:
            raise ValueError("--uplink measures the bridge's hop: the webrtc path only")
        parsed = tuple(parse_condition(c, delay_ms=self.delay_ms) for c in self.conditions)
        object.__setattr__(self, "parsed", parsed)


# ---------------------------------------------------------------------- the machine


def unavailable() -> str | None:
    """Why the benchmark cannot run here (None: it can)."""
    reason = netns.unavailable()
    if reason:
        return f"bridge bench --impairment makes network namespaces and TUN devices: {reason}"
    if find_binary() is None:
        return f"livekit-server is not installed: run {INSTALL_HINT}"
    if not Path("/dev/net/tun").exists():
        return "bridge bench --impairment needs /dev/net/tun"
    return None


@dataclass
class Process:
    """A child process with its log file."""

    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout: float = 20.0) -> None:
        processes.stop(self.process, timeout)

    def records(self, **match: str) -> list[dict[str, Any]]:
        """The JSON log records whose fields include ``match``."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if all(record.get(k) == v for k, v in match.items()):
                    found.append(record)
        return found


def start_simulator(work: Path, host: str, port: int, namespace: netns.Namespace | None) -> str:
    """``bridge sim`` (echo) listening on ``host:port`` (in ``namespace``); its URL."""
    log = work / f"sim-{host}.log"
    argv = [sys.executable, "-m", "bridge", "sim", "--host", host, "--port", str(port)]
    argv += ["--journal", str(work / f"sim-{host}.jsonl")]
    with log.open("wb") as err:
        process = subprocess.Popen(
            namespace.command(argv) if namespace else argv,
            stdout=subprocess.PIPE,
            stderr=err,
            env=child_environment(fresh=True),
            cwd=REPO_ROOT,
        )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 30)
    line = process.stdout.readline().decode().strip() if ready else ""
    prefix = "realtime simulator listening on "
    if not line.startswith(prefix):
        process.kill()
        raise BenchmarkError(f"bridge sim did not start: {log.read_text()[-1000:]}")
    _SIMS.append(Process(process, log))
    return line.removeprefix(prefix)


_SIMS: list[Process] = []


def start_worker(
    work: Path, livekit: LocalLiveKit, sim_url: str, *, name: str, port: int
) -> Process:
    """``bridge start`` registered as ``name``, the model at ``sim_url``; once ready."""
    profiles = work / "profiles.toml"
    profiles.write_text(PROFILES)
    log = work / f"worker-{name}.log"
    creds = livekit.credentials
    env = child_environment(
        fresh=True,
        LIVEKIT_URL=creds.url,
        LIVEKIT_API_KEY=creds.api_key,
        LIVEKIT_API_SECRET=creds.api_secret,
        LIVEKIT_AGENT_NAME=name,
        BRIDGE_REALTIME_URL=sim_url,
        BRIDGE_PROFILES=str(profiles),
        BRIDGE_METRICS_PORT=str(port),
        BRIDGE_LOG_FORMAT="json",
        BRIDGE_EMPTY_ROOM_GRACE="2",
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "start"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO_ROOT,
        )
    worker = Process(process, log)
    deadline = time.monotonic() + 60
    while not processes.worker_ready(port):
        if process.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            raise BenchmarkError(f"bridge start did not register:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
    return worker


@dataclass
class Testbed:
    """The namespaces, links and servers of one run (see the module docstring)."""

    work: Path
    servers: netns.Namespace
    caller_ns: netns.Namespace
    caller_hop: Hop
    livekit: LocalLiveKit
    sim_url: str
    worker: Process
    model_ns: netns.Namespace | None = None
    model_hop: Hop | None = None

    def reach(self, path: str) -> Reach:
        """How a caller reaches the agent on ``path`` (a fresh room for WebRTC)."""
        if path == "websocket":
            return Reach("websocket", self.sim_url)
        room = f"impaired-{uuid.uuid4().hex[:8]}"
        creds = self.livekit.credentials

        def dispatch() -> None:
            asyncio.run(_dispatch(creds.http_url, creds.api_key, creds.api_secret, room))

        return Reach("webrtc", creds.url, token=_token(creds, room), after_start=dispatch)


def _token(creds: Any, room: str) -> str:
    from livekit import api

    grant = api.VideoGrants(room_join=True, room=room)
    minted = api.AccessToken(creds.api_key, creds.api_secret).with_identity("caller")
    return str(minted.with_grants(grant).to_jwt())


async def _dispatch(url: str, key: str, secret: str, room: str) -> None:
    from livekit import api

    metadata = json.dumps({"profile": "default", "participant": "caller"})
    async with api.LiveKitAPI(url, key, secret) as lk:
        await lk.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name=AGENT_NAME, room=room, metadata=metadata)
        )


@contextlib.contextmanager
def testbed(work: Path, *, uplink: bool, seed: int, progress: IO[str]) -> Iterator[Testbed]:
    """Make everything, move this process into the servers' namespace, and undo it all."""
    reason = unavailable()
    if reason:
        raise BenchmarkError(reason)
    with contextlib.suppress(OSError):  # see TESTBED_PRIORITY
        os.setpriority(os.PRIO_PROCESS, 0, TESTBED_PRIORITY)
    pid = os.getpid()
    made: list[netns.Namespace] = []
    links: list[Link] = []
    servers_started: list[Any] = []
    try:
        servers = netns.create(f"bridge-imp-{pid}")
        made.append(servers)
        servers.enter()
        drop_proxy_settings()
        caller_ns = netns.create(f"bridge-imp-caller-{pid}", links=())
        made.append(caller_ns)
        link = Link(caller_link(pid, caller_ns, servers, seed=seed))
        links.append(link)
        caller_hop = Hop(link, caller_ns, servers)
        model_ns = model_hop = None
        if uplink:
            model_ns = netns.create(f"bridge-imp-model-{pid}", links=())
            made.append(model_ns)
            mlink = Link(model_link(pid, servers, model_ns, seed=seed + 1))
            links.append(mlink)
            model_hop = Hop(mlink, servers, model_ns)
        progress.write(f"namespaces and links ready (link scheduling: {link.scheduling})\n")
        livekit = LocalLiveKit(work / "livekit", bind=servers.host)
        livekit.start()
        servers_started.append(livekit)
        sim_url = start_simulator(work, servers.host, SIM_PORT, None)
        worker_sim = sim_url
        if uplink:
            assert model_ns is not None and model_hop is not None
            worker_sim = start_simulator(work, model_hop.link.spec.far.address, SIM_PORT, model_ns)
        worker = start_worker(work, livekit, worker_sim, name=AGENT_NAME, port=METRICS_PORT)
        servers_started.append(worker)
        progress.write(f"livekit-server, bridge sim and bridge start ready in {work}\n")
        yield Testbed(
            work, servers, caller_ns, caller_hop, livekit, sim_url, worker, model_ns, model_hop
        )
    finally:
        for started in reversed(servers_started):
            started.stop()
        while _SIMS:
            _SIMS.pop().stop()
        for link in links:
            link.close()
        for namespace in reversed(made):
            namespace.delete()


# ---------------------------------------------------------------------- the run


def run_impairment(options: ImpairmentOptions, progress: IO[str] = sys.stderr) -> dict[str, Any]:
    """Every condition × path × repeat; the document the report reads."""
    keep = options.keep_dir
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        work_dir = keep
        cleanup = None
    else:
        import tempfile

        cleanup = tempfile.TemporaryDirectory(prefix="bridge-impairment-")
        work_dir = Path(cleanup.name)
    calls: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        with testbed(work_dir, uplink=options.uplink, seed=options.seed, progress=progress) as bed:
            hop = bed.model_hop if options.uplink else bed.caller_hop
            assert hop is not None
            plan = [
                (c, p, k)
                for k in range(options.repeat)
                for c in options.parsed
                for p in options.paths
            ]
            for index, (condition, path, k) in enumerate(plan, 1):
                out = work_dir / "calls" / f"{index:03d}-{path}-{_slug(condition.name)}-{k}"
                progress.write(f"[{index}/{len(plan)}] {path:9} {condition.describe()} ... ")
                progress.flush()
                for attempt in range(1, ATTEMPTS + 1):
                    seen = len(bed.worker.records(event="call.ended"))
                    try:
                        result = run_call(
                            bed.caller_ns,
                            hop,
                            bed.reach(path),
                            condition,
                            out / f"attempt-{attempt}",
                            turns=options.turns,
                            env=child_environment(fresh=True),
                        )
                    except (
                        CallError,
                        LinkError,
                        OSError,
                        subprocess.TimeoutExpired,
                        ValueError,  # a caller's result that is not JSON
                    ) as exc:
                        raise BenchmarkError(f"{path} call under {condition.name}: {exc}") from exc
                    stalled = float(result.caller.get("stalled_ms") or 0.0)
                    if stalled <= options.max_caller_stall_ms or attempt == ATTEMPTS:
                        break
                    progress.write(f"the caller itself stalled {stalled:.0f} ms: again ... ")
                    progress.flush()
                document = result.to_json()
                document["attempts"] = attempt
                if options.uplink and path == "webrtc":
                    document["bridge"] = _bridge_view(bed.worker, seen)
                calls.append(document)
                progress.write(_one_line(result) + "\n")
                progress.flush()
    finally:
        if cleanup is not None:
            cleanup.cleanup()
    return {
        "command": " ".join(["bridge", *sys.argv[1:]]) if sys.argv else "",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "uplink": options.uplink,
        "delay_ms": options.delay_ms,
        "conditions": [
            {
                "name": c.name,
                "describe": c.describe(),
                "up": c.up.to_json(),
                "down": c.down.to_json(),
                "outage": None
                if c.outage is None
                else {"seconds": c.outage.seconds, "during": c.outage.during},
            }
            for c in options.parsed
        ],
        "turns": [t.to_json() for t in options.turns],
        "calls": calls,
        "wall_s": round(time.monotonic() - started, 1),
    }


def _bridge_view(worker: Process, seen: int) -> dict[str, Any]:
    """What ``bridge start`` logged of the last call (its ``call.ended`` record, the
    ``seen + 1``-th), once it has."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        ended = worker.records(event="call.ended")
        if len(ended) > seen:
            skip = ("timestamp", "level", "logger")
            return {k: v for k, v in ended[seen].items() if k not in skip}
        time.sleep(0.2)
    return {}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)[:40]


def _one_line(result: CallResult) -> str:
    m2e = [t.mouth_to_ear_ms for t in result.turns if t.mouth_to_ear_ms is not None]
    heard = f"mouth-to-ear {', '.join(f'{v:.0f}' for v in m2e)} ms" if m2e else "no reply"
    survived = "survived" if result.survived else f"did not survive ({result.failure})"
    loss = result.probe_up.loss if result.probe_up else float("nan")
    return f"{heard}; {survived}; measured up loss {loss:.1%} ({result.wall_s:.0f} s)"
