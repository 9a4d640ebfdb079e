"""``bridge bench`` itself: the simulator process, the measured phases, the summary.

For each number of sessions and each engine, two phases run one after the other, each in a
fresh worker process (:mod:`bridge.bench.phase`) so that neither inherits the other's
imports, memory or threads: the loopback-only floor of that engine, then the engine. The
simulator runs in its own process for the whole benchmark (its CPU is not counted).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from bridge.bench.engines import ENGINES
from bridge.bench.phase import PhaseConfig
from bridge.bench.summary import comparison, merge_repeats, run_summary
from bridge.errors import BenchmarkError
from bridge.local.livekit_server import Credentials

SIM_START_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchOptions:
    engines: tuple[str, ...] = ENGINES
    sessions: tuple[int, ...] = (4,)
    duration_s: float = 60.0
    executor: str = "thread"
    seed: int = 1
    floor: bool = True
    warmup_s: float = 3.0
    repeat: int = 1  # each (sessions, engine) pair, interleaved with the others
    sim_url: str | None = None  # a simulator already running; default: start one
    keep_dir: Path | None = None  # keep the phases' files (results, logs) here
    # "loopback": the rtc loopback as the room; "livekit": a real server (bridge.bench.room_runner)
    room: str = "loopback"
    livekit: Credentials | None = None  # that server; default: a local one bound to livekit_bind
    livekit_bind: str | None = None

    def __post_init__(self) -> None:
        if self.repeat < 1:
            raise ValueError("repeat must be at least 1")
        for engine in self.engines:
            if engine not in ENGINES:
                raise ValueError(f"unknown engine {engine!r}: one of {', '.join(ENGINES)}")
        if not self.engines:
            raise ValueError("no engine to run")
        if not self.sessions or min(self.sessions) < 1:
            raise ValueError("sessions must be at least 1")
        if not self.duration_s >= 1:
            raise ValueError("duration must be at least 1 s")
        if self.executor not in ("thread", "process"):
            raise ValueError("executor must be 'thread' or 'process'")
        if self.room not in ("loopback", "livekit"):
            raise ValueError("room must be 'loopback' or 'livekit'")


class Progress:
    """One line per phase on a terminal (rewritten in place), a line every 10 s otherwise."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._label = ""
        self._last = 0.0

    def phase(self, index: int, total: int, name: str, sessions: int, duration: float) -> None:
        """A phase starts (``total`` 0: not known in advance)."""
        step = f"[{index}/{total}]" if total else f"[{index}]"
        self._label = f"{step} {name:<22} N={sessions:<3}"
        self._duration = duration
        self._write(f"{self._label} starting", force=True)

    def update(self, data: dict[str, Any]) -> None:
        self._write(
            f"{self._label} {data['elapsed_s']:5.0f}/{self._duration:.0f} s  "
            f"calls {data['calls']:3}  cpu {data['cpu_percent']:6.1f}%  "
            f"memory {data['memory_mb']:7.1f} MB"
        )

    def done(self, text: str) -> None:
        self._write(f"{self._label} {text}", force=True, end=True)

    def note(self, text: str) -> None:
        if self.tty:
            self.stream.write("\n")
        self.stream.write(text + "\n")
        self.stream.flush()

    def _write(self, text: str, *, force: bool = False, end: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if end else ""))
        elif force or now - self._last >= 10:
            self.stream.write(text + "\n")
            self._last = now
        else:
            return
        self.stream.flush()


