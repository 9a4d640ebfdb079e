"""The frozen session configuration, rendered to a GA ``session.update`` (or the beta shape).

Every field of ``realtime-protocol.md`` §2.1 the bridge uses is here, validated when the
object is built: a bad value raises :class:`~sessions.errors.ConfigError` naming the field,
long before a socket is opened. The model is not part of the update: it is fixed per
connection by the URL (``sessions.endpoint``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sessions.errors import ConfigError

#: Voices the GA API offers; custom voices are ``voice_...`` ids.
VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"}
)
EAGERNESS = ("low", "medium", "high", "auto")
NOISE_REDUCTION = ("near_field", "far_field")
MODALITIES = (("audio",), ("text",))
TOOL_CHOICES = ("auto", "none", "required")
TRUNCATIONS = ("auto", "disabled")


def _check(condition: bool, field_name: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{field_name}: {message}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerVad:
    """Server voice activity detection on audio energy."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    create_response: bool = True
    interrupt_response: bool = True
    idle_timeout_ms: int | None = None

    def __post_init__(self) -> None:
        _check(
            _is_number(self.threshold) and 0.0 <= self.threshold <= 1.0,
            "turn_detection.threshold",
            "must be a number from 0 to 1",
        )
        for name in ("prefix_padding_ms", "silence_duration_ms"):
            value = getattr(self, name)
            _check(
                isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10_000,
                f"turn_detection.{name}",
                "must be whole milliseconds from 0 to 10000",
            )
        _check(
            self.idle_timeout_ms is None
            or (isinstance(self.idle_timeout_ms, int) and 5_000 <= self.idle_timeout_ms <= 30_000),
            "turn_detection.idle_timeout_ms",
            "must be null or 5000 to 30000 ms",
        )

    def render(self) -> dict[str, Any]:
        return {
            "type": "server_vad",
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
            "create_response": self.create_response,
            "interrupt_response": self.interrupt_response,
            "idle_timeout_ms": self.idle_timeout_ms,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SemanticVad:
    """Semantic voice activity detection: ends the turn when the words sound finished."""

    eagerness: Literal["low", "medium", "high", "auto"] = "auto"
    create_response: bool = True
    interrupt_response: bool = True

    def __post_init__(self) -> None:
        _check(
            self.eagerness in EAGERNESS,
            "turn_detection.eagerness",
            f"must be one of {', '.join(EAGERNESS)}",
        )

    def render(self) -> dict[str, Any]:
        return {
            "type": "semantic_vad",
            "eagerness": self.eagerness,
            "create_response": self.create_response,
            "interrupt_response": self.interrupt_response,
        }


TurnDetection = ServerVad | SemanticVad


@dataclass(frozen=True, slots=True, kw_only=True)
class Transcription:
    """Input audio transcription (a separate ASR model; its text feeds user captions)."""

    model: str = "gpt-4o-mini-transcribe"
    language: str | None = None
    prompt: str | None = None

    def __post_init__(self) -> None:
        _check(
            isinstance(self.model, str) and bool(self.model),
            "input_transcription.model",
            "must be a model name",
        )

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model}
        if self.language:
            out["language"] = self.language
        if self.prompt:
            out["prompt"] = self.prompt
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionTool:
    """A function the model may call; ``parameters`` is a JSON Schema object."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )

    def __post_init__(self) -> None:
        _check(
            isinstance(self.name, str) and self.name.replace("_", "").replace("-", "").isalnum(),
            "tools.name",
            f"{self.name!r} must be letters, digits, '_' or '-'",
        )
        _check(
            isinstance(self.parameters, Mapping), "tools.parameters", "must be a JSON Schema object"
        )

    def render(self) -> dict[str, Any]:
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConfig:
    """What a Realtime session is configured with."""

    model: str = "gpt-realtime"
    instructions: str = ""
    voice: str = "marin"
    output_modalities: tuple[str, ...] = ("audio",)
    turn_detection: TurnDetection | None = field(default_factory=ServerVad)
    input_transcription: Transcription | None = None
    noise_reduction: str | None = None
    speed: float = 1.0
    max_output_tokens: int | Literal["inf"] = "inf"
    tools: tuple[FunctionTool, ...] = ()
    tool_choice: str = "auto"
    truncation: str | float = "auto"  # "auto" | "disabled" | a retention ratio in (0, 1]

    def __post_init__(self) -> None:
        _check(isinstance(self.model, str) and bool(self.model), "model", "must be a model name")
        _check(isinstance(self.instructions, str), "instructions", "must be text")
        _check(
            isinstance(self.voice, str)
            and (self.voice in VOICES or self.voice.startswith("voice_")),
            "voice",
            f"{self.voice!r} is not one of {', '.join(sorted(VOICES))} (or a voice_ id)",
        )
        _check(
            tuple(self.output_modalities) in MODALITIES,
            "output_modalities",
            "must be ['audio'] or ['text']",
        )
        _check(
            self.noise_reduction is None or self.noise_reduction in NOISE_REDUCTION,
            "noise_reduction",
            "must be near_field, far_field or none",
        )
        _check(
            _is_number(self.speed) and 0.25 <= self.speed <= 1.5,
            "speed",
            "must be a number from 0.25 to 1.5",
        )
        _check(
            self.max_output_tokens == "inf"
            or (
                isinstance(self.max_output_tokens, int)
                and not isinstance(self.max_output_tokens, bool)
                and 1 <= self.max_output_tokens <= 4096
            ),
            "max_output_tokens",
            "must be 1 to 4096 or 'inf'",
        )
        names = [tool.name for tool in self.tools]
        _check(len(names) == len(set(names)), "tools", "tool names must be unique")
        _check(
            self.tool_choice in TOOL_CHOICES or self.tool_choice in names,
            "tool_choice",
            f"must be one of {', '.join(TOOL_CHOICES)} or a declared tool's name",
        )
        _check(
            self.truncation in TRUNCATIONS
            or (_is_number(self.truncation) and 0.0 < float(self.truncation) <= 1.0),
            "truncation",
            "must be 'auto', 'disabled' or a retention ratio in (0, 1]",
        )

    def _render_truncation(self) -> Any:
        if isinstance(self.truncation, str):
            return self.truncation
        return {"type": "retention_ratio", "retention_ratio": float(self.truncation)}

    def _render_tool_choice(self) -> Any:
        if self.tool_choice in TOOL_CHOICES:
            return self.tool_choice
        return {"type": "function", "name": self.tool_choice}

    def to_session_update(self) -> dict[str, Any]:
        """The GA ``session`` object of a ``session.update``."""
        pcm = {"type": "audio/pcm", "rate": 24000}
        return {
            "type": "realtime",
            "instructions": self.instructions,
            "output_modalities": list(self.output_modalities),
            "audio": {
                "input": {
                    "format": pcm,
                    "turn_detection": self.turn_detection.render() if self.turn_detection else None,
                    "transcription": (
                        self.input_transcription.render() if self.input_transcription else None
                    ),
                    "noise_reduction": (
                        {"type": self.noise_reduction} if self.noise_reduction else None
                    ),
                },
                "output": {"format": pcm, "voice": self.voice, "speed": self.speed},
            },
            "tools": [tool.render() for tool in self.tools],
            "tool_choice": self._render_tool_choice(),
            "max_output_tokens": self.max_output_tokens,
            "truncation": self._render_truncation(),
        }

    def to_beta_session(self) -> dict[str, Any]:
        """The flat beta ``session`` object (Azure preview deployments)."""
        turn = self.turn_detection.render() if self.turn_detection else None
        if turn is not None:
            turn.pop("idle_timeout_ms", None)
        return {
            "modalities": ["text", "audio"] if self.output_modalities == ("audio",) else ["text"],
            "instructions": self.instructions,
            "voice": self.voice,
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            "turn_detection": turn,
            "input_audio_transcription": (
                self.input_transcription.render() if self.input_transcription else None
            ),
            "input_audio_noise_reduction": (
                {"type": self.noise_reduction} if self.noise_reduction else None
            ),
            "speed": self.speed,
            "tools": [tool.render() for tool in self.tools],
            "tool_choice": self.tool_choice if self.tool_choice in TOOL_CHOICES else "auto",
            "max_response_output_tokens": self.max_output_tokens,
        }
