"""Live captions and agent state, the way stock LiveKit frontends read them.

- **Agent captions**: one ``lk.transcription`` text stream per assistant item, sent by the
  agent, attributes ``lk.segment_id``, ``lk.transcribed_track_id`` (the agent's audio track) and
  ``lk.transcription_final`` ("false" in the header, "true" in the trailer when it closes).
  Text is released *paced to playout*: a transcript delta is held until the audio that had
  arrived before it has left the source, so captions track what the listener has heard. On a
  barge-in the stream is closed at once with only the text released so far (the heard text).
- **User captions**: from input transcription, published on behalf of the caller (sender =
  the caller's identity, track id = the caller's microphone): each interim result is a new
  short stream with the full text so far under the same segment id, the last one final.
- **Legacy transcription** packets (``publish_transcription``) carry the same segments, for
  ``useVoiceAssistant`` clients on the older protocol.
- **Agent state**: the ``lk.agent.state`` attribute (initializing, listening, thinking,
  speaking), published only on change.

All publishing goes through the call's :class:`~bridge.room.participant.PublishQueue`, in order.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from livekit import rtc

from bridge.room.participant import (
    AGENT_STATE,
    ATTR_FINAL,
    ATTR_SEGMENT_ID,
    ATTR_TRACK_ID,
    TOPIC_TRANSCRIPTION,
    AgentParticipant,
    PublishQueue,
    TextWriter,
)

STATES = ("initializing", "idle", "listening", "thinking", "speaking")


class AgentState:
    """Publishes ``lk.agent.state`` when it changes."""

    def __init__(self, participant: AgentParticipant, queue: PublishQueue) -> None:
        self._participant = participant
        self._queue = queue
        self.value: str | None = None
        self.history: list[str] = []

    def set(self, state: str) -> None:
        if state not in STATES:
            raise ValueError(f"unknown agent state {state!r}")
        if state == self.value:
            return
        self.value = state
        self.history.append(state)
        attributes = {AGENT_STATE: state}
        self._queue.put(lambda: self._participant.set_attributes(attributes))


def new_segment_id() -> str:
    return f"SG_{uuid.uuid4().hex[:12]}"


@dataclass(slots=True)
class _AgentSegment:
    item_id: str
    segment_id: str
    pending: list[tuple[int, str]] = field(default_factory=list)  # (release at sample, text)
    released: str = ""
    ended: bool = False  # no more text will come
    closed: bool = False
    writer: list[TextWriter] = field(default_factory=list)  # 0 or 1, set by the publish task


class AgentCaptions:
    """Agent transcript → captions paced to what has been played."""

    def __init__(
        self,
        participant: AgentParticipant,
        queue: PublishQueue,
        *,
        played: Callable[[str], int],
        track_sid: Callable[[], str],
    ) -> None:
        self._participant = participant
        self._queue = queue
        self._played = played
        self._track_sid = track_sid
        self._segments: dict[str, _AgentSegment] = {}
        self.finals: dict[str, str] = {}  # item id -> the final caption text

    def add(self, item_id: str, delta: str, *, at_sample: int) -> None:
        """A transcript delta that arrived when ``at_sample`` samples of the item had."""
        segment = self._segments.get(item_id)
        if segment is None:
            segment = self._segments[item_id] = _AgentSegment(item_id, new_segment_id())
        if not segment.closed:
            segment.pending.append((at_sample, delta))

    def end(self, item_id: str, transcript: str | None = None) -> None:
        """No more text for ``item_id``; ``transcript`` (if given) completes what is missing."""
        segment = self._segments.get(item_id)
        if segment is None:
            if not transcript:
                return
            segment = self._segments[item_id] = _AgentSegment(item_id, new_segment_id())
        known = segment.released + "".join(text for _, text in segment.pending)
        if transcript and transcript.startswith(known) and len(transcript) > len(known):
            last = segment.pending[-1][0] if segment.pending else 0
            segment.pending.append((last, transcript[len(known) :]))
        segment.ended = True

    def tick(self, *, text_only: bool = False) -> None:
        """Release the text whose audio has played; close finished segments.

        ``text_only``: there is no audio (text modality), release everything at once.
        """
        for item_id, segment in list(self._segments.items()):
            if segment.closed:
                continue
            played = self._played(item_id)
            released = ""
            while segment.pending and (text_only or segment.pending[0][0] <= played):
                released += segment.pending.pop(0)[1]
            if released:
                segment.released += released
                self._publish_delta(segment, released)
            if segment.ended and not segment.pending:
                self._close(segment)

    def interrupt(self, item_id: str) -> str:
        """Close ``item_id``'s caption now with only what was heard; return that text."""
        segment = self._segments.get(item_id)
        if segment is None:
            return ""
        self.tick()
        segment.pending.clear()
        segment.ended = True
        self._close(segment)
        return segment.released

    def heard(self, item_id: str) -> str:
        segment = self._segments.get(item_id)
        return segment.released if segment is not None else ""

    @property
    def waiting(self) -> bool:
        """Some caption still has text to release or a stream to close."""
        return any(not s.closed for s in self._segments.values())

    def _attributes(self, segment: _AgentSegment, final: bool) -> dict[str, str]:
        return {
            ATTR_SEGMENT_ID: segment.segment_id,
            ATTR_TRACK_ID: self._track_sid(),
            ATTR_FINAL: "true" if final else "false",
        }

    def _publish_delta(self, segment: _AgentSegment, text: str) -> None:
        header = self._attributes(segment, final=False)
        full = segment.released
        legacy = self._legacy(segment, full, final=False)

        async def publish() -> None:
            if not segment.writer:
                segment.writer.append(
                    await self._participant.stream_text(
                        topic=TOPIC_TRANSCRIPTION, attributes=header
                    )
                )
            await segment.writer[0].write(text)
            await self._participant.publish_transcription(legacy)

        self._queue.put(publish)

    def _close(self, segment: _AgentSegment) -> None:
        segment.closed = True
        self.finals[segment.item_id] = segment.released
        trailer = self._attributes(segment, final=True)
        legacy = self._legacy(segment, segment.released, final=True)

        async def close() -> None:
            if not segment.writer:  # nothing was released: still close a final, empty caption
                segment.writer.append(
                    await self._participant.stream_text(
                        topic=TOPIC_TRANSCRIPTION, attributes=self._attributes(segment, False)
                    )
                )
            await segment.writer[0].aclose(attributes=trailer)
            await self._participant.publish_transcription(legacy)

        self._queue.put(close)
        del self._segments[segment.item_id]

    def _legacy(self, segment: _AgentSegment, text: str, *, final: bool) -> rtc.Transcription:
        return rtc.Transcription(
            participant_identity=self._participant.identity,
            track_sid=self._track_sid(),
            segments=[rtc.TranscriptionSegment(segment.segment_id, text, 0, 0, "", final)],
        )


