"""The session object: server defaults, ``session.update`` validation and merging.

The simulator keeps one GA-shaped session dict per connection (the shape of
``session.created``). An update is checked in full before anything is applied, with the
real server's error codes and message shapes:

- ``missing_required_parameter``: ``Missing required parameter: 'session.type'.``
- ``unknown_parameter``: ``Unknown parameter: 'session.<path>'.``
- ``invalid_type``: ``Invalid type for 'session.<path>': expected a string, but got ...``
- ``invalid_value``: ``Invalid value: 'x'. Supported values are: 'a', 'b', and 'c'.``
- ``decimal_above_max_value`` / ``integer_below_min_value`` ...: numbers out of range
- ``cannot_update_voice``: the voice cannot change once the session has produced audio.

``model`` is accepted and ignored (the model is fixed by the URL for the whole connection),
and ``temperature`` in the beta shape is checked and dropped (GA has no temperature).
Session type ``transcription`` is refused: the simulator serves realtime sessions only.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from .audio import AudioFormat
from .vad import SEMANTIC_SILENCE_MS, VadParams

VOICES: Final = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)

DEFAULT_INSTRUCTIONS: Final = (
    "Your knowledge cutoff is 2023-10. You are a helpful, witty, and friendly AI. Act like a"
    " human, but remember that you aren't a human. (Realtime API simulator.)"
)

_SERVER_VAD_DEFAULT: Final[dict[str, Any]] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 200,
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}
_SEMANTIC_VAD_DEFAULT: Final[dict[str, Any]] = {
    "type": "semantic_vad",
    "eagerness": "auto",
    "create_response": True,
    "interrupt_response": True,
}

_SESSION_KEYS: Final = frozenset(
    {
        "type",
        "model",
        "instructions",
        "output_modalities",
        "audio",
        "tools",
        "tool_choice",
        "max_output_tokens",
        "tracing",
        "truncation",
        "include",
        "prompt",
        "reasoning",
        "parallel_tool_calls",
    }
)
_TRANSCRIPTION_KEYS: Final = frozenset(
    {"model", "language", "prompt", "delay", "keywords", "languages"}
)
_SERVER_VAD_KEYS: Final = frozenset(_SERVER_VAD_DEFAULT)
_SEMANTIC_VAD_KEYS: Final = frozenset(_SEMANTIC_VAD_DEFAULT)

BETA_SESSION_KEYS: Final = frozenset(
    {
        "model",
        "modalities",
        "instructions",
        "voice",
        "input_audio_format",
        "output_audio_format",
        "input_audio_transcription",
        "input_audio_noise_reduction",
        "turn_detection",
        "tools",
        "tool_choice",
        "temperature",
        "max_response_output_tokens",
        "speed",
        "tracing",
    }
)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an update (or a client event) was refused: becomes an ``error`` event."""

    code: str
    message: str
    param: str | None = None


def default_session(*, session_id: str, model: str, expires_at: int) -> dict[str, Any]:
    """The session a fresh connection starts with (the shape of the GA capture)."""
    pcm = {"type": AudioFormat.PCM.value, "rate": 24_000}
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": expires_at,
        "audio": {
            "input": {
                "format": dict(pcm),
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": dict(_SERVER_VAD_DEFAULT),
            },
            "output": {"format": dict(pcm), "voice": "alloy", "speed": 1.0},
        },
        "include": None,
    }


# -- reading the session -------------------------------------------------------------------


def input_format(session: dict[str, Any]) -> AudioFormat:
    """``audio.input.format.type``."""
    return AudioFormat(session["audio"]["input"]["format"]["type"])


def vad_params(session: dict[str, Any]) -> VadParams | None:
    """Detector settings from ``turn_detection`` (``None`` when turn detection is off)."""
    td = session["audio"]["input"]["turn_detection"]
    if td is None:
        return None
    if td["type"] == "semantic_vad":
        silence = SEMANTIC_SILENCE_MS[td.get("eagerness") or "auto"]
        return VadParams(threshold=0.5, prefix_padding_ms=300, silence_ms=silence)
    return VadParams(
        threshold=float(td["threshold"]),
        prefix_padding_ms=int(td["prefix_padding_ms"]),
        silence_ms=int(td["silence_duration_ms"]),
    )


def turn_flag(session: dict[str, Any], name: str) -> bool:
    """``create_response`` / ``interrupt_response`` (false when turn detection is off)."""
    td = session["audio"]["input"]["turn_detection"]
    return bool(td and td.get(name, True))


# -- checking ------------------------------------------------------------------------------

