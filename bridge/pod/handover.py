"""Calls that outlive their worker: a shared store in Redis, and the rescue of orphans.

LiveKit (v1.13.5) never dispatches an agent again when its worker vanishes: the server
forgets a dead worker's jobs (``AgentHandler.deregisterWorker``: "TODO update dispatch
state"), a room recreated after a node loss does not reload its API dispatches, and the
caller is left in silence for good. With ``BRIDGE_REDIS_URL`` set, the workers keep what
another worker needs to take a call over, and watch each other:

- each running call beats once a second (``ZADD <prefix>beats <unix time> <room>``) and
  keeps its dispatch metadata and its conversation so far (the text lines of its record:
  who said what) under ``<prefix>call:<room>``; the prefix names the agent, so staging and
  production can share one Redis;
- a call that ends deletes both: an ended call is never rescued;
- every worker looks once a second for beats older than :data:`STALE_S`; the first to remove
  one from the set wins it (``ZREM`` is atomic), checks that a human is still in the room
  and dispatches the agent there again with the same metadata (``bridge_rescues_total``);
- the job that starts in that room finds the record (:meth:`CallStore.adopt`): the model is
  told the conversation so far (added to the profile's instructions) and carries on; the
  call counts in ``bridge_calls_resumed_total`` and keeps beating under the same record.

A call still running when a worker's drain limit comes is handed over the same way
(:meth:`CallStore.release`: its beat is set stale at once) instead of being cut, so no
rollout ends a call. What the caller notices is the gap between the old agent leaving and the
new one listening (tests/test_cluster.py measures it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import structlog
from redis.asyncio import Redis

from bridge.call.profiles import Profile
from bridge.call.records import Line
from bridge.metrics import BridgeMetrics

log = structlog.get_logger("bridge.pod.handover")

BEAT_S = 1.0  # how often a call says it is alive
STALE_S = 3.0  # a call silent this long has lost its worker
RECORD_TTL_S = 24 * 3600  # an abandoned record disappears on its own
HISTORY_LINES = 40  # the most recent lines a replacement is told
HISTORY_CHARS = 6000


@dataclass(frozen=True, slots=True)
class Adopted:
    """A call this job takes over: its dispatch metadata and its conversation so far."""

    metadata: str
    lines: tuple[Line, ...]


def resumed_profile(profile: Profile, lines: Sequence[Line]) -> Profile:
    """``profile`` whose instructions end with the conversation so far (most recent lines,
    bounded), so the model picks it up where the vanished worker left it."""
    said = [f"{line.who}: {line.text}" for line in lines if line.text.strip()]
    kept: list[str] = []
    size = 0
    for text in reversed(said[-HISTORY_LINES:]):
        size += len(text) + 1
        if size > HISTORY_CHARS:
            break
        kept.append(text)
    history = "\n".join(reversed(kept)) or "(nothing was said yet)"
    instructions = (
        f"{profile.session.instructions}\n\n"
        "You were cut off for a few seconds in the middle of this call and are back now."
        " Do not start over: carry on from where the conversation was. It went:\n"
        f"{history}"
    )
    return replace(profile, session=replace(profile.session, instructions=instructions))


class CallStore:
    """The shared record of running calls (one Redis, every worker of one agent name)."""

    def __init__(self, url: str, agent_name: str, *, clock: Callable[[], float] = time.time):
        self.url = url
        self.prefix = f"bridge:{agent_name or '(automatic)'}:"
        self.clock = clock
        # A client per event loop: the thread executor runs each job on a loop of its own,
        # and a redis.asyncio connection belongs to the loop that opened it.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Redis] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    def from_url(cls, url: str, agent_name: str) -> CallStore:
        return cls(url, agent_name)

    @property
    def redis(self) -> Redis:
        """This event loop's client (made on first use)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
            self._clients[loop] = client
        return client

    @property
    def beats(self) -> str:
        return self.prefix + "beats"

    def key(self, room: str) -> str:
        return f"{self.prefix}call:{room}"

    async def aclose(self) -> None:
        """Close this event loop's client (each job closes its own when it ends)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    async def adopt(self, room: str) -> Adopted | None:
        """The record of ``room``'s vanished call, if there is one (its beat stale or already
        claimed by a rescuer); None for a fresh room or a call another worker still runs."""
        score = await self.redis.zscore(self.beats, room)
        if score is not None and self.clock() - float(score) < STALE_S:
            return None
        record: dict[bytes, bytes] = await self.redis.hgetall(self.key(room))  # type: ignore[misc]
        if not record:
            return None
        raw = json.loads(record.get(b"lines", b"[]"))
        lines = tuple(Line(float(x["at"]), str(x["who"]), str(x["text"])) for x in raw)
        return Adopted(record.get(b"metadata", b"").decode(), lines)

    async def begin(self, room: str, metadata: str, lines: Sequence[Line] = ()) -> None:
        """A call starts beating (``lines``: the conversation it adopted, if any)."""
        key = self.key(room)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"metadata": metadata, "lines": _dump(lines)})
            pipe.expire(key, RECORD_TTL_S)
            pipe.zadd(self.beats, {room: self.clock()})
            await pipe.execute()

    async def beat(self, room: str, lines: Sequence[Line]) -> None:
        """Still alive; the conversation as it stands."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.key(room), "lines", _dump(lines))
            pipe.zadd(self.beats, {room: self.clock()})
            await pipe.execute()

    async def finish(self, room: str) -> None:
        """The call ended: nothing to rescue."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.beats, room)
            pipe.delete(self.key(room))
            await pipe.execute()

    async def release(self, room: str) -> None:
        """Hand the call over now: its beat becomes stale at once (the record stays)."""
        await self.redis.zadd(self.beats, {room: 0})

    async def claim_orphans(self) -> list[str]:
        """Rooms whose call stopped beating, each claimed by this worker only."""
        stale = await self.redis.zrangebyscore(self.beats, "-inf", self.clock() - STALE_S)
        won = []
        for member in stale:
            if await self.redis.zrem(self.beats, member):
                won.append(member.decode() if isinstance(member, bytes) else str(member))
        return won

    async def metadata(self, room: str) -> str | None:
        value = await self.redis.hget(self.key(room), "metadata")  # type: ignore[misc]
        return None if value is None else bytes(value).decode()

    async def forget(self, room: str) -> None:
        await self.redis.delete(self.key(room))


def _dump(lines: Sequence[Line]) -> str:
    recent = list(lines)[-HISTORY_LINES:]
    return json.dumps([{"at": x.at, "who": x.who, "text": x.text} for x in recent])


class Rescuer:
    """Watches the store for calls whose worker vanished and dispatches the agent again.

    ``humans(room)`` says whether a human is still in the room; ``dispatch(room,
    metadata)`` asks LiveKit for the agent (both awaitables: livekit-api in production).
    """

    def __init__(
        self,
        store: CallStore,
        humans: Callable[[str], Any],
        dispatch: Callable[[str, str], Any],
        metrics: BridgeMetrics,
        *,
        interval: float = BEAT_S,
    ) -> None:
        self.store = store
        self.humans = humans
        self.dispatch = dispatch
        self.metrics = metrics
        self.interval = interval

    async def run(self) -> None:
        """Look for orphans every ``interval`` seconds until cancelled."""
        while True:
            try:
                await self.sweep()
            except Exception as exc:  # Redis or LiveKit unreachable: try again next time
                log.warning("rescue.failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.interval)

    async def sweep(self) -> int:
        """Claim and redispatch the orphans found now; returns how many were redispatched."""
        done = 0
        for room in await self.store.claim_orphans():
            metadata = await self.store.metadata(room)
            if metadata is None or not await self.humans(room):
                await self.store.forget(room)
                self.metrics.rescues.labels("abandoned").inc()
                log.info("rescue.abandoned", room=room, reason="nobody left in the room")
                continue
            try:
                await self.dispatch(room, metadata)
            except Exception as exc:
                self.metrics.rescues.labels("abandoned").inc()
                log.warning("rescue.abandoned", room=room, reason=f"dispatch failed: {exc}")
                await self.store.forget(room)
                continue
            self.metrics.rescues.labels("redispatched").inc()
            log.info("rescue.redispatched", room=room)
            done += 1
        return done


class CallBeat:
    """One call's beat: :meth:`run` beats until cancelled, :meth:`stop` says how it ended."""

    def __init__(self, store: CallStore, room: str, lines: Callable[[], Sequence[Line]]):
        self.store = store
        self.room = room
        self.lines = lines

    async def run(self) -> None:
        while True:
            await asyncio.sleep(BEAT_S)
            try:
                await self.store.beat(self.room, self.lines())
            except Exception as exc:  # a Redis hiccup must not end the call
                log.warning("handover.beat_failed", error=f"{type(exc).__name__}: {exc}")

    async def stop(self, *, handed_over: bool) -> None:
        """The call ended (the record goes) or is handed over (its beat goes stale now)."""
        with contextlib.suppress(Exception):
            if handed_over:
                await self.store.beat(self.room, self.lines())
                await self.store.release(self.room)
            else:
                await self.store.finish(self.room)
