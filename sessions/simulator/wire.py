"""Identifiers and ``error`` events as the real server writes them.

Ids: every server event has ``event_id`` = ``event_`` + 21 alphanumerics; objects use
``sess_``, ``conv_``, ``resp_``, ``item_`` and ``call_`` prefixes the same way.

``ERRORS`` lists the codes the simulator sends, with the ``type`` and message the real
server uses where they are known (see realtime-protocol.md section 5.4) and, for the codes
after which the real server hangs up, the close code the simulator then uses.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Any, Final

_ALPHABET: Final = string.ascii_letters + string.digits
_rng = random.Random()


def new_id(prefix: str, length: int = 21) -> str:
    """``prefix`` + ``length`` random alphanumerics (e.g. ``event_`` + 21)."""
    return prefix + "".join(_rng.choices(_ALPHABET, k=length))


def event_id() -> str:
    """A fresh server ``event_id``."""
    return new_id("event_")


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """How the server reports one error code."""

    type: str
    message: str
    close_code: int | None = None
    """Close the socket after the event with this code (``None``: the session goes on)."""


CLOSE_POLICY: Final = 1008
"""Close code after a fatal account error (the simulator's choice: the real one is not known)."""

ERRORS: Final[dict[str, ErrorInfo]] = {
    "server_error": ErrorInfo(
        "server_error",
        "The server had an error while processing your request. Sorry about that! You can"
        " retry your request, or contact us through our help center at help.openai.com if"
        " the error persists.",
    ),
    "rate_limit_exceeded": ErrorInfo(
        "tokens",
        "Rate limit reached for gpt-realtime in organization org-simulator on tokens per min"
        " (TPM): Limit 40000, Used 40000, Requested 1200. Please try again in 1.8s.",
    ),
    "insufficient_quota": ErrorInfo(
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details.",
        CLOSE_POLICY,
    ),
    "invalid_api_key": ErrorInfo(
        "invalid_request_error",
        "Incorrect API key provided. You can find your API key at"
        " https://platform.openai.com/account/api-keys.",
        CLOSE_POLICY,
    ),
    "account_deactivated": ErrorInfo(
        "invalid_request_error", "This account has been deactivated.", CLOSE_POLICY
    ),
    "billing_hard_limit_reached": ErrorInfo(
        "invalid_request_error", "Billing hard limit has been reached.", CLOSE_POLICY
    ),
    "beta_api_shape_disabled": ErrorInfo(
        "invalid_request_error",
        "The Realtime API beta interface (OpenAI-Beta: realtime=v1) has been disabled."
        " Use the GA interface.",
        4000,
    ),
}


def expiry_message(expire_after_s: float) -> str:
    """``Your session hit the maximum duration of N minutes.`` (seconds when not whole minutes)."""
    if expire_after_s >= 60 and float(expire_after_s / 60).is_integer():
        minutes = int(expire_after_s // 60)
        return f"Your session hit the maximum duration of {minutes} minutes."
    return f"Your session hit the maximum duration of {expire_after_s:g} seconds."


def error_event(
    code: str | None,
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    client_event_id: str | None = None,
) -> dict[str, Any]:
    """An ``error`` event; ``client_event_id`` is the failing client event's ``event_id``."""
    return {
        "type": "error",
        "event_id": event_id(),
        "error": {
            "type": type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        },
    }


def known_error(code: str, *, client_event_id: str | None = None) -> dict[str, Any]:
    """The ``error`` event for a code in ``ERRORS`` (other codes get a generic message)."""
    info = ERRORS.get(code, ErrorInfo("invalid_request_error", f"Simulated error: {code}."))
    return error_event(code, info.message, type=info.type, client_event_id=client_event_id)
