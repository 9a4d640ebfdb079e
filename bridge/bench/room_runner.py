"""``bridge bench --room livekit``: the same phases, through a real LiveKit server.

Per phase, the engine's worker process(es) (:mod:`bridge.bench.phase`, registered with the
server under an agent name of the phase's own) and one process of callers
(:mod:`bridge.bench.room_callers`, real rtc participants, one room each) run against one
server: a local ``livekit-server`` started here (inside the bench's private network
namespace: :mod:`bridge.local.netns`), or the server of ``--livekit-url``. The workers'
figures (socket events, engine-side latencies, CPU and memory of the worker processes only)
and the callers' (what each heard, when) are joined per room on the one monotonic clock of
the machine. The server's and the callers' CPU are reported apart, never in the engine's.

Loopback-only floor phases have no meaning here (the room's cost is Opus and the network,
not a loopback): the "own CPU" column stays empty.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from bridge.bench.meter import (
    Reply,
    Truncation,
    barge_in_silences,
    truncation_errors,
    voice_to_voice,
)
from bridge.bench.phase import PhaseConfig
from bridge.bench.room_callers import CallersConfig
from bridge.bench.runner import Progress, run_workers
from bridge.errors import BenchmarkError
from bridge.local.livekit_server import Credentials, LocalLiveKit
from bridge.pod.settings import child_environment

CALLERS_EXIT_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class RoomSetup:
    """Where the phases' calls happen."""

    credentials: Credentials
    server_pid: int | None = None  # a server started by the bench (its CPU is reported)


@contextlib.contextmanager
def livekit_room(work: Path, *, bind: str | None, given: Credentials | None) -> Iterator[RoomSetup]:
    """The server of ``given``, or a local one bound to ``bind`` for the whole bench."""
    if given is not None:
        yield RoomSetup(given)
        return
    if bind is None:
        raise BenchmarkError("no LiveKit server: give --livekit-url, or run as root")
    with LocalLiveKit(work / "livekit", bind=bind) as server:
        yield RoomSetup(server.credentials, server.pid)


def child_env(setup: RoomSetup, sim_url: str) -> dict[str, str]:
    """The environment of a phase's processes: the server's credentials, the simulator."""
    creds = setup.credentials
    return child_environment(
        LIVEKIT_URL=creds.url,
        LIVEKIT_API_KEY=creds.api_key,
        LIVEKIT_API_SECRET=creds.api_secret,
        BRIDGE_REALTIME_URL=sim_url,
    )


def run_room_phase(
    configs: list[PhaseConfig],
    setup: RoomSetup,
    progress: Progress,
    log: Path,
    *,
    sessions: int,
    seed: int,
) -> dict[str, Any]:
    """The worker(s) of one phase and its callers; the figures, calls joined per room."""
    first = configs[0]
    out_dir = Path(first.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = child_env(setup, first.sim_url)
    callers_config = CallersConfig(
        sessions=sessions,
        agent_name=first.agent_name,
        room_prefix=f"{out_dir.name}-{os.getpid()}",
        out_dir=str(out_dir),
        seed=seed,
    )
    callers: list[subprocess.Popen[bytes]] = []
    callers_log = log.with_suffix(".callers.log")

    def start_callers() -> None:
        command = [
            sys.executable,
            "-m",
            "bridge.bench.room_callers",
            json.dumps(asdict(callers_config)),
        ]
        with callers_log.open("wb") as err:
            callers.append(subprocess.Popen(command, stderr=err, stdout=err, env=env))

    server = psutil.Process(setup.server_pid) if setup.server_pid else None
    server_cpu0, t0 = (sum(server.cpu_times()[:2]) if server else 0.0), time.monotonic()
    try:
        phase = run_workers(configs, progress, log, env=env, on_registered=start_callers)
    finally:
        for proc in callers:
            try:
                proc.wait(CALLERS_EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    elapsed = time.monotonic() - t0
    if server is not None:
        used = sum(server.cpu_times()[:2]) - server_cpu0
        phase["server_cpu_percent"] = round(100 * used / elapsed, 2)
    with contextlib.suppress(OSError, ValueError):
        data = json.loads((out_dir / "callers-cpu.json").read_text(encoding="utf-8"))
        phase["callers_cpu_percent"] = data["cpu_percent"]
    phase["calls"] = joined_calls(out_dir, sessions, first.engine)
    phase["config"] = {**phase["config"], "sessions": sessions}
    return phase


def joined_calls(out_dir: Path, sessions: int, engine: str) -> list[dict[str, Any]]:
    """Each room's call: the engine's figures joined with what its caller heard."""
    calls = []
    for path in sorted(out_dir.glob("caller-*.json")):
        heard = json.loads(path.read_text(encoding="utf-8"))
        room = heard["room"]
        worker_path = out_dir / f"result-{room}.json"
        worker: dict[str, Any] = (
            json.loads(worker_path.read_text(encoding="utf-8")) if worker_path.exists() else {}
        )
        calls.append(join_call(engine, heard, worker))
    while len(calls) < sessions:
        calls.append(join_call(engine, {"error": "the caller never reported"}, {}))
    return calls


def join_call(engine: str, heard: dict[str, Any], worker: dict[str, Any]) -> dict[str, Any]:
    """One call's figures in the loopback bench's shape (``bridge.bench.summary``)."""
    replies = [Reply(**r) for r in heard.get("replies", [])]
    truncations = [Truncation(**t) for t in worker.get("truncations", [])]
    error = heard.get("error") or worker.get("error")
    if not worker and not error:
        error = "the engine reported no figures"
    return {
        "room": heard.get("room"),
        "engine": engine,
        "error": error,
        "in_latency_ms": worker.get("in_latency_ms", []),
        "out_latency_ms": worker.get("out_latency_ms", []),
        "voice_to_voice_ms": [
            round(v, 3)
            for v in voice_to_voice(
                worker.get("speech_stopped", []), worker.get("speech_started", []), replies
            )
        ],
        "barge_in_stop_ms": worker.get("barge_in_stop_ms", []),
        "barge_in_silent_ms": [
            round(v, 3) for v in barge_in_silences(worker.get("barge_in_started", []), replies)
        ],
        "truncation_error_ms": [round(v, 3) for v in truncation_errors(truncations, replies)],
        "mouth_to_ear_ms": heard.get("mouth_to_ear_ms", []),
        "barge_ins_missed": worker.get("barge_ins_missed", 0),
        "truncations": len(truncations),
        "replies": len(replies),
        "underruns": sum(r.gaps for r in replies),
        "dropped_frames": worker.get("dropped_frames", 0),
        "utterances": heard.get("utterances", 0),
        "caller_barge_ins": heard.get("caller_barge_ins", 0),
        "unanswered": heard.get("unanswered", 0),
        "loop_stall_max_ms": worker.get("loop_stall_max_ms", 0.0),
        "loop_stall_p99_ms": worker.get("loop_stall_p99_ms", 0.0),
        "responses": worker.get("responses", 0),
        "gc": worker.get("gc", {"collections": 0, "full_collections": 0, "max_pause_ms": 0.0}),
        "engine_figures": worker.get("engine_figures", {}),
    }
