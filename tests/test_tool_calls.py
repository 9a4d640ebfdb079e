"""Tools declared in profiles, end to end: the real pipeline on the loopback room, the simulator's
``tool`` behaviour as the model, a local HTTP server for ``http`` tools, and ``tests.toolkit``
for ``python`` tools.

Five calls run at once, in real time, each with its own profile: an HTTP tool and a Python tool
whose output the reply speaks; a slow HTTP tool that gets a holding line, then times out into
the configured text while the call goes on; a tool the caller talks over (cancelled); and a
model call whose arguments do not fit the tool's schema (never executed). Waits are on the
calls ending; timeouts are only safety nets. A last test checks that a reconnect replays the
calls and outputs of these tools (the supervisor's replay, unchanged).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from jsonschema import Draft202012Validator
from prometheus_client import CollectorRegistry

from bridge.call.profiles import ProfileSet
from bridge.call.tools import ON_CANCELLED
from bridge.local.trial import TrialOptions, TrialResult, run_trial
from bridge.local.wavfile import Wav
from bridge.metrics import BridgeMetrics
from sessions import events as ev
from sessions.endpoint import Endpoint
from sessions.session_config import FunctionTool
from sessions.simulator import (
    Simulator,
    SimulatorConfig,
    add_observer,
    parse_fault,
    remove_observer,
)
from sessions.simulator.behaviors import HOLDING_LINE
from sessions.supervisor import SessionSupervisor
from tests.realtime_schema import check_event
from tests.sessionkit import CONFIG, EventLog
from tests.simclient import RATE, silence, utterance, voiced
from tests.toolkit import JOURNAL, Endpoint as HttpEndpoint, http_endpoint

ORDER = {
    "type": "object",
    "properties": {"order_id": {"type": "string", "description": "The order number"}},
    "required": ["order_id"],
}
HEARD = "alpha bravo charlie"  # the simulator's transcript of a 1 s utterance
SLOW_TEXT = "the order system is slow today"


def parameters(tool: str, name: str, pattern: str = "") -> str:
    """A tool's parameters as a TOML sub-table: one required string property."""
    extra = f', pattern = "{pattern}"' if pattern else ""
    return f"""
[profiles.{tool}.tools.parameters]
type = "object"
required = ["{name}"]
properties.{name} = {{ type = "string"{extra} }}
"""


def profiles_text(base: str) -> str:
    return f"""
[defaults]
instructions = "You help callers with their orders."

[defaults.turn_detection]
type = "server_vad"
silence_duration_ms = 400

[profiles.default]

[[profiles.http.tools]]
kind = "http"
name = "lookup_order"
description = "Find an order by its number."
url = "{base}/orders"
headers = {{ Authorization = {{ env = "ORDERS_TOKEN", prefix = "Bearer " }} }}
hold_after_s = 0
{parameters("http", "order_id")}
[[profiles.python.tools]]
kind = "python"
name = "order_status"
function = "tests.toolkit:order_status"
hold_after_s = 0
{parameters("python", "order_id")}
[[profiles.slow.tools]]
kind = "http"
name = "lookup_order"
url = "{base}/slow"
timeout_s = 0.8
hold_after_s = 0.2
on_timeout = "{SLOW_TEXT}"
{parameters("slow", "order_id")}
[[profiles.barge.tools]]
kind = "python"
name = "hold_first"
function = "tests.toolkit:hold_first"
timeout_s = 30
hold_after_s = 0
{parameters("barge", "query")}
[[profiles.strict.tools]]
kind = "python"
name = "must_not_run"
function = "tests.toolkit:must_not_run"
hold_after_s = 0
{parameters("strict", "order_id", pattern="^[0-9]+$")}"""


def question() -> Wav:
    return Wav(utterance(lead=0.3, speech=1.0, tail=1.2), RATE, 1)


