"""Named profiles: what a Realtime session is configured with, chosen per room.

A profiles file is TOML. ``[defaults]`` (optional) holds values every profile inherits;
each ``[profiles.NAME]`` table is one profile::

    [profiles.default]
    model = "gpt-realtime"
    instructions = "You are a helpful voice assistant. Keep answers short."
    voice = "marin"
    speed = 1.0
    output_modalities = ["audio"]      # or ["text"]
    noise_reduction = "near_field"     # "far_field", or "none"
    max_output_tokens = "inf"          # or 1..4096
    audio_chunk_ms = 20                # caller audio per append: 10 or 20 (40, 50, 100 allowed)
    input = "linked"                   # who is heard: "linked" (one caller) or "mix" (everyone)
    tools = ["current_time"]           # built-in tools by name, and/or declared tools (below)
    overridable = ["voice", "speed"]   # fields dispatch metadata may change

    [profiles.default.turn_detection]  # type = "server_vad" | "semantic_vad" | "none"
    type = "server_vad"
    threshold = 0.5
    prefix_padding_ms = 300
    silence_duration_ms = 500

    [profiles.default.input_transcription]   # omit (or model = "none") for no user captions
    model = "gpt-4o-mini-transcribe"

    [[profiles.support.tools]]         # a declared tool: kind = "http", "python" or "builtin"
    kind = "http"
    name = "lookup_order"
    description = "Find an order by its number."
    url = "https://orders.internal/lookup"
    headers = { Authorization = { env = "ORDERS_TOKEN", prefix = "Bearer " } }
    parameters = { type = "object", properties = { order_id = { type = "string" } } }

Every table is validated by the pydantic models of ``bridge.call.profile_file`` (which also
generate the file's JSON Schema for editors); tools are then built (``bridge.call.tools``):
header values named by ``env`` are read through the ``secrets`` lookup the caller passes
(``bridge.pod.settings.load_profiles``: this module never reads the environment), Python
tools are imported. A bad file fails at load time with a :class:`~bridge.errors.ProfileError`
naming the file, the profile, the tool and the field. Secrets never belong in a profile: keys
come from the environment only, and a value that looks like one is refused.

Dispatch metadata (JSON, set by whoever dispatches the agent) picks a profile and may
override the fields that profile lists in ``overridable``::

    {"profile": "support", "participant": "caller-7", "overrides": {"voice": "cedar"}}

Bad metadata never leaves the caller in silence and never changes what is not allowed: see
:meth:`ProfileSet.resolve` for what happens to each kind of mistake. Metadata can never
declare a tool: a ``tools`` override (when allowed) picks among the built-ins and the tools
the profile declares, by name.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from bridge.call.http_tool import HttpTool
from bridge.call.profile_file import (
    OVERRIDABLE as _OVERRIDABLE,
    PROFILE_FIELDS,
    BuiltinToolTable,
    HttpToolTable,
    NoTurnDetectionTable,
    ProfileTable,
    PythonToolTable,
    SemanticVadTable,
    ServerVadTable,
    TransferToolTable,
    locate,
)
from bridge.call.python_tool import PythonTool, load_function
from bridge.call.tools import TOOLS, Tool, ToolLimits
from bridge.call.transfer_tool import TransferTool
from bridge.errors import ConfigError, MetadataError, ProfileError
from sessions.errors import ConfigError as SessionConfigError
from sessions.session_config import (
    FunctionTool,
    SemanticVad,
    ServerVad,
    SessionConfig,
    Transcription,
    TurnDetection,
)

DEFAULT_PROFILE = "default"
MAX_METADATA_BYTES = 8192

#: Fields dispatch metadata may override when a profile allows them.
OVERRIDABLE = frozenset(_OVERRIDABLE)
_SECRET_LIKE = re.compile(r"\b(?:sk|ek|rk)-[A-Za-z0-9_\-]{16,}")

#: How profiles read a named environment variable (a header value): ``None`` when unset.
SecretLookup = Callable[[str], str | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """A validated profile: the session it configures plus the bridge's own settings."""

    name: str
    session: SessionConfig
    chunk_ms: int = 20
    input_mode: Literal["linked", "mix"] = "linked"
    tool_names: tuple[str, ...] = ()
    overridable: frozenset[str] = frozenset()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    declared: Mapping[str, Tool] = field(default_factory=dict, repr=False, compare=False)
    """The tools this profile's file declares for it, by name (any kind, built once)."""

    def toolbox(self) -> dict[str, Tool]:
        """The tools offered to the model (``tool_names``), by name."""
        tools = {}
        for name in self.tool_names:
            tool = self.declared.get(name) or TOOLS.get(name)
            if tool is not None:
                tools[name] = tool
        return tools


