"""Built-in tools a profile may offer the model (``tools = ["current_time"]``).

The bridge has no business logic of its own, so the built-ins are the ones every voice agent
needs: telling the time, and ending the call when the caller says goodbye. Each tool is a
declaration (what the model sees) and a function of the parsed arguments that returns the
output string sent back as ``function_call_output``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sessions.session_config import FunctionTool


@dataclass(slots=True)
class ToolContext:
    """What a tool may ask of the call."""

    hangup_requested: bool = False
    now: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))


@dataclass(frozen=True, slots=True)
class Tool:
    declaration: FunctionTool
    run: Callable[[Mapping[str, Any], ToolContext], str]


def _current_time(args: Mapping[str, Any], ctx: ToolContext) -> str:
    zone = args.get("timezone") or "UTC"
    try:
        tz = ZoneInfo(str(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {zone!r}; the UTC time is {ctx.now().strftime('%H:%M')}"
    return ctx.now().astimezone(tz).strftime(f"%A %d %B %Y, %H:%M ({zone})")


def _end_call(args: Mapping[str, Any], ctx: ToolContext) -> str:
    ctx.hangup_requested = True
    return "The call will end after you say goodbye."


TOOLS: dict[str, Tool] = {
    "current_time": Tool(
        FunctionTool(
            name="current_time",
            description="The current date and time, optionally in an IANA time zone.",
            parameters={
                "type": "object",
                "properties": {"timezone": {"type": "string", "description": "e.g. Europe/Paris"}},
            },
        ),
        _current_time,
    ),
    "end_call": Tool(
        FunctionTool(
            name="end_call",
            description="End the call once the caller has said goodbye.",
            parameters={"type": "object", "properties": {}},
        ),
        _end_call,
    ),
}


def run_tool(name: str, arguments: str, ctx: ToolContext) -> str:
    """Run a built-in tool on the model's JSON ``arguments``; errors become the output text."""
    tool = TOOLS.get(name)
    if tool is None:
        return f"error: no tool named {name!r}"
    try:
        args = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return "error: the arguments were not valid JSON"
    if not isinstance(args, dict):
        return "error: the arguments must be a JSON object"
    return tool.run(args, ctx)
