"""SessionConfig: validated when built, rendered to the GA session.update (and beta)."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.realtime import SessionUpdateEvent

from sessions.errors import ConfigError
from sessions.session_config import (
    FunctionTool,
    SemanticVad,
    ServerVad,
    SessionConfig,
    Transcription,
)


def test_default_config_renders_a_valid_ga_session_update() -> None:
    session = SessionConfig(instructions="Be brief.").to_session_update()
    SessionUpdateEvent.model_validate({"type": "session.update", "session": session})
    assert session["type"] == "realtime"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert session["audio"]["output"]["voice"] == "marin"
    assert "model" not in session  # fixed per connection by the URL


def test_every_field_is_rendered() -> None:
    config = SessionConfig(
        model="gpt-realtime-mini",
        instructions="You are a clerk.",
        voice="cedar",
        output_modalities=("text",),
        turn_detection=SemanticVad(eagerness="high", interrupt_response=False),
        input_transcription=Transcription(model="whisper-1", language="fr", prompt="names"),
        noise_reduction="far_field",
        speed=1.25,
        max_output_tokens=512,
        tools=(FunctionTool(name="lookup", description="find a thing"),),
        tool_choice="lookup",
        truncation=0.5,
    )
    session = config.to_session_update()
    SessionUpdateEvent.model_validate({"type": "session.update", "session": session})
    audio_in = session["audio"]["input"]
    assert audio_in["turn_detection"] == {
        "type": "semantic_vad",
        "eagerness": "high",
        "create_response": True,
        "interrupt_response": False,
    }
    assert audio_in["transcription"] == {"model": "whisper-1", "language": "fr", "prompt": "names"}
    assert audio_in["noise_reduction"] == {"type": "far_field"}
    assert session["audio"]["output"]["speed"] == 1.25
    assert session["output_modalities"] == ["text"]
    assert session["max_output_tokens"] == 512
    assert session["tools"][0]["name"] == "lookup"
    assert session["tool_choice"] == {"type": "function", "name": "lookup"}
    assert session["truncation"] == {"type": "retention_ratio", "retention_ratio": 0.5}


def test_server_vad_renders_every_parameter() -> None:
    vad = ServerVad(
        threshold=0.6,
        prefix_padding_ms=200,
        silence_duration_ms=350,
        create_response=False,
        interrupt_response=True,
        idle_timeout_ms=6000,
    )
    assert vad.render() == {
        "type": "server_vad",
        "threshold": 0.6,
        "prefix_padding_ms": 200,
        "silence_duration_ms": 350,
        "create_response": False,
        "interrupt_response": True,
        "idle_timeout_ms": 6000,
    }


def test_manual_turns_render_null_turn_detection() -> None:
    session = SessionConfig(turn_detection=None).to_session_update()
    assert session["audio"]["input"]["turn_detection"] is None


def test_beta_shape_is_flat() -> None:
    from openai.types.beta.realtime import SessionUpdateEvent as BetaUpdate

    session = SessionConfig(voice="alloy", noise_reduction="near_field").to_beta_session()
    BetaUpdate.model_validate({"type": "session.update", "session": session})
    assert session["modalities"] == ["text", "audio"]
    assert session["input_audio_format"] == "pcm16"
    assert session["turn_detection"]["type"] == "server_vad"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"voice": "darth"}, "voice"),
        ({"speed": 3.0}, "speed"),
        ({"speed": True}, "speed"),
        ({"output_modalities": ("audio", "text")}, "output_modalities"),
        ({"noise_reduction": "loud"}, "noise_reduction"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"max_output_tokens": 5000}, "max_output_tokens"),
        ({"tool_choice": "nonexistent"}, "tool_choice"),
        ({"truncation": 1.5}, "truncation"),
        ({"model": ""}, "model"),
    ],
)
def test_bad_values_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        SessionConfig(**kwargs)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: ServerVad(threshold=1.5), "turn_detection.threshold"),
        (lambda: ServerVad(silence_duration_ms=-1), "turn_detection.silence_duration_ms"),
        (lambda: ServerVad(idle_timeout_ms=10), "turn_detection.idle_timeout_ms"),
        (lambda: SemanticVad(eagerness="eager"), "turn_detection.eagerness"),  # type: ignore[arg-type]
        (lambda: FunctionTool(name="bad name"), "tools.name"),
    ],
)
def test_bad_nested_values_name_the_field(build: Any, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        build()


def test_duplicate_tool_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="^tools:"):
        SessionConfig(tools=(FunctionTool(name="a"), FunctionTool(name="a")))


def test_config_is_frozen() -> None:
    config = SessionConfig()
    with pytest.raises(AttributeError):
        config.voice = "alloy"  # type: ignore[misc]
