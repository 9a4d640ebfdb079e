"""The tool runner: every call answered once, invalid ones never run, slow ones held and timed
out, barge-in and the call's end cancel, figures kept, nothing private logged above debug.

The session is a recording stand-in for the two calls the runner makes of it; every wait is
on an event (a timeout only as a safety net).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from bridge.call.python_tool import PythonTool, load_function
from bridge.call.records import CallRecord
from bridge.call.tool_runner import ToolRunner
from bridge.call.tools import ON_CANCELLED, TOOLS, BuiltinTool, Tool, ToolLimits
from bridge.metrics import BridgeMetrics
from sessions.events import CallId, FunctionCall, ItemId, ResponseId
from sessions.session_config import FunctionTool
from tests.toolkit import JOURNAL

QUERY = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}


class Session:
    """Records what the runner sends; ``changed`` is set on every send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.changed = asyncio.Event()

    def send_function_output(self, call_id: str, output: str) -> None:
        self.sent.append(("output", (call_id, output)))
        self.changed.set()

    def create_response(self, response: Mapping[str, Any] | None = None) -> None:
        self.sent.append(("create", dict(response) if response else None))
        self.changed.set()

    async def until(self, count: int) -> None:
        async with asyncio.timeout(15):
            while len(self.sent) < count:
                self.changed.clear()
                await self.changed.wait()

    def outputs(self) -> dict[str, str]:
        return {call_id: text for kind, (call_id, text) in self.items("output")}

    def items(self, kind: str) -> list[Any]:
        return [(k, v) for k, v in self.sent if k == kind]


ORDER = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}},
    "required": ["order_id"],
}


def python(name: str, parameters: dict[str, Any] = QUERY, **limits: Any) -> PythonTool:
    target = f"tests.toolkit:{name}"
    return PythonTool(
        FunctionTool(name=name, parameters=parameters),
        ToolLimits(**limits),
        target=target,
        function=load_function(target, parameters["properties"], parameters["required"]),
    )


def call(
    name: str, arguments: str = '{"query": "q"}', n: int = 1, response: str = "r1"
) -> FunctionCall:
    return FunctionCall(
        response_id=ResponseId(response),
        item_id=ItemId(f"item_{n}"),
        call_id=CallId(f"call_{n}"),
        name=name,
        arguments=arguments,
    )


def runner(
    *tools: Tool, speaking: bool = False, metrics: BridgeMetrics | None = None
) -> tuple[ToolRunner, Session, CallRecord]:
    session = Session()
    record = CallRecord(started_at=0.0)
    tool_runner = ToolRunner(
        {tool.name: tool for tool in tools},
        session,
        record=record,
        instructions="Be brief.",
        caller_speaking=lambda: speaking,
        metrics=metrics,
    )
    return tool_runner, session, record


async def test_a_call_is_answered_then_a_response_asked_for() -> None:
    tools, session, record = runner(TOOLS["current_time"])
    tools.start(call("current_time", "{}"))
    assert tools.running == 1  # started, not run inline: start() returned at once
    await session.until(2)
    assert [kind for kind, _ in session.sent] == ["output", "create"]
    assert "UTC" in session.outputs()["call_1"]
    assert [(t.tool, t.outcome) for t in record.tool_calls] == [("current_time", "ok")]
    assert tools.running == 0


async def test_invalid_arguments_are_answered_as_an_error_and_never_run() -> None:
    JOURNAL.reset()
    tools, session, record = runner(python("order_status", ORDER))
    tools.start(call("order_status", '{"order_id": 5}'))
    tools.start(call("launch_rockets", "{}", n=2))
    assert tools.running == 0
    outputs = session.outputs()
    assert outputs["call_1"].startswith("error: ") and "not run" in outputs["call_1"]
    assert "no tool named 'launch_rockets'" in outputs["call_2"]
    assert JOURNAL.names() == []  # never executed
    assert [t.outcome for t in record.tool_calls] == ["invalid_arguments"] * 2


async def test_a_failing_tool_gives_the_model_its_error_text() -> None:
    JOURNAL.reset()
    tools, session, record = runner(python("failing", on_error="The records are unavailable."))
    tools.start(call("failing"))
    await session.until(2)
    assert session.outputs() == {"call_1": "The records are unavailable."}
    assert record.tool_calls[0].outcome == "error"


async def test_a_slow_tool_is_held_then_timed_out_and_the_call_goes_on() -> None:
    JOURNAL.reset()
    slow = python(
        "hold_first",
        timeout_s=0.5,
        hold_after_s=0.05,
        hold_line="One moment.",
        on_timeout="It is slow today.",
    )
    tools, session, record = runner(slow)
    tools.start(call("hold_first"))
    await session.until(1)  # the holding line, first
    kind, params = session.sent[0]
    assert kind == "create" and params["tool_choice"] == "none"
    assert params["instructions"].startswith("Be brief.\n\n")  # the persona is kept
    assert "'One moment.'" in params["instructions"]
    await session.until(3)
    assert session.sent[1:] == [("output", ("call_1", "It is slow today.")), ("create", None)]
    assert (record.tool_calls[0].outcome, record.tool_calls[0].held) == ("timeout", True)
    assert await asyncio.to_thread(JOURNAL.cancelled.wait, 10)  # the coroutine was cancelled


