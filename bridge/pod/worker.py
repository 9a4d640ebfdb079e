"""The bridge worker: ``livekit-agents``' own server, with honest capacity and a clean drain.

- **Capacity.** :class:`CapacityGate` reports load as the larger of sessions per pod maximum
  and CPU (``cpu / cpu_full``); LiveKit weighs workers by ``1 - load``, so a worker at 1.0 is
  never picked while another has room. The gate alone decides admission (``on_request``),
  counting running plus just-accepted jobs, so two requests inside one load refresh can never
  push the pod past its maximum. ``livekit-agents``' own availability check is off
  (``load_threshold`` infinite): with no job running it counts each reserved slot as a whole
  threshold's worth of load (``load_threshold / num_idle_processes``), so a burst of two
  dispatches made it refuse the second, and with one worker LiveKit does not retry: that
  caller never got an agent (found through a real server).
- **Drain.** The first SIGTERM/SIGINT turns readiness false, stops taking jobs (LiveKit's own
  ``drain``: the worker reports itself full) and lets calls finish for up to
  ``drain_timeout`` seconds; calls still running then are ended cleanly (session closed,
  final state published) and the worker closes. A second signal exits at once. Liveness stays
  true throughout.
- **Endpoints.** LiveKit's health server keeps its port (8081, ``BRIDGE_LIVEKIT_HEALTH_PORT``);
  ``bridge.pod.health`` serves ``/metrics``, ``/healthz`` and ``/readyz`` on
  ``BRIDGE_METRICS_PORT``. A port that cannot be bound is a configuration error (exit 2).
- **An unreachable LiveKit.** livekit-agents retries ``BRIDGE_LIVEKIT_RETRIES`` times (0, 2,
  4, … 10 s apart) and then fails. :class:`LiveKitLink` turns each of its retry warnings into
  one line naming the URL and the cause, and turns readiness false while the link is down.
  When it gives up, liveness and readiness fail at once, calls still running are drained as
  on SIGTERM, the server is closed (its health port, job threads and processes with it) and
  :class:`~bridge.errors.LiveKitUnreachable` ends ``bridge start`` with one line and exit 1:
  nothing is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import structlog
from livekit.agents import AgentServer, JobContext, JobExecutorType, JobRequest

from bridge.call.call import CallOptions
from bridge.errors import ConfigError, LiveKitUnreachable
from bridge.heap import freeze_long_lived
from bridge.logs import scrub
from bridge.metrics import default_metrics
from bridge.pod.agent import REGISTRY, AgentContext, prepare_ffi, run_job
from bridge.pod.cpu import PodCpu, cpu_layout
from bridge.pod.handover import CallStore, Rescuer
from bridge.pod.health import Readiness, serve_metrics
from bridge.pod.room_control import LiveKitRoomControl
from bridge.pod.settings import (
    LiveKitSettings,
    WorkerSettings,
    load_profiles,
    price_table,
    redacted_url,
    skip_local_models,
)
from bridge.room.media_loop import MediaLoop

log = structlog.get_logger("bridge.pod.worker")
AGENTS_LOGGER = "livekit.agents"

ADMISSION_TTL_S = 30.0  # an accepted job that never shows up as running stops counting


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


class LiveKitLink(logging.Filter):
    """What livekit-agents says about the worker's connection to LiveKit, made plain.

    Installed as a filter on the ``livekit.agents`` logger while the worker runs. Each "failed
    to connect to livekit, retrying in Ns" warning (whose cause sits in an attribute no log
    line shows) is rewritten to ``cannot reach LiveKit at URL: CAUSE; retry K of N in S s`` and
    turns readiness false; the traceback livekit-agents logs when it gives up is dropped, since
    :meth:`gave_up` reports the same failure once, in one line. A registration resets it.
    """

    RETRYING = "failed to connect to livekit, retrying in "

    def __init__(self, url: str, retries: int, readiness: Readiness) -> None:
        super().__init__()
        self.url = redacted_url(url)
        self.retries = retries
        self.readiness = readiness
        self.failures = 0
        self.cause = ""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(self.RETRYING):
            self.failures += 1
            self.cause = describe_cause(getattr(record, "error", None))
            delay = message.removeprefix(self.RETRYING).removesuffix("s")
            record.msg = (
                f"cannot reach LiveKit at {self.url}: {self.cause};"
                f" retry {self.failures} of {self.retries} in {delay} s"
            )
            record.args = ()
            self.readiness.lost(f"cannot reach LiveKit at {self.url}: {self.cause}")
            return True
        failure = record.exc_info[1] if record.exc_info else None
        return not (message.startswith("Error in _connection_task") and _is_give_up(failure))

    def registered(self) -> None:
        self.failures, self.cause = 0, ""
        self.readiness.mark_ready()

    def gave_up(self, failure: BaseException) -> LiveKitUnreachable:
        """The error that ends the worker: livekit-agents' ``RuntimeError`` keeps the last
        attempt's exception as its context."""
        cause = describe_cause(failure.__context__) if failure.__context__ else self.cause
        return LiveKitUnreachable(self.url, self.failures + 1, cause or str(failure))


