"""The fault matrix: every simulator fault at every phase of a conversation.

Each cell is a two-turn conversation (a question answered, then a second question answered)
with one fault injected when the conversation reaches the phase: idle (connected, nobody
speaking), caller speaking (right after ``speech_started``), agent speaking (right after the
first audio of the reply). A cell passes when

- the conversation continues (both questions answered), or, for fatal faults, ends cleanly
  with :class:`SessionFailed` naming the cause;
- transcripts are intact: the mirror holds both questions and both answers with their text;
- nothing went unhandled (no exception reached the event loop);
- the counters show what happened (reconnects by reason, rejected frames, errors by code).

All cells run concurrently, each against its own simulator. The table is printed:
``pytest tests/test_fault_matrix.py -s``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from sessions import events as ev
from sessions.connection import ConnectionOptions
from sessions.endpoint import Endpoint
from sessions.errors import HandshakeRejected, SessionFailed
from sessions.simulator import (
    Simulator,
    SimulatorConfig,
    add_observer,
    parse_fault,
    remove_observer,
)
from sessions.supervisor import ContinuityOptions, SessionSupervisor
from tests.realtime_schema import check_event
from tests.sessionkit import CONFIG, EventLog
from tests.simclient import utterance

PHASES = ("idle", "caller_speaking", "agent_speaking")
KINDS = (
    "drop",
    "tcp_close",
    "stall",
    "delay:300",
    "malformed:5",
    "unknown:4",
    "error:server_error",
    "error:rate_limit_exceeded",
    "error:invalid_api_key",
    "error:insufficient_quota",
    "expire",
)
FATAL = {"error:invalid_api_key", "error:insufficient_quota"}
# Small timers, still above the 300 ms of the delay fault (which also delays pongs).
OPTIONS = ConnectionOptions(ping_interval=0.2, ping_timeout=0.5, connect_timeout=3)
CONTINUITY = ContinuityOptions(stall_timeout_s=0.6, reconnect_base_s=0.05)


@dataclass
class Cell:
    fault: str
    phase: str
    outcome: str = ""
    replies: int = 0
    reconnects: dict[str, int] = field(default_factory=dict)
    rejected_frames: int = 0
    unknown: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    unhandled: list[str] = field(default_factory=list)
    user_texts: int = 0
    assistant_texts: int = 0
    failure: SessionFailed | None = None

    @property
    def spec(self) -> str:
        return f"{self.fault}@{self.phase}"


async def run_cell(cell: Cell) -> Cell:
    config = SimulatorConfig(behavior="echo", pace=8.0, faults=(parse_fault(cell.spec),))
    async with Simulator(config, host="127.0.0.1", port=0) as sim:
        log = EventLog()
        client = SessionSupervisor(
            Endpoint.compatible(sim.url, api_key="k"),
            CONFIG,
            handler=log,
            options=OPTIONS,
            continuity=CONTINUITY,
        )
        client.on_reconnect = lambda _r: log.poke()
        await client.start()
        runner = asyncio.ensure_future(client.run())
        runner.add_done_callback(lambda _t: log.poke())
        completed = lambda: sum(1 for d in log.of(ev.ResponseDone) if d.status == "completed")  # noqa: E731
        try:
            for turn in (1, 2):
                client.append_audio(utterance(lead=0.3, speech=0.8, tail=0.6))
                await log.until(lambda t=turn: completed() >= t or runner.done(), timeout=20)
                if runner.done():
                    break
            cell.outcome = "continued" if completed() >= 2 else "stopped"
            session = client.current_socket
            if session is not None:
                stats = session.protocol.stats
                cell.unknown = sum(stats.unknown_types.values()) + stats.unknown_fields
        finally:
            if runner.done() and isinstance(runner.exception(), SessionFailed):
                cell.failure = runner.exception()  # type: ignore[assignment]
                cell.outcome = "fatal end" if cell.failure.fatal else "failed"
            runner.cancel()
            await client.close()
        cell.replies = completed()
        cell.reconnects = dict(client.stats.reconnects)
        cell.rejected_frames = len(log.of(ev.FrameRejected))
        for error in log.of(ev.ErrorReceived):
            code = error.error.code or "none"
            cell.errors[code] = cell.errors.get(code, 0) + 1
        records = list(client.conversation)
        cell.user_texts = sum(1 for r in records if r.role == "user")
        cell.assistant_texts = sum(1 for r in records if r.role == "assistant" and r.text)
    return cell


@pytest.fixture(scope="module")
def matrix() -> list[Cell]:
    cells = [Cell(kind, phase) for kind in KINDS for phase in PHASES]

    problems: list[str] = []  # module-scoped: the autouse schema guard is not active yet

    def observe(dialect: str, event: dict[str, Any]) -> None:
        problems.extend(check_event(dialect, event))

    async def main() -> list[Cell]:
        loop = asyncio.get_running_loop()
        unhandled: list[str] = []
        loop.set_exception_handler(lambda _l, ctx: unhandled.append(str(ctx.get("message"))))
        add_observer(observe)
        try:
            done = await asyncio.gather(*(run_cell(c) for c in cells))
        finally:
            remove_observer(observe)
        for cell in done:
            cell.unhandled = list(unhandled)
        return list(done)

    result = asyncio.run(main())
    assert not problems, problems[:5]
    print_table(result)
    return result


def print_table(cells: list[Cell]) -> None:
    print("\nfault matrix (echo simulator, two turns per cell):")
    print(f"{'fault':<28}{'phase':<17}{'outcome':<11}{'replies':>8}  reconnects / counters")
    for c in cells:
        counters: list[str] = [f"{k}={v}" for k, v in c.reconnects.items()]
        if c.rejected_frames:
            counters.append(f"rejected_frames={c.rejected_frames}")
        if c.unknown:
            counters.append(f"unknown={c.unknown}")
        counters += [f"error:{k}={v}" for k, v in c.errors.items()]
        print(f"{c.fault:<28}{c.phase:<17}{c.outcome:<11}{c.replies:>8}  {', '.join(counters)}")


@pytest.mark.parametrize("kind", KINDS)
def test_every_fault_at_every_phase(matrix: list[Cell], kind: str) -> None:
    for cell in (c for c in matrix if c.fault == kind):
        assert not cell.unhandled, cell.unhandled
        if kind in FATAL:
            assert cell.outcome == "fatal end", cell
            assert cell.failure is not None and kind.split(":")[1] in str(cell.failure)
            continue
        assert cell.outcome == "continued", cell
        assert cell.replies >= 2
        assert cell.user_texts >= 2 or cell.reconnects  # replayed user turns keep their ids
        assert cell.assistant_texts >= 2, cell
        if kind in ("drop", "tcp_close"):
            assert cell.reconnects.get("dropped") == 1, cell
        elif kind == "stall":
            assert sum(cell.reconnects.values()) == 1, cell  # no reply, or no pong
        elif kind == "expire":
            assert cell.reconnects.get("expired") == 1 and cell.errors["session_expired"] == 1
        elif kind.startswith("error:"):
            assert cell.errors[kind.split(":")[1]] == 1 and not cell.reconnects
        elif kind.startswith("malformed"):
            assert cell.rejected_frames == 5 and not cell.reconnects
        elif kind.startswith("unknown"):
            assert cell.unknown >= 1 and not cell.reconnects
        elif kind.startswith("delay"):
            assert not cell.reconnects


async def test_a_refused_handshake_is_a_clean_explained_end(simulator) -> None:
    sim = await simulator(faults=(parse_fault("reject:401@connect"),))
    client = SessionSupervisor(
        Endpoint.compatible(sim.url, api_key="k"), CONFIG, handler=EventLog()
    )
    with pytest.raises(HandshakeRejected) as caught:
        await client.start()
    await client.close()
    assert caught.value.fatal and "API key was rejected" in str(caught.value)


async def test_a_refused_reconnect_after_a_drop_is_retried(simulator) -> None:
    sim = await simulator(
        behavior="echo",
        pace=8.0,
        faults=(parse_fault("drop@agent_speaking"), parse_fault("reject:503@connect*2")),
    )
    # The first connection takes one reject... so start after it has been used up.
    log = EventLog()
    options = ContinuityOptions(reconnect_base_s=0.05)
    client = SessionSupervisor(
        Endpoint.compatible(sim.url, api_key="k"), CONFIG, handler=log, continuity=options
    )
    client.on_reconnect = lambda _r: log.poke()
    for _ in range(2):
        with pytest.raises(HandshakeRejected):
            await client.start()
    await client.start()
    try:
        client.append_audio(utterance(lead=0.3, speech=0.8, tail=0.6))
        await log.until(lambda: any(d.status == "completed" for d in log.of(ev.ResponseDone)))
    finally:
        await client.close()
    assert client.stats.reconnects == {"dropped": 1}
