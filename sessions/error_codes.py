"""How each Realtime API error code affects a session (``realtime-protocol.md`` §5.4).

- **benign**: expected in normal operation, usually a race we lose on purpose (cancelling a
  response the server already cancelled, truncating an item already gone). Absorb and count.
- **retryable**: the request failed or the socket will go, but a retry, a later request or a
  new socket can succeed (server errors, rate limits, session expiry).
- **fatal**: retrying cannot help (a bad key, no quota, a deactivated account, a rejected
  configuration). Stop, tell the room why, end the session cleanly.

Errors are classified by code first, then by the request they answer: any error in reply to a
truncate or delete is benign (the item is already shorter or gone), any error in reply to a
``session.update`` is fatal (our configuration is wrong and resending it cannot help).
"""

from __future__ import annotations

from sessions.errors import ErrorKind

BENIGN = ErrorKind.BENIGN
RETRYABLE = ErrorKind.RETRYABLE
FATAL = ErrorKind.FATAL

#: Every code listed in realtime-protocol.md §5.4, plus a few seen in peers' code.
ERROR_CODES: dict[str, ErrorKind] = {
    # benign races
    "response_cancel_not_active": BENIGN,
    "conversation_already_has_active_response": BENIGN,
    "input_audio_buffer_commit_empty": BENIGN,
    "item_truncate_invalid_item_id": BENIGN,
    "unsupported_content_type": BENIGN,
    "item_retrieve_invalid_item_id": BENIGN,
    "item_delete_invalid_item_id": BENIGN,
    # transient: retry the request, or reconnect and replay
    "session_expired": RETRYABLE,
    "server_error": RETRYABLE,
    "rate_limit_exceeded": RETRYABLE,
    "inference_rate_limit_exceeded": RETRYABLE,
    # a request of ours was wrong; the session itself goes on
    "unknown_parameter": RETRYABLE,
    "missing_required_parameter": RETRYABLE,
    "invalid_value": RETRYABLE,
    # nothing a retry can fix
    "invalid_api_key": FATAL,
    "insufficient_quota": FATAL,
    "account_deactivated": FATAL,
    "billing_hard_limit_reached": FATAL,
    "beta_api_shape_disabled": FATAL,
    "model_not_found": FATAL,
}

#: Error ``type`` values that decide when the code is missing or unknown.
ERROR_TYPES: dict[str, ErrorKind] = {
    "server_error": RETRYABLE,
    "authentication_error": FATAL,
    "permission_error": FATAL,
}

#: Requests whose failure is always benign: the item is already shorter, or already gone.
BENIGN_REQUESTS = frozenset({"conversation.item.truncate", "conversation.item.delete"})

#: Requests whose failure is always fatal: our configuration was refused.
FATAL_REQUESTS = frozenset({"session.update"})


def classify(
    code: str | None, type: str | None = None, request_type: str | None = None
) -> ErrorKind:
    """The kind of an ``error`` event, from its code, its type and the request it answers."""
    if request_type in BENIGN_REQUESTS:
        return BENIGN
    if request_type in FATAL_REQUESTS:
        return FATAL
    if code is not None and code in ERROR_CODES:
        return ERROR_CODES[code]
    if type is not None and type in ERROR_TYPES:
        return ERROR_TYPES[type]
    return RETRYABLE