def question_then_barge_in() -> Wav:
    # The second utterance starts 3.5 s after the first ends: the tool has long been running.
    samples = np.concatenate([utterance(lead=0.3, speech=1.0, tail=3.5), voiced(1.0), silence(1.5)])
    return Wav(samples, RATE, 1)


RUNS = ("http", "python", "slow", "barge", "strict")


@pytest.fixture(scope="module")
def calls() -> dict[str, Any]:
    problems: list[str] = []

    def observe(dialect: str, event: dict[str, Any]) -> None:
        problems.extend(check_event(dialect, event))

    async def main() -> dict[str, Any]:
        JOURNAL.reset()
        add_observer(observe)
        try:
            async with (
                Simulator(SimulatorConfig(behavior="tool"), host="127.0.0.1", port=0) as sim,
                http_endpoint() as server,
            ):
                secrets = {"ORDERS_TOKEN": "tok-0123456789"}
                text = profiles_text(server.base)
                profiles = ProfileSet.parse(text, "t.toml", secrets=secrets.get)
                strict = profiles["strict"]
                loose = FunctionTool(name="must_not_run", parameters=ORDER)  # what the model sees
                strict = replace(strict, session=replace(strict.session, tools=(loose,)))
                registry = CollectorRegistry()
                endpoint = Endpoint.compatible(sim.url, api_key="k")
                options = TrialOptions(max_extra_s=30.0)

                async def trial(profile: Any, wav: Wav, **kw: Any) -> TrialResult:
                    return await run_trial(wav, profile, endpoint, options=options, **kw)

                async with asyncio.timeout(120):
                    results = await asyncio.gather(
                        trial(profiles["http"], question(), metrics=BridgeMetrics(registry)),
                        trial(profiles["python"], question()),
                        trial(profiles["slow"], question()),
                        trial(profiles["barge"], question_then_barge_in()),
                        trial(strict, question()),
                    )
                return {
                    **dict(zip(RUNS, results, strict=True)),
                    "server": server,
                    "registry": registry,
                }
        finally:
            remove_observer(observe)

    result = asyncio.run(main())
    assert not problems, problems[:5]
    return result


def agent_lines(result: TrialResult) -> list[str]:
    return [x["text"] for x in result.summary()["conversation"] if x["who"] == "agent"]


def outcomes(result: TrialResult) -> list[tuple[str, str]]:
    return [(t["tool"], t["outcome"]) for t in result.summary()["tool_calls"]]


def assert_went_on(result: TrialResult) -> None:
    summary = result.summary()
    assert not summary["failed"] and summary["errors"] == [], summary["errors"]
    assert summary["end_reason"] == "the recording ended"


def test_an_http_tool_runs_with_valid_arguments_and_the_reply_speaks_its_output(
    calls: dict[str, Any],
) -> None:
    result: TrialResult = calls["http"]
    server: HttpEndpoint = calls["server"]
    [request] = [r for r in server.requests if r["path"] == "/orders"]
    Draft202012Validator(ORDER).validate(request["json"])
    assert request["json"] == {"order_id": HEARD}  # the transcript where a string fits
    assert request["headers"]["Authorization"] == "Bearer tok-0123456789"
    assert outcomes(result) == [("lookup_order", "ok")]
    assert agent_lines(result) == [f"order {HEARD} is on its way"]
    assert result.summary()["responses"] == 2  # the call, then the answer about its output
    assert_went_on(result)
    registry: CollectorRegistry = calls["registry"]
    labels = {"tool": "lookup_order"}
    assert registry.get_sample_value("bridge_tool_calls_total", {**labels, "outcome": "ok"}) == 1
    assert registry.get_sample_value("bridge_tool_call_seconds_count", labels) == 1
    errors = {**labels, "reason": "timeout"}
    assert registry.get_sample_value("bridge_tool_errors_total", errors) == 0


