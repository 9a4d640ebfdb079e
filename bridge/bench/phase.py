"""One measured phase of ``bridge bench``, in a process of its own.

    python -m bridge.bench.phase '{"engine": "bridge", "sessions": 8, ...}'

Runs ``livekit-agents``' own ``AgentServer`` unregistered (no LiveKit server needed) with the
requested job executor, launches ``sessions`` fake jobs whose entrypoint is a benchmark call
(:mod:`bridge.bench.job`), and measures the process tree while all of them run:

- CPU: user + system time of this process and every process it started (job processes,
  the forkserver), over the steady window, as % of one core;
- memory: RSS of this process before any call, after the first call settled, and at its
  largest during the window; with job processes, their PSS (shared pages split fairly
  between the processes sharing them) added to this process's.

Progress goes to stdout as JSON lines (``{"progress": …}``), the figures as the last line
(``{"result": …}``); everything else (logs) goes to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from bridge.bench.job import JobConfig, request_stop
from bridge.bench.summary import COUNTS, LATENCIES
from bridge.pod.settings import set_bench_job

MB = 1024 * 1024
END_TIMEOUT_S = 90.0  # after the stop file: calls still running by then are reported as failed


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseConfig:
    engine: str  # bridge | livekit-plugin | floor:bridge | floor:livekit-plugin
    sessions: int
    duration_s: float
    executor: str  # thread | process
    sim_url: str
    out_dir: str
    seed: int = 1
    warmup_s: float = 3.0
    start_timeout_s: float = 180.0
    cpus: tuple[int, ...] = ()  # pin the process (every thread) to these CPUs; () = not pinned
    # "loopback": fake jobs, callers and listeners in this process; "livekit": registered with
    # the LiveKit server of LIVEKIT_URL as ``agent_name``, dispatched by callers of their own
    # process (bridge.bench.room_callers), ``sessions`` of them in all (whichever worker of a
    # layout the server picks).
    room: str = "loopback"
    agent_name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "cpus", tuple(self.cpus))  # JSON gives a list
        if self.sessions < 1:
            raise ValueError("sessions must be at least 1")
        if self.executor not in ("thread", "process"):
            raise ValueError("executor must be 'thread' or 'process'")
        if not self.duration_s > 0:
            raise ValueError("duration_s must be positive")
        if self.room not in ("loopback", "livekit"):
            raise ValueError("room must be 'loopback' or 'livekit'")
        if self.room == "livekit" and not self.agent_name:
            raise ValueError("a phase through a LiveKit server needs an agent name")


def pin(cpus: tuple[int, ...]) -> None:
    """Run this process, every thread it has and will have, on ``cpus`` only.

    What a pod gets from the kubelet's static CPU manager (a Guaranteed pod with whole CPUs
    has them to itself), or ``taskset -c`` on a VM. Affinity is per thread on Linux, so each
    thread already running is pinned too; threads started later inherit it.
    """
    if not cpus:
        return
    tasks = Path("/proc/self/task")
    ids = [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [0]
    for tid in ids:
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(tid, set(cpus))


def _emit(kind: str, data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps({kind: data}) + "\n")
    sys.stdout.flush()


class TreeMeter:
    """CPU and memory of this process and its descendants."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self._known: dict[int, psutil.Process] = {}

    def processes(self) -> list[psutil.Process]:
        procs = [self.me]
        for child in self.me.children(recursive=True):
            procs.append(self._known.setdefault(child.pid, child))
        return procs

    def cpu_seconds(self) -> dict[int, float]:
        out: dict[int, float] = {}
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                out[proc.pid] = times.user + times.system
        return out

    def memory_mb(self) -> tuple[float, float]:
        """(RSS of this process, this RSS plus the PSS of every descendant)."""
        rss = self.me.memory_info().rss / MB
        total = rss
        for child in self.processes()[1:]:
            with contextlib.suppress(psutil.Error):
                total += child.memory_full_info().pss / MB
        return rss, total


def _unfinished(config: PhaseConfig) -> dict[str, Any]:
    """The figures of a call that did not end within END_TIMEOUT_S of being told to."""
    call: dict[str, Any] = {
        "engine": config.engine,
        "error": f"the call did not end within {END_TIMEOUT_S:.0f} s of the stop",
        "engine_figures": {},
        "gc": {"collections": 0, "full_collections": 0, "max_pause_ms": 0.0},
        "loop_stall_max_ms": 0.0,
        "loop_stall_p99_ms": 0.0,
    }
    for key in LATENCIES:
        call[key] = []
    for key in COUNTS:
        call[key] = 0
    return call


