"""Where a Realtime session connects, and how it authenticates.

An :class:`Endpoint` is built from explicit values (the bridge reads them from the
environment; this package never does). Four kinds (``realtime-protocol.md`` §1):

- OpenAI: ``wss://api.openai.com/v1/realtime?model=M`` with ``Authorization: Bearer KEY``;
- Azure GA: ``wss://RES.openai.azure.com/openai/v1/realtime?model=DEPLOYMENT`` with ``api-key``
  (or a Bearer Entra token);
- Azure preview: ``wss://RES.openai.azure.com/openai/realtime?api-version=V&deployment=D``,
  which speaks the beta event names;
- any compatible base URL (``ws``, ``wss``, ``http`` or ``https``; ``/realtime`` is appended
  unless present), e.g. the simulator.

The headers hold secrets: they are excluded from ``repr`` and never logged.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit

from sessions.errors import ConfigError


class Dialect(enum.Enum):
    GA = "ga"
    BETA = "beta"  # Azure preview deployments


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str
    provider: str  # "openai" | "azure" | "azure-preview" | "compatible"
    model: str
    dialect: Dialect = Dialect.GA
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def redacted_url(self) -> str:
        """The URL without its query string (which may name a deployment or carry a key)."""
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))

    @classmethod
    def openai(
        cls,
        api_key: str,
        model: str = "gpt-realtime",
        *,
        base_url: str = "wss://api.openai.com/v1",
        organization: str | None = None,
        project: str | None = None,
        safety_identifier: str | None = None,
    ) -> Endpoint:
        _require(api_key, "OpenAI API key")
        headers = [("Authorization", f"Bearer {api_key}")]
        if organization:
            headers.append(("OpenAI-Organization", organization))
        if project:
            headers.append(("OpenAI-Project", project))
        if safety_identifier:
            headers.append(("OpenAI-Safety-Identifier", safety_identifier))
        url = _realtime_url(base_url, {"model": model})
        return cls(url, "openai", model, Dialect.GA, tuple(headers))

    @classmethod
    def azure(
        cls,
        endpoint: str,
        deployment: str,
        *,
        api_key: str | None = None,
        entra_token: str | None = None,
    ) -> Endpoint:
        """Azure OpenAI, GA protocol (``/openai/v1/realtime?model=DEPLOYMENT``)."""
        _require(deployment, "Azure deployment")
        base = _ws_base(endpoint).rstrip("/")
        url = _realtime_url(f"{base}/openai/v1", {"model": deployment})
        return cls(url, "azure", deployment, Dialect.GA, _azure_auth(api_key, entra_token))

    @classmethod
    def azure_preview(
        cls,
        endpoint: str,
        deployment: str,
        api_version: str,
        *,
        api_key: str | None = None,
        entra_token: str | None = None,
    ) -> Endpoint:
        """Azure OpenAI, preview protocol (``/openai/realtime?api-version=V&deployment=D``)."""
        _require(deployment, "Azure deployment")
        _require(api_version, "Azure api-version")
        base = _ws_base(endpoint).rstrip("/")
        query = urlencode({"api-version": api_version, "deployment": deployment})
        url = f"{base}/openai/realtime?{query}"
        return cls(
            url, "azure-preview", deployment, Dialect.BETA, _azure_auth(api_key, entra_token)
        )

    @classmethod
    def compatible(
        cls, base_url: str, model: str = "gpt-realtime", *, api_key: str = ""
    ) -> Endpoint:
        """Any server speaking the GA protocol at ``base_url`` (e.g. ``ws://127.0.0.1:PORT/v1``)."""
        headers = (("Authorization", f"Bearer {api_key}"),) if api_key else ()
        return cls(
            _realtime_url(base_url, {"model": model}), "compatible", model, Dialect.GA, headers
        )


def _require(value: str | None, what: str) -> None:
    if not value:
        raise ConfigError(f"{what} is required")


def _azure_auth(api_key: str | None, entra_token: str | None) -> tuple[tuple[str, str], ...]:
    if entra_token:
        return (("Authorization", f"Bearer {entra_token}"),)
    if api_key:
        return (("api-key", api_key),)
    raise ConfigError("Azure needs an API key or an Entra token")


def _ws_base(url: str) -> str:
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ConfigError(f"not a usable endpoint URL: {url!r} (need ws, wss, http or https)")
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))


def _realtime_url(base_url: str, query: dict[str, str]) -> str:
    parts = urlsplit(_ws_base(base_url))
    path = parts.path.rstrip("/")
    if not path.endswith("/realtime"):
        path += "/realtime"
    merged = "&".join(x for x in (parts.query, urlencode(query)) if x)
    return urlunsplit((parts.scheme, parts.netloc, path, merged, ""))
