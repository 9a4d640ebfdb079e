"""The job entrypoint: one LiveKit room, one bridged call.

Runs inside ``livekit-agents``' own server (``bridge.pod.worker``): the job's room is connected
audio-only, the dispatch metadata picks the profile, a :class:`~bridge.call.call.Call` is started
on ``ctx.room.local_participant`` and fed by :func:`attach_room`, which forwards the room's
participant, track and chat events. The agent joins as an AGENT participant (the job token
from the dispatch says so).

The room stays on the job's loop; the call runs on the process's
:class:`~bridge.room.media_loop.MediaLoop` with every other call of the process (one loop for all
the audio, instead of one thread per call fighting the SDK's FFI thread for the GIL), and
publishes through :class:`~bridge.room.media_loop.LoopBoundParticipant`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from livekit import rtc
from livekit.agents import AutoSubscribe, JobContext

from bridge.call.call import Call, CallOptions
from bridge.call.probe import CallProbe
from bridge.call.profiles import ProfileSet
from bridge.call.tools import RoomControl
from bridge.metrics import BridgeMetrics, default_metrics
from bridge.pod.handover import CallBeat, CallStore, resumed_profile
from bridge.pod.settings import realtime_endpoint
from bridge.room.media_loop import LoopBoundParticipant, MediaLoop
from bridge.room.participant import HUMAN_KINDS, TOPIC_CHAT, Human
from sessions.usage import PriceTable

log = structlog.get_logger("bridge.pod.agent")

HEARD_SOURCES = frozenset({rtc.TrackSource.SOURCE_MICROPHONE, rtc.TrackSource.SOURCE_UNKNOWN})


@dataclass(slots=True)
class CallRegistry:
    """The calls running in this process (thread executor: all of the pod's calls).

    The calls live on the media loop: :meth:`drain` must run there too
    (``MediaLoop.shared().run(registry.drain(limit))``).
    """

    calls: set[Call] = field(default_factory=set)

    async def drain(self, limit: float, *, handover: bool = False) -> int:
        """Let calls finish for up to ``limit`` seconds, then end the rest cleanly (counted
        as ``drained``); with ``handover`` (a call store) another worker takes them over.

        Returns how many calls had to be ended.
        """
        waits = [asyncio.ensure_future(call.wait()) for call in self.calls]
        if waits:
            await asyncio.wait(waits, timeout=limit)
        remaining = [c for c in self.calls if not c.ended]
        reason = (
            "handed over to another worker (drain limit reached)"
            if handover
            else "the bridge is shutting down (drain limit reached)"
        )
        for call in remaining:
            call.end(reason, drained=True)
        for wait in waits:
            wait.cancel()
        return len(remaining)


REGISTRY = CallRegistry()


@dataclass(frozen=True, slots=True)
class AgentContext:
    """What every job of this process shares (built once, in the worker)."""

    profiles: ProfileSet
    metrics: BridgeMetrics = field(default_factory=default_metrics)
    prices: PriceTable = field(default_factory=PriceTable)
    options: CallOptions = field(default_factory=CallOptions)
    registry: CallRegistry = field(default_factory=lambda: REGISTRY)
    media: MediaLoop | None = None  # None: the process's shared media loop
    realtime_url: str | None = None  # None: the endpoint the environment names
    on_ended: Callable[[Call], None] | None = None  # each call once closed (its record whole)
    room_control: Callable[[str], RoomControl] | None = None
    """The server API for a room, by name (hang-up, transfer); None: tools have none."""
    store: CallStore | None = None  # running calls' beats and conversations (handover.py)


def _is_human(participant: rtc.RemoteParticipant) -> bool:
    return participant.kind in HUMAN_KINDS


def attach_room(room: rtc.Room, call: Call, media: MediaLoop | None = None) -> None:
    """Forward ``room``'s events to ``call`` (participants, audio tracks, mutes, chat).

    The room's callbacks run on its loop; with ``media`` each is handed to the call's loop.
    """
    room_input = call.input

    def post(callback: Callable[..., object], *args: Any) -> None:
        if media is None:
            callback(*args)
        else:
            media.call_soon(callback, *args)

    def joined(participant: rtc.RemoteParticipant) -> None:
        if _is_human(participant):
            post(room_input.participant_joined, Human(participant.identity, participant.kind))

    def left(participant: rtc.RemoteParticipant) -> None:
        post(room_input.participant_left, participant.identity)

    def subscribed(
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if _is_human(participant) and publication.source in HEARD_SOURCES:
            post(room_input.track_subscribed, participant.identity, track)

    def unsubscribed(
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        post(room_input.track_unsubscribed, participant.identity, publication.sid)

    def muted(participant: rtc.Participant, publication: rtc.TrackPublication) -> None:
        if isinstance(participant, rtc.RemoteParticipant):
            post(room_input.track_muted, participant.identity, publication.sid)

    def unmuted(participant: rtc.Participant, publication: rtc.TrackPublication) -> None:
        if isinstance(participant, rtc.RemoteParticipant):
            post(room_input.track_unmuted, participant.identity, publication.sid)

    def chat(reader: rtc.TextStreamReader, identity: str) -> None:
        async def read() -> None:
            text = await reader.read_all()
            post(call.on_chat, identity, text)

        task = asyncio.get_running_loop().create_task(read(), name="chat")
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    room.on("participant_connected", joined)
    room.on("participant_disconnected", left)
    room.on("track_subscribed", subscribed)
    room.on("track_unsubscribed", unsubscribed)
    room.on("track_muted", muted)
    room.on("track_unmuted", unmuted)
    room.register_text_stream_handler(TOPIC_CHAT, chat)
    # Those already in the room, in the order they joined: "the first human" of linked mode
    # is the first to have joined, not the first the SDK happens to list (a real server lists
    # them in any order).
    never = datetime.datetime.max.replace(tzinfo=datetime.UTC)
    present = sorted(room.remote_participants.values(), key=lambda p: p.joined_at or never)
    for participant in present:
        joined(participant)
        for publication in participant.track_publications.values():
            track = publication.track
            if track is not None and publication.subscribed:
                subscribed(track, publication, participant)
                if publication.muted:
                    muted(participant, publication)


# Jobs of the thread executor connect their rooms from threads of their own. Two
# ``Room.connect`` calls at once in one process sometimes leave one waiting for its
# ConnectCallback for ever, and 15 s later the FFI panics and SIGTERMs the whole process
# (reproduced here with livekit-agents alone: three dispatches at once, thread executor, no
# bridge code). So connects take turns (each takes ~0.1 s; a burst of 10 waits 1 s at most
# for the last), and the SDK's FFI client is created once, in the worker's main thread,
# before any job thread can race to create it (``FfiClient.instance`` has no lock).
_CONNECTING = threading.Lock()


def prepare_ffi() -> None:
    """Create the SDK's FFI client now, in the calling (main) thread."""
    from livekit.rtc._ffi_client import FfiClient

    FfiClient.instance  # noqa: B018 (created on first access)


async def connect_room(ctx: JobContext) -> None:
    """``ctx.connect`` (audio only), one job of the process at a time."""
    await asyncio.to_thread(_CONNECTING.acquire)
    try:
        await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    finally:
        _CONNECTING.release()


async def run_job(
    ctx: JobContext,
    shared: AgentContext,
    *,
    probe: CallProbe | None = None,
) -> None:
    """The entrypoint body: resolve the profile, connect, bridge until the call ends.

    ``probe`` sees what the call does (``bridge bench``).
    """
    structlog.contextvars.bind_contextvars(room=ctx.room.name, job=ctx.job.id)
    store, room_name = shared.store, ctx.room.name
    adopted = None
    if store is not None:
        try:
            adopted = await store.adopt(room_name)
        except Exception as exc:  # no store: the call goes on without one
            log.warning("handover.unavailable", error=f"{type(exc).__name__}: {exc}")
            store = None
    resolution = shared.profiles.resolve(ctx.job.metadata)
    for warning in resolution.warnings:
        log.warning("dispatch.metadata_refused", detail=warning)
        shared.metrics.metadata_rejected.inc()
    profile = resolution.profile
    history = adopted.lines if adopted is not None else ()
    if adopted is not None:  # a vanished worker's call: carry on where it was
        profile = resumed_profile(profile, history)
        shared.metrics.resumed.inc()
        log.info("call.resumed", lines=len(history))
    endpoint = realtime_endpoint(profile.session.model, url=shared.realtime_url)
    await connect_room(ctx)
    structlog.contextvars.bind_contextvars(agent=ctx.room.local_participant.identity)
    options = shared.options
    if resolution.participant:
        options = replace(options, linked_identity=resolution.participant)
    media = shared.media or MediaLoop.shared()
    participant = LoopBoundParticipant(ctx.room.local_participant, asyncio.get_running_loop())

    async def create() -> Call:  # on the media loop: the call's source and tasks live there
        return Call(
            participant,
            profile,
            endpoint,
            options=options,
            metrics=shared.metrics,
            prices=shared.prices,
            probe=probe,
            room_control=shared.room_control(ctx.room.name) if shared.room_control else None,
        )

    # One context for everything of this call that runs on the media loop: the ids bound
    # there (call and session in Call.start, the participant when linked) reach every later
    # record of the call, call.ended included (each run in a copy would lose them).
    context = contextvars.copy_context()
    call = await media.run(create(), context)

    def linked(identity: str | None) -> None:  # on the media loop, between task steps
        if identity is None:  # the caller left: the records keep the last one heard
            return
        try:
            context.run(structlog.contextvars.bind_contextvars, participant=identity)
        except RuntimeError:  # already inside it (called from one of the call's steps)
            structlog.contextvars.bind_contextvars(participant=identity)

    call.input.on_linked = linked
    attach_room(ctx.room, call, media)

    async def on_shutdown(reason: str) -> None:
        media.call_soon(call.end, f"job shutdown: {reason}" if reason else "job shutdown")

    ctx.add_shutdown_callback(on_shutdown)
    shared.registry.calls.add(call)
    beat: CallBeat | None = None
    beating: asyncio.Task[None] | None = None
    try:
        await media.run(call.start(), context)
        if store is not None:
            beat = CallBeat(store, room_name, lambda: (*history, *call.record.lines))
            with contextlib.suppress(Exception):
                await store.begin(room_name, ctx.job.metadata, history)
                beating = asyncio.create_task(beat.run(), name="call-beat")
        reason = await media.run(call.wait(), context)
    finally:
        shared.registry.calls.discard(call)
        if beating is not None:
            beating.cancel()
        if beat is not None:
            await beat.stop(handed_over=call.outcome == "drained")
        if store is not None:
            with contextlib.suppress(Exception):
                await store.aclose()  # this job's loop's client
        with contextlib.suppress(Exception):
            await media.run(call.aclose(), context)
        if shared.on_ended is not None:
            shared.on_ended(call)
    ctx.shutdown(reason)
