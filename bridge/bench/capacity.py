"""``bridge bench --capacity``: how many calls each way of running a pod holds.

A *layout* is an engine, a ``livekit-agents`` job executor and a number of worker processes
per pod. For each, the number of concurrent calls is raised (1, 2, 4, 8, 16, 24, 32, …) until
one of the criteria below fails, then bisected; the largest number that held is the
layout's capacity on this machine, and its figures (CPU and memory per call) give what a pod
of ``POD_CORES`` cores and ``POD_MEMORY_MB`` holds.

A number of calls *holds* when, measured over the whole run:

- every call ran without an error and heard at least one reply;
- nothing was dropped and no reply had a gap (underrun);
- voice-to-voice p99 stays under ``voice_to_voice_p99_ms`` (the simulator answers at once,
  so this is the bridge's own delay; ~10-30 ms when the machine keeps up);
- caller frame → socket p99 stays within ``in_latency_extra_ms`` of the same layout at 1 call;
- no event loop stalls longer than ``stall_max_ms``;
- the worker processes use at most ``cpu_share`` of the machine's cores (the headroom a pod
  keeps; LiveKit's own guidance is to stay well below full).

The loopback caller and listener run in the measured process (they are the room), so these
capacities are conservative: in production the room's side is a LiveKit server elsewhere.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.bench.phase import PhaseConfig
from bridge.bench.runner import Progress, command_line, machine, run_workers, workspace
from bridge.bench.summary import run_summary
from bridge.local.livekit_server import Credentials

if TYPE_CHECKING:
    from bridge.bench.room_runner import RoomSetup

POD_CORES = 4
POD_MEMORY_MB = 8192
STEPS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128)


@dataclass(frozen=True, slots=True)
class Layout:
    key: str
    engine: str
    executor: str
    workers: int
    description: str
    pinned: bool = False  # worker i runs on CPU i (mod the CPUs) only


LAYOUTS: tuple[Layout, ...] = (
    Layout(
        "plugin-process",
        "livekit-plugin",
        "process",
        1,
        "LiveKit Agents + OpenAI plugin, its default worker: one process per call",
    ),
    Layout(
        "plugin-thread",
        "livekit-plugin",
        "thread",
        1,
        "LiveKit Agents + OpenAI plugin, thread executor: one thread per call",
    ),
    Layout(
        "bridge",
        "bridge",
        "thread",
        1,
        "one bridge start process: every call on its media loop",
    ),
    Layout(
        "bridge-x2",
        "bridge",
        "thread",
        2,
        "two bridge start processes, calls spread between them",
    ),
    Layout(
        "bridge-pinned",
        "bridge",
        "thread",
        1,
        "one bridge start process on one CPU of its own (a 1-CPU pod, static CPU manager)",
        pinned=True,
    ),
    Layout(
        "bridge-x2-pinned",
        "bridge",
        "thread",
        2,
        "two bridge start processes, each on a CPU of its own (1-CPU pods, static CPU manager)",
        pinned=True,
    ),
    Layout("bridge-process", "bridge", "process", 1, "bridge start with the process executor"),
    Layout(
        "plugin-process-x2-pinned",
        "livekit-plugin",
        "process",
        2,
        "LiveKit Agents + OpenAI plugin, one process per call, two workers each on a CPU of "
        "its own",
        pinned=True,
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Criteria:
    cpu_share: float = 0.85
    voice_to_voice_p99_ms: float = 150.0
    in_latency_extra_ms: float = 30.0
    stall_max_ms: float = 100.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CapacityOptions:
    layouts: tuple[str, ...] = tuple(layout.key for layout in LAYOUTS)
    duration_s: float = 30.0
    max_sessions: int = 64
    seed: int = 1
    warmup_s: float = 3.0
    criteria: Criteria = Criteria()
    sim_url: str | None = None
    keep_dir: Path | None = None
    room: str = "loopback"  # or "livekit": through a real server (bridge.bench.room_runner)
    livekit: Credentials | None = None  # that server; default: a local one at livekit_bind
    livekit_bind: str | None = None

    def __post_init__(self) -> None:
        known = {layout.key for layout in LAYOUTS}
        for key in self.layouts:
            if key not in known:
                raise ValueError(f"unknown layout {key!r}: one of {', '.join(sorted(known))}")
        if self.max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        if not self.duration_s >= 1:
            raise ValueError("duration must be at least 1 s")


def failures(
    run: dict[str, Any], baseline_in_p99: float | None, criteria: Criteria, cpus: int
) -> list[str]:
    """Why ``run`` did not hold (empty: it held)."""
    why = []
    if run["error_count"]:
        why.append(f"{run['error_count']} errors")
    if run["replies"] < run["calls_measured"]:
        why.append("calls without a reply")
    if run["underruns"]:
        why.append(f"{run['underruns']} underruns")
    if run["dropped_frames"]:
        why.append(f"{run['dropped_frames']} dropped frames")
    v2v = run["voice_to_voice_ms"]["p99"]
    if v2v is None or v2v > criteria.voice_to_voice_p99_ms:
        why.append(f"voice-to-voice p99 {v2v} ms")
    in_p99 = run["in_latency_ms"]["p99"]
    if baseline_in_p99 is not None and (
        in_p99 is None or in_p99 > baseline_in_p99 + criteria.in_latency_extra_ms
    ):
        why.append(f"frame→socket p99 {in_p99} ms (1 call: {baseline_in_p99} ms)")
    if run["loop_stall_max_ms"] > criteria.stall_max_ms:
        why.append(f"loop stall {run['loop_stall_max_ms']} ms")
    if run["cpu_percent"] > cpus * 100 * criteria.cpu_share:
        why.append(f"CPU {run['cpu_percent']}% of {cpus} core{'s' if cpus > 1 else ''}")
    return why


def pod_estimate(run: dict[str, Any], holds: int, cores_here: int) -> dict[str, Any]:
    """What a pod of POD_CORES cores and POD_MEMORY_MB holds, running this layout.

    The layout is repeated per ``cores_here`` cores (its worker processes scale with the
    pod's cores), so it holds ``holds`` calls per ``cores_here`` cores, as measured, unless
    memory runs out first (base memory per worker set, plus the memory per call). CPU per
    call is not extrapolated on its own: whether the latency criteria or the CPU gave out
    first, what held here is the measure.
    """
    n = run["sessions"]
    scale = POD_CORES / cores_here
    base = run["rss_mb_base"]
    memory_per_call = max(run["memory_mb_peak"] - base, 0.0) / n
    by_cores = math.floor(holds * scale)
    by_memory = (
        math.floor((POD_MEMORY_MB * 0.9 - base * scale) / memory_per_call)
        if memory_per_call
        else by_cores
    )
    return {
        "cores": POD_CORES,
        "memory_mb": POD_MEMORY_MB,
        "cpu_percent_per_call": round(run["cpu_percent"] / n, 2),
        "memory_mb_per_call": round(memory_per_call, 1),
        "base_memory_mb": round(base, 1),
        "calls": min(by_cores, by_memory),
        "limited_by": "calls per core measured here" if by_cores <= by_memory else "memory",
    }


def _configs(
    layout: Layout, n: int, options: CapacityOptions, sim_url: str, out_dir: Path
) -> list[PhaseConfig]:
    workers = layout.workers
    cpus = os.cpu_count() or 1
    if options.room == "livekit":  # the server spreads the n calls over the workers
        return [
            PhaseConfig(
                engine=layout.engine,
                sessions=n,  # each worker waits for all n calls of the probe to be live
                duration_s=options.duration_s,
                executor=layout.executor,
                sim_url=sim_url,
                out_dir=str(out_dir),
                seed=options.seed,
                warmup_s=options.warmup_s,
                cpus=(i % cpus,) if layout.pinned else (),
                room="livekit",
                agent_name=f"capacity-{os.getpid()}-{out_dir.name}",
            )
            for i in range(workers)
        ]
    shares = [n // workers + (1 if i < n % workers else 0) for i in range(workers)]
    return [
        PhaseConfig(
            engine=layout.engine,
            sessions=share,
            duration_s=options.duration_s,
            executor=layout.executor,
            sim_url=sim_url,
            out_dir=str(out_dir / f"w{i}"),
            seed=options.seed + 100 * i,
            warmup_s=options.warmup_s,
            cpus=(i % cpus,) if layout.pinned else (),
        )
        for i, share in enumerate(shares)
        if share
    ]


class _Search:
    """One layout's capacity search (probes numbered across layouts)."""

    def __init__(
        self,
        layout: Layout,
        options: CapacityOptions,
        work: Path,
        sim_url: str,
        progress: Progress,
        probes: itertools.count[int],
        room: RoomSetup | None = None,
    ) -> None:
        self.layout, self.options, self.work, self.sim_url = layout, options, work, sim_url
        self.room = room
        self.progress, self.probes = progress, probes
        machine = os.cpu_count() or 1
        # The cores the layout may use: a pinned worker has one to itself.
        self.cpus = min(layout.workers, machine) if layout.pinned else machine
        self.tried: dict[int, dict[str, Any]] = {}
        self.baseline: float | None = None

    def measure(self, n: int) -> bool:
        layout, options = self.layout, self.options
        probe = next(self.probes)
        out = self.work / f"{probe:02d}-{layout.key}-{n}"
        self.progress.phase(probe, 0, layout.key, n, options.duration_s)
        configs = _configs(layout, n, options, self.sim_url, out)
        log = self.work / f"{probe:02d}.log"
        if self.room is not None:
            from bridge.bench.room_runner import run_room_phase

            phase = run_room_phase(
                configs, self.room, self.progress, log, sessions=n, seed=options.seed
            )
        else:
            phase = run_workers(configs, self.progress, log)
        run = run_summary(layout.engine, options.duration_s, phase, None)
        run["workers"] = layout.workers
        if n == 1:
            self.baseline = run["in_latency_ms"]["p99"]
        run["failures"] = failures(run, self.baseline, options.criteria, self.cpus)
        self.tried[n] = run
        self.progress.done("held" if not run["failures"] else "; ".join(run["failures"]))
        return not run["failures"]

    def run(self) -> dict[str, Any]:
        good, bad = 0, None
        for n in (s for s in STEPS if s <= self.options.max_sessions):
            if self.measure(n):
                good = n
            else:
                bad = n
                break
        while bad is not None and bad - good > max(1, good // 8):
            mid = (good + bad) // 2
            if self.measure(mid):
                good = mid
            else:
                bad = mid
        best = self.tried.get(good)
        layout = self.layout
        return {
            "layout": layout.key,
            "description": layout.description,
            "engine": layout.engine,
            "executor": layout.executor,
            "workers": layout.workers,
            "cores": self.cpus,
            "holds": good,
            "failed_at": bad,
            "why": self.tried[bad]["failures"] if bad is not None else [],
            "pod": pod_estimate(best, good, self.cpus) if best is not None else None,
            "at_capacity": best,
            "tried": {
                str(n): {key: run[key] for key in _TRIED_FIELDS}
                for n, run in sorted(self.tried.items())
            },
        }


_TRIED_FIELDS = (
    "cpu_percent",
    "memory_mb_peak",
    "in_latency_ms",
    "voice_to_voice_ms",
    "loop_stall_max_ms",
    "underruns",
    "failures",
)


def run_capacity(options: CapacityOptions, progress: Progress | None = None) -> dict[str, Any]:
    """Search every layout's capacity; the ``--json`` document of ``--capacity``."""
    progress = progress or Progress()
    started = time.monotonic()
    probes = itertools.count(1)
    results: list[dict[str, Any]] = []
    with workspace(options.keep_dir, options.sim_url) as (work, sim_url):
        with contextlib.ExitStack() as stack:
            room = None
            if options.room == "livekit":
                from bridge.bench.room_runner import livekit_room

                room = stack.enter_context(
                    livekit_room(work, bind=options.livekit_bind, given=options.livekit)
                )
            for layout in LAYOUTS:
                if layout.key in options.layouts:
                    search = _Search(layout, options, work, sim_url, progress, probes, room)
                    results.append(search.run())
    return {
        "capacity": results,
        "room": options.room,
        "criteria": asdict(options.criteria),
        "command": command_line(),
        "machine": machine(),
        "elapsed_s": round(time.monotonic() - started, 1),
    }