def test_a_python_tool_runs_and_the_reply_speaks_its_output(calls: dict[str, Any]) -> None:
    result: TrialResult = calls["python"]
    assert ("order_status", {"order_id": HEARD}) in JOURNAL.calls
    assert outcomes(result) == [("order_status", "ok")]
    assert agent_lines(result) == [f"order {HEARD} shipped yesterday"]
    assert_went_on(result)


def test_a_slow_tool_gets_a_holding_line_then_its_timeout_text_and_the_call_goes_on(
    calls: dict[str, Any],
) -> None:
    result: TrialResult = calls["slow"]
    [call] = result.summary()["tool_calls"]
    assert (call["outcome"], call["held"]) == ("timeout", True)
    assert agent_lines(result) == [HOLDING_LINE, SLOW_TEXT]  # never left in silence
    assert result.summary()["output_seconds"] > 0
    assert_went_on(result)


def test_a_barge_in_cancels_a_running_tool(calls: dict[str, Any]) -> None:
    result: TrialResult = calls["barge"]
    assert JOURNAL.cancelled.is_set()  # the coroutine itself was cancelled
    assert outcomes(result)[0] == ("hold_first", "cancelled")
    system = [x["text"] for x in result.summary()["conversation"] if x["who"] == "system"]
    assert system[0].endswith(f"-> {ON_CANCELLED}")
    # The caller's new turn was answered: the tool was called again and its output spoken.
    assert outcomes(result)[1:] == [("hold_first", "ok")]
    assert agent_lines(result)[-1] == "second call done"
    assert_went_on(result)


def test_an_invalid_argument_set_is_never_executed(calls: dict[str, Any]) -> None:
    result: TrialResult = calls["strict"]
    assert "must_not_run" not in JOURNAL.names()
    assert outcomes(result) == [("must_not_run", "invalid_arguments")]
    [line] = agent_lines(result)  # the model was told, and went on
    assert line.startswith("error: order_id:") and "does not match" in line
    assert_went_on(result)


# ------------------------------------------------------------------ replay


async def test_a_reconnect_replays_tool_calls_and_outputs(simulator: Any, tmp_path: Path) -> None:
    """The supervisor's replay keeps function calls and their outputs, whatever the tool."""
    path = tmp_path / "journal.jsonl"
    sim = await simulator(
        behavior="tool",
        pace=float("inf"),
        journal=path,
        faults=(parse_fault("expire@after_reply"),),
    )
    declared = FunctionTool(name="lookup_order", parameters=ORDER)
    log = EventLog()
    client = SessionSupervisor(  # configured as a profile with an http tool configures it
        Endpoint.compatible(sim.url, api_key="test-key"),
        replace(CONFIG, tools=(declared,)),
        handler=log,
    )
    client.on_reconnect = lambda _reason: log.poke()
    await client.start()
    try:
        client.append_audio(utterance(lead=0.2, speech=1.0, tail=0.5))
        call = await log.next(ev.FunctionCall)
        client.send_function_output(call.call_id, f"order {HEARD} is on its way")
        client.create_response()
        await log.next(ev.ResponseDone, after=1)
        client.append_audio(silence(0.1))  # idle after the reply: the session expires
        await log.until(lambda: client.stats.reconnects["expired"] == 1)
    finally:
        await client.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    replayed = [
        x["frame"]["item"]
        for x in lines
        if x["dir"] == "in"
        and x["conn"] == 2
        and x["frame"].get("type") == "conversation.item.create"
    ]
    kinds = [i["type"] for i in replayed]
    assert kinds[kinds.index("function_call") :][:2] == ["function_call", "function_call_output"]
    function_call = next(i for i in replayed if i["type"] == "function_call")
    output = next(i for i in replayed if i["type"] == "function_call_output")
    assert (function_call["call_id"], function_call["name"]) == (call.call_id, "lookup_order")
    assert json.loads(function_call["arguments"]) == {"order_id": HEARD}
    assert output == {
        "id": output["id"],
        "type": "function_call_output",
        "call_id": call.call_id,
        "output": f"order {HEARD} is on its way",
    }
