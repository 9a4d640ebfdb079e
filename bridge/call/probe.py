"""What a call reports as it happens, for whoever measures it.

:class:`CallProbe` is one typed interface a :class:`~bridge.call.call.Call` (and its playout)
calls at the moments a latency or a barge-in is measured between: a caller frame received
from the room, caller audio written to the socket, a delta read off it, speech started and
stopped as the model reports them, a reply's first audio entering the source, a frame
captured into the source, the source's queue cleared, an item truncated. ``bridge bench``
implements it (:class:`bridge.bench.engines.Probes`); nothing patches a call from outside.

Every method gets its own time (``time.monotonic()``, the call's clock): a probe keeps no
clock of its own and does no work a call would wait for. The default, :class:`NoProbe`,
does nothing.
"""

from __future__ import annotations

from typing import Protocol


class CallProbe(Protocol):
    def frame_received(self, position: float, at: float, frame_ms: int) -> None:
        """A caller frame arrived from the room; ``position``: the caller samples (24 kHz)
        appended once this frame's last sample is, counting what the resampler withholds."""

    def audio_sent(self, samples: int, at: float) -> None:
        """An append carrying ``samples`` caller samples was written to the socket."""

    def delta_received(self, item_id: str, samples: int, at: float) -> None:
        """An audio delta of ``samples`` samples was read off the socket at ``at``."""

    def speech_started(self, at: float, agent_audible: bool) -> None:
        """The model reported the caller speaking (read off the socket at ``at``), while the
        agent's audio was (``agent_audible``) or was not still in the source."""

    def speech_stopped(self, at: float) -> None:
        """The model reported the caller's speech ended (read off the socket at ``at``)."""

    def response_done(self) -> None:
        """A response ended (``response.done``)."""

    def item_started(self, item_id: str) -> None:
        """The first audio of ``item_id`` is entering an idle source."""

    def source_captured(self, samples: int, at: float, previous_return: float) -> None:
        """A frame of ``samples`` is being captured into the source; ``previous_return``: when
        the capture before it returned (the wait for the source to make room ends there)."""

    def queue_cleared(self, at: float) -> None:
        """The source's queue was cleared (a barge-in)."""

    def truncated(self, at: float, item_id: str, audio_end_ms: int) -> None:
        """A cut item was truncated at ``audio_end_ms`` (0: deleted)."""


class NoProbe:
    """A probe that records nothing (a call's default)."""

    def frame_received(self, position: float, at: float, frame_ms: int) -> None:
        pass

    def audio_sent(self, samples: int, at: float) -> None:
        pass

    def delta_received(self, item_id: str, samples: int, at: float) -> None:
        pass

    def speech_started(self, at: float, agent_audible: bool) -> None:
        pass

    def speech_stopped(self, at: float) -> None:
        pass

    def response_done(self) -> None:
        pass

    def item_started(self, item_id: str) -> None:
        pass

    def source_captured(self, samples: int, at: float, previous_return: float) -> None:
        pass

    def queue_cleared(self, at: float) -> None:
        pass

    def truncated(self, at: float, item_id: str, audio_end_ms: int) -> None:
        pass
