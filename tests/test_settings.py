"""Settings come from the environment only; missing ones are named; secrets are scrubbed."""

from __future__ import annotations

import pytest

from bridge.errors import ConfigError, MissingSetting
from bridge.logs import scrub
from bridge.pod.settings import LiveKitSettings, WorkerSettings, realtime_endpoint
from sessions.endpoint import Dialect


def test_missing_livekit_settings_are_all_named() -> None:
    with pytest.raises(MissingSetting) as caught:
        LiveKitSettings.from_env({"LIVEKIT_URL": "wss://x"})
    assert str(caught.value).startswith("LIVEKIT_API_KEY, LIVEKIT_API_SECRET are not set")


def test_livekit_secrets_are_registered_and_hidden() -> None:
    settings = LiveKitSettings.from_env(
        {
            "LIVEKIT_URL": "wss://x",
            "LIVEKIT_API_KEY": "APIkey123456",
            "LIVEKIT_API_SECRET": "secret-abcdefgh",
        }
    )
    assert "secret-abcdefgh" not in repr(settings)
    assert scrub("the secret is secret-abcdefgh") == "the secret is [redacted]"


def test_realtime_endpoint_selection() -> None:
    assert realtime_endpoint("m", {"OPENAI_API_KEY": "sk-aaaaaaaa"}).provider == "openai"
    sim = realtime_endpoint("m", {}, url="ws://127.0.0.1:1/v1")
    assert (sim.provider, sim.headers) == ("compatible", ())
    azure = realtime_endpoint(
        "m",
        {"AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com", "AZURE_OPENAI_API_KEY": "k" * 10},
    )
    assert azure.provider == "azure" and azure.dialect is Dialect.GA
    preview = realtime_endpoint(
        "m",
        {
            "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com",
            "AZURE_OPENAI_API_KEY": "k" * 10,
            "OPENAI_API_VERSION": "2025-04-01-preview",
        },
    )
    assert preview.dialect is Dialect.BETA


def test_no_realtime_settings_names_the_variables() -> None:
    with pytest.raises(MissingSetting, match="OPENAI_API_KEY"):
        realtime_endpoint("m", {})
    with pytest.raises(MissingSetting, match="AZURE_OPENAI_API_KEY"):
        realtime_endpoint("m", {"AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com"})


def test_worker_settings_defaults_and_errors() -> None:
    settings = WorkerSettings.from_env({})
    assert (settings.executor, settings.log_format, settings.max_sessions) == ("thread", "json", 12)
    assert WorkerSettings.from_env({}, dev=True).log_format == "console"
    for env in (
        {"BRIDGE_EXECUTOR": "fork"},
        {"BRIDGE_MAX_SESSIONS": "many"},
        {"BRIDGE_MAX_SESSIONS": "0"},
        {"BRIDGE_LOG_FORMAT": "xml"},
    ):
        with pytest.raises(ConfigError):
            WorkerSettings.from_env(env)