@contextlib.contextmanager
def simulator_process(log: Path) -> Iterator[str]:
    """``bridge sim`` (echo) on a free port, in its own process; yields its URL."""
    command = [sys.executable, "-m", "bridge", "sim", "--port", "0", "--log-level", "warning"]
    with log.open("w", encoding="utf-8") as err:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            prefix = "realtime simulator listening on "
            if not line.startswith(prefix):
                raise BenchmarkError(f"the simulator did not start (see {log})")
            yield line[len(prefix) :]
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def run_phase(
    config: PhaseConfig,
    progress: Progress | None,
    log: Path,
    *,
    env: dict[str, str] | None = None,
    on_registered: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run one phase in a worker process; its figures (raises :class:`BenchmarkError`).

    ``on_registered``: called once the worker has registered with a LiveKit server (a phase
    through a real room), from the thread reading its output.
    """
    command = [sys.executable, "-m", "bridge.bench.phase", json.dumps(asdict(config))]
    result: dict[str, Any] | None = None
    with log.open("w", encoding="utf-8") as err:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            with contextlib.suppress(ValueError):
                message = json.loads(line)
                if "progress" in message and progress is not None:
                    progress.update(message["progress"])
                elif "registered" in message and on_registered is not None:
                    on_registered()
                elif "result" in message:
                    result = message["result"]
        code = proc.wait()
    if result is None:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        raise BenchmarkError(
            f"phase {config.engine} x {config.sessions} failed (exit {code}); "
            f"log: {log}; last lines: " + " | ".join(tail)
        )
    return result


def run_workers(
    configs: list[PhaseConfig],
    progress: Progress,
    log: Path,
    *,
    env: dict[str, str] | None = None,
    on_registered: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Several worker processes at once (one pod running several workers); merged figures.

    CPU, processes and memory add up; the calls of all workers are pooled. Progress shows
    the first worker's. ``on_registered`` is called once every worker has registered.
    """
    if len(configs) == 1:
        return run_phase(configs[0], progress, log, env=env, on_registered=on_registered)
    results: list[dict[str, Any] | BaseException] = [BenchmarkError("not run")] * len(configs)
    pending = [len(configs)]
    lock = threading.Lock()

    def registered() -> None:
        with lock:
            pending[0] -= 1
            last = pending[0] == 0
        if last and on_registered is not None:
            on_registered()

    def work(index: int) -> None:
        try:
            results[index] = run_phase(
                configs[index],
                progress if index == 0 else None,
                log.with_suffix(f".{index}.log"),
                env=env,
                on_registered=registered,
            )
        except BaseException as exc:  # re-raised below, in this thread
            results[index] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(configs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phases: list[dict[str, Any]] = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        phases.append(result)
    first = phases[0]
    merged = {
        **first,
        "config": {**first["config"], "sessions": sum(p["config"]["sessions"] for p in phases)},
        "window_s": min(p["window_s"] for p in phases),
        "calls": [c for p in phases for c in p["calls"]],
        "workers": len(phases),
    }
    for key in (
        "cpu_percent",
        "processes",
        "rss_mb_base",
        "rss_mb_one",
        "memory_mb_one",
        "rss_mb_peak",
        "memory_mb_peak",
    ):
        merged[key] = round(sum(p[key] for p in phases), 2)
    return merged


@contextlib.contextmanager
def workspace(keep_dir: Path | None, sim_url: str | None) -> Iterator[tuple[Path, str]]:
    """A directory for the phases' files and a simulator (started here unless given)."""
    with contextlib.ExitStack() as stack:
        if keep_dir is not None:
            work = keep_dir
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bridge-bench-")))
        yield work, sim_url or stack.enter_context(simulator_process(work / "sim.log"))


def command_line() -> str:
    """The ``bridge bench`` command as it was typed (for the JSON and the README)."""
    if len(sys.argv) > 1 and sys.argv[1] == "bench":
        return shlex.join(["bridge", "bench", *sys.argv[2:]])
    return "bridge bench"


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
    }


Measure = Callable[[PhaseConfig, Path], dict[str, Any]]


def run_bench(options: BenchOptions, progress: Progress | None = None) -> dict[str, Any]:
    """Measure every (sessions, engine) pair; the ``--json`` document."""
    progress = progress or Progress()
    started = time.monotonic()
    with workspace(options.keep_dir, options.sim_url) as (work, sim_url):
        if options.room == "livekit":
            from bridge.bench.room_runner import livekit_room, run_room_phase

            given, bind = options.livekit, options.livekit_bind
            with livekit_room(work, bind=bind, given=given) as setup:

                def through_server(config: PhaseConfig, log: Path) -> dict[str, Any]:
                    return run_room_phase(
                        [config], setup, progress, log, sessions=config.sessions, seed=config.seed
                    )

                runs = _measure(options, work, sim_url, progress, through_server)
        else:
            runs = _measure(
                options, work, sim_url, progress, lambda c, log: run_phase(c, progress, log)
            )
    meta = {
        "command": command_line(),
        "machine": machine(),
        "room": options.room,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    if len(runs) == 1:
        return {**runs[0], **meta}
    return {"runs": runs, "comparison": comparison(runs), **meta}


def _measure(
    options: BenchOptions, work: Path, sim_url: str, progress: Progress, measure: Measure
) -> list[dict[str, Any]]:
    """Every phase, interleaved per number of sessions; the summarised runs."""
    floors = options.floor and options.room == "loopback"  # a real room has no loopback floor
    names = {
        engine: ([f"floor:{engine}"] if floors else []) + [engine] for engine in options.engines
    }
    total = len(options.sessions) * options.repeat * sum(len(v) for v in names.values())
    index = 0
    runs: list[dict[str, Any]] = []
    for n in options.sessions:
        measured: dict[str, list[dict[str, Any]]] = {}
        for _ in range(options.repeat):  # interleaved: engine A, engine B, A, B, ...
            for engine in options.engines:
                for name in names[engine]:
                    index += 1
                    config = PhaseConfig(
                        engine=name,
                        sessions=n,
                        duration_s=options.duration_s,
                        executor=options.executor,
                        sim_url=sim_url,
                        out_dir=str(work / f"{index:02d}-{name.replace(':', '-')}-{n}"),
                        seed=options.seed,
                        warmup_s=options.warmup_s,
                        room=options.room,
                        agent_name=f"bench-{os.getpid()}-{index}",
                    )
                    progress.phase(index, total, name, n, options.duration_s)
                    phase = measure(config, work / f"{index:02d}.log")
                    measured.setdefault(name, []).append(phase)
                    progress.done(
                        f"cpu {phase['cpu_percent']:.1f}% ({phase['cpu_percent'] / n:.2f}%/call)"
                    )
        for engine in options.engines:
            floor = measured.get(f"floor:{engine}")
            runs.append(
                run_summary(
                    engine,
                    options.duration_s,
                    merge_repeats(measured[engine]),
                    merge_repeats(floor) if floor else None,
                )
            )
    return runs
