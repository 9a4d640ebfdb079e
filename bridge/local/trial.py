"""One conversation through the real pipeline, on the loopback room (``bridge try``/``demo``).

A recording plays as the caller, in real time, into a loopback track the bridge hears; the
agent's published track is recorded by a loopback listener exactly as another participant
would receive it. Everything between is the production code: :class:`~bridge.call.call.Call` with
its room input, resampler, Realtime session, playout, captions and barge-in.

The output is time-aligned with the input: sample 0 of the output is the moment the caller's
first sample started to play.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bridge.call.call import Call, CallOptions
from bridge.call.profiles import Profile
from bridge.call.records import CallRecord
from bridge.local.wavfile import Wav
from bridge.metrics import BridgeMetrics
from bridge.room.listener import Listener
from bridge.room.loopback import LoopbackCaller, LoopbackParticipant
from bridge.room.participant import Human
from sessions.endpoint import Endpoint
from sessions.usage import PriceTable

OUTPUT_RATE = 24_000


@dataclass(frozen=True, slots=True, kw_only=True)
class TrialOptions:
    tail_s: float = 1.5  # quiet time after the last reply before the run stops
    max_extra_s: float = 60.0  # longest the run goes on after the recording ends
    keep_output: bool = True  # record what the listener hears (False: count it only)
    call: CallOptions = field(default_factory=CallOptions)


@dataclass(slots=True)
class TrialResult:
    record: CallRecord
    output: NDArray[np.int16]  # 24 kHz mono, aligned with the input
    participant: LoopbackParticipant
    input_seconds: float
    end_reason: str

    def summary(self) -> dict[str, Any]:
        summary = self.record.summary()
        summary["output_seconds"] = round(self.output.size / OUTPUT_RATE, 3)
        summary["agent_audio_seconds"] = round(self.record.output_seconds, 3)
        summary["input_file_seconds"] = round(self.input_seconds, 3)
        summary["states"] = self.participant.states()
        return summary


async def run_trial(
    wav: Wav,
    profile: Profile,
    endpoint: Endpoint,
    *,
    options: TrialOptions | None = None,
    metrics: BridgeMetrics | None = None,
    prices: PriceTable | None = None,
    on_started: Callable[[Call], None] | None = None,
    stop: asyncio.Event | None = None,
) -> TrialResult:
    """Play ``wav`` as the caller through a bridged call; record what the agent published.

    Setting ``stop`` (Ctrl-C in ``bridge try``) ends the call early, the same clean way the
    end of the recording does: the result holds what happened until then. If the call cannot
    start (a refused key, no server), its error is raised after everything opened here is
    closed again.
    """
    options = options or TrialOptions()
    stop = stop or asyncio.Event()
    call_options = replace(options.call, stream_rate=wav.rate, stream_channels=wav.channels)
    participant = LoopbackParticipant()
    listeners: list[Listener] = []
    participant.on_track = lambda track: listeners.append(
        Listener(track, OUTPUT_RATE, keep=options.keep_output)
    )
    call = Call(
        participant, profile, endpoint, options=call_options, metrics=metrics, prices=prices
    )
    caller = LoopbackCaller(wav.rate, wav.channels)
    try:
        await call.start()
        if on_started is not None:
            on_started(call)
        call.input.participant_joined(Human(caller.identity))
        call.input.track_subscribed(caller.identity, caller.track)
        player = asyncio.create_task(caller.play(wav.samples), name="caller")
        ended = asyncio.ensure_future(call.wait())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({player, ended, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not ended.done() and not stop.is_set():
            await _until_quiet(call, ended, stopped, options)
        player.cancel()
        stopped.cancel()
        if ended.done():
            reason = ended.result()
        else:
            reason = "interrupted" if stop.is_set() else "the recording ended"
        call.end(reason)
    finally:
        await call.aclose()
        await caller.aclose()
        for extra in listeners[1:]:
            await extra.aclose()
    listener = listeners[0] if listeners else None
    output = np.zeros(0, dtype=np.int16)
    if listener is not None:
        await listener.aclose()
        start = listener.position_at(caller.started_at) if caller.started_at else 0
        output = listener.audio()[start:]
    return TrialResult(call.record, output, participant, wav.seconds, call.record.end_reason)


async def _until_quiet(
    call: Call, ended: asyncio.Future[str], stopped: asyncio.Future[Any], options: TrialOptions
) -> None:
    """After the recording: wait for the last turn to be answered and played, then a tail."""
    deadline = time.monotonic() + options.max_extra_s
    quiet_since: float | None = None
    while not ended.done() and not stopped.done() and time.monotonic() < deadline:
        busy = call.busy
        now = time.monotonic()
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= options.tail_s:
            return
        await asyncio.sleep(0.05)
