"""Tools: built-ins, argument validation, HTTP tools against a local server, Python tools."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest

from bridge.call.http_tool import HttpTool
from bridge.call.python_tool import PythonTool, load_function
from bridge.call.tools import TOOLS, Tool, ToolContext, ToolLimits, check_parameters
from bridge.errors import InvalidArguments, OutputTooLarge, ToolFailed
from sessions.session_config import FunctionTool
from tests import toolkit
from tests.toolkit import JOURNAL, Endpoint, http_endpoint

FIXED = dt.datetime(2026, 11, 21, 12, 30, tzinfo=dt.UTC)
ORDER = {
    "type": "object",
    "properties": {"order_id": {"type": "string", "minLength": 2}},
    "required": ["order_id"],
    "additionalProperties": False,
}


async def run(tool: Tool, arguments: str, ctx: ToolContext | None = None) -> str:
    return await tool.run(tool.parse_arguments(arguments), ctx or ToolContext())


# ------------------------------------------------------------------ built-ins


async def test_current_time_in_a_zone() -> None:
    ctx = ToolContext(now=lambda: FIXED)
    tool = TOOLS["current_time"]
    assert await run(tool, '{"timezone": "Europe/Paris"}', ctx) == (
        "Saturday 21 November 2026, 13:30 (Europe/Paris)"
    )
    assert "UTC" in await run(tool, "", ctx)
    assert "unknown time zone" in await run(tool, '{"timezone": "Mars/Base"}', ctx)


async def test_end_call_requests_a_hangup() -> None:
    ctx = ToolContext()
    assert "end" in await run(TOOLS["end_call"], "{}", ctx)
    assert ctx.hangup_requested


# ------------------------------------------------------------------ arguments


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ("{bad", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        ("{}", "'order_id' is a required property"),
        ('{"order_id": "7"}', "order_id: '7' is too short"),
        ('{"order_id": 7}', "order_id: 7 is not of type 'string'"),
        ('{"order_id": "77", "x": 1}', "Additional properties are not allowed"),
    ],
)
def test_arguments_that_do_not_fit_are_refused_before_anything_runs(
    arguments: str, words: str
) -> None:
    tool = Tool(FunctionTool(name="lookup", parameters=ORDER))
    with pytest.raises(InvalidArguments) as caught:
        tool.parse_arguments(arguments)
    assert words in caught.value.detail
    assert caught.value.reason == "invalid_arguments"


def test_arguments_that_fit_are_parsed() -> None:
    tool = Tool(FunctionTool(name="lookup", parameters=ORDER))
    assert tool.parse_arguments('{"order_id": "77"}') == {"order_id": "77"}
    with pytest.raises(InvalidArguments, match="date"):  # formats are asserted
        Tool(
            FunctionTool(
                name="book",
                parameters={"type": "object", "properties": {"day": {"format": "date"}}},
            )
        ).parse_arguments('{"day": "next tuesday"}')


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ("x", "must be a JSON Schema object"),
        ({"type": "string"}, 'type = "object"'),
        ({"type": "object", "properties": {"a": {"type": "strin"}}}, "properties.a.type"),
        ({"type": "object", "properties": {"a": {"$ref": "https://x/s.json"}}}, "local"),
        ({"type": "object", "default": dt.date(2026, 1, 1)}, "JSON values only"),
    ],
)
def test_a_bad_schema_is_named(schema: object, words: str) -> None:
    problem = check_parameters(schema)
    assert problem is not None and words in problem


def test_a_good_schema_passes() -> None:
    assert check_parameters(ORDER) is None
    for tool in TOOLS.values():
        assert check_parameters(dict(tool.declaration.parameters)) is None


# ------------------------------------------------------------------ http


@pytest.fixture
async def server() -> AsyncIterator[Endpoint]:
    async with http_endpoint() as endpoint:
        yield endpoint


def http_tool(server: Endpoint, path: str, **limits: object) -> HttpTool:
    return HttpTool(
        FunctionTool(name="lookup_order", parameters=ORDER),
        ToolLimits(**limits),  # type: ignore[arg-type]
        url=f"{server.base}{path}",
        headers={"Authorization": "Bearer tok-123456", "X-Tenant": "acme"},
    )


async def test_http_posts_the_arguments_and_returns_the_body(server: Endpoint) -> None:
    ctx = ToolContext()
    try:
        output = await run(http_tool(server, "/orders"), '{"order_id": "A17"}', ctx)
    finally:
        await ctx.aclose()
    assert output == "order A17 is on its way"
    [request] = server.requests
    assert request["json"] == {"order_id": "A17"}
    assert request["headers"]["Authorization"] == "Bearer tok-123456"
    assert request["headers"]["X-Tenant"] == "acme"
    assert request["headers"]["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("path", "error", "words"),
    [
        ("/broken", ToolFailed, "HTTP 503"),
        ("/redirect", ToolFailed, "HTTP 302"),  # never followed: headers stay with the URL
        ("/big", OutputTooLarge, "Content-Length 50000"),
        ("/streamed", OutputTooLarge, "more than 16384 bytes"),
    ],
)
async def test_http_failures_are_named(
    server: Endpoint, path: str, error: type[Exception], words: str
) -> None:
    ctx = ToolContext()
    try:
        with pytest.raises(error, match=words):
            await run(http_tool(server, path), '{"order_id": "A17"}', ctx)
    finally:
        await ctx.aclose()
    assert [r["path"] for r in server.requests] == [path]  # the redirect was not followed


async def test_http_empty_answer_and_unreachable_host(server: Endpoint) -> None:
    ctx = ToolContext()
    try:
        assert await run(http_tool(server, "/empty"), '{"order_id": "A1"}', ctx) == (
            "HTTP 204, no content"
        )
        dead = HttpTool(
            FunctionTool(name="x", parameters=ORDER),
            ToolLimits(),
            url="http://127.0.0.1:9/",  # discard port: refused
            headers={},
        )
        with pytest.raises(ToolFailed, match="request failed"):
            await run(dead, '{"order_id": "A1"}', ctx)
    finally:
        await ctx.aclose()


def test_an_http_tool_never_shows_its_headers() -> None:
    tool = HttpTool(
        FunctionTool(name="x"), ToolLimits(), url="https://h/", headers={"A": "secret-value"}
    )
    assert "secret-value" not in repr(tool)


# ------------------------------------------------------------------ python


def python_tool(name: str, parameters: dict[str, object], **limits: object) -> PythonTool:
    properties = parameters.get("properties") or {}
    required = parameters.get("required") or []
    target = f"tests.toolkit:{name}"
    return PythonTool(
        FunctionTool(name=name, parameters=parameters),
        ToolLimits(**limits),  # type: ignore[arg-type]
        target=target,
        function=load_function(target, properties, required),  # type: ignore[arg-type]
    )


QUERY = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}
CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city"],
}


async def test_python_sync_and_async_tools_run_off_the_loop() -> None:
    JOURNAL.reset()
    tool = python_tool("order_status", {**ORDER, "additionalProperties": True})
    assert not tool.is_async
    assert await run(tool, '{"order_id": "B2"}') == "order B2 shipped yesterday"
    weather = python_tool("weather", CITY)
    assert weather.is_async
    assert await run(weather, '{"city": "Oslo"}') == (
        '{"city": "Oslo", "days": 1, "forecast": "sunny"}'  # anything but text: JSON
    )
    assert JOURNAL.names() == ["order_status", "weather"]


async def test_python_failures_and_oversize() -> None:
    JOURNAL.reset()
    with pytest.raises(ToolFailed, match="raised KeyError") as caught:
        await run(python_tool("failing", QUERY), '{"query": "secret-order-9"}')
    assert "secret-order-9" not in str(caught.value)  # the detail names the type only
    with pytest.raises(OutputTooLarge):
        await run(python_tool("huge", QUERY, max_output_bytes=1000), '{"query": "q"}')


async def test_cancelling_an_async_python_tool_cancels_it_on_the_tool_loop() -> None:
    JOURNAL.reset()
    task = asyncio.ensure_future(run(python_tool("hold_first", QUERY), '{"query": "q"}'))
    await asyncio.to_thread(JOURNAL.started.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(JOURNAL.cancelled.wait, 10)


async def test_a_blocking_sync_tool_does_not_block_the_loop() -> None:
    JOURNAL.reset()
    task = asyncio.ensure_future(run(python_tool("blocking", QUERY), '{"query": "q"}'))
    await asyncio.to_thread(JOURNAL.started.wait, 10)
    ticks = 0
    for _ in range(5):  # the loop still turns while the tool's thread is blocked
        await asyncio.sleep(0)
        ticks += 1
    assert ticks == 5 and not task.done()
    JOURNAL.release.set()
    assert await task == "released"


@pytest.mark.parametrize(
    ("target", "properties", "required", "words"),
    [
        ("tests.toolkit", [], [], "must be 'module:function'"),
        ("tests.no_such_module:f", [], [], "does not import"),
        ("tests.toolkit:missing", [], [], "has no 'missing'"),
        ("tests.toolkit:NOT_CALLABLE", [], [], "is not callable"),
        ("tests.toolkit:no_arguments", ["q"], [], "cannot take the declared parameters"),
        ("tests.toolkit:order_status", ["order_id"], [], "cannot do without ['order_id']"),
    ],
)
def test_a_python_tool_that_cannot_run_is_refused_at_load(
    target: str, properties: list[str], required: list[str], words: str
) -> None:
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        load_function(target, properties, required)


def test_toolkit_module_is_importable_by_name() -> None:
    assert load_function("tests.toolkit:weather", ["city", "days"], ["city"]) is toolkit.weather
