"""The bridge worker: ``livekit-agents``' own server, with honest capacity and a clean drain.

- **Capacity.** :class:`CapacityGate` reports load as the larger of sessions per pod maximum
  and CPU (``cpu / cpu_full``); with ``load_threshold = 1.0`` the server marks the worker full
  exactly at the maximum. Load is refreshed only every 0.5 s, so the gate also refuses job
  requests itself (``on_request``) once running plus just-accepted jobs reach the maximum:
  two requests inside one refresh can never push the pod past it.
- **Drain.** The first SIGTERM/SIGINT turns readiness false, stops taking jobs (LiveKit's own
  ``drain``: the worker reports itself full) and lets calls finish for up to
  ``drain_timeout`` seconds; calls still running then are ended cleanly (session closed,
  final state published) and the worker closes. A second signal exits at once. Liveness stays
  true throughout.
- **Endpoints.** LiveKit's health server keeps its port (8081); ``bridge.pod.health`` serves
  ``/metrics``, ``/healthz`` and ``/readyz`` on ``BRIDGE_METRICS_PORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import deque
from dataclasses import dataclass, field

import structlog
from livekit.agents import AgentServer, JobContext, JobExecutorType, JobRequest

from bridge.call.call import CallOptions
from bridge.heap import freeze_long_lived
from bridge.metrics import default_metrics
from bridge.pod.agent import REGISTRY, AgentContext, run_job
from bridge.pod.cpu import PodCpu
from bridge.pod.health import Readiness, serve_metrics
from bridge.pod.room_control import LiveKitRoomControl
from bridge.pod.settings import LiveKitSettings, WorkerSettings, load_profiles, price_table
from bridge.room.media_loop import MediaLoop

log = structlog.get_logger("bridge.pod.worker")

ADMISSION_TTL_S = 30.0  # an accepted job that never shows up as running stops counting
# livekit-agents loads its local VAD and end-of-turn model (~270 MB resident) into every job
# process or thread-executor worker unless told not to; the bridge uses the Realtime API's
# turn detection and never needs them. An explicit setting in the environment still wins.
PRELOAD_ENV = "LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE"


def skip_local_models() -> None:
    os.environ.setdefault(PRELOAD_ENV, "0")


@dataclass(slots=True)
class CapacityGate:
    """Per-pod admission: never more than ``max_sessions`` calls, full before overload."""

    max_sessions: int
    cpu_full: float = 0.8  # share of the pod's own CPUs (bridge/pod/cpu.py) counted as full
    _admitted: dict[str, float] = field(default_factory=dict)
    _cpu: deque[float] = field(default_factory=lambda: deque(maxlen=5))

    def note_cpu(self, share: float) -> None:
        """A CPU sample (0..1 of the pod's CPUs); the load uses a moving average of five."""
        self._cpu.append(min(max(share, 0.0), 1.0))

    def load(self, running: int) -> float:
        """The worker load reported to LiveKit: 1.0 means full."""
        sessions = (running + len(self._admitted)) / self.max_sessions
        cpu = (sum(self._cpu) / len(self._cpu)) / self.cpu_full if self._cpu else 0.0
        return min(max(sessions, cpu), 1.0)

    def admit(self, job_id: str, running_ids: set[str], now: float) -> bool:
        """Accept ``job_id`` unless running plus just-admitted jobs already fill the pod."""
        for admitted, at in list(self._admitted.items()):
            if admitted in running_ids or now - at > ADMISSION_TTL_S:
                del self._admitted[admitted]
        if len(running_ids) + len(self._admitted) >= self.max_sessions:
            return False
        self._admitted[job_id] = now
        return True


def build_server(
    settings: WorkerSettings, livekit: LiveKitSettings, shared: AgentContext, *, dev: bool
) -> tuple[AgentServer, CapacityGate]:
    """The ``AgentServer`` that runs bridge jobs, and its capacity gate."""
    gate = CapacityGate(settings.max_sessions)
    cpu = PodCpu()  # this pod's own work over its CPUs, not the machine's: bridge/pod/cpu.py

    def load(server: AgentServer) -> float:  # called in an executor thread every 0.5 s
        gate.note_cpu(cpu.share())
        return gate.load(len(server.active_jobs))

    server = AgentServer(
        job_executor_type=(
            JobExecutorType.THREAD if settings.executor == "thread" else JobExecutorType.PROCESS
        ),
        load_threshold=1.0,
        load_fnc=load,
        drain_timeout=settings.drain_timeout,
        num_idle_processes=settings.idle_processes,
        ws_url=livekit.url,
        api_key=livekit.api_key,
        api_secret=livekit.api_secret,
        port=0 if dev else 8081,
    )

    async def on_request(request: JobRequest) -> None:
        running = {job.job.id for job in server.active_jobs}
        if server.draining or not gate.admit(request.id, running, time.monotonic()):
            log.info("job.refused", job=request.id, reason="pod full or draining")
            await request.reject()
            return
        await request.accept()

    async def entrypoint(ctx: JobContext) -> None:
        await run_job(ctx, shared)

    server.rtc_session(entrypoint, agent_name=livekit.agent_name, on_request=on_request)
    return server, gate


async def run_worker(settings: WorkerSettings, livekit: LiveKitSettings, *, dev: bool) -> None:
    """Run until a signal; drain on the first, exit hard on the second."""
    skip_local_models()
    profiles = load_profiles(settings.profiles_path)
    metrics = default_metrics()
    metrics.declare_tools(profiles.tool_names)  # every tool's series at zero from the start
    shared = AgentContext(
        profiles=profiles,
        metrics=metrics,
        prices=price_table(),
        registry=REGISTRY,
        options=CallOptions(empty_room_grace_s=settings.empty_room_grace),
        room_control=lambda room: LiveKitRoomControl(livekit, room),  # hang-up, transfer
    )
    server, _gate = build_server(settings, livekit, shared, dev=dev)
    readiness = Readiness(ready=False, reason="registering with LiveKit")
    server.on("worker_registered", lambda *_args: readiness.mark_ready())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            log.warning("worker.forced_exit")
            os._exit(1)
        readiness.drain("draining")
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)

    async with contextlib.AsyncExitStack() as stack:
        if settings.metrics_port:
            port = await stack.enter_async_context(
                serve_metrics(settings.metrics_port, metrics, readiness)
            )
            log.info("worker.metrics", port=port)
        freeze_long_lived(collect=True)  # before the first call: bridge/heap.py
        cpus = sorted(os.sched_getaffinity(0))
        # One CPU of its own (static CPU manager, taskset) is the layout the sizing assumes.
        log.info(
            "worker.cpus", cpus=cpus, pinned=len(cpus) == 1, max_sessions=settings.max_sessions
        )
        runner = asyncio.create_task(server.run(devmode=dev), name="agent-server")
        await asyncio.wait(
            {runner, asyncio.ensure_future(stop.wait())}, return_when=asyncio.FIRST_COMPLETED
        )
        if runner.done():
            runner.result()  # the server failed on its own: surface why
            return
        log.info(
            "worker.draining", limit_s=settings.drain_timeout, calls=len(shared.registry.calls)
        )
        drain = asyncio.create_task(server.drain(timeout=None), name="lk-drain")
        media = shared.media or MediaLoop.shared()
        ended = await media.run(shared.registry.drain(settings.drain_timeout))
        if ended:
            log.info("worker.drain_limit", ended_calls=ended)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drain, timeout=30)
        await server.aclose()
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await runner
        log.info("worker.stopped")