def _count(out_dir: Path, prefix: str) -> int:
    return sum(1 for p in out_dir.iterdir() if p.name.startswith(prefix) and p.suffix != ".tmp")


async def _until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@dataclass(frozen=True, slots=True)
class Window:
    """CPU and memory of the process tree over a phase's measured window."""

    seconds: float
    cpu_percent: float
    processes: int
    rss_peak_mb: float
    memory_peak_mb: float


async def _measure(meter: TreeMeter, config: PhaseConfig, running: Callable[[], int]) -> Window:
    """After the warm-up, ``config.duration_s`` of the tree's CPU and memory, with progress
    lines (``running``: the calls still on)."""
    await asyncio.sleep(config.warmup_s)
    cpu0, t0 = meter.cpu_seconds(), time.monotonic()
    rss_peak = total_peak = 0.0
    while (elapsed := time.monotonic() - t0) < config.duration_s:
        rss, total = meter.memory_mb()
        rss_peak, total_peak = max(rss_peak, rss), max(total_peak, total)
        cpu = meter.cpu_seconds()
        used = sum(cpu[p] - cpu0[p] for p in cpu if p in cpu0)
        _emit(
            "progress",
            {
                "elapsed_s": round(elapsed, 1),
                "calls": running(),
                "cpu_percent": round(100 * used / max(elapsed, 1e-3), 1),
                "memory_mb": round(total, 1),
            },
        )
        await asyncio.sleep(min(1.0, max(config.duration_s - elapsed, 0.01)))
    cpu1, t1 = meter.cpu_seconds(), time.monotonic()
    used = sum(cpu1[p] - cpu0[p] for p in cpu1 if p in cpu0)
    return Window(t1 - t0, 100 * used / (t1 - t0), len(cpu1), rss_peak, total_peak)


async def _stop(out_dir: Path, config: PhaseConfig) -> None:
    """Ask the calls to end, and wait for their figures (one that never ends: reported)."""
    request_stop(out_dir)
    with contextlib.suppress(TimeoutError):
        await _until(
            lambda: _count(out_dir, "result-") >= config.sessions,
            END_TIMEOUT_S,
            "the calls to end",
        )


def _figures(
    config: PhaseConfig,
    window: Window,
    base: tuple[float, float, float],
    calls: list[dict[str, Any]],
) -> dict[str, Any]:
    """A phase's result (``base``: RSS before any call, RSS and tree memory after the first)."""
    rss_base, rss_one, total_one = base
    return {
        "config": asdict(config),
        "window_s": round(window.seconds, 3),
        "cpu_percent": round(window.cpu_percent, 2),
        "processes": window.processes,
        "rss_mb_base": round(rss_base, 1),
        "rss_mb_one": round(rss_one, 1),
        "memory_mb_one": round(total_one, 1),
        "rss_mb_peak": round(window.rss_peak_mb, 1),
        "memory_mb_peak": round(window.memory_peak_mb, 1),
        "calls": calls,
    }


async def run_phase(config: PhaseConfig) -> dict[str, Any]:
    if config.room == "livekit":
        return await run_room_phase(config)
    from livekit.agents import AgentServer, JobExecutorType

    from bridge.bench.job import entrypoint

    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    set_bench_job(
        JobConfig(
            engine=config.engine, sim_url=config.sim_url, out_dir=str(out_dir), seed=config.seed
        ).to_env()
    )
    if not config.engine.endswith("livekit-plugin"):  # ours, as `bridge start` runs it
        from bridge.pod.settings import skip_local_models

        skip_local_models()
    if not config.engine.startswith("floor:"):  # import before measuring the base
        from bridge.bench import engines

        if config.engine == "livekit-plugin":
            engines.install_plugin_hooks()
            import livekit.plugins.openai  # noqa: F401
        else:
            import bridge.call.call  # noqa: F401
    meter = TreeMeter()
    rss_base = meter.memory_mb()[0]

    server = AgentServer(
        job_executor_type=(
            JobExecutorType.THREAD if config.executor == "thread" else JobExecutorType.PROCESS
        ),
        num_idle_processes=0,
        load_threshold=float("inf"),
        port=0,
        initialize_process_timeout=60.0,
        job_memory_warn_mb=4000,
    )
    server.rtc_session(entrypoint)
    started = asyncio.Event()
    server.on("worker_started", lambda *_: started.set())
    runner = asyncio.create_task(server.run(devmode=False, unregistered=True), name="server")
    try:
        await asyncio.wait_for(started.wait(), 30)
        await server.simulate_job("bench", fake_job=True)
        await _until(lambda: _count(out_dir, "started-") >= 1, config.start_timeout_s, "a call")
        await asyncio.sleep(2.0)
        rss_one, total_one = meter.memory_mb()
        for _ in range(config.sessions - 1):
            await server.simulate_job("bench", fake_job=True)
            await asyncio.sleep(0.05)
        await _until(
            lambda: _count(out_dir, "started-") >= config.sessions,
            config.start_timeout_s,
            f"{config.sessions} calls",
        )
        window = await _measure(meter, config, lambda: config.sessions - _count(out_dir, "result-"))
        await _stop(out_dir, config)
    finally:
        request_stop(out_dir)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.aclose(), 30)
        runner.cancel()
        with contextlib.suppress(BaseException):
            await runner
    calls = [
        json.loads(p.read_text(encoding="utf-8")) for p in sorted(out_dir.glob("result-*.json"))
    ]
    calls += [_unfinished(config) for _ in range(config.sessions - len(calls))]
    return _figures(config, window, (rss_base, rss_one, total_one), calls)


