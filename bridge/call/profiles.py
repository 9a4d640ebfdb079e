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
    tools = []                         # built-in tools by name (see bridge.call.tools)
    overridable = ["voice", "speed"]   # fields dispatch metadata may change

    [profiles.default.turn_detection]  # type = "server_vad" | "semantic_vad" | "none"
    type = "server_vad"
    threshold = 0.5
    prefix_padding_ms = 300
    silence_duration_ms = 500

    [profiles.default.input_transcription]   # omit (or model = "none") for no user captions
    model = "gpt-4o-mini-transcribe"

A bad file fails at load time with a :class:`~bridge.errors.ProfileError` naming the file,
the profile and the field. Secrets never belong in a profile: keys come from the environment
only, and a field that looks like one is refused.

Dispatch metadata (JSON, set by whoever dispatches the agent) picks a profile and may
override the fields that profile lists in ``overridable``::

    {"profile": "support", "participant": "caller-7", "overrides": {"voice": "cedar"}}

Bad metadata never leaves the caller in silence and never changes what is not allowed: see
:meth:`ProfileSet.resolve` for what happens to each kind of mistake.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from bridge.call.tools import TOOLS
from bridge.errors import ConfigError, MetadataError, ProfileError
from sessions.errors import ConfigError as SessionConfigError
from sessions.session_config import (
    SemanticVad,
    ServerVad,
    SessionConfig,
    Transcription,
    TurnDetection,
)

DEFAULT_PROFILE = "default"
MAX_METADATA_BYTES = 8192
CHUNK_MS = (10, 20, 40, 50, 100)
INPUT_MODES = ("linked", "mix")

#: Fields dispatch metadata may override when a profile allows them.
OVERRIDABLE = frozenset(
    {
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
    }
)
PROFILE_FIELDS = OVERRIDABLE | {"audio_chunk_ms", "overridable"}
_SECRET_LIKE = re.compile(r"\b(?:sk|ek|rk)-[A-Za-z0-9_\-]{16,}")


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

    @classmethod
    def load(cls, path: str | Path) -> ProfileSet:
        """Load and validate a profiles file; any mistake raises :class:`ProfileError`."""
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError(f"cannot read the file ({exc.strerror})", file=source) from None
        return cls.parse(text, source)

    @classmethod
    def builtin(cls) -> ProfileSet:
        """The profiles shipped with the bridge (``bridge/call/default_profiles.toml``)."""
        text = resources.files("bridge.call").joinpath("default_profiles.toml").read_text("utf-8")
        return cls.parse(text, "bridge/call/default_profiles.toml")

    @classmethod
    def parse(cls, text: str, source: str) -> ProfileSet:
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
            built[name] = build_profile(name, {**defaults, **table}, source)
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
    """``profile`` with the allowed, valid overrides applied, and a warning per refusal."""
    refused: list[str] = []
    allowed: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in profile.overridable:
            refused.append(
                f"dispatch metadata, field {key!r}: not overridable in profile"
                f" {profile.name!r}; ignored"
            )
            continue
        try:  # validate each field on its own, so one bad value spoils nothing else
            build_profile(profile.name, {**profile.raw, key: value}, "dispatch metadata")
        except ProfileError as exc:
            refused.append(f"dispatch metadata, field {key!r}: {exc.message}; ignored")
            continue
        allowed[key] = value
    if not allowed:
        return profile, refused
    return build_profile(profile.name, {**profile.raw, **allowed}, source), refused