_TYPE_NAMES: Final = {
    "string": "a string",
    "boolean": "a boolean",
    "integer": "an integer",
    "number": "a decimal",
    "object": "an object",
    "array": "an array",
}


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _is(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    return isinstance(value, list)


def expect(value: Any, kind: str, path: str) -> Rejection | None:
    """``invalid_type`` unless ``value`` is of JSON ``kind``."""
    if _is(value, kind):
        return None
    return Rejection(
        "invalid_type",
        f"Invalid type for '{path}': expected {_TYPE_NAMES[kind]},"
        f" but got {_describe(value)} instead.",
        path,
    )


def unknown_keys(obj: dict[str, Any], allowed: frozenset[str], path: str) -> Rejection | None:
    """``unknown_parameter`` for the first key of ``obj`` not in ``allowed``."""
    for key in obj:
        if key not in allowed:
            return Rejection(
                "unknown_parameter", f"Unknown parameter: '{path}.{key}'.", f"{path}.{key}"
            )
    return None


def missing(path: str) -> Rejection:
    """``missing_required_parameter`` for ``path``."""
    return Rejection("missing_required_parameter", f"Missing required parameter: '{path}'.", path)


def _supported(values: Sequence[str]) -> str:
    quoted = [f"'{v}'" for v in values]
    if len(quoted) == 1:
        return quoted[0]
    if len(quoted) == 2:
        return f"{quoted[0]} and {quoted[1]}"
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def one_of(value: Any, allowed: Sequence[str], path: str) -> Rejection | None:
    """``invalid_value`` unless ``value`` is one of ``allowed`` strings."""
    problem = expect(value, "string", path)
    if problem or value in allowed:
        return problem
    return Rejection(
        "invalid_value",
        f"Invalid value: '{value}'. Supported values are: {_supported(allowed)}.",
        path,
    )


def in_range(
    value: Any, low: float | None, high: float | None, path: str, *, integer: bool = False
) -> Rejection | None:
    """Type and range check with the API's ``decimal_above_max_value``-style codes."""
    problem = expect(value, "integer" if integer else "number", path)
    if problem:
        return problem
    kind = "integer" if integer else "decimal"
    if low is not None and value < low:
        return Rejection(
            f"{kind}_below_min_value",
            f"Invalid '{path}': {kind} below minimum value. Expected a value >= {low:g},"
            f" but got {value:g} instead.",
            path,
        )
    if high is not None and value > high:
        return Rejection(
            f"{kind}_above_max_value",
            f"Invalid '{path}': {kind} above maximum value. Expected a value <= {high:g},"
            f" but got {value:g} instead.",
            path,
        )
    return None


def _check_format(fmt: Any, path: str) -> Rejection | None:
    problem = expect(fmt, "object", path) or unknown_keys(fmt, frozenset({"type", "rate"}), path)
    if problem:
        return problem
    if "type" not in fmt:
        return missing(f"{path}.type")
    problem = one_of(fmt["type"], [f.value for f in AudioFormat], f"{path}.type")
    if problem:
        return problem
    if "rate" in fmt:
        if fmt["type"] != AudioFormat.PCM.value:
            return Rejection(
                "unknown_parameter", f"Unknown parameter: '{path}.rate'.", f"{path}.rate"
            )
        if fmt["rate"] != 24_000:
            return Rejection(
                "invalid_value",
                f"Invalid value: {fmt['rate']}. Supported values are: 24000.",
                f"{path}.rate",
            )
    return None


def _check_turn_detection(td: Any, path: str) -> Rejection | None:
    if td is None:
        return None
    problem = expect(td, "object", path)
    if problem:
        return problem
    if "type" not in td:
        return missing(f"{path}.type")
    problem = one_of(td["type"], ["server_vad", "semantic_vad"], f"{path}.type")
    if problem:
        return problem
    semantic = td["type"] == "semantic_vad"
    problem = unknown_keys(td, _SEMANTIC_VAD_KEYS if semantic else _SERVER_VAD_KEYS, path)
    if problem:
        return problem
    for flag in ("create_response", "interrupt_response"):
        if flag in td and (problem := expect(td[flag], "boolean", f"{path}.{flag}")):
            return problem
    if semantic:
        if "eagerness" in td:
            return one_of(td["eagerness"], ["low", "medium", "high", "auto"], f"{path}.eagerness")
        return None
    checks = [
        ("threshold", 0.0, 1.0, False),
        ("prefix_padding_ms", 0, None, True),
        ("silence_duration_ms", 0, None, True),
    ]
    for name, low, high, integer in checks:
        if name in td and (
            problem := in_range(td[name], low, high, f"{path}.{name}", integer=integer)
        ):
            return problem
    idle = td.get("idle_timeout_ms")
    if idle is not None:
        return in_range(idle, 5000, 30000, f"{path}.idle_timeout_ms", integer=True)
    return None


def _check_transcription(tr: Any, path: str) -> Rejection | None:
    if tr is None:
        return None
    problem = expect(tr, "object", path) or unknown_keys(tr, _TRANSCRIPTION_KEYS, path)
    if problem:
        return problem
    for name in ("model", "language", "prompt"):
        if (
            name in tr
            and tr[name] is not None
            and (problem := expect(tr[name], "string", f"{path}.{name}"))
        ):
            return problem
    return None


def _check_noise_reduction(nr: Any, path: str) -> Rejection | None:
    if nr is None:
        return None
    problem = expect(nr, "object", path) or unknown_keys(nr, frozenset({"type", "strength"}), path)
    if problem:
        return problem
    if "type" in nr and nr["type"] is not None:
        return one_of(nr["type"], ["near_field", "far_field"], f"{path}.type")
    return None


def _check_voice(voice: Any, path: str) -> Rejection | None:
    if isinstance(voice, dict):
        problem = unknown_keys(voice, frozenset({"id"}), path)
        if problem:
            return problem
        if "id" not in voice:
            return missing(f"{path}.id")
        return expect(voice["id"], "string", f"{path}.id")
    return one_of(voice, VOICES, path)


def _check_audio(audio: Any, path: str) -> Rejection | None:
    problem = expect(audio, "object", path) or unknown_keys(
        audio, frozenset({"input", "output"}), path
    )
    if problem:
        return problem
    if "input" in audio:
        inp = audio["input"]
        ipath = f"{path}.input"
        keys = frozenset({"format", "transcription", "noise_reduction", "turn_detection"})
        problem = expect(inp, "object", ipath) or unknown_keys(inp, keys, ipath)
        if problem:
            return problem
        if "format" in inp and (problem := _check_format(inp["format"], f"{ipath}.format")):
            return problem
        problem = (
            _check_transcription(inp.get("transcription"), f"{ipath}.transcription")
            or _check_noise_reduction(inp.get("noise_reduction"), f"{ipath}.noise_reduction")
            or _check_turn_detection(inp.get("turn_detection"), f"{ipath}.turn_detection")
        )
        if problem:
            return problem
    if "output" in audio:
        out = audio["output"]
        opath = f"{path}.output"
        keys = frozenset({"format", "voice", "speed"})
        problem = expect(out, "object", opath) or unknown_keys(out, keys, opath)
        if problem:
            return problem
        if "format" in out and (problem := _check_format(out["format"], f"{opath}.format")):
            return problem
        if "voice" in out and (problem := _check_voice(out["voice"], f"{opath}.voice")):
            return problem
        if "speed" in out:
            return in_range(out["speed"], 0.25, 1.5, f"{opath}.speed")
    return None


def check_tools(tools: Any, path: str) -> Rejection | None:
    """Function tools need a name; MCP tools a server label."""
    problem = expect(tools, "array", path)
    if problem:
        return problem
    for index, tool in enumerate(tools):
        tpath = f"{path}[{index}]"
        problem = expect(tool, "object", tpath)
        if problem:
            return problem
        kind = tool.get("type", "function")
        problem = one_of(kind, ["function", "mcp"], f"{tpath}.type")
        if problem:
            return problem
        if kind == "mcp":
            if "server_label" not in tool:
                return missing(f"{tpath}.server_label")
            continue
        keys = frozenset({"type", "name", "description", "parameters"})
        problem = unknown_keys(tool, keys, tpath)
        if problem:
            return problem
        if "name" not in tool:
            return missing(f"{tpath}.name")
        problem = expect(tool["name"], "string", f"{tpath}.name")
        if problem:
            return problem
    return None


def check_tool_choice(choice: Any, path: str) -> Rejection | None:
    """``auto``/``none``/``required`` or ``{"type": "function", "name": ...}`` / MCP."""
    if isinstance(choice, dict):
        problem = one_of(choice.get("type"), ["function", "mcp"], f"{path}.type")
        if problem:
            return problem
        if choice["type"] == "function" and "name" not in choice:
            return missing(f"{path}.name")
        return None
    return one_of(choice, ["auto", "none", "required"], path)


def check_modalities(value: Any, path: str) -> Rejection | None:
    """``["audio"]`` or ``["text"]``: one of the two, not both."""
    problem = expect(value, "array", path)
    if problem:
        return problem
    for index, modality in enumerate(value):
        problem = one_of(modality, ["text", "audio"], f"{path}[{index}]")
        if problem:
            return problem
    if len(set(value)) != 1:
        return Rejection(
            "invalid_value",
            f"Invalid modalities: {value!r}. Supported combinations are: ['text'] and ['audio'].",
            path,
        )
    return None


def check_max_output_tokens(value: Any, path: str) -> Rejection | None:
    """An integer 1..4096 or ``"inf"``."""
    if value == "inf":
        return None
    return in_range(value, 1, 4096, path, integer=True)


def check_update(
    session: Any, *, current: dict[str, Any], audio_produced: bool
) -> Rejection | None:
    """Everything wrong with a GA ``session.update`` payload, first problem only."""
    path = "session"
    problem = expect(session, "object", path)
    if problem:
        return problem
    if "type" not in session:
        return missing("session.type")
    kind = session["type"]
    if kind == "transcription":
        return Rejection(
            "invalid_value",
            "Invalid value: 'transcription'. This session is a 'realtime' session; the"
            " simulator does not serve transcription sessions.",
            "session.type",
        )
    problem = one_of(kind, ["realtime", "transcription"], "session.type") or unknown_keys(
        session, _SESSION_KEYS, path
    )
    if problem:
        return problem
    if "instructions" in session and (
        problem := expect(session["instructions"], "string", "session.instructions")
    ):
        return problem
    if "model" in session and (problem := expect(session["model"], "string", "session.model")):
        return problem
    if "output_modalities" in session and (
        problem := check_modalities(session["output_modalities"], "session.output_modalities")
    ):
        return problem
    if "audio" in session and (problem := _check_audio(session["audio"], "session.audio")):
        return problem
    if "tools" in session and (problem := check_tools(session["tools"], "session.tools")):
        return problem
    if "tool_choice" in session and (
        problem := check_tool_choice(session["tool_choice"], "session.tool_choice")
    ):
        return problem
    if "max_output_tokens" in session and (
        problem := check_max_output_tokens(
            session["max_output_tokens"], "session.max_output_tokens"
        )
    ):
        return problem
    if session.get("tracing") not in (None, "auto") and (
        problem := expect(session["tracing"], "object", "session.tracing")
    ):
        return problem
    truncation = session.get("truncation")
    if isinstance(truncation, str) and (
        problem := one_of(truncation, ["auto", "disabled"], "session.truncation")
    ):
        return problem
    if "include" in session and session["include"] is not None:
        problem = expect(session["include"], "array", "session.include")
        for index, entry in enumerate(session["include"] if problem is None else []):
            problem = problem or one_of(
                entry, ["item.input_audio_transcription.logprobs"], f"session.include[{index}]"
            )
        if problem:
            return problem
    if "parallel_tool_calls" in session and (
        problem := expect(session["parallel_tool_calls"], "boolean", "session.parallel_tool_calls")
    ):
        return problem
    voice = session.get("audio", {}).get("output", {}).get("voice")
    if audio_produced and voice is not None and voice != current["audio"]["output"]["voice"]:
        return Rejection(
            "cannot_update_voice",
            "Cannot update a conversation's voice if assistant audio is present.",
            "session.audio.output.voice",
        )
    return None


# -- merging -------------------------------------------------------------------------------


def _merged_format(fmt: dict[str, Any]) -> dict[str, Any]:
    if fmt["type"] == AudioFormat.PCM.value:
        return {"type": fmt["type"], "rate": 24_000}
    return {"type": fmt["type"]}


def _merged_turn_detection(td: dict[str, Any] | None) -> dict[str, Any] | None:
    if td is None:
        return None
    base = _SEMANTIC_VAD_DEFAULT if td["type"] == "semantic_vad" else _SERVER_VAD_DEFAULT
    return {**base, **copy.deepcopy(td)}


def merge(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """The session after a (checked) update: given fields replace, the rest is kept."""
    session = copy.deepcopy(current)
    for key, value in update.items():
        if key in ("type", "model"):
            continue
        if key != "audio":
            session[key] = copy.deepcopy(value)
            continue
        for side in ("input", "output"):
            target = session["audio"][side]
            for name, sub in value.get(side, {}).items():
                if name == "format":
                    target[name] = _merged_format(sub)
                elif name == "turn_detection":
                    target[name] = _merged_turn_detection(sub)
                else:
                    target[name] = copy.deepcopy(sub)
    return session
