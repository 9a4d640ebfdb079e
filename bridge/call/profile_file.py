"""The shape of a profiles file, as pydantic models: what validates it, and its JSON Schema.

``bridge.call.profiles`` validates every profile table (``[defaults]`` merged into it) with
:class:`ProfileTable` at start-up, and turns what fails into a
:class:`~bridge.errors.ProfileError` naming the file, the profile, the tool and the field
(:func:`locate`). The JSON Schema editors use to check and complete ``profiles.toml``
(``bridge/call/profiles.schema.json``) is generated from the same models by :func:`json_schema`;
``tests/test_profile_schema.py`` fails when the file is stale. Regenerate it with::

    .venv/bin/python -m bridge.call.profile_file > bridge/call/profiles.schema.json

The models describe the file: every type and bound an editor can check is here. The session
fields are checked once more by ``sessions.session_config`` (its own invariants), and what
needs more than the file (the environment, importing a module) is done by ``profiles``.

A tool in a profile's ``tools`` list is either a built-in's name (``"current_time"``) or a
table (``[[profiles.NAME.tools]]``) with a ``kind``:

- ``builtin``: ``name`` of a built-in;
- ``http``: ``name``, ``description``, ``parameters`` (a JSON Schema object), ``url``,
  ``headers`` (text, or ``{ env = "VARIABLE", prefix = "Bearer " }``), ``timeout_s``,
  ``max_output_bytes``, ``hold_after_s``, ``hold_line``, ``on_timeout``, ``on_error``,
  ``on_oversize``;
- ``python``: the same but ``function = "module:function"`` instead of ``url`` and ``headers``;
- ``transfer``: ``name``, ``description``, ``to`` (``tel:+…`` or ``sip:…``, fixed: the model
  never chooses the number), ``play_dialtone``, ``timeout_s``, ``on_timeout``, ``on_error``.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Annotated, Any, Literal, get_args
from urllib.parse import parse_qsl, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails

from bridge.call.tools import ON_ERROR, ON_OVERSIZE, ON_TIMEOUT, TOOLS, check_parameters
from sessions.session_config import VOICES

SCHEMA_ID = "https://github.com/realtime-bridge/profiles.schema.json"
Overridable = Literal[
    "model",
    "instructions",
    "voice",
    "speed",
    "output_modalities",
    "noise_reduction",
    "turn_detection",
    "input_transcription",
    "max_output_tokens",
    "tools",
    "input",
]
#: Fields dispatch metadata may override when a profile allows them.
OVERRIDABLE: tuple[str, ...] = get_args(Overridable)
#: Header names whose value is a credential: never literal text in a profile.
_CREDENTIAL_HEADER = re.compile(
    r"authorization|cookie|key|token|secret|password|passwd|auth|session|signature", re.I
)
_CREDENTIAL_PARAM = re.compile(r"key|token|secret|password|passwd|auth|sig|session", re.I)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding"})


class _Table(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


# ---------------------------------------------------------------------- session fields


def _voice(value: str) -> str:
    if value not in VOICES and not value.startswith("voice_"):
        raise ValueError(f"{value!r} is not one of {', '.join(sorted(VOICES))} (or a voice_ id)")
    return value


Voice = Annotated[
    str,
    AfterValidator(_voice),
    Field(
        description="A voice of the GA API, or a custom voice id (voice_...).",
        json_schema_extra={
            "anyOf": [{"enum": sorted(VOICES)}, {"pattern": "^voice_"}],
        },
    ),
]
Milliseconds = Annotated[int, Field(ge=0, le=10_000)]


class ServerVadTable(_Table):
    """Server VAD on audio energy (every parameter of the API)."""

    type: Literal["server_vad"] = "server_vad"
    threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    prefix_padding_ms: Milliseconds = 300
    silence_duration_ms: Milliseconds = 500
    create_response: bool = True
    interrupt_response: bool = True
    idle_timeout_ms: Annotated[int, Field(ge=5_000, le=30_000)] | None = None


class SemanticVadTable(_Table):
    """Semantic VAD: the turn ends when the words sound finished."""

    type: Literal["semantic_vad"]
    eagerness: Literal["low", "medium", "high", "auto"] = "auto"
    create_response: bool = True
    interrupt_response: bool = True


class NoTurnDetectionTable(_Table):
    """No turn detection: the client commits turns itself."""

    type: Literal["none"]


def _turn_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "word"
    if isinstance(value, dict):
        kind = value.get("type", "server_vad")
        return kind if isinstance(kind, str) else None
    return None


TurnDetectionField = Annotated[
    Annotated[ServerVadTable, Tag("server_vad")]
    | Annotated[SemanticVadTable, Tag("semantic_vad")]
    | Annotated[NoTurnDetectionTable, Tag("none")]
    | Annotated[Literal["none"], Tag("word")],
    Discriminator(
        _turn_kind,
        custom_error_type="turn_detection_type",
        custom_error_message="type must be server_vad, semantic_vad or none",
    ),
]


class TranscriptionTable(_Table):
    """Input transcription (user captions); ``model = "none"`` for none."""

    model: Annotated[str, Field(min_length=1)] = "gpt-4o-mini-transcribe"
    language: str | None = None
    prompt: str | None = None


# ---------------------------------------------------------------------- tools


def _parameters(value: dict[str, Any]) -> dict[str, Any]:
    problem = check_parameters(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _builtin(value: str) -> str:
    if value not in TOOLS:
        raise ValueError(f"unknown tool {value!r} (built-in: {', '.join(sorted(TOOLS))})")
    return value


ToolName = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="What the model calls it: letters, digits, '_' or '-', at most 64.",
    ),
]
BuiltinName = Annotated[
    str, AfterValidator(_builtin), Field(json_schema_extra={"enum": sorted(TOOLS)})
]
Parameters = Annotated[
    dict[str, Any],
    AfterValidator(_parameters),
    Field(
        description="The JSON Schema of the arguments: an object schema (Draft 2020-12).",
        json_schema_extra={"required": ["type"], "properties": {"type": {"const": "object"}}},
    ),
]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class EnvValue(_Table):
    """A header value read from an environment variable at start-up (``prefix`` + value)."""

    env: EnvName
    prefix: str = ""


def _header_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "env"
    return None


HeaderValue = Annotated[
    Annotated[str, Tag("text")] | Annotated[EnvValue, Tag("env")],
    Discriminator(
        _header_kind,
        custom_error_type="header_value",
        custom_error_message='must be text, or { env = "VARIABLE" } for a credential',
    ),
]


class BuiltinToolTable(_Table):
    """A built-in tool, as a table (the same as its name in the list)."""

    kind: Literal["builtin"]
    name: BuiltinName


class _RunTable(_Table):
    """What http and python tools share."""

    name: ToolName
    description: str = ""
    parameters: Parameters = Field(default_factory=lambda: {"type": "object", "properties": {}})
    timeout_s: Annotated[float, Field(gt=0.0, le=120.0)] = 5.0
    max_output_bytes: Annotated[int, Field(ge=1, le=1_048_576)] = 16_384
    hold_after_s: Annotated[float, Field(ge=0.0)] = Field(
        default=1.5,
        description="Ask the model for a short holding line once the tool has run this long"
        " (0: never).",
    )
    hold_line: str = Field(
        default="", description="What the holding line says (default: the model's own words)."
    )
    on_timeout: str = ON_TIMEOUT
    on_error: str = ON_ERROR
    on_oversize: str = ON_OVERSIZE


class HttpToolTable(_RunTable):
    """POST the arguments as JSON to ``url``; the response body is what the model gets."""

    kind: Literal["http"]
    url: str
    headers: dict[str, HeaderValue] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} must be an http:// or https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("no credentials in the URL: put them in a header from the environment")
        for key, _ in parse_qsl(parts.query, keep_blank_values=True):
            if _CREDENTIAL_PARAM.search(key):
                raise ValueError(
                    f"query parameter {key!r} looks like a credential: send it in a header"
                    " whose value comes from the environment"
                )
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str | EnvValue]) -> dict[str, str | EnvValue]:
        for name, header in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"{name!r} is set by the bridge")
            text = header if isinstance(header, str) else header.prefix
            if "\r" in text or "\n" in text:
                raise ValueError(f"{name!r}: no line breaks in a header value")
            if isinstance(header, str) and _CREDENTIAL_HEADER.search(name):
                raise ValueError(
                    f"{name!r} carries a credential: its value must come from the environment,"
                    f' {name} = {{ env = "VARIABLE" }}'
                )
        return value


class PythonToolTable(_RunTable):
    """Call ``module:function`` (sync or async) with the arguments as keywords."""

    kind: Literal["python"]
    function: Annotated[
        str,
        Field(
            pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
            description="module:function, importable where the bridge runs.",
        ),
    ]


class TransferToolTable(_Table):
    """Hand a phone caller over to a person: a SIP transfer to ``to`` (no arguments)."""

    kind: Literal["transfer"]
    name: ToolName
    description: str = (
        "Transfer the caller to a person. Tell them you are putting them through first."
    )
    to: Annotated[
        str,
        Field(
            pattern=r"^(tel:\+?[0-9]{3,15}|sips?:[^@\s]+@[^\s]+)$",
            description="Where to: tel:+15550123 or sip:desk@pbx.example.com (fixed here).",
        ),
    ]
    play_dialtone: bool = Field(
        default=False, description="The caller hears a dial tone while the transfer rings."
    )
    timeout_s: Annotated[float, Field(gt=0.0, le=120.0)] = Field(
        default=40.0,
        description="Speaking out the last words plus ringing, until the transfer is accepted.",
    )
    on_timeout: str = ON_TIMEOUT
    on_error: str = ON_ERROR


def _tool_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "name"
    if isinstance(value, dict):
        kind = value.get("kind")
        return kind if isinstance(kind, str) else None
    return None


ToolItem = Annotated[
    Annotated[BuiltinName, Tag("name")]
    | Annotated[BuiltinToolTable, Tag("builtin")]
    | Annotated[HttpToolTable, Tag("http")]
    | Annotated[PythonToolTable, Tag("python")]
    | Annotated[TransferToolTable, Tag("transfer")],
    Discriminator(
        _tool_kind,
        custom_error_type="tool_kind",
        custom_error_message='must be a built-in tool\'s name, or a table with kind = "builtin",'
        ' "http", "python" or "transfer"',
    ),
]


# ---------------------------------------------------------------------- profiles


def _audio_only() -> list[Literal["audio", "text"]]:
    return ["audio"]


class ProfileTable(_Table):
    """One profile (``[defaults]`` has the same fields and is merged into every profile)."""

    model: Annotated[str, Field(min_length=1)] = "gpt-realtime"
    instructions: str = ""
    voice: Voice = "marin"
    speed: Annotated[float, Field(ge=0.25, le=1.5)] = 1.0
    output_modalities: Annotated[
        list[Literal["audio", "text"]], Field(min_length=1, max_length=1)
    ] = Field(default_factory=_audio_only)
    noise_reduction: Literal["near_field", "far_field", "none"] = "none"
    max_output_tokens: Annotated[int, Field(ge=1, le=4096)] | Literal["inf"] = "inf"
    audio_chunk_ms: Literal[10, 20, 40, 50, 100] = 20
    input: Literal["linked", "mix"] = "linked"
    tools: list[ToolItem] = Field(default_factory=list)
    overridable: list[Overridable] = Field(default_factory=list)
    turn_detection: TurnDetectionField = Field(default_factory=ServerVadTable)
    input_transcription: TranscriptionTable | None = None

    @field_validator("tools")
    @classmethod
    def _unique_tools(cls, tools: list[Any]) -> list[Any]:
        seen: set[str] = set()
        for item in tools:
            name = item if isinstance(item, str) else item.name
            if name in seen:
                raise ValueError(f"tool names must be unique: {name!r} is declared twice")
            seen.add(name)
        return tools


#: Every field of a profile.
PROFILE_FIELDS = frozenset(ProfileTable.model_fields)


class ProfileFile(_Table):
    """A profiles file: ``[defaults]`` inherited by every ``[profiles.NAME]``."""

    defaults: ProfileTable = Field(
        default_factory=ProfileTable,
        description="Values every profile inherits (a profile's own value wins, shallowly).",
    )
    profiles: dict[str, ProfileTable] = Field(
        description="Named profiles; dispatch metadata picks one, 'default' otherwise.",
        json_schema_extra={"required": ["default"]},
    )


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a profiles file (what ``profiles.schema.json`` holds)."""
    schema = ProfileFile.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
    }


