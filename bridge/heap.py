"""The garbage collector in a process that carries calls.

A bridge process holds a few hundred thousand long-lived objects (``livekit``,
``livekit-agents``, ``openai``, ``numpy`` and their modules) before its first call. CPython's
full collection walks every one of them while holding the GIL: ``bridge bench`` saw a single
117 ms collection at 20 calls in one process, a stall of the media loop every call heard as a
gap. :func:`freeze_long_lived` moves everything alive at that point into the collector's
permanent generation (:func:`gc.freeze`), so later collections walk only what the calls
themselves allocated.
"""

from __future__ import annotations

import gc
import threading

import structlog

log = structlog.get_logger(__name__)

_lock = threading.Lock()
_frozen = False


def freeze(*, collect: bool) -> int:
    """Freeze what is alive now (after a full collection with ``collect``); how many objects
    the permanent generation holds. ``gc.unfreeze()`` undoes it (the test suite does, per
    module)."""
    if collect:
        gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def freeze_long_lived(*, collect: bool) -> bool:
    """Freeze what is alive now, once per process; False if it was already done.

    ``collect`` runs a full collection first so the garbage of start-up is not kept for ever
    (it takes as long as the stall it prevents: do it before taking calls, not during one).
    Objects frozen are still freed by reference counting; only cycles among them are no
    longer collected.
    """
    global _frozen
    with _lock:
        if _frozen:
            return False
        frozen = freeze(collect=collect)
        _frozen = True
    log.debug("gc.frozen", objects=frozen, collected=collect)
    return True
