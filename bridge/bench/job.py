"""One benchmark call, run as a ``livekit-agents`` job.

The bench worker starts fake jobs on its ``AgentServer``; each runs :func:`entrypoint`, which
reads the phase's settings from ``BRIDGE_BENCH_JOB`` (JSON), claims a slot (0, 1, …) in the
phase's directory, plays its caller into its engine until the worker creates the ``stop``
file, and writes ``result-SLOT.json``. Files, not pipes: the same code runs in the worker's
threads (thread executor) and in job processes (process executor).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc

from bridge.bench.engines import AGENT_RATE, Engine, Probes, make_engine
from bridge.bench.meter import barge_in_silences, truncation_errors, voice_to_voice
from bridge.bench.pattern import CallerScript, PatternOptions
from bridge.bench.plugin_room import BenchParticipant
from bridge.bench.stalls import GcMonitor, LoopMonitor
from bridge.room.listener import Listener
from bridge.room.loopback import LoopbackCaller
from bridge.room.media_loop import MediaLoop

STOP_FILE = "stop"
STOP_CHECK_FRAMES = 20  # the caller looks for the stop file every 200 ms
CLOSE_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class JobConfig:
    engine: str
    sim_url: str
    out_dir: str
    seed: int = 1
    caller_rate: int = 48_000

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> JobConfig:
        from bridge.pod.settings import bench_job

        return cls(**json.loads(bench_job()))


def claim_slot(out_dir: Path) -> int:
    """The lowest slot no other job of this phase has taken (atomic across processes)."""
    for slot in itertools.count():
        try:
            os.close(os.open(out_dir / f"slot-{slot}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        return slot
    raise AssertionError("unreachable")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(path)


def _rounded(values: Any) -> list[float]:
    return [round(float(v), 3) for v in values]


def room_loop() -> MediaLoop:
    """The bench process's room: one loop, on its own thread, for every caller and listener.

    In production the room is a LiveKit server elsewhere; here its stand-ins (100 frames a
    second each way per call) share one loop, apart from the engines' loops, so that they
    cost every engine the same and stay out of the engines' way.
    """
    global _ROOM
    with _ROOM_LOCK:
        if _ROOM is None or not _ROOM.running:
            _ROOM = MediaLoop("bench-room")
        return _ROOM


_ROOM: MediaLoop | None = None
_ROOM_LOCK = threading.Lock()


async def run_call(config: JobConfig, slot: int, stop: Path) -> dict[str, Any]:
    """Play one caller into one engine until ``stop`` exists; return what was measured."""
    probes = Probes()
    gc_monitor = GcMonitor.install()
    room = room_loop()
    listeners: list[Listener] = []

    def on_track(track: rtc.LocalTrack) -> None:
        def listen() -> None:
            listeners.append(Listener(track, keep=False, on_frame=probes.meter.push))

        room.call_soon(listen)

    async def make_caller() -> LoopbackCaller:
        return LoopbackCaller(config.caller_rate, 1, identity=f"caller-{slot}")

    caller = await room.run(make_caller())
    participant = BenchParticipant(on_track, room.loop)
    engine = make_engine(config.engine, config.sim_url)
    script = CallerScript(config.caller_rate, PatternOptions(seed=config.seed * 1000 + slot))
    started_at = steady_at = time.monotonic()
    error: str | None = None
    monitor: LoopMonitor | None = None
    try:
        await engine.start(caller, participant, probes)
        monitor = await _monitor(engine)
        steady_at = time.monotonic()  # stalls and pauses count from here, not the start-up's
        (stop.parent / f"started-{slot}").touch()
        await room.run(_play(caller, script, probes, stop))
    except Exception as exc:  # reported in the result; the worker never waits on a dead job
        error = f"{type(exc).__name__}: {exc}"
        (stop.parent / f"started-{slot}").touch()
    ended_at = time.monotonic()
    probes.barge.finish(ended_at)
    try:
        await asyncio.wait_for(engine.aclose(), CLOSE_TIMEOUT_S)
    except TimeoutError:
        error = error or f"the engine did not close within {CLOSE_TIMEOUT_S:.0f} s"
    except Exception as exc:
        error = error or f"closing: {type(exc).__name__}: {exc}"

    async def close_room() -> None:
        for listener in listeners:
            await listener.aclose()
        await caller.aclose()

    await room.run(close_room())

    replies = probes.meter.replies()
    stalls = np.asarray(
        monitor.lateness(steady_at, ended_at) if monitor is not None else [], dtype=np.float64
    )
    return {
        "slot": slot,
        "engine": config.engine,
        "pid": os.getpid(),
        "thread": threading.get_ident(),
        "seconds": round(ended_at - started_at, 3),
        "error": error,
        "in_latency_ms": _rounded(probes.inp.values.array()),
        "out_latency_ms": _rounded(probes.out.values.array()),
        "voice_to_voice_ms": _rounded(voice_to_voice(probes.stops, probes.starts, replies)),
        "barge_in_stop_ms": _rounded(probes.barge.stops),
        "barge_in_silent_ms": _rounded(barge_in_silences(probes.barge.started, replies)),
        "truncation_error_ms": _rounded(truncation_errors(probes.truncations, replies)),
        "barge_ins_missed": probes.barge.missed,
        "truncations": len(probes.truncations),
        "replies": len(replies),
        "underruns": sum(r.gaps for r in replies),
        "dropped_frames": probes.inp.dropped_frames(engine.chunk_samples)
        if engine.chunk_samples
        else 0,
        "utterances": script.counts.utterances,
        "caller_barge_ins": script.counts.barge_ins,
        "unanswered": script.counts.unanswered,
        "loop_stall_max_ms": round(float(stalls.max()), 3) if stalls.size else 0.0,
        "loop_stall_p99_ms": round(float(np.percentile(stalls, 99)), 3) if stalls.size else 0.0,
        "responses": probes.responses,
        "gc": asdict(gc_monitor.figures(steady_at, ended_at)),
        "agent_states": len(participant.published.states),
        "engine_figures": engine.figures(),
    }


async def _monitor(engine: Engine) -> LoopMonitor | None:
    """The stall monitor of the loop the engine runs on (started there on first use)."""
    loop = engine.loop
    if loop is None:
        return None

    async def start() -> LoopMonitor:
        return LoopMonitor.on_current_loop()

    if loop is asyncio.get_running_loop():
        return await start()
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(start(), loop))


async def _play(caller: LoopbackCaller, script: CallerScript, probes: Probes, stop: Path) -> None:
    """The caller, 10 ms at a time in real time (the source paces it), until ``stop``."""
    rate = caller.sample_rate
    frames = 0
    while frames % STOP_CHECK_FRAMES or not stop.exists():
        samples = script.next_frame(probes.meter)
        await caller.source.capture_frame(rtc.AudioFrame(samples.tobytes(), rate, 1, samples.size))
        frames += 1


async def entrypoint(ctx: Any) -> None:
    """The ``AgentServer`` entrypoint of a benchmark job (``ctx``: its ``JobContext``)."""
    config = JobConfig.from_env()
    out_dir = Path(config.out_dir)
    slot = claim_slot(out_dir)
    result = await run_call(config, slot, out_dir / STOP_FILE)
    _write_json(out_dir / f"result-{slot}.json", result)
    ctx.shutdown("benchmark call done")


# ---------------------------------------------------------------------- through a real server


async def room_entrypoint(ctx: Any) -> None:
    """The entrypoint of a benchmark job in a real room (``bridge bench --room livekit``).

    The caller is a participant of its own process (:mod:`bridge.bench.room_callers`); here
    runs only the engine, exactly as it runs in production: ours is ``bridge start``'s own job
    body (:func:`bridge.pod.agent.run_job`) with the bench's probe; the plugin is an
    ``AgentSession`` with its ``RoomIO`` on the job's room. The engine-side figures go to
    ``result-ROOM.json``; the runner joins them with what the caller heard.
    """
    config = JobConfig.from_env()
    probes = Probes()
    gc_monitor = GcMonitor.install()
    started_at = time.monotonic()
    if config.engine.startswith("bridge"):
        routed = config.engine == "bridge"
        monitor, figures, error = await _bridge_in_room(ctx, probes, routed=routed)
    else:
        monitor, figures, error = await _plugin_in_room(ctx, probes, config)
    ended_at = time.monotonic()
    probes.barge.finish(ended_at)
    stalls = np.asarray(monitor.lateness(started_at + 2.0, ended_at), dtype=np.float64)
    result = {
        "room": ctx.job.room.name,
        "engine": config.engine,
        "pid": os.getpid(),
        "error": error,
        "in_latency_ms": _rounded(probes.inp.values.array()),
        "out_latency_ms": _rounded(probes.out.values.array()),
        "barge_in_stop_ms": _rounded(probes.barge.stops),
        "barge_ins_missed": probes.barge.missed,
        "speech_started": probes.starts,
        "speech_stopped": probes.stops,
        "barge_in_started": probes.barge.started,
        "truncations": [asdict(t) for t in probes.truncations],
        "responses": probes.responses,
        "dropped_frames": probes.inp.dropped_frames(figures.pop("chunk_samples")),
        "loop_stall_max_ms": round(float(stalls.max()), 3) if stalls.size else 0.0,
        "loop_stall_p99_ms": round(float(np.percentile(stalls, 99)), 3) if stalls.size else 0.0,
        "gc": asdict(gc_monitor.figures(started_at, ended_at)),
        "engine_figures": figures,
    }
    _write_json(Path(config.out_dir) / f"result-{ctx.job.room.name}.json", result)


async def _bridge_in_room(
    ctx: Any, probes: Probes, *, routed: bool
) -> tuple[LoopMonitor, dict[str, Any], str | None]:
    from bridge.call.call import Call, CallOptions
    from bridge.call.profiles import ProfileSet
    from bridge.pod.agent import AgentContext, run_job

    # The caller leaving ends the call at once: the phase is over, no grace to wait out.
    ended: list[Call] = []
    shared = AgentContext(
        profiles=ProfileSet.builtin(),
        options=CallOptions(empty_room_grace_s=0.2, routed_audio=routed),
        on_ended=ended.append,
    )
    job = asyncio.ensure_future(run_job(ctx, shared, probe=probes))
    # The media loop exists once the job has connected its room and started its call.
    while MediaLoop.current() is None and not job.done():
        await asyncio.sleep(0.05)
    media = MediaLoop.current() or MediaLoop.shared()
    monitor = await asyncio.wrap_future(
        asyncio.run_coroutine_threadsafe(_start_monitor(), media.loop)
    )
    await job
    figures: dict[str, Any] = {"chunk_samples": 24 * shared.profiles.default.chunk_ms}
    if ended:
        record = ended[0].record
        figures.update(
            interruptions=record.interruptions,
            errors=list(record.errors),
            policy_dropped_frames=record.dropped_frames,
            reported_underruns=record.underruns,
        )
    failed = ended[0].record.end_reason if ended and ended[0].record.failed else None
    return monitor, figures, failed


async def _plugin_in_room(
    ctx: Any, probes: Probes, config: JobConfig
) -> tuple[LoopMonitor, dict[str, Any], str | None]:
    from livekit.agents import Agent, AgentSession
    from livekit.plugins.openai import realtime

    from bridge.bench.engines import (
        _CURRENT,
        install_plugin_hooks,
        instrument_plugin_output,
        plugin_settings,
    )
    from bridge.call.profiles import ProfileSet
    from bridge.pod.agent import connect_room

    install_plugin_hooks()
    _CURRENT.set(probes)  # the session's tasks, created from here on, inherit it
    monitor = LoopMonitor.on_current_loop()  # the job's own loop, as livekit-agents runs it
    profile = ProfileSet.builtin().default
    await connect_room(ctx)  # as ours does: the plugin meets the same SDK race
    model = realtime.RealtimeModel(**plugin_settings(config.sim_url, profile))
    session: Any = AgentSession(llm=model, aec_warmup_duration=None)
    errors: list[dict[str, str]] = []
    closed = asyncio.Event()
    session.on("error", lambda e: errors.append({"code": type(e.error).__name__}))
    session.on("close", lambda _e: closed.set())
    await session.start(Agent(instructions=profile.session.instructions), room=ctx.room)
    instrument_plugin_output(session, probes)
    await closed.wait()  # RoomIO closes the session when the caller leaves
    with contextlib.suppress(Exception):
        await model.aclose()
    figures = {"chunk_samples": AGENT_RATE // 10, "errors": errors}
    return monitor, figures, None


async def _start_monitor() -> LoopMonitor:
    return LoopMonitor.on_current_loop()


def request_stop(out_dir: Path) -> None:
    (out_dir / STOP_FILE).touch()
