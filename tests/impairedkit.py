"""Helpers for the tests with an impaired link (``tests/test_tun_link.py``,
``tests/test_impaired_calls.py``, ``tests/test_uplink_impairment.py``).

- :func:`require_namespaces`: skip locally without root, TUN or iproute2; fail in CI
  (``BRIDGE_REQUIRE_LIVEKIT=1``), where they must run.
- :func:`namespace`: a namespace named with this run's pid, removed at the end (and any left
  by a run that was killed, first).
- :func:`sim_in`: ``bridge sim`` (echo, journaling) inside a namespace, on an address the
  other side of a link reaches.
- :func:`webrtc_reach`: a caller's way to the ``bridge start`` worker named ``agent``: a
  fresh room, a token, and the dispatch done once the caller process runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from bridge.local import netns
from bridge.local.impaired_call import Reach
from bridge.local.livekit_server import Credentials
from tests.realroom import (
    REQUIRE_ENV,
    SimProcess,
    room_name,
    skip_or_fail,
    start_sim,
    stop_sim,
    token,
)

PREFIXES = ("bridge-caller-", "bridge-model-", "bridge-linktest-")


def require_namespaces() -> None:
    reason = netns.unavailable()
    if reason is None and not Path("/dev/net/tun").exists():
        reason = "no /dev/net/tun"
    skip_or_fail(reason, REQUIRE_ENV)


def _remove_stale() -> None:
    for stale in netns.NETNS_DIR.glob("bridge-*"):
        if not stale.name.startswith(PREFIXES):
            continue
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            netns.Namespace(stale.name).delete()


@contextlib.contextmanager
def namespace(prefix: str) -> Iterator[netns.Namespace]:
    """``bridge-<prefix>-<pid>`` (no links: a TUN link gives it its network)."""
    require_namespaces()
    _remove_stale()
    made = netns.create(f"bridge-{prefix}-{os.getpid()}", links=())
    try:
        yield made
    finally:
        made.delete()


@contextlib.contextmanager
def sim_in(space: netns.Namespace, host: str, work: Path) -> Iterator[SimProcess]:
    """``bridge sim`` (echo) listening on ``host`` inside ``space``; its journal is checked
    against the SDK's models at the end."""
    sim = start_sim(work, "--host", host, namespace=space)
    try:
        yield sim
    finally:
        stop_sim(sim)


def webrtc_reach(livekit: Credentials, agent: str, profile: str = "echo-test") -> Reach:
    """A fresh room; the worker registered as ``agent`` is dispatched to it with ``profile``."""
    from livekit import api

    room = room_name("impaired")

    async def dispatch() -> None:
        metadata = json.dumps({"profile": profile, "participant": "caller"})
        async with api.LiveKitAPI(livekit.http_url, livekit.api_key, livekit.api_secret) as lk:
            await lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(agent_name=agent, room=room, metadata=metadata)
            )

    return Reach(
        "webrtc",
        livekit.url,
        token=token(livekit, room, "caller"),
        after_start=lambda: asyncio.run(dispatch()),
    )
