"""Built-in tools: outputs for the model, errors as text, hang-up requests."""

from __future__ import annotations

import datetime as dt

from bridge.call.tools import ToolContext, run_tool

FIXED = dt.datetime(2026, 11, 21, 12, 30, tzinfo=dt.UTC)


def test_current_time_in_a_zone() -> None:
    ctx = ToolContext(now=lambda: FIXED)
    assert run_tool("current_time", '{"timezone": "Europe/Paris"}', ctx) == (
        "Saturday 21 November 2026, 13:30 (Europe/Paris)"
    )
    assert "UTC" in run_tool("current_time", "", ctx)
    assert "unknown time zone" in run_tool("current_time", '{"timezone": "Mars/Base"}', ctx)


def test_end_call_requests_a_hangup() -> None:
    ctx = ToolContext()
    assert "end" in run_tool("end_call", "{}", ctx)
    assert ctx.hangup_requested


def test_bad_calls_become_error_text() -> None:
    ctx = ToolContext()
    assert run_tool("nope", "{}", ctx).startswith("error: no tool")
    assert run_tool("current_time", "{bad", ctx).startswith("error:")
    assert run_tool("current_time", "[1]", ctx).startswith("error:")
