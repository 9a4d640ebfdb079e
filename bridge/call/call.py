"""One bridged call: room audio to a Realtime session and back, with barge-in.

:class:`Call` wires the parts and reacts to the session's events; each part lives in its own
module: who is heard (``room_input``), the agent's audio (``playout``), captions and agent
state (``captions``), the Realtime conversation across sockets (``sessions.supervisor``), the
figures (``records``, ``metrics``, ``latency``). The same code runs on a real room
(``bridge.pod.agent``) and on the loopback (``bridge.local.trial``): only the
:class:`~bridge.room.participant.AgentParticipant` and the calls into :attr:`Call.input` differ.

Turn-taking is decided by the sans-I/O turn core (``sessions.turns``, owned by the supervisor,
which feeds it every event of the live socket): :class:`Call` feeds it what only the room side
knows (an item started playing, the playout went idle, the samples of each item played when
it was stopped, a typed message) and carries out the actions it returns (:meth:`Call._take_turn`).

Barge-in happens in the same event-loop step that read ``input_audio_buffer.speech_started``:
the source queue is cleared synchronously, the rest of the response is discarded, each cut
item is truncated at the audio that left the source (deleted when none did), its caption
closed with only the heard text, and the state set to listening. A message typed on
``lk.chat`` does the same before it is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog
from livekit import rtc
from numpy.typing import NDArray

from bridge.call.captions import AgentCaptions, AgentState, UserCaptions
from bridge.call.latency import CallerTimeline, InputLatency
from bridge.call.metering import CallMeter
from bridge.call.playout import SAMPLE_RATE, Playout
from bridge.call.probe import CallProbe, NoProbe
from bridge.call.profiles import Profile
from bridge.call.records import CallRecord, TruncationRecord
from bridge.call.room_input import RoomInput
from bridge.call.tool_runner import ToolRunner
from bridge.call.tools import RoomControl, ToolContext
from bridge.errors import EXPECTED
from bridge.logs import scrub
from bridge.metrics import BridgeMetrics
from bridge.room.participant import AgentParticipant, Human, PublishQueue
from bridge.room.routed_audio import RoutedAudioSource
from sessions import events as ev
from sessions.connection import ConnectionOptions
from sessions.endpoint import Endpoint
from sessions.errors import (
    ConnectTimeout,
    ErrorKind,
    HandshakeRejected,
    RealtimeConnectionError,
    SessionFailed,
)
from sessions.events import ServerEvent
from sessions.protocol import OutboundFrame
from sessions.supervisor import ContinuityOptions, SessionSupervisor
from sessions.turns import (
    Actions as TurnActions,
    CancelResponse,
    CloseCaption,
    CreateResponse,
    CutItem,
    DiscardResponse,
    EndAudio,
    ExpectAudio,
    SendUserText,
    SetAgentState,
    StopPlayout,
    TurnEnded,
)
from sessions.usage import PriceTable

log = structlog.get_logger("bridge.call.call")

AGENT_TRACK_NAME = "agent_audio"
SIP_KIND = rtc.ParticipantKind.PARTICIPANT_KIND_SIP


def input_frame_ms(chunk_ms: int) -> int:
    """How long the room's frames are, for appends of ``chunk_ms``.

    10 ms frames up to 20 ms appends: with 20 ms frames the first half of every frame waits
    10 ms longer for the socket (``bridge bench``: frame → socket p99 32 ms against 21 ms),
    for ~0.5 % of a core per call saved. Longer appends wait for a whole chunk anyway and
    read 20 ms frames (half the SDK events).
    """
    return 10 if chunk_ms <= 20 else 20


@dataclass(frozen=True, slots=True, kw_only=True)
class CallOptions:
    """How a call runs, beyond its profile."""

    queue_ms: int = 100  # native AudioSource queue (≤ 100 ms)
    playout_frame_ms: int = 20
    max_playout_s: float = 120.0
    empty_room_grace_s: float = 10.0
    stream_rate: int = 48_000  # rate and channels the room's audio is read at
    stream_channels: int = 1
    # The SDK's audio events routed to their one consumer (bridge/room/routed_audio.py), or
    # the SDK's own rtc.AudioStream/AudioSource (what bridge bench compares it with).
    routed_audio: bool = True
    linked_identity: str | None = None
    connection: ConnectionOptions = ConnectionOptions()
    continuity: ContinuityOptions = ContinuityOptions()


class Call:
    def __init__(
        self,
        participant: AgentParticipant,
        profile: Profile,
        endpoint: Endpoint,
        *,
        options: CallOptions | None = None,
        metrics: BridgeMetrics | None = None,
        prices: PriceTable | None = None,
        room_control: RoomControl | None = None,
        clock: Callable[[], float] = time.monotonic,
        probe: CallProbe | None = None,
    ) -> None:
        """``room_control``: the room's server, for what tools ask beyond the agent's own
        participant (hanging up a phone caller, transferring one); None on the loopback."""
        self.participant = participant
        self.probe = probe = probe or NoProbe()
        self.profile = profile
        self.options = options = options or CallOptions()
        self.metrics = metrics
        self.clock = clock
        self.record = CallRecord(started_at=clock())
        self.publish = PublishQueue()
        self.state = AgentState(participant, self.publish)
        source_class = RoutedAudioSource if options.routed_audio else rtc.AudioSource
        self.source = source_class(SAMPLE_RATE, 1, queue_size_ms=options.queue_ms)
        self.track = rtc.LocalAudioTrack.create_audio_track(AGENT_TRACK_NAME, self.source)
        self.track_sid = ""
        self.playout = Playout(
            self.source,
            frame_ms=options.playout_frame_ms,
            max_buffer_s=options.max_playout_s,
            clock=clock,
            probe=probe,
        )
        self.playout.on_item_started = self._on_item_started
        self.playout.on_idle = self._on_playout_idle
        self.playout.on_captured = lambda s: self.record.out_latency_ms.append(s * 1000)
        self.captions = AgentCaptions(
            participant,
            self.publish,
            played=self.playout.played_samples,
            track_sid=lambda: self.track_sid,
        )
        self.user_captions = UserCaptions(participant, self.publish)
        self.realtime = SessionSupervisor(
            endpoint,
            profile.session,
            handler=self.on_event,
            on_turn=self._take_turn,
            chunk_ms=profile.chunk_ms,
            options=options.connection,
            continuity=options.continuity,
            prices=prices,
            clock=clock,
        )
        self.latency = InputLatency(self._record_input_latency)
        self.timeline = CallerTimeline()
        self.realtime.on_audio_sent = self._on_audio_sent
        self.realtime.on_reconnect = self._on_reconnect
        self.input = RoomInput(
            sink=self._on_caller_audio,
            mode=profile.input_mode,
            linked_identity=options.linked_identity,
            stream_rate=options.stream_rate,
            stream_channels=options.stream_channels,
            frame_ms=input_frame_ms(profile.chunk_ms),
            clock=clock,
            routed=options.routed_audio,
        )
        self.input.on_frame = self._on_caller_frame
        if metrics is not None:
            dropped = metrics.frames_dropped.labels("in")
            self.input.on_refused = dropped.inc
        self.input.on_empty = self._on_room_empty
        self.input.on_return = self._on_room_back
        self._quiet = asyncio.Event()  # set while the agent is not speaking
        self._quiet.set()
        self._hanging_up = False
        self.tool_context = ToolContext(
            room=room_control, caller=self._caller, until_quiet=self._until_quiet
        )
        self.tools = ToolRunner(  # function calls run as tasks; barge-in and the end cancel them
            profile.toolbox(),
            self.realtime,
            record=self.record,
            context=self.tool_context,
            instructions=profile.session.instructions,
            caller_speaking=lambda: self.realtime.turns.caller_speaking,
            metrics=metrics,
            clock=clock,
        )
        self.call_id = f"call_{uuid.uuid4().hex[:12]}"
        self.meter = CallMeter(metrics, profile.session.model) if metrics is not None else None
        self._next_meter_s = 1.0  # caller audio (s) at which the counters are next reported
        self._outcome = ""  # set by end(): "drained" for a call the drain limit ended
        self._counted = False  # bridge_sessions_active was incremented for this call
        self._ended: asyncio.Future[str] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._grace: asyncio.TimerHandle | None = None
        self._caption_wake = asyncio.Event()
        # Figures only (the turn state is the turn core's): when the caller's last turn ended,
        # for the latency of the first reply audio after it.
        self._turn_end: float | None = None  # when the room delivered the speech end
        self._turn_event: float | None = None  # when speech_stopped was received
        self._handlers: dict[type, Callable[[ServerEvent], None]] = {
            ev.SpeechStarted: self._on_speech_started,  # type: ignore[dict-item]
            ev.SpeechStopped: self._on_speech_stopped,  # type: ignore[dict-item]
            ev.AudioDelta: self._on_audio_delta,  # type: ignore[dict-item]
            ev.AudioDone: self._on_audio_done,  # type: ignore[dict-item]
            ev.TranscriptDelta: self._on_transcript_delta,  # type: ignore[dict-item]
            ev.TranscriptDone: self._on_transcript_done,  # type: ignore[dict-item]
            ev.ResponseDone: self._on_response_done,  # type: ignore[dict-item]
            ev.FunctionCall: self._on_function_call,  # type: ignore[dict-item]
            ev.InputTranscriptDelta: self._on_input_transcript_delta,  # type: ignore[dict-item]
            ev.InputTranscriptCompleted: self._on_input_transcript,  # type: ignore[dict-item]
            ev.ErrorReceived: self._on_error,  # type: ignore[dict-item]
            ev.FrameRejected: self._on_frame_rejected,  # type: ignore[dict-item]
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Publish the agent's track, connect and configure the session, start listening."""
        loop = asyncio.get_running_loop()
        if self._ended is None:  # wait() may have made it (a drain waiting on a starting call)
            self._ended = loop.create_future()
        # Bound once for the call: every record of it (and of the tasks it starts) has them.
        structlog.contextvars.bind_contextvars(call=self.call_id)
        self.publish.start()
        self.state.set("initializing")
        publication = await self.participant.publish_track(
            self.track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        self.track_sid = publication.sid
        self._spawn(self.playout.run(), "playout")
        self._spawn(self._caption_loop(), "captions")
        try:
            await self.realtime.start()
        except RealtimeConnectionError as exc:
            if self.metrics is not None:
                self.metrics.error(
                    "handshake"
                    if isinstance(exc, HandshakeRejected)
                    else "timeout"
                    if isinstance(exc, ConnectTimeout)
                    else "connect"
                )
            raise
        live = self.realtime.current_socket
        if live is not None:
            structlog.contextvars.bind_contextvars(session=live.protocol.server_session.get("id"))
        self._spawn(self._run_session(), "session")
        self.state.set("listening")
        if self.metrics is not None:
            self.metrics.sessions_active.inc()
            self._counted = True
        log.info(
            "call.started",
            profile=self.profile.name,
            model=self.profile.session.model,
            endpoint=self.realtime.endpoint.redacted_url,
        )

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            reason = str(exc) if isinstance(exc, EXPECTED) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, EXPECTED):
                log.error("call.task_failed", task=task.get_name(), exc_info=exc)
            self.end(reason, failed=True)

    async def _run_session(self) -> None:
        try:
            await self.realtime.run()
        except SessionFailed as exc:
            self.end(f"the Realtime session failed: {exc}", failed=True)
            return
        self.end("the Realtime session ended")

    def _on_reconnect(self, reason: str) -> None:
        if reason == "rollover":
            self.record.rollovers += 1
        else:
            self.record.reconnects += 1
        if self.metrics is not None:
            self.metrics.reconnects.labels(reason).inc()

    def end(self, reason: str, *, failed: bool = False, drained: bool = False) -> None:
        """Ask the call to end (idempotent); :meth:`wait` returns ``reason``.

        ``drained``: the worker's drain limit ends it (counted as outcome ``drained``).
        """
        if self._ended is not None and not self._ended.done():
            self.record.end_reason = reason
            self.record.failed = failed
            self._outcome = "failed" if failed else "drained" if drained else "ok"
            log.info("call.ending", reason=reason, failed=failed)
            self._ended.set_result(reason)

    @property
    def outcome(self) -> str:
        """How the call ended (``ok``, ``failed``, ``drained``); "" while it runs."""
        return self._outcome

    @property
    def ended(self) -> bool:
        """:meth:`end` was called (the call may still be closing)."""
        return self._ended is not None and self._ended.done()

    async def wait(self) -> str:
        """Until the call ends; returns why (also for a call still starting: a drain waits
        for every call of the registry, started or not)."""
        if self._ended is None:
            self._ended = asyncio.get_running_loop().create_future()
        return await self._ended

    async def aclose(self) -> None:
        """End cleanly: stop listening, close the session, publish the final state."""
        self.end("closed")
        if self._grace is not None:
            self._grace.cancel()
        await self.input.aclose()
        await self.tools.aclose()
        with contextlib.suppress(Exception):
            await self.realtime.close("call ended")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.captions.tick()
        failed = self.record.failed
        if failed or self._outcome == "drained":  # the caller's app can say why it ended
            reason = scrub(self.record.end_reason)
            key = "bridge.error" if failed else "bridge.ended"
            self.publish.put(lambda: self.participant.set_attributes({key: reason}))
        self.state.set("idle")
        await self.publish.drain()
        with contextlib.suppress(Exception):
            await self.source.aclose()
        self._finish_record(failed)

    def _finish_record(self, failed: bool) -> None:
        record = self.record
        record.ended_at = self.clock()
        record.usage = self.realtime.usage
        record.cost_usd = self.realtime.cost_usd
        stats = self.playout.stats
        record.output_seconds = stats.captured_samples / SAMPLE_RATE
        record.underruns = stats.underruns
        record.dropped_frames = self.realtime.dropped_frames
        summary = record.summary()
        outcome = "failed" if failed else self._outcome or "ok"
        log.info(
            "call.ended",
            outcome=outcome,
            duration_s=summary["duration_s"],
            reason=record.end_reason,
            turns=record.turns,
            responses=record.responses,
            interruptions=record.interruptions,
            reconnects=record.reconnects,
            tokens=summary["tokens"],
            cost_usd=summary["cost_usd"],
            errors=len(record.errors),
            tool_calls=len(record.tool_calls),
            tools=record.tool_counts(),
            # The figures of `bridge try --json` that carry no words (bridge.local.phone_call
            # reads them from a worker's log).
            voice_to_voice_ms=summary["voice_to_voice_ms"],
            barge_in_stop_ms=summary["barge_in_stop_ms"],
            truncations=summary["truncations"],
            output_seconds=summary["output_seconds"],
            dropped_frames=summary["dropped_frames"],
            underruns=summary["underruns"],
            error_codes=[e["code"] for e in record.errors],
            **self.realtime.caller_audio(),
        )
        m = self.metrics
        if m is not None:
            self._meter()  # the rest since the last report: each count reaches it once
            if self._counted:
                m.sessions_active.dec()
            m.sessions.labels(outcome).inc()

    def _meter(self) -> None:
        """Report the call's counters as they stand (bridge/call/metering.py)."""
        if self.meter is None:
            return
        stats = self.playout.stats
        self.meter.report(
            input_seconds=self.record.input_seconds,
            output_seconds=stats.captured_samples / SAMPLE_RATE,
            usage=self.realtime.usage,
            cost_usd=self.realtime.cost_usd,
            dropped_in=self.realtime.dropped_frames,
            dropped_out_samples=stats.dropped_samples,
        )

    @property
    def busy(self) -> bool:
        """A turn is in progress: caller speaking, a reply awaited, generated or playing, a
        tool running, or its captions still being released."""
        return (
            self.realtime.turns.busy
            or self.realtime.response_active
            or self.captions.waiting
            or self.tools.running > 0
        )

    # ------------------------------------------------------------------ room side

    def _on_caller_audio(self, samples: NDArray[np.int16], received: float) -> None:
        self.record.input_seconds += samples.size / SAMPLE_RATE
        self.realtime.append_audio(samples)
        if self.record.input_seconds >= self._next_meter_s:  # once a second of caller audio
            self._next_meter_s = self.record.input_seconds + 1.0
            self._meter()

    def _on_caller_frame(self, withheld: float, received: float) -> None:
        appended = self.realtime.samples_appended
        self.latency.frame(appended + withheld, appended, received)
        self.probe.frame_received(appended + withheld, received, self.input.frame_ms)
        self.timeline.note(appended, received)

    def _on_audio_sent(self, frame: OutboundFrame) -> None:
        self.probe.audio_sent(frame.samples, self.clock())
        self.latency.sent(frame.samples, self.clock())

    def _record_input_latency(self, waiting: float, processing: float) -> None:
        self.record.in_waiting_ms.append(waiting * 1000)
        self.record.in_processing_ms.append(processing * 1000)

    def _on_room_empty(self) -> None:
        grace = self.options.empty_room_grace_s
        log.info("call.room_empty", grace_s=grace)
        self._grace = asyncio.get_running_loop().call_later(
            grace, self.end, "no caller left in the room"
        )

    def _on_room_back(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None

    def on_chat(self, identity: str, text: str) -> None:
        """A message typed on ``lk.chat``: interrupt the agent, then answer it.

        In ``linked`` mode only the linked caller's messages count; until someone is linked,
        the caller dispatch metadata names (a browser's text can reach the agent before the
        server's word that the browser joined, when it publishes no track).
        """
        linked = self.input.linked or self.input.requested_identity
        if self.profile.input_mode == "linked" and identity != linked:
            log.info("call.chat_ignored", reason="not the linked participant")
            return
        self._take_turn(self.realtime.turns.chat(text))

    # ------------------------------------------------------------------ session events

    def on_event(self, event: ServerEvent) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _take_turn(self, actions: TurnActions) -> None:
        """Carry out the turn core's actions, in order."""
        for action in actions:
            if isinstance(action, StopPlayout):
                speech = action.cause == "speech"  # the socket read of speech_started
                self.interrupt(self.realtime.last_frame_at if speech else None)
            elif isinstance(action, SetAgentState):
                self.state.set(action.state)
            elif isinstance(action, DiscardResponse):
                self.realtime.discard_response(action.response_id)
            elif isinstance(action, CancelResponse):
                self.realtime.cancel_response()
            elif isinstance(action, CutItem):
                self._cut(action)
            elif isinstance(action, TurnEnded):
                self._turn_ended(action)
            elif isinstance(action, ExpectAudio):
                self.playout.begin_item(action.item_id)
            elif isinstance(action, EndAudio):
                self.playout.end_item(action.item_id)
            elif isinstance(action, CloseCaption):
                self.captions.interrupt(action.item_id)
            elif isinstance(action, SendUserText):
                self.record.say(self.clock(), "caller", action.text)
                self.record.turns += 1
                self.realtime.send_user_text(action.text)
            elif isinstance(action, CreateResponse):
                self.realtime.create_response()

    def interrupt(self, started: float | None = None) -> int:
        """Stop the agent now (barge-in). Returns how many items were cut.

        ``started``: when the cause arrived (the socket read of ``speech_started``), for the
        barge-in stop figure.
        """
        started = self.clock() if started is None else started
        self.tools.cancel()  # the caller moved on: what their last turn asked for is moot
        cut = self.playout.interrupt()
        cleared = self.clock()
        response_id = self.realtime.active_response_id
        self._take_turn(self.realtime.turns.playout_stopped(cut, response_id=response_id))
        if cut:
            self.record.interruptions += 1
            self.record.barge_in_stop_ms.append((cleared - started) * 1000)
            if self.metrics is not None:
                self.metrics.interruptions.inc()
                self.metrics.barge_in_stop.observe(cleared - started)
        return len(cut)

    def _cut(self, action: CutItem) -> None:
        heard = self.captions.interrupt(action.item_id)
        self.captions.finals.pop(action.item_id, None)
        result = self.realtime.truncate(action.item_id, action.played_ms, heard_text=heard)
        if result.action != "skip":
            self.probe.truncated(self.clock(), action.item_id, result.audio_end_ms)
        self.record.truncations.append(
            TruncationRecord(action.item_id, result.audio_end_ms, action.played_ms, result.action)
        )
        self.record.say(self.clock(), "agent", f"{heard} [interrupted]".strip())

    def _turn_ended(self, action: TurnEnded) -> None:
        now = self.clock()
        self._turn_event = now
        self._turn_end = self.timeline.time_of(self.realtime.sample_at_ms(action.audio_end_ms))
        self.record.turns += 1
        if self.profile.session.input_transcription is None:  # no words: say how long
            self.record.say(now, "caller", f"(speech, {action.speech_ms / 1000:.1f} s)")

    def _on_speech_started(self, event: ev.SpeechStarted) -> None:
        # Before the turn core acts on it (the supervisor calls on_turn after this handler).
        audible = self.playout.speaking or self.source.queued_duration > 0
        self.probe.speech_started(self.realtime.last_frame_at, audible)

    def _on_speech_stopped(self, event: ev.SpeechStopped) -> None:
        self.probe.speech_stopped(self.realtime.last_frame_at)

    def _on_audio_delta(self, event: ev.AudioDelta) -> None:
        self.probe.delta_received(event.item_id, len(event.pcm) // 2, self.realtime.last_frame_at)
        self.playout.push(event.item_id, event.pcm, self.realtime.last_frame_at)

    def _on_audio_done(self, event: ev.AudioDone) -> None:
        self.playout.end_item(event.item_id)

    def _on_transcript_delta(self, event: ev.TranscriptDelta) -> None:
        record = self.realtime.conversation.get(event.item_id)
        received = record.audio_bytes // 2 if record is not None else 0
        self.captions.add(event.item_id, event.delta, at_sample=received)
        self._caption_wake.set()

    def _on_transcript_done(self, event: ev.TranscriptDone) -> None:
        self.captions.end(event.item_id, event.transcript)
        self._caption_wake.set()

    def _on_response_done(self, event: ev.ResponseDone) -> None:
        self.probe.response_done()
        self.record.responses += 1
        self._meter()  # the session counted this response's usage before calling us
        for item in event.output:
            self.playout.end_item(item.id)
            self.captions.end(item.id, item.text or None)
        if event.error is not None:
            self._record_error(event.error.code, str(event.error))
        self._caption_wake.set()
        if self.profile.session.output_modalities == ("text",):
            self.captions.tick(text_only=True)
            for item in event.output:
                if item.text:
                    self.record.say(self.clock(), "agent", item.text)

    def _on_function_call(self, event: ev.FunctionCall) -> None:
        self.tools.start(event)  # returns at once: the runner answers it (bridge.call.tool_runner)

    def _on_input_transcript_delta(self, event: ev.InputTranscriptDelta) -> None:
        self._user_caption(event.item_id, event.delta, final=False)

    def _on_input_transcript(self, event: ev.InputTranscriptCompleted) -> None:
        self.record.say(self.clock(), "caller", event.transcript)
        self._user_caption(event.item_id, event.transcript, final=True)

    def _user_caption(self, item_id: str, text: str, *, final: bool) -> None:
        """Publish a user caption on behalf of the caller heard (in mix mode: the first)."""
        identity = self.input.linked or next(iter(self.input.heard), "")
        if not identity:
            return
        publish = self.user_captions.completed if final else self.user_captions.delta
        publish(item_id, text, identity=identity, track_sid=self.input.track_sid_of(identity))

    def _on_error(self, event: ev.ErrorReceived) -> None:
        error = event.error
        if self.metrics is not None:
            self.metrics.error(error.code)
        if error.kind is ErrorKind.BENIGN:
            self.record.benign_errors += 1
            log.debug("realtime.error.benign", code=error.code, request=error.request_type)
            return
        self._record_error(error.code, error.message)
        log.warning(
            "realtime.error",
            code=error.code,
            kind=error.kind.value,
            request=error.request_type,
            message=error.message,
        )
        if error.kind is ErrorKind.FATAL:
            self.end(f"the Realtime API refused to go on: {error}", failed=True)

    def _on_frame_rejected(self, event: ev.FrameRejected) -> None:
        if self.metrics is not None:
            self.metrics.error("malformed")
        log.warning("realtime.frame_rejected", reason=event.reason)

    def _record_error(self, code: str | None, message: str) -> None:
        self.record.errors.append({"code": code or "", "message": message})

    # ------------------------------------------------------------------ playout events

    def _on_item_started(self, item_id: str) -> None:
        self.probe.item_started(item_id)
        now = self.clock()
        self._quiet.clear()
        self._take_turn(self.realtime.turns.item_started(item_id))
        if self._turn_event is not None:
            self.record.response_latency_ms.append((now - self._turn_event) * 1000)
            self._turn_event = None
        if self._turn_end is not None:
            v2v = now - self._turn_end
            self.record.voice_to_voice_ms.append(v2v * 1000)
            if self.metrics is not None:
                self.metrics.voice_to_voice.observe(v2v)
            self._turn_end = None

    def _on_playout_idle(self) -> None:
        self._quiet.set()
        self.captions.tick()
        self._meter()  # the reply's audio has left the source
        # First: a reply cut by a lost socket has now played out; its caption closes.
        self._take_turn(
            self.realtime.turns.playout_idle(
                reply_active=self.realtime.response_active, tool_running=self.tools.running > 0
            )
        )
        for item_id, text in list(self.captions.finals.items()):
            self.record.say(self.clock(), "agent", text)
            del self.captions.finals[item_id]
        if self.tool_context.hangup_requested and not self._hanging_up:
            self._hanging_up = True
            self._spawn(self._hang_up(), "hang-up")

    async def _hang_up(self) -> None:
        """The agent ended the call (``end_call``) and its goodbye has played: on a phone
        call, hang the caller's line up (removed from the room, the SIP service sends BYE;
        otherwise the caller would sit in silence), then end."""
        caller = self._caller()
        room = self.tool_context.room
        if caller is not None and caller.kind == SIP_KIND and room is not None:
            try:
                await room.remove_participant(caller.identity)
                log.info("call.hung_up", participant=caller.identity)
            except Exception as exc:  # the call ends anyway; the caller's side may linger
                log.warning("call.hang_up_failed", error=type(exc).__name__)
        self.end("the agent ended the call")

    def _caller(self) -> Human | None:
        """The participant heard (linked mode), or the first heard (mix mode)."""
        identity = self.input.linked or next(iter(self.input.heard), None)
        return self.input.human(identity) if identity else None

    async def _until_quiet(self) -> None:
        """Until the agent is not speaking: what it is saying has played out."""
        await self._quiet.wait()

    async def _caption_loop(self) -> None:
        while True:
            if self.captions.waiting:
                await asyncio.sleep(0.04)
            else:
                self._caption_wake.clear()
                await self._caption_wake.wait()
            self.captions.tick()
