"""Ports for processes the tests start.

:func:`free_port` binds port 0, reads the port the kernel chose and releases it for a child
process to bind. Between the release and the child's bind another process could take it; in
this suite that cannot happen: each run has a network namespace of its own
(``tests/conftest.py``) and its tests start their processes one after another.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
