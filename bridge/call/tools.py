"""Tools a profile offers the model: what each declares, how its arguments are checked, how it runs.

Three kinds, all declared in the profiles file (``bridge.call.profile_file``):

- ``builtin``: what every voice agent needs and the bridge ships (:data:`TOOLS`): telling the
  time, ending the call once the caller says goodbye (on a phone call: hanging up the line);
- ``http``: the validated arguments POSTed as JSON to a URL fixed in the profile
  (``bridge.call.http_tool``);
- ``python``: a ``module:function``, sync or async, imported at start-up
  (``bridge.call.python_tool``);
- ``transfer``: hand a phone caller over to a person, a number or SIP URI fixed in the profile
  (``bridge.call.transfer_tool``).

What a tool may ask of its call is its :class:`ToolContext`: the call's HTTP client, who the
caller is, when the agent has finished speaking, and the room's server (:class:`RoomControl`:
the pod gives one backed by LiveKit's API; the loopback has none, and phone tools then say so
to the model).

Every call's arguments are parsed and validated against the tool's JSON Schema (Draft 2020-12,
with the formats ``jsonschema`` can assert) *before* anything runs: a call that does not fit
raises :class:`~bridge.errors.InvalidArguments` and is answered to the model as an error. The
runner (``bridge.call.tool_runner``) owns timeouts, cancellation, the holding line and the
figures; a tool only turns arguments into the output text, and raises a
:class:`~bridge.errors.ToolCallError` when it cannot.

Which schemas a declaration may use: a JSON object schema (``"type": "object"``, as the
Realtime API requires of ``parameters``) that is valid Draft 2020-12, JSON only (no TOML dates),
with local ``$ref`` s only (``#/...``): :func:`check_parameters`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

from bridge.errors import InvalidArguments, OutputTooLarge
from bridge.room.participant import Human
from sessions.session_config import FunctionTool

if TYPE_CHECKING:
    import aiohttp

#: Defaults of the texts the model gets instead of an output (a profile may set its own).
ON_TIMEOUT = "The tool took too long to answer; tell the caller it is not available right now."
ON_ERROR = "The tool failed; tell the caller it is not available right now."
ON_OVERSIZE = "The tool's answer was too large to use; tell the caller it is not available."
#: What the model gets for a call cancelled because the caller spoke over it.
ON_CANCELLED = "The caller interrupted, so this call was cancelled and its result is unknown."


class RoomControl(Protocol):
    """What a call may ask of its room's server, beyond its own participant.

    ``bridge.pod.room_control`` implements it with LiveKit's server API for the job's room;
    each method raises when the server refuses (the caller of it turns that into a tool
    error or a log record).
    """

    async def remove_participant(self, identity: str) -> None:
        """Remove ``identity`` from the room (for a SIP participant: the SIP service hangs
        the phone up)."""
        ...

    async def transfer_sip_participant(
        self, identity: str, to: str, *, play_dialtone: bool
    ) -> None:
        """Transfer the SIP participant ``identity`` to ``to`` (``tel:+…`` or ``sip:…``): a
        SIP REFER through LiveKit's SIP service; returns once the transfer is accepted."""
        ...


async def _at_once() -> None:
    return None


@dataclass(slots=True)
class ToolContext:
    """What a tool may ask of its call; one per call (the HTTP session is the call's own).

    ``room``: the room's server, when the call has one; ``caller``: the participant heard
    (in ``mix`` mode, the first); ``until_quiet``: returns once the agent is not speaking
    (what it is saying has played out), so a tool can act after the model's last words.
    """

    hangup_requested: bool = False
    now: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    room: RoomControl | None = None
    caller: Callable[[], Human | None] = field(default=lambda: None)
    until_quiet: Callable[[], Awaitable[None]] = field(default=_at_once)
    _http: aiohttp.ClientSession | None = field(default=None, repr=False)

    def http_session(self) -> aiohttp.ClientSession:
        """The call's HTTP client (created on first use, on the running loop).

        No timeout of its own (the runner enforces the tool's), no proxy or credentials from
        the environment, no cookies kept between calls.
        """
        if self._http is None:
            import aiohttp

            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None),
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolLimits:
    """How long a tool may take, how large its output may be, and what the model gets instead."""

    timeout_s: float = 10.0
    max_output_bytes: int = 16_384
    hold_after_s: float | None = None
    """Ask the model for a short holding line when the tool has run this long (None: never)."""
    hold_line: str = ""
    """What the holding line says ("" : the model's own words)."""
    on_timeout: str = ON_TIMEOUT
    on_error: str = ON_ERROR
    on_oversize: str = ON_OVERSIZE