@dataclass(frozen=True, slots=True)
class Resolution:
    """What dispatch metadata resolved to, and what was refused on the way (for the logs)."""

    profile: Profile
    participant: str | None = None
    warnings: tuple[str, ...] = ()


class ProfileSet:
    """The profiles of one file, by name."""

    def __init__(self, profiles: Mapping[str, Profile], source: str) -> None:
        if DEFAULT_PROFILE not in profiles:
            raise ProfileError(f"a profile named {DEFAULT_PROFILE!r} is required", file=source)
        self.profiles = dict(profiles)
        self.source = source

    def __getitem__(self, name: str) -> Profile:
        return self.profiles[name]

    def __contains__(self, name: object) -> bool:
        return name in self.profiles

    @property
    def default(self) -> Profile:
        return self.profiles[DEFAULT_PROFILE]

    def get(self, name: str) -> Profile:
        """The named profile, or a :class:`ConfigError` listing the known ones."""
        if name not in self.profiles:
            known = ", ".join(sorted(self.profiles))
            raise ConfigError(f"no profile named {name!r} in {self.source} (known: {known})")
        return self.profiles[name]

    @property
    def tool_names(self) -> list[str]:
        """Every tool any profile offers or declares (the metric labels), sorted."""
        names: set[str] = set()
        for profile in self.profiles.values():
            names.update(profile.tool_names)
            names.update(profile.declared)
        return sorted(names)

    @classmethod
    def load(cls, path: str | Path, *, secrets: SecretLookup | None = None) -> ProfileSet:
        """Load and validate a profiles file; any mistake raises :class:`ProfileError`.

        ``secrets`` reads the environment variables ``http`` tools name for their headers;
        without it such a tool is refused (this package never reads the environment itself).
        """
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError(f"cannot read the file ({exc.strerror})", file=source) from None
        except UnicodeDecodeError:
            raise ProfileError("not a UTF-8 text (TOML) file", file=source) from None
        return cls.parse(text, source, secrets=secrets)

    @classmethod
    def builtin(cls, *, secrets: SecretLookup | None = None) -> ProfileSet:
        """The profiles shipped with the bridge (``bridge/call/default_profiles.toml``)."""
        text = resources.files("bridge.call").joinpath("default_profiles.toml").read_text("utf-8")
        return cls.parse(text, "bridge/call/default_profiles.toml", secrets=secrets)

    @classmethod
    def parse(cls, text: str, source: str, *, secrets: SecretLookup | None = None) -> ProfileSet:
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ProfileError(f"not valid TOML: {exc}", file=source) from None
        unknown = set(document) - {"defaults", "profiles"}
        if unknown:
            raise ProfileError(
                f"unknown top-level table(s) {sorted(unknown)}; use [defaults] and [profiles.NAME]",
                file=source,
            )
        defaults = document.get("defaults", {})
        profiles = document.get("profiles", {})
        if not isinstance(defaults, dict) or not isinstance(profiles, dict) or not profiles:
            raise ProfileError("needs at least one [profiles.NAME] table", file=source)
        built = {}
        for name, table in profiles.items():
            if not isinstance(table, dict):
                raise ProfileError("must be a table", file=source, profile=name)
            built[name] = build_profile(name, {**defaults, **table}, source, secrets=secrets)
        return cls(built, source)

    def resolve(self, metadata: str | None) -> Resolution:
        """The profile and participant dispatch metadata asks for, never failing.

        - empty metadata → the default profile;
        - oversized (> 8 KiB), not JSON or not an object → the default profile, warned;
        - an unknown profile → the default profile, warned;
        - an override the profile does not allow, or an invalid override value → that field
          is ignored (the profile's value stays), warned; other valid overrides apply;
        - a ``participant`` that is not a string → ignored, warned.
        The caller always gets a working agent; the warnings go to the logs, not the room.
        """
        if not metadata or not metadata.strip():
            return Resolution(self.default)
        try:
            request = parse_metadata(metadata)
        except MetadataError as exc:
            return Resolution(self.default, warnings=(str(exc),))
        warnings: list[str] = []
        name = request.get("profile", DEFAULT_PROFILE)
        if not isinstance(name, str) or name not in self.profiles:
            warnings.append(f"dispatch metadata: unknown profile {name!r}; using 'default'")
            name = DEFAULT_PROFILE
        profile = self.profiles[name]
        participant = request.get("participant")
        if participant is not None and not isinstance(participant, str):
            warnings.append("dispatch metadata: 'participant' must be a string; ignored")
            participant = None
        unknown_keys = set(request) - {"profile", "participant", "overrides"}
        if unknown_keys:
            warnings.append(f"dispatch metadata: unknown keys {sorted(unknown_keys)} ignored")
        overrides = request.get("overrides", {})
        if not isinstance(overrides, dict):
            warnings.append("dispatch metadata: 'overrides' must be an object; ignored")
            overrides = {}
        profile, refused = apply_overrides(profile, overrides, self.source)
        warnings.extend(refused)
        return Resolution(profile, participant or None, tuple(warnings))