def _is_give_up(failure: BaseException | None) -> bool:
    return isinstance(failure, RuntimeError) and "failed to connect to livekit" in str(failure)


def describe_cause(error: object) -> str:
    """A connection failure in words (the aiohttp exception's text buries it)."""
    import aiohttp

    if isinstance(error, aiohttp.WSServerHandshakeError):
        if error.status == 401:
            return "the API key or secret was refused (HTTP 401)"
        if error.status == 404:
            return "no LiveKit server at this URL (HTTP 404)"
        return f"the WebSocket upgrade was refused (HTTP {error.status})"
    if isinstance(error, aiohttp.ClientConnectorError):
        cause = error.os_error
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (nothing listens there)"
        if isinstance(cause, socket.gaierror):
            return f"unknown host {error.host!r}"
        return cause.strerror or str(cause)
    closed = isinstance(error, aiohttp.ServerDisconnectedError)
    if closed or (isinstance(error, aiohttp.ClientOSError) and error.errno == errno.ECONNRESET):
        return "the server closed the connection without answering"  # with a FIN or a reset
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return "no answer in time"
    if isinstance(error, BaseException):
        return scrub(f"{type(error).__name__}: {error}")
    return "unknown cause"


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
        load_threshold=float("inf"),  # the gate decides: see the module docstring
        load_fnc=load,
        drain_timeout=settings.drain_timeout,
        num_idle_processes=settings.idle_processes,
        max_retry=settings.livekit_retries,
        ws_url=livekit.url,
        api_key=livekit.api_key,
        api_secret=livekit.api_secret,
        port=0 if dev else settings.health_port,
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
    prepare_ffi()  # before any job thread: bridge/pod/agent.py
    profiles = load_profiles(settings.profiles_path)
    metrics = default_metrics()
    metrics.declare_tools(profiles.tool_names)  # every tool's series at zero from the start
    metrics.declare_models(p.session.model for p in profiles.profiles.values())
    # The per-pod maximum was measured for a process with a CPU of its own: without one, a
    # call costs about twice the CPU, so the worker takes fewer (BRIDGE_MAX_SESSIONS_UNPINNED).
    layout = cpu_layout()
    cap = settings.session_cap(layout.pinned)
    metrics.cpu_pinned.set(1 if layout.pinned else 0)
    metrics.max_sessions.set(cap)
    log.info(
        "worker.cpus",
        cpus=list(layout.cpus),
        quota=layout.quota,
        pinned=layout.pinned,
        max_sessions=cap,
        configured_max_sessions=settings.max_sessions,
    )
    if not layout.pinned and cap < settings.max_sessions:
        log.warning(
            "worker.not_pinned",
            detail="no CPU of its own (static CPU manager policy or taskset):"
            f" taking at most {cap} calls instead of {settings.max_sessions}",
        )
    settings = replace(settings, max_sessions=cap)
    store = (
        CallStore.from_url(settings.redis_url, livekit.agent_name) if settings.redis_url else None
    )
    shared = AgentContext(
        profiles=profiles,
        metrics=metrics,
        prices=price_table(),
        registry=REGISTRY,
        options=CallOptions(empty_room_grace_s=settings.empty_room_grace),
        room_control=lambda room: LiveKitRoomControl(livekit, room),  # hang-up, transfer
        store=store,
    )
    server, _gate = build_server(settings, livekit, shared, dev=dev)
    readiness = Readiness(ready=False, reason="registering with LiveKit")
    link = LiveKitLink(livekit.url, settings.livekit_retries, readiness)
    server.on("worker_registered", lambda *_args: link.registered())
    agents_log = logging.getLogger(AGENTS_LOGGER)
    agents_log.addFilter(link)
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
        metrics.draining.set(1)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)

    async with contextlib.AsyncExitStack() as stack:
        stack.callback(agents_log.removeFilter, link)
        if store is not None:
            stack.push_async_callback(store.aclose)
            rescuer = Rescuer(store, *livekit_room_calls(livekit), metrics)
            rescuing = asyncio.create_task(rescuer.run(), name="rescuer")
            stack.callback(rescuing.cancel)
        if settings.metrics_port:
            try:
                port = await stack.enter_async_context(
                    serve_metrics(settings.metrics_port, metrics, readiness)
                )
            except OSError as exc:
                raise ConfigError(
                    f"BRIDGE_METRICS_PORT={settings.metrics_port}: cannot listen"
                    f" ({exc.strerror or exc})"
                ) from None
            log.info("worker.metrics", port=port)
        freeze_long_lived(collect=True)  # before the first call: bridge/heap.py
        runner = asyncio.create_task(server.run(devmode=dev), name="agent-server")
        await asyncio.wait(
            {runner, asyncio.ensure_future(stop.wait())}, return_when=asyncio.FIRST_COMPLETED
        )
        if runner.done():
            await _server_failed(server, runner, link, settings, shared)
            return
        log.info(
            "worker.draining", limit_s=settings.drain_timeout, calls=len(shared.registry.calls)
        )
        drain = asyncio.create_task(server.drain(timeout=None), name="lk-drain")
        media = shared.media or MediaLoop.shared()
        ended = await media.run(
            shared.registry.drain(settings.drain_timeout, handover=store is not None)
        )
        if ended:
            log.info("worker.drain_limit", ended_calls=ended, handed_over=store is not None)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drain, timeout=30)
        await server.aclose()
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await runner
        log.info("worker.stopped")


