"""The beta dialect (Azure preview path): event names and object shapes, both directions.

The simulator thinks in GA shapes. On a beta connection, server events are translated on
the way out (``to_beta``) and client payloads on the way in (``session_update_to_ga``,
``response_params_to_ga``, ``item_to_ga``):

- ``response.output_audio.*`` -> ``response.audio.*``, ``response.output_audio_transcript.*``
  -> ``response.audio_transcript.*``, ``response.output_text.*`` -> ``response.text.*``;
- ``conversation.item.added`` -> ``conversation.item.created``; ``conversation.item.done`` is
  not sent; ``conversation.created`` follows ``session.created``;
- sessions are flat (``modalities``, ``voice``, ``input_audio_format`` ...), responses carry
  ``modalities``/``voice``/``output_audio_format``, assistant content is ``audio``/``text``.
"""

from __future__ import annotations

from typing import Any, Final

from .audio import AudioFormat
from .session_update import BETA_SESSION_KEYS, Rejection, expect, in_range, one_of, unknown_keys

GA = "ga"
BETA = "beta"

_RENAMES: Final = {
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
    "conversation.item.added": "conversation.item.created",
}
_NOT_SENT: Final = frozenset({"conversation.item.done"})

BETA_MODELS: Final = (
    "gpt-realtime",
    "gpt-realtime-2025-08-28",
    "gpt-4o-realtime-preview",
    "gpt-4o-realtime-preview-2024-10-01",
    "gpt-4o-realtime-preview-2024-12-17",
    "gpt-4o-realtime-preview-2025-06-03",
    "gpt-4o-mini-realtime-preview",
    "gpt-4o-mini-realtime-preview-2024-12-17",
)
_CONTENT_TO_BETA: Final = {"output_audio": "audio", "output_text": "text"}
_CONTENT_TO_GA: Final = {"audio": "output_audio", "text": "output_text"}


def beta_model(model: str) -> str:
    """The model a beta session reports (a deployment name maps to the preview model)."""
    return model if model in BETA_MODELS else "gpt-4o-realtime-preview"