def parse_metadata(metadata: str) -> dict[str, Any]:
    """Dispatch metadata as a JSON object, or :class:`MetadataError`."""
    if len(metadata.encode("utf-8")) > MAX_METADATA_BYTES:
        raise MetadataError(f"larger than {MAX_METADATA_BYTES} bytes; using the default profile")
    try:
        request = json.loads(metadata)
    except ValueError:
        raise MetadataError("not valid JSON; using the default profile") from None
    if not isinstance(request, dict):
        raise MetadataError("must be a JSON object; using the default profile")
    return request


def apply_overrides(
    profile: Profile, overrides: Mapping[str, Any], source: str
) -> tuple[Profile, list[str]]:
    """``profile`` with the allowed, valid overrides applied, and a warning per refusal.

    A ``tools`` override is a list of names, each a built-in or a tool the profile declares:
    metadata picks among what the file declared, it never declares a tool.
    """
    refused: list[str] = []
    allowed: dict[str, Any] = {}
    tool_names: list[str] | None = None
    for key, value in overrides.items():
        problem = override_problem(profile, key, value)
        if problem is not None:
            refused.append(f"dispatch metadata, field {key!r}: {problem}; ignored")
        elif key == "tools":
            tool_names = list(value)
        else:
            allowed[key] = value
    if allowed:
        profile = build_profile(
            profile.name, {**profile.raw, **allowed}, source, declared=profile.declared
        )
    if tool_names is not None:
        offered = tuple(dict.fromkeys(tool_names))
        profile = replace(profile, tool_names=offered)
        declarations = tuple(tool.declaration for tool in profile.toolbox().values())
        profile = replace(profile, session=replace(profile.session, tools=declarations))
    return profile, refused