async def test_barge_in_cancels_what_runs_and_answers_without_a_response() -> None:
    JOURNAL.reset()
    tools, session, record = runner(python("hold_first", timeout_s=30))
    tools.start(call("hold_first"))
    await asyncio.to_thread(JOURNAL.started.wait, 10)
    assert tools.cancel() == 1
    assert session.sent == [("output", ("call_1", ON_CANCELLED))]  # no response.create
    assert await asyncio.to_thread(JOURNAL.cancelled.wait, 10)
    assert record.tool_calls[0].outcome == "cancelled"
    assert tools.cancel() == 0


async def test_the_call_ending_cancels_and_answers_nothing() -> None:
    JOURNAL.reset()
    tools, session, record = runner(python("hold_first", timeout_s=30))
    tools.start(call("hold_first"))
    await asyncio.to_thread(JOURNAL.started.wait, 10)
    await tools.aclose()
    assert session.sent == []
    assert await asyncio.to_thread(JOURNAL.cancelled.wait, 10)
    assert record.tool_calls[0].outcome == "cancelled"
    tools.start(call("hold_first", n=2))  # after the end: ignored
    assert tools.running == 0


async def test_calls_of_one_response_get_one_reply() -> None:
    JOURNAL.reset()
    tools, session, _record = runner(TOOLS["current_time"], python("failing"))
    tools.start(call("current_time", "{}", n=1))
    tools.start(call("failing", n=2))
    await session.until(3)
    assert [kind for kind, _ in session.sent] == ["output", "output", "create"]


async def test_no_response_is_asked_for_while_the_caller_speaks() -> None:
    tools, session, _record = runner(TOOLS["current_time"], speaking=True)
    tools.start(call("current_time", "{}"))
    await session.until(1)
    await asyncio.sleep(0)
    assert [kind for kind, _ in session.sent] == ["output"]


async def test_a_call_id_is_answered_once() -> None:
    tools, session, record = runner(TOOLS["current_time"])
    tools.start(call("current_time", "{}"))
    tools.start(call("current_time", "{}"))
    await session.until(2)
    assert len(record.tool_calls) == 1


async def test_metrics_are_per_declared_tool_and_start_at_zero() -> None:
    JOURNAL.reset()
    registry = CollectorRegistry()
    metrics = BridgeMetrics(registry)
    tools, session, _record = runner(python("failing"), TOOLS["current_time"], metrics=metrics)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("bridge_tool_calls_total", tool="failing", outcome="ok") == 0
    assert value("bridge_tool_errors_total", tool="current_time", reason="timeout") == 0
    tools.start(call("failing", n=1))
    tools.start(call("current_time", '{"timezone": 5}', n=2))
    tools.start(call("made_up", "{}", n=3))
    await session.until(4)
    assert value("bridge_tool_errors_total", tool="failing", reason="error") == 1
    assert value("bridge_tool_call_seconds_count", tool="failing") == 1
    assert value("bridge_tool_errors_total", tool="current_time", reason="invalid_arguments") == 1
    assert value("bridge_tool_call_seconds_count", tool="current_time") == 0  # never ran
    assert value("bridge_tool_calls_total", tool="(undeclared)", outcome="invalid_arguments") == 1
    assert value("bridge_tool_calls_total", tool="made_up", outcome="invalid_arguments") is None


async def test_arguments_and_outputs_stay_out_of_logs_above_debug() -> None:
    JOURNAL.reset()
    tools, session, _record = runner(python("failing"), python("order_status", ORDER))
    with capture_logs() as logs:
        tools.start(call("failing", '{"query": "private-value-1"}', n=1))
        tools.start(call("order_status", '{"order_id": "private-value-2"}', n=2))
        await session.until(3)
    above_debug = [e for e in logs if e["log_level"] != "debug"]
    assert {e["event"] for e in above_debug} >= {"tool.started", "tool.finished", "tool.failed"}
    assert "private-value" not in repr(above_debug)
    assert any("private-value" in repr(e) for e in logs if e["log_level"] == "debug")


async def test_a_tool_that_crashes_is_answered_with_its_error_text() -> None:
    def broken(args: Mapping[str, Any], ctx: Any) -> str:
        raise RuntimeError("a bug")

    tool = BuiltinTool(FunctionTool(name="broken"), broken)
    tools, session, record = runner(tool)
    with capture_logs() as logs:
        tools.start(call("broken", "{}"))
        await session.until(2)
    assert session.sent[0] == ("output", ("call_1", tool.limits.on_error))
    assert record.tool_calls[0].outcome == "error"
    assert [e["error"] for e in logs if e["event"] == "tool.crashed"] == ["RuntimeError"]
