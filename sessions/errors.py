"""The sessions package's exception tree.

Every error ``sessions`` raises on purpose derives from :class:`RealtimeError`. The module
imports nothing from the project (the resampling package keeps its own tree,
``resampling.errors``; errors only the bridge raises live in ``bridge.errors``)::

    RealtimeError
    ├── ConfigError              a session, endpoint, price or simulator setting is unacceptable
    ├── InvalidState             our own code called something at the wrong time (a bug)
    ├── UpstreamError            an ``error`` event from the Realtime API
    │   └── SessionUpdateRejected  the server refused our ``session.update``
    ├── SessionFailed            the conversation cannot go on (fatal error, outage too long)
    └── RealtimeConnectionError  the socket to the Realtime API could not be used
        ├── ConnectTimeout       no handshake within the connect timeout
        ├── HandshakeRejected    HTTP status instead of a WebSocket (401/403: a fatal auth error)
        └── ConnectionClosed     the socket closed (code, reason)
            ├── ConnectionClosedOK     1000/1001: the server ended it on purpose (e.g. expiry)
            └── ConnectionClosedError  anything else: a drop

Exceptions carry their fields and build their message in ``__str__``. None of them ever
holds a secret: handshake errors keep the status and a reason, never the request headers.
"""

from __future__ import annotations

from enum import Enum


class RealtimeError(Exception):
    """Root of every error the sessions package raises on purpose."""


class ConfigError(RealtimeError):
    """A setting, profile or metadata value is unacceptable."""


class InvalidState(RealtimeError):
    """Our own code called something at a time it is not allowed (a bug, not bad input)."""


class ErrorKind(Enum):
    """How an upstream error affects the session."""

    BENIGN = "benign"  # expected in normal operation: absorb and count
    RETRYABLE = "retryable"  # transient: retry or reconnect
    FATAL = "fatal"  # stop: retrying cannot help (bad key, quota, account)


class UpstreamError(RealtimeError):
    """An ``error`` event from the Realtime API, tied to the request that caused it."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        type: str | None = None,
        param: str | None = None,
        event_id: str | None = None,
        request_type: str | None = None,
        kind: ErrorKind = ErrorKind.RETRYABLE,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.type = type
        self.param = param
        self.event_id = event_id
        self.request_type = request_type
        self.kind = kind

    def __str__(self) -> str:
        code = self.code or self.type or "error"
        cause = f" (in reply to {self.request_type})" if self.request_type else ""
        return f"{code}: {self.message}{cause}"


class SessionUpdateRejected(UpstreamError):
    """The server refused our ``session.update``; nothing of it was applied."""


class SessionFailed(RealtimeError):
    """The conversation cannot go on: a fatal error, or no socket for too long."""

    def __init__(self, reason: str, *, fatal: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fatal = fatal

    def __str__(self) -> str:
        return self.reason


class RealtimeConnectionError(RealtimeError):
    """The socket to the Realtime API could not be opened or used."""


class ConnectTimeout(RealtimeConnectionError):
    """No WebSocket handshake completed within the connect timeout."""

    def __init__(self, host: str, timeout: float) -> None:
        super().__init__(host, timeout)
        self.host = host
        self.timeout = timeout

    def __str__(self) -> str:
        return f"no WebSocket handshake with {self.host} within {self.timeout:g} s"


class HandshakeRejected(RealtimeConnectionError):
    """The server answered the upgrade with an HTTP status (401/403 mean the key was refused)."""

    def __init__(self, status: int, host: str, detail: str = "") -> None:
        super().__init__(status, host, detail)
        self.status = status
        self.host = host
        self.detail = detail

    @property
    def fatal(self) -> bool:
        """Auth and permission refusals cannot be fixed by retrying."""
        return self.status in (400, 401, 403, 404)

    def __str__(self) -> str:
        if self.status == 401:
            cause = "the API key was rejected (HTTP 401 Unauthorized)"
        elif self.status == 403:
            cause = "the API key is not allowed to use this endpoint (HTTP 403 Forbidden)"
        elif self.status == 404:
            cause = "no Realtime endpoint at this URL (HTTP 404)"
        else:
            cause = f"the server refused the WebSocket upgrade (HTTP {self.status})"
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.host}: {cause}{detail}"


class ConnectionClosed(RealtimeConnectionError):
    """The socket closed; ``code`` and ``reason`` are the close frame's (1006 when none)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"connection closed ({self.code}{': ' + self.reason if self.reason else ''})"


class ConnectionClosedOK(ConnectionClosed):
    """The server ended the socket on purpose (1000 or 1001, e.g. session expiry)."""


class ConnectionClosedError(ConnectionClosed):
    """The socket dropped or closed with an error code."""