def schema_text() -> str:
    """:func:`json_schema` as the file's text (stable: sorted keys, 2-space indents)."""
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------- errors


Path = tuple[str | int, ...]
_TYPE_WORDS = {
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "missing": "is required",
}
#: Fields whose value may be one of several shapes: one message for all of them.
_UNION_HINTS = {"max_output_tokens": "must be a whole number from 1 to 4096, or 'inf'"}


def locate(exc: ValidationError, data: Any) -> tuple[Path, str]:
    """Where in ``data`` the first problem of ``exc`` is, and what it is, in plain words.

    The path follows the data (union and tag names pydantic puts in its locations are
    dropped); a missing or unknown field ends the path with its name.
    """
    errors = exc.errors(include_url=False)
    first = errors[0]
    path = _data_path(first, data)
    same = [e for e in errors if _data_path(e, data) == path]
    top = next((p for p in path if isinstance(p, str)), None)
    if len(same) > 1 and top in _UNION_HINTS and len(path) == 1:
        return path, _UNION_HINTS[top]
    return path, _message(first)


def _data_path(error: ErrorDetails, data: Any) -> Path:
    path: list[str | int] = []
    node = data
    loc = error["loc"]
    for index, part in enumerate(loc):
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif index == len(loc) - 1 and error["type"] == "missing":
            path.append(part)
    return tuple(path)


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}, not {value!r}"
    if kind in _TYPE_WORDS:
        return _TYPE_WORDS[kind]
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "less_than_equal": ("at most", "le"),
        "greater_than": ("more than", "gt"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {ctx.get(key)}, not {value!r}"
    if kind == "string_pattern_mismatch":
        return f"{value!r} must match {ctx.get('pattern')}"
    if kind in ("too_short", "too_long"):
        return error["msg"].replace("List should", "must").replace("String should", "must")
    return str(error["msg"])


if __name__ == "__main__":
    sys.stdout.write(schema_text())