def override_problem(profile: Profile, key: str, value: Any) -> str | None:
    """Why dispatch metadata may not set ``key`` to ``value`` in ``profile`` (``None``: it may).

    Each field is validated on its own, so one bad value spoils nothing else: a field the
    profile does not list in ``overridable``, a value the profile's models refuse (a voice
    that does not exist, a speed of 7), tools that are not names of built-ins or of tools the
    profile declares. ``bridge console`` refuses a join on any of them; the worker ignores the
    field (:func:`apply_overrides`).
    """
    if key not in profile.overridable:
        return f"not overridable in profile {profile.name!r}"
    if key == "tools":
        return _tools_override_problem(profile, value)
    try:
        build_profile(
            profile.name,
            {**profile.raw, key: value},
            "dispatch metadata",
            declared=profile.declared,
        )
    except ProfileError as exc:
        return exc.message
    return None


def _tools_override_problem(profile: Profile, value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        return "must be a list of tool names"
    unknown = [name for name in value if name not in profile.declared and name not in TOOLS]
    if unknown:
        known = sorted({*profile.declared, *TOOLS})
        return f"unknown tool(s) {unknown} (this profile has {known})"
    return None


def build_profile(
    name: str,
    table: Mapping[str, Any],
    source: str,
    *,
    secrets: SecretLookup | None = None,
    declared: Mapping[str, Tool] | None = None,
) -> Profile:
    """Validate one profile table and build its tools; raise :class:`ProfileError`.

    ``declared``: tools already built for this profile (dispatch overrides reuse them rather
    than reading the environment or importing again).
    """

    def fail(path: tuple[str | int, ...], message: str) -> ProfileError:
        tool, field_name = _where(path, table)
        if message == "unknown field":
            message += _known_fields(path, table)
        return ProfileError(message, file=source, profile=name, field=field_name, tool=tool)

    secret = _secret_path(dict(table))
    if secret is not None:
        raise fail(
            secret, "looks like an API key: secrets come from the environment, never profiles"
        )
    try:
        spec = ProfileTable.model_validate(dict(table))
    except ValidationError as exc:
        path, message = locate(exc, dict(table))
        raise fail(path, message) from None

    tool_names = tuple(item if isinstance(item, str) else item.name for item in spec.tools)
    if declared is None:
        declared = {
            tool.name: tool
            for index, item in enumerate(spec.tools)
            if (tool := _build_tool(item, index, fail, secrets)) is not None
        }
    offered = [declared.get(n) or TOOLS[n] for n in tool_names if n in declared or n in TOOLS]
    try:
        session = SessionConfig(
            model=spec.model,
            instructions=spec.instructions,
            voice=spec.voice,
            output_modalities=tuple(spec.output_modalities),
            turn_detection=_turn_detection(spec.turn_detection),
            input_transcription=_transcription(spec),
            noise_reduction=None if spec.noise_reduction == "none" else spec.noise_reduction,
            speed=spec.speed,
            max_output_tokens=spec.max_output_tokens,
            tools=tuple(tool.declaration for tool in offered),
        )
    except SessionConfigError as exc:  # the session config names the field it refused
        field_name, _, message = str(exc).partition(": ")
        raise ProfileError(message, file=source, profile=name, field=field_name) from None
    return Profile(
        name=name,
        session=session,
        chunk_ms=spec.audio_chunk_ms,
        input_mode=spec.input,
        tool_names=tool_names,
        overridable=frozenset(spec.overridable),
        raw=dict(table),
        declared=dict(declared),
    )


def _build_tool(
    item: str | BuiltinToolTable | HttpToolTable | PythonToolTable | TransferToolTable,
    index: int,
    fail: Callable[[tuple[str | int, ...], str], ProfileError],
    secrets: SecretLookup | None,
) -> Tool | None:
    """The tool a ``tools`` entry declares (``None`` for a built-in named by a string)."""
    if isinstance(item, str):
        return None
    if isinstance(item, BuiltinToolTable):
        return TOOLS[item.name]
    if isinstance(item, TransferToolTable):
        return TransferTool(
            FunctionTool(
                name=item.name,
                description=item.description,
                parameters={"type": "object", "properties": {}},
            ),
            ToolLimits(
                timeout_s=item.timeout_s, on_timeout=item.on_timeout, on_error=item.on_error
            ),
            to=item.to,
            play_dialtone=item.play_dialtone,
        )
    at = ("tools", index)
    declaration = FunctionTool(
        name=item.name, description=item.description, parameters=item.parameters
    )
    limits = ToolLimits(
        timeout_s=item.timeout_s,
        max_output_bytes=item.max_output_bytes,
        hold_after_s=item.hold_after_s or None,
        hold_line=item.hold_line,
        on_timeout=item.on_timeout,
        on_error=item.on_error,
        on_oversize=item.on_oversize,
    )
    if isinstance(item, HttpToolTable):
        headers: dict[str, str] = {}
        for header, value in item.headers.items():
            if isinstance(value, str):
                headers[header] = value
                continue
            where = (*at, "headers", header)
            if secrets is None:
                raise fail(
                    where,
                    f"needs the environment variable {value.env}, but the profiles were loaded"
                    " without the environment (bridge.pod.settings.load_profiles reads it)",
                )
            secret = secrets(value.env)
            if not secret:
                raise fail(where, f"the environment variable {value.env} is not set")
            headers[header] = value.prefix + secret
        return HttpTool(declaration, limits, url=item.url, headers=headers)
    properties = item.parameters.get("properties") or {}
    required = item.parameters.get("required") or []
    try:
        function = load_function(item.function, properties, required)
    except ValueError as exc:
        raise fail((*at, "function"), str(exc)) from None
    return PythonTool(declaration, limits, target=item.function, function=function)


def _where(path: tuple[str | int, ...], table: Mapping[str, Any]) -> tuple[str, str]:
    """``(tool, field)`` for a path in a profile table: a tool's fields are named within it."""
    if len(path) >= 2 and path[0] == "tools" and isinstance(path[1], int):
        tools = table.get("tools")
        item = tools[path[1]] if isinstance(tools, list) and path[1] < len(tools) else None
        if isinstance(item, dict):
            name = item.get("name")
            tool = name if isinstance(name, str) and name else f"#{path[1] + 1}"
            return tool, _dotted(path[2:]) or "kind"
        return "", "tools"
    head: list[str | int] = []
    for part in path:
        if isinstance(part, int):
            break  # a list's field is named, not its position
        head.append(part)
    return "", _dotted(tuple(head))


def _dotted(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _known_fields(path: tuple[str | int, ...], table: Mapping[str, Any]) -> str:
    models: dict[str, type[Any]] = {
        "http": HttpToolTable,
        "python": PythonToolTable,
        "builtin": BuiltinToolTable,
        "transfer": TransferToolTable,
    }
    if len(path) == 1:
        known = PROFILE_FIELDS
    elif len(path) == 3 and path[0] == "tools" and isinstance(path[1], int):
        item = table["tools"][path[1]]
        model = models.get(item.get("kind", "")) if isinstance(item, dict) else None
        if model is None:
            return ""
        known = frozenset(model.model_fields)
    else:
        return ""
    return f" (known: {', '.join(sorted(known))})"


def _turn_detection(
    spec: ServerVadTable | SemanticVadTable | NoTurnDetectionTable | str,
) -> TurnDetection | None:
    if isinstance(spec, ServerVadTable):
        return ServerVad(**spec.model_dump(exclude={"type"}))
    if isinstance(spec, SemanticVadTable):
        return SemanticVad(**spec.model_dump(exclude={"type"}))
    return None


def _transcription(spec: ProfileTable) -> Transcription | None:
    table = spec.input_transcription
    if table is None or table.model in ("none", ""):
        return None
    return Transcription(model=table.model, language=table.language, prompt=table.prompt)


def _secret_path(value: Any, path: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """Where in ``value`` a string that looks like an API key is, if anywhere."""
    if isinstance(value, str):
        return path if _SECRET_LIKE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _secret_path(item, (*path, key))
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _secret_path(item, (*path, index))
            if found is not None:
                return found
    return None
