"""Argument types shared by the subcommands: each refuses a bad value with a message naming it
(argparse prints it with the usage and exits 2), so no bad value reaches a command."""

from __future__ import annotations

import argparse

from bridge.errors import ConfigError
from bridge.logs import level_name


def log_level(text: str) -> str:
    """``--log-level``: debug, info, warning, error or critical (any case)."""
    try:
        return level_name(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def port(text: str, *, low: int = 1) -> int:
    """A TCP port from ``low`` (1, or 0 where 0 means "pick a free one") to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not low <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port ({low} to 65535)")
    return value


def port_or_zero(text: str) -> int:
    """``sim --port``: 0 (a free port) to 65535."""
    return port(text, low=0)