def livekit_room_calls(
    livekit: LiveKitSettings,
) -> tuple[Callable[[str], Awaitable[bool]], Callable[[str, str], Awaitable[None]]]:
    """The two LiveKit API calls the rescuer makes: is a human still in the room, and send
    the agent there (the worker's own URL and keys)."""
    from livekit import api

    http_url = (
        "http" + livekit.url.removeprefix("ws") if livekit.url.startswith("ws") else livekit.url
    )

    def client() -> api.LiveKitAPI:
        return api.LiveKitAPI(http_url, livekit.api_key, livekit.api_secret)

    async def humans(room: str) -> bool:
        async with client() as lk:
            try:
                found = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
            except api.TwirpError as exc:
                if exc.code == api.TwirpErrorCode.NOT_FOUND:
                    return False
                raise
        return any(p.kind != api.ParticipantInfo.Kind.AGENT for p in found.participants)

    async def dispatch(room: str, metadata: str) -> None:
        async with client() as lk:
            await lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(
                    agent_name=livekit.agent_name, room=room, metadata=metadata
                )
            )

    return humans, dispatch


async def _server_failed(
    server: AgentServer,
    runner: asyncio.Task[None],
    link: LiveKitLink,
    settings: WorkerSettings,
    shared: AgentContext,
) -> None:
    """The server stopped on its own: say why in one line, after closing everything it holds
    (running calls are drained first, as on SIGTERM). Returns only if it stopped cleanly."""
    failure = None if runner.cancelled() else runner.exception()
    if failure is None:
        return
    error: Exception
    if _is_give_up(failure):
        error = link.gave_up(failure)
        link.readiness.fail(str(error))
        if shared.registry.calls:
            media = shared.media or MediaLoop.shared()
            await media.run(shared.registry.drain(settings.drain_timeout))
    elif isinstance(failure, OSError):  # its health server could not bind
        error = ConfigError(
            f"BRIDGE_LIVEKIT_HEALTH_PORT={settings.health_port}: livekit-agents' health server"
            f" cannot listen ({failure.strerror or failure})"
        )
    elif isinstance(failure, Exception):
        error = failure
    else:
        raise failure
    with contextlib.suppress(Exception):
        await server.aclose()
    raise error