async def run_room_phase(config: PhaseConfig) -> dict[str, Any]:
    """The worker of a phase through a real server: registered, dispatched by the callers.

    Reports ``{"registered": …}`` once LiveKit has it (the runner then starts the callers),
    measures this process tree from the moment every call is live (the callers mark each
    ``started-ROOM``) plus the warm-up, for the duration, then asks the callers to leave
    (``stop``) and waits for the jobs to write their figures (the runner joins them with the
    callers'; ``calls`` here is empty).
    """
    from livekit.agents import AgentServer, JobExecutorType

    from bridge.bench.job import room_entrypoint
    from bridge.pod.agent import prepare_ffi
    from bridge.pod.settings import LiveKitSettings

    prepare_ffi()  # before any job thread, as bridge start does (bridge/pod/agent.py)

    lk = LiveKitSettings.from_env()
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    set_bench_job(
        JobConfig(
            engine=config.engine, sim_url=config.sim_url, out_dir=str(out_dir), seed=config.seed
        ).to_env()
    )
    if not config.engine.endswith("livekit-plugin"):  # ours, as `bridge start` runs it
        from bridge.pod.settings import skip_local_models

        skip_local_models()
        import bridge.pod.agent  # noqa: F401  (import before measuring the base)
    else:
        from bridge.bench import engines

        engines.install_plugin_hooks()
        import livekit.plugins.openai  # noqa: F401
    meter = TreeMeter()
    rss_base = meter.memory_mb()[0]
    server = AgentServer(
        job_executor_type=(
            JobExecutorType.THREAD if config.executor == "thread" else JobExecutorType.PROCESS
        ),
        num_idle_processes=1,  # as bridge start runs (BRIDGE_IDLE_PROCESSES)
        load_threshold=float("inf"),
        # LiveKit weighs workers by 1 - load; livekit-agents' default load is the machine's
        # CPU, which a busy machine (callers, server) fills: the bench's phase decides how
        # many calls a worker gets, so it reports none.
        load_fnc=lambda _server: 0.0,
        port=0,
        initialize_process_timeout=60.0,
        job_memory_warn_mb=4000,
        ws_url=lk.url,
        api_key=lk.api_key,
        api_secret=lk.api_secret,
    )
    server.rtc_session(room_entrypoint, agent_name=config.agent_name)
    registered = asyncio.Event()
    server.on("worker_registered", lambda *_: registered.set())
    runner = asyncio.create_task(server.run(devmode=False), name="server")
    try:
        await asyncio.wait_for(registered.wait(), 60)
        _emit("registered", {"agent_name": config.agent_name, "pid": os.getpid()})
        await _until(lambda: _count(out_dir, "started-") >= 1, config.start_timeout_s, "a call")
        await asyncio.sleep(2.0)
        rss_one, total_one = meter.memory_mb()
        await _until(
            lambda: _count(out_dir, "started-") >= config.sessions,
            config.start_timeout_s,
            f"{config.sessions} calls",
        )
        window = await _measure(meter, config, lambda: len(server.active_jobs))
        await _stop(out_dir, config)
    finally:
        request_stop(out_dir)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.aclose(), 30)
        runner.cancel()
        with contextlib.suppress(BaseException):
            await runner
    return _figures(config, window, (rss_base, rss_one, total_one), [])


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bridge.bench.phase PHASE_JSON", file=sys.stderr)
        return 2
    config = PhaseConfig(**json.loads(args[0]))
    pin(config.cpus)
    from bridge.logs import configure_logging

    configure_logging(json=False, level="warning")
    logging.getLogger().setLevel(logging.WARNING)
    result = asyncio.run(run_phase(config))
    _emit("result", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