def _item_to_beta(item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    if "content" in item:
        out["content"] = [
            {**part, "type": _CONTENT_TO_BETA.get(part.get("type", ""), part.get("type"))}
            for part in item["content"]
        ]
    return out


def session_to_beta(session: dict[str, Any]) -> dict[str, Any]:
    """A GA session dict in the flat beta shape."""
    audio_in = session["audio"]["input"]
    audio_out = session["audio"]["output"]
    voice = audio_out["voice"]
    td = audio_in["turn_detection"]
    if td is not None:
        td = {k: v for k, v in td.items() if k != "idle_timeout_ms"}
    transcription = audio_in["transcription"]
    if transcription is not None:
        keys = ("model", "language", "prompt")
        transcription = {k: transcription[k] for k in keys if k in transcription}
    noise = audio_in["noise_reduction"]
    tool_choice = session["tool_choice"]
    return {
        "id": session["id"],
        "object": "realtime.session",
        "model": beta_model(session["model"]),
        "expires_at": session["expires_at"],
        "modalities": ["audio", "text"] if "audio" in session["output_modalities"] else ["text"],
        "instructions": session["instructions"],
        "voice": voice["id"] if isinstance(voice, dict) else voice,
        "input_audio_format": AudioFormat(audio_in["format"]["type"]).beta_name,
        "output_audio_format": AudioFormat(audio_out["format"]["type"]).beta_name,
        "input_audio_transcription": transcription,
        "input_audio_noise_reduction": None if noise is None else {"type": noise.get("type")},
        "turn_detection": td,
        "tools": [t for t in session["tools"] if t.get("type", "function") == "function"],
        "tool_choice": tool_choice if isinstance(tool_choice, str) else "required",
        "temperature": 0.8,
        "max_response_output_tokens": session["max_output_tokens"],
        "speed": audio_out["speed"],
        "tracing": session["tracing"],
    }


def _response_to_beta(response: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in response.items() if k not in ("output_modalities", "audio")}
    modalities = response.get("output_modalities") or ["audio"]
    out["modalities"] = ["audio", "text"] if "audio" in modalities else ["text"]
    audio_out = (response.get("audio") or {}).get("output") or {}
    voice = audio_out.get("voice")
    out["voice"] = voice["id"] if isinstance(voice, dict) else voice
    fmt = audio_out.get("format")
    out["output_audio_format"] = AudioFormat(fmt["type"]).beta_name if fmt else "pcm16"
    out["temperature"] = 0.8
    out["output"] = [_item_to_beta(item) for item in response.get("output") or []]
    usage = response.get("usage")
    if usage is not None:  # beta usage had no image or cached-token breakdown
        details = usage["input_token_details"]
        kept = ("text_tokens", "audio_tokens", "cached_tokens")
        out["usage"] = {**usage, "input_token_details": {k: details[k] for k in kept}}
    return out


def to_beta(event: dict[str, Any]) -> dict[str, Any] | None:
    """The beta form of a GA server event (``None``: the beta server does not send it)."""
    kind = event["type"]
    if kind in _NOT_SENT:
        return None
    out = dict(event)
    out["type"] = _RENAMES.get(kind, kind)
    if "session" in event:
        out["session"] = session_to_beta(event["session"])
    if "response" in event:
        out["response"] = _response_to_beta(event["response"])
    if "item" in event:
        out["item"] = _item_to_beta(event["item"])
    return out


def item_to_ga(item: Any) -> Any:
    """A beta client item with GA content types (assistant ``text`` -> ``output_text``)."""
    if not isinstance(item, dict) or not isinstance(item.get("content"), list):
        return item
    if item.get("role") != "assistant":
        return item
    content = [
        {**part, "type": _CONTENT_TO_GA.get(str(part.get("type")), part.get("type"))}
        if isinstance(part, dict)
        else part
        for part in item["content"]
    ]
    return {**item, "content": content}


def _format_to_ga(value: Any, path: str) -> dict[str, Any] | Rejection:
    names = [f.beta_name for f in AudioFormat]
    problem = one_of(value, names, path)
    if problem:
        return problem
    return {"type": AudioFormat.from_beta(value).value}


def session_update_to_ga(session: Any) -> dict[str, Any] | Rejection:
    """A flat beta ``session`` payload as a GA update (checked for beta-level problems)."""
    problem = expect(session, "object", "session") or unknown_keys(
        session, BETA_SESSION_KEYS, "session"
    )
    if problem:
        return problem
    update: dict[str, Any] = {"type": "realtime"}
    audio_in: dict[str, Any] = {}
    audio_out: dict[str, Any] = {}
    for key, value in session.items():
        path = f"session.{key}"
        if key == "modalities":
            problem = expect(value, "array", path)
            for index, entry in enumerate(value if problem is None else []):
                problem = problem or one_of(entry, ["text", "audio"], f"{path}[{index}]")
            if problem:
                return problem
            update["output_modalities"] = ["audio"] if "audio" in value else ["text"]
        elif key in ("input_audio_format", "output_audio_format"):
            fmt = _format_to_ga(value, path)
            if isinstance(fmt, Rejection):
                return fmt
            (audio_in if key.startswith("input") else audio_out)["format"] = fmt
        elif key == "voice":
            audio_out["voice"] = value
        elif key == "speed":
            audio_out["speed"] = value
        elif key == "input_audio_transcription":
            audio_in["transcription"] = value
        elif key == "input_audio_noise_reduction":
            audio_in["noise_reduction"] = value
        elif key == "turn_detection":
            if isinstance(value, dict):
                kind = value.get("type", "server_vad")
                allowed = (
                    ("type", "eagerness", "create_response", "interrupt_response")
                    if kind == "semantic_vad"
                    else (
                        "type",
                        "threshold",
                        "prefix_padding_ms",
                        "silence_duration_ms",
                        "create_response",
                        "interrupt_response",
                    )
                )
                value = {k: v for k, v in value.items() if k in allowed and v is not None}
                value.setdefault("type", kind)
            audio_in["turn_detection"] = value
        elif key == "max_response_output_tokens":
            update["max_output_tokens"] = value
        elif key == "temperature":
            problem = in_range(value, 0.6, 1.2, path)
            if problem:
                return problem
        elif (
            key == "tool_choice"
            and isinstance(value, str)
            and value not in ("auto", "none", "required")
        ):
            update["tool_choice"] = {"type": "function", "name": value}
        else:
            update[key] = value
    audio: dict[str, Any] = {}
    if audio_in:
        audio["input"] = audio_in
    if audio_out:
        audio["output"] = audio_out
    if audio:
        update["audio"] = audio
    return update


def response_params_to_ga(params: dict[str, Any]) -> dict[str, Any]:
    """Beta ``response.create`` fields as GA ones (``temperature`` dropped)."""
    out: dict[str, Any] = {}
    audio_out: dict[str, Any] = {}
    for key, value in params.items():
        if key == "modalities" and isinstance(value, list):
            out["output_modalities"] = ["audio"] if "audio" in value else ["text"]
        elif key == "voice":
            audio_out["voice"] = value
        elif key == "output_audio_format" and isinstance(value, str):
            names = {f.beta_name: f.value for f in AudioFormat}
            audio_out["format"] = {"type": names.get(value, value)}
        elif key == "max_response_output_tokens":
            out["max_output_tokens"] = value
        elif key != "temperature":
            out[key] = value
    if audio_out:
        out["audio"] = {"output": audio_out}
    return out