def build_profile(name: str, table: Mapping[str, Any], source: str) -> Profile:
    """Validate one profile table; raise :class:`ProfileError` naming the field."""

    def fail(field_name: str, message: str) -> ProfileError:
        return ProfileError(message, file=source, profile=name, field=field_name)

    unknown = set(table) - PROFILE_FIELDS
    if unknown:
        key = sorted(unknown)[0]
        raise fail(key, f"unknown field (known: {', '.join(sorted(PROFILE_FIELDS))})")
    for key, value in table.items():
        _refuse_secrets(value, lambda message, key=key: fail(key, message))

    overridable = table.get("overridable", [])
    if not isinstance(overridable, list) or not all(isinstance(x, str) for x in overridable):
        raise fail("overridable", "must be a list of field names")
    bad = sorted(set(overridable) - OVERRIDABLE)
    if bad:
        raise fail("overridable", f"{bad} cannot be overridden (allowed: {sorted(OVERRIDABLE)})")

    chunk_ms = table.get("audio_chunk_ms", 20)
    if chunk_ms not in CHUNK_MS or isinstance(chunk_ms, bool):
        raise fail("audio_chunk_ms", f"must be one of {CHUNK_MS}")
    input_mode = table.get("input", "linked")
    if input_mode not in INPUT_MODES:
        raise fail("input", "must be 'linked' or 'mix'")

    tool_names = table.get("tools", [])
    if not isinstance(tool_names, list) or not all(isinstance(t, str) for t in tool_names):
        raise fail("tools", "must be a list of built-in tool names")
    missing = [t for t in tool_names if t not in TOOLS]
    if missing:
        raise fail("tools", f"unknown tool(s) {missing} (built-in: {sorted(TOOLS)})")

    try:
        session = SessionConfig(
            model=_typed(table, "model", str, "gpt-realtime", fail),
            instructions=_typed(table, "instructions", str, "", fail),
            voice=_typed(table, "voice", str, "marin", fail),
            output_modalities=tuple(_typed(table, "output_modalities", list, ["audio"], fail)),
            turn_detection=_turn_detection(table.get("turn_detection", {}), fail),
            input_transcription=_transcription(table.get("input_transcription"), fail),
            noise_reduction=_none_word(_typed(table, "noise_reduction", str, "none", fail)),
            speed=table.get("speed", 1.0),
            max_output_tokens=table.get("max_output_tokens", "inf"),
            tools=tuple(TOOLS[t].declaration for t in tool_names),
        )
    except SessionConfigError as exc:  # the session config names the field it refused
        field_name, _, message = str(exc).partition(": ")
        raise fail(field_name, message) from None
    return Profile(
        name=name,
        session=session,
        chunk_ms=chunk_ms,
        input_mode=input_mode,
        tool_names=tuple(tool_names),
        overridable=frozenset(overridable),
        raw=dict(table),
    )


def _typed(table: Mapping[str, Any], key: str, kind: type, default: Any, fail: Any) -> Any:
    value = table.get(key, default)
    if not isinstance(value, kind):
        raise fail(key, f"must be a {kind.__name__}")
    return value


def _none_word(value: str) -> str | None:
    return None if value in ("none", "") else value


def _turn_detection(table: Any, fail: Any) -> TurnDetection | None:
    if table is None or table == "none":
        return None
    if not isinstance(table, dict):
        raise fail("turn_detection", "must be a table with a 'type'")
    table = dict(table)
    kind = table.pop("type", "server_vad")
    try:
        if kind == "server_vad":
            return ServerVad(**table)
        if kind == "semantic_vad":
            return SemanticVad(**table)
        if kind == "none":
            return None
    except TypeError as exc:
        raise fail("turn_detection", f"unknown parameter ({exc})") from None
    raise fail("turn_detection", "type must be server_vad, semantic_vad or none")


def _transcription(table: Any, fail: Any) -> Transcription | None:
    if table is None:
        return None
    if not isinstance(table, dict):
        raise fail("input_transcription", "must be a table with a 'model'")
    if table.get("model") in ("none", ""):
        return None
    try:
        return Transcription(**table)
    except TypeError as exc:
        raise fail("input_transcription", f"unknown parameter ({exc})") from None


def _refuse_secrets(value: Any, fail: Any) -> None:
    if isinstance(value, str) and _SECRET_LIKE.search(value):
        raise fail("looks like an API key: secrets come from the environment, never profiles")
    if isinstance(value, dict):
        for v in value.values():
            _refuse_secrets(v, fail)
    if isinstance(value, list):
        for v in value:
            _refuse_secrets(v, fail)
