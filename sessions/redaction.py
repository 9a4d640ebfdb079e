"""Keeping secrets out of text that leaves the process (logs, errors, the room).

:func:`redact` replaces the given secrets and anything shaped like an OpenAI key
(``sk-…``, ``ek-…``, ``rk-…``, also when a server echoes it half-masked) with ``[redacted]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"
KEYLIKE = re.compile(r"\b(?:sk|ek|rk)-[A-Za-z0-9_\-*.]{4,}")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return KEYLIKE.sub(REDACTED, text)