class UserCaptions:
    """Input transcription → captions published on behalf of the caller."""

    def __init__(self, participant: AgentParticipant, queue: PublishQueue) -> None:
        self._participant = participant
        self._queue = queue
        self._texts: dict[str, tuple[str, str]] = {}  # item id -> (segment id, text so far)
        self.finals: dict[str, str] = {}

    def delta(self, item_id: str, delta: str, *, identity: str, track_sid: str) -> None:
        segment_id, text = self._texts.get(item_id, (new_segment_id(), ""))
        text += delta
        self._texts[item_id] = (segment_id, text)
        self._publish(segment_id, text, identity, track_sid, final=False)

    def completed(self, item_id: str, transcript: str, *, identity: str, track_sid: str) -> None:
        segment_id, _ = self._texts.pop(item_id, (new_segment_id(), ""))
        self.finals[item_id] = transcript
        self._publish(segment_id, transcript, identity, track_sid, final=True)

    def _publish(
        self, segment_id: str, text: str, identity: str, track_sid: str, *, final: bool
    ) -> None:
        attributes = {
            ATTR_SEGMENT_ID: segment_id,
            ATTR_TRACK_ID: track_sid,
            ATTR_FINAL: "true" if final else "false",
        }
        legacy = rtc.Transcription(
            participant_identity=identity,
            track_sid=track_sid,
            segments=[rtc.TranscriptionSegment(segment_id, text, 0, 0, "", final)],
        )

        async def publish() -> None:
            writer = await self._participant.stream_text(
                topic=TOPIC_TRANSCRIPTION, attributes=attributes, sender_identity=identity
            )
            await writer.write(text)
            await writer.aclose(attributes=attributes)
            await self._participant.publish_transcription(legacy)

        self._queue.put(publish)
