"""Endpoints: URL and auth for OpenAI, Azure GA, Azure preview and compatible servers."""

from __future__ import annotations

import pytest

from sessions.endpoint import Dialect, Endpoint
from sessions.errors import ConfigError

KEY = "sk-test-0123456789abcdef"


def test_openai() -> None:
    e = Endpoint.openai(KEY, "gpt-realtime")
    assert e.url == "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    assert dict(e.headers) == {"Authorization": f"Bearer {KEY}"}
    assert e.dialect is Dialect.GA


def test_azure_ga() -> None:
    e = Endpoint.azure("https://res.openai.azure.com/", "my-dep", api_key=KEY)
    assert e.url == "wss://res.openai.azure.com/openai/v1/realtime?model=my-dep"
    assert dict(e.headers) == {"api-key": KEY}
    assert e.dialect is Dialect.GA


def test_azure_ga_with_entra_token() -> None:
    e = Endpoint.azure("https://res.openai.azure.com", "dep", entra_token="tok-abcdefgh")
    assert dict(e.headers) == {"Authorization": "Bearer tok-abcdefgh"}


def test_azure_preview_speaks_beta() -> None:
    e = Endpoint.azure_preview(
        "https://res.openai.azure.com", "dep", "2025-04-01-preview", api_key=KEY
    )
    assert e.url == (
        "wss://res.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=dep"
    )
    assert e.dialect is Dialect.BETA
    assert e.redacted_url == "wss://res.openai.azure.com/openai/realtime"


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("ws://127.0.0.1:8765/v1", "ws://127.0.0.1:8765/v1/realtime?model=m"),
        ("http://127.0.0.1:8765/v1/", "ws://127.0.0.1:8765/v1/realtime?model=m"),
        ("https://proxy.example/v1/realtime", "wss://proxy.example/v1/realtime?model=m"),
        ("wss://x.example/v1?tenant=a", "wss://x.example/v1/realtime?tenant=a&model=m"),
    ],
)
def test_compatible_base_urls(base: str, url: str) -> None:
    assert Endpoint.compatible(base, "m").url == url


def test_secrets_stay_out_of_repr() -> None:
    for e in (
        Endpoint.openai(KEY),
        Endpoint.azure("https://r.openai.azure.com", "d", api_key=KEY),
        Endpoint.compatible("ws://127.0.0.1:1/v1", api_key=KEY),
    ):
        assert KEY not in repr(e)
        assert KEY not in str(e)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Endpoint.openai(""),
        lambda: Endpoint.azure("https://r.openai.azure.com", "d"),
        lambda: Endpoint.azure("ftp://r", "d", api_key=KEY),
        lambda: Endpoint.azure_preview("https://r.openai.azure.com", "d", "", api_key=KEY),
        lambda: Endpoint.compatible("not a url"),
    ],
)
def test_unusable_settings_are_config_errors(build: object) -> None:
    with pytest.raises(ConfigError):
        build()  # type: ignore[operator]
