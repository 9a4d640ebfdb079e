"""A caller process for the impairment benchmark: one call, over WebRTC or its own WebSocket.

    python -m bridge.local.impaired_caller webrtc --url ws://HOST:7880 --token JWT --out DIR
    python -m bridge.local.impaired_caller websocket --url ws://HOST:PORT/v1 --out DIR

Run it inside the caller's network namespace (``ip netns exec``), behind the impaired link;
the parent (``bridge.bench.impairment``, the tests) stays outside and talks to it by lines:

- stdout, one JSON object per line: ``{"event": "ready"}`` once connected (WebRTC: in the
  room, the agent there and listening; WebSocket: the session configured), then the
  mouth's events as they happen (``said``, ``said_end``, ``reply``, ``barge_in``,
  ``unanswered``, ``done``; each with its ``turn``, ``at_s`` on the said timeline and
  ``at``, the same moment in ``time.monotonic()``), then ``{"event": "finished"}`` once the
  results are written;
- stdin: one line (anything) is the parent's *go*: the script starts (the parent sets the
  link's condition first).

It writes ``said.wav`` and ``heard.wav`` (24 kHz mono, aligned: sample 0 of both is the
moment the first word started to play) and ``result.json`` (the path, whether the session
survived and why not, the turns as the mouth saw them, what each path reports of itself).
The exit status is 0 even when the call did not survive (that is a result); 1 when it could
not start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soxr
from numpy.typing import NDArray

from bridge.local.caller_script import DEFAULT_TURNS, FRAME_S, Ear, Mouth, Turn
from bridge.local.wavfile import write_wav

HEAR_RATE = 24_000
STALL_S = 0.03  # a frame handed over later than this: the caller itself was starved
PRIORITY = -10  # the callers stand for people and their devices: keep their clocks honest


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _go() -> None:
    """Announce readiness, then wait for the parent's line on stdin. From then on the
    garbage collector stays off (what a call allocates is freed by reference counting; a
    full collection would stall the caller's clock)."""
    _emit({"event": "ready"})
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if not line:
        raise SystemExit("the parent went away")
    gc.collect()
    gc.freeze()
    gc.disable()


def _on_events(events: list[dict[str, Any]], started_at: float) -> None:
    for event in events:
        _emit({**event, "at": round(started_at + event["at_s"], 4)})


async def room_call(url: str, token: str, mouth: Mouth) -> dict[str, Any]:
    """The WebRTC caller: a real participant of the LiveKit room (Opus both ways)."""
    from bridge.room.caller import RoomCaller

    caller = RoomCaller("caller", sample_rate=mouth.rate, hear_rate=HEAR_RATE)
    room_events: list[dict[str, Any]] = []

    def note(kind: str) -> Any:
        return lambda *args: room_events.append({"event": kind, "at": time.monotonic()})

    for kind in ("disconnected", "reconnecting", "reconnected"):
        caller.room.on(kind, note(kind))
    ear = Ear()
    said: list[NDArray[np.int16]] = []
    try:
        await caller.connect(url, token)
        await caller.publish()
        await caller.until(
            lambda: caller.listener is not None and caller.agent_state == "listening", 30
        )
        await _go()
        listener = caller.listener
        assert listener is not None

        def hear(samples: NDArray[np.int16], arrived: float) -> None:
            if caller.started_at is not None:
                end = arrived - caller.started_at
                ear.hear(end - samples.size / HEAR_RATE, samples, HEAR_RATE)

        listener.on_frame = hear
        k = 0
        while (frame := mouth.frame(ear)) is not None:
            if caller.started_at is not None:
                # Frame k leaves the source at started_at + k * 10 ms, unless this process
                # hands it over later than that: the source ran dry meanwhile, and what
                # follows plays that much later. Keep the said track on the wall clock.
                behind = time.monotonic() - (caller.started_at + k * FRAME_S)
                if behind > STALL_S:
                    gap = int(behind / FRAME_S)
                    said.append(mouth.pause(gap))
                    k += gap
            said.append(frame)
            await caller.play(frame)
            k += 1
            events = mouth.take_events()
            if events and caller.started_at is not None:
                _on_events(events, caller.started_at)
        heard = caller.heard()
        agent_there = any(
            p.identity == caller.agent_identity for p in caller.room.remote_participants.values()
        )
        lost = any(e["event"] == "disconnected" for e in room_events)
        survived = caller.room.isconnected() and agent_there and not lost
        failure = None if survived else ("disconnected" if lost else "the agent left")
        result: dict[str, Any] = {
            "survived": survived,
            "failure": failure,
            "room_events": room_events,
            "agent_states": caller.state_values(),
            "stalled_ms": mouth.stalled_frames * FRAME_S * 1000,
        }
    finally:
        await caller.aclose()
    result["said"] = _at_hear_rate(np.concatenate(said), mouth.rate)
    result["heard"] = heard
    result["started_at"] = caller.started_at
    return result


async def socket_call(url: str, mouth: Mouth) -> dict[str, Any]:
    """The WebSocket caller (``bridge.local.ws_caller``)."""
    from bridge.local.ws_caller import websocket_call

    outcome = await websocket_call(url, mouth, ready=_go, on_events=_on_events)
    return {
        "survived": outcome.survived,
        "failure": outcome.failure,
        "server_events": outcome.events,
        "truncations": outcome.truncations,
        "errors": outcome.errors,
        "max_send_backlog": outcome.max_send_backlog,
        "stalled_ms": outcome.stalled_ms,
        "said": outcome.said,
        "heard": outcome.heard,
        "started_at": outcome.started_at,
    }


def _at_hear_rate(samples: NDArray[np.int16], rate: int) -> NDArray[np.int16]:
    if rate == HEAR_RATE:
        return samples
    y = soxr.resample(samples.astype(np.float32), rate, HEAR_RATE, "VHQ")
    out: NDArray[np.int16] = np.clip(np.rint(y), -32768, 32767).astype(np.int16)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.local.impaired_caller")
    parser.add_argument("path", choices=("webrtc", "websocket"))
    parser.add_argument("--url", required=True, help="LiveKit URL, or the Realtime base URL")
    parser.add_argument("--token", help="the caller's LiveKit token (webrtc)")
    parser.add_argument("--out", type=Path, required=True, help="directory for the results")
    parser.add_argument("--turns", help="the script as JSON (a list of turns)")
    args = parser.parse_args(argv)
    turns = (
        tuple(Turn.from_json(t) for t in json.loads(args.turns)) if args.turns else DEFAULT_TURNS
    )
    if args.path == "webrtc" and not args.token:
        parser.error("webrtc needs --token")
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, PRIORITY)
    mouth = Mouth(turns, 48_000 if args.path == "webrtc" else HEAR_RATE)
    started = time.monotonic()
    try:
        if args.path == "webrtc":
            result = asyncio.run(room_call(args.url, args.token, mouth))
        else:
            result = asyncio.run(socket_call(args.url, mouth))
    except Exception as exc:  # could not even start: the parent reports it
        _emit({"event": "failed", "error": f"{type(exc).__name__}: {exc}"})
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    write_wav(args.out / "said.wav", result.pop("said"), HEAR_RATE)
    write_wav(args.out / "heard.wav", result.pop("heard"), HEAR_RATE)
    result.update(
        stalls=mouth.stalls,
        path=args.path,
        rate=HEAR_RATE,
        turns=[r.to_json() for r in mouth.records],
        script=[t.to_json() for t in turns],
        wall_s=round(time.monotonic() - started, 3),
    )
    (args.out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    _emit({"event": "finished"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