class Tool:
    """A function the model may call: its declaration, its limits, and how it runs."""

    kind: ClassVar[str] = "builtin"

    def __init__(self, declaration: FunctionTool, limits: ToolLimits | None = None) -> None:
        self.declaration = declaration
        self.limits = limits or ToolLimits()
        self._validator = Draft202012Validator(
            dict(declaration.parameters), format_checker=Draft202012Validator.FORMAT_CHECKER
        )

    @property
    def name(self) -> str:
        return self.declaration.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def parse_arguments(self, raw: str) -> dict[str, Any]:
        """The model's JSON ``arguments`` as an object that fits the schema.

        Raises :class:`InvalidArguments` (the tool must not run) otherwise; an empty string is
        an empty object, as some clients send for tools without parameters.
        """
        try:
            args = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise InvalidArguments(self.name, "the arguments are not valid JSON") from None
        if not isinstance(args, dict):
            raise InvalidArguments(self.name, "the arguments must be a JSON object")
        error = best_match(self._validator.iter_errors(args))
        if error is not None:
            where = error.json_path.removeprefix("$.").removeprefix("$") or "(arguments)"
            raise InvalidArguments(
                self.name, f"{where}: {error.message}", where=where, rule=str(error.validator)
            )
        return args

    def output(self, value: Any) -> str:
        """``value`` as the text the model gets: a string as it is, anything else as JSON.

        Raises :class:`OutputTooLarge` beyond ``max_output_bytes`` of UTF-8.
        """
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        size = len(text.encode("utf-8"))
        if size > self.limits.max_output_bytes:
            raise OutputTooLarge(
                self.name, f"{size} bytes, more than {self.limits.max_output_bytes}"
            )
        return text

    async def run(self, args: Mapping[str, Any], ctx: ToolContext) -> str:
        """The output text for validated ``args``; raises a ``ToolCallError`` when it cannot."""
        raise NotImplementedError


class BuiltinTool(Tool):
    """A tool the bridge ships: a quick synchronous function of the arguments and the call."""

    kind = "builtin"

    def __init__(
        self,
        declaration: FunctionTool,
        function: Callable[[Mapping[str, Any], ToolContext], str],
    ) -> None:
        super().__init__(declaration)
        self.function = function

    async def run(self, args: Mapping[str, Any], ctx: ToolContext) -> str:
        return self.output(self.function(args, ctx))


def _current_time(args: Mapping[str, Any], ctx: ToolContext) -> str:
    zone = args.get("timezone") or "UTC"
    try:
        tz = ZoneInfo(str(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {zone!r}; the UTC time is {ctx.now().strftime('%H:%M')}"
    return ctx.now().astimezone(tz).strftime(f"%A %d %B %Y, %H:%M ({zone})")


def _end_call(args: Mapping[str, Any], ctx: ToolContext) -> str:
    # The call ends once what the agent says next has played out; a phone caller's line is
    # hung up then (bridge.call.call.Call: _on_playout_idle).
    ctx.hangup_requested = True
    return "The call will end after you say goodbye."


TOOLS: dict[str, BuiltinTool] = {
    "current_time": BuiltinTool(
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
    "end_call": BuiltinTool(
        FunctionTool(
            name="end_call",
            description="End the call (on a phone call: hang up) once the caller has said goodbye.",
            parameters={"type": "object", "properties": {}},
        ),
        _end_call,
    ),
}


def check_parameters(schema: Any) -> str | None:
    """What is wrong with ``schema`` as a tool's ``parameters``, or ``None``.

    It must be a JSON object schema (``"type": "object"`` at the top, as the Realtime API
    requires), valid against the Draft 2020-12 meta-schema, made of JSON values only, with
    local references only (a remote ``$ref`` would be fetched, or fail, at call time).
    """
    if not isinstance(schema, dict):
        return "must be a JSON Schema object (a table)"
    try:
        json.dumps(schema, allow_nan=False)
    except (TypeError, ValueError):
        return "must hold JSON values only (no dates, no NaN)"
    if schema.get("type") != "object":
        return 'must be an object schema: type = "object" at the top'
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = exc.json_path.removeprefix("$.").removeprefix("$")
        return f"not a valid JSON Schema{f' at {where}' if where else ''}: {exc.message}"
    remote = _remote_ref(schema)
    if remote is not None:
        return f"only local references ('#/...') are allowed, not {remote!r}"
    return None


def _remote_ref(node: Any) -> str | None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            return ref
        for value in node.values():
            found = _remote_ref(value)
            if found is not None:
                return found
    elif isinstance(node, list):
        for value in node:
            found = _remote_ref(value)
            if found is not None:
                return found
    return None
