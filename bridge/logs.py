"""structlog configured once for the whole process: JSON in production, console in development.

Every record passes through :func:`redact_secrets`, which replaces any registered secret
(API keys, bearer tokens) wherever it appears in the record. Secrets are registered by
``bridge.pod.settings`` when it reads them from the environment, so a key that leaks into an
exception message or a URL is still never written out.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from bridge.errors import ConfigError
from sessions.redaction import redact

_SECRETS: set[str] = set()
_MIN_SECRET_LEN = 6  # shorter values would redact ordinary words


def register_secret(value: str | None) -> None:
    """Remember a secret so that no log record ever contains it."""
    if value and len(value) >= _MIN_SECRET_LEN:
        _SECRETS.add(value)


def scrub(text: str) -> str:
    """``text`` with every registered secret, and anything key-shaped, replaced."""
    return redact(text, _SECRETS)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub_value(v) for v in value)
    if isinstance(value, BaseException):
        return scrub(f"{type(value).__name__}: {value}")
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: drop registered secrets from every field of the record."""
    for key, value in event_dict.items():
        event_dict[key] = _scrub_value(value)
    return event_dict


LEVELS = ("debug", "info", "warning", "error", "critical")


def level_name(text: str) -> str:
    """``text`` as one of :data:`LEVELS` (any case), or a :class:`ConfigError` listing them."""
    name = text.strip().lower()
    if name not in LEVELS:
        raise ConfigError(f"log level {text!r} is not one of {', '.join(LEVELS)}")
    return name


def configure_logging(*, json: bool, level: str = "info", stream: TextIO | None = None) -> None:
    """Configure structlog (and the stdlib ``logging`` it may forward to) for this process."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Tracebacks become text before redaction, so they are scrubbed too.
        structlog.processors.format_exc_info,
        redact_secrets,
    ]
    renderer: Any
    if json:
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Libraries that log through the stdlib (livekit, websockets) go to the same stream, in
    # the same format (one JSON object per line in production), scrubbed the same way.
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        _ScrubbingFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))  # libraries stay at info unless asked per logger


class _ScrubbingFormatter(structlog.stdlib.ProcessorFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))
