"""The callers of a ``bridge bench --room livekit`` phase, in a process of their own.

    python -m bridge.bench.room_callers '{"sessions": 4, "agent_name": "...", ...}'

with ``LIVEKIT_URL``, ``LIVEKIT_API_KEY`` and ``LIVEKIT_API_SECRET`` in the environment. Each
caller is a real rtc participant (:class:`~bridge.room.caller.RoomCaller`) in a room of its
own: it joins, publishes its microphone, dispatches the engine's agent by name (as a backend
would), waits for it to listen, then plays the seeded reactive pattern
(:mod:`bridge.bench.pattern`) 10 ms at a time in real time, reacting to what it hears, until
the phase's ``stop`` file appears. What it heard is measured where it is heard:

- the agent's replies as this caller received them (:class:`~bridge.bench.meter.AgentAudioMeter`:
  start and end arrival times, gaps inside them, the heard length);
- *mouth-to-ear*: each utterance's last sample leaving the caller's source → the first
  agent audio heard after it (before the caller spoke again).

Each caller writes ``caller-ROOM.json`` into the phase's directory; the process's own CPU
goes into ``callers-cpu.json`` (reported apart from the worker's). Times are
``time.monotonic()``, one clock for every process of the machine, so the runner can put the
worker's socket events and these arrivals on one time line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from livekit import rtc

from bridge.bench.meter import AgentAudioMeter
from bridge.bench.pattern import ROOM_NOISE_LSB, CallerScript, PatternOptions
from bridge.room.caller import RoomCaller
from bridge.room.listener import HEARD_LEVEL

STOP_FILE = "stop"
ROOM_HEARD_THRESHOLD = HEARD_LEVEL  # the floor's echo is 60+ LSB, decoded silence a few
# A gap in a reply, as a caller hears it through Opus and a jitter buffer: 40 ms of silence
# (shorter dips are the codec's and the buffer's own, and concealed; on the loopback, 10 ms).
ROOM_GAP_MS = 40
JOIN_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CallersConfig:
    sessions: int
    agent_name: str
    room_prefix: str
    out_dir: str
    metadata: str = "{}"  # dispatch metadata (JSON)
    seed: int = 1
    caller_rate: int = 48_000
    stagger_s: float = 0.2  # between joins: a burst of joins all at once is its own test


def mouth_to_ear(
    utterance_ends: list[float], replies: list[dict[str, Any]], next_starts: list[float]
) -> list[float]:
    """For each utterance end (wall time), ms until the first reply heard after it, unless
    the caller spoke again first (``next_starts``: when each following utterance began)."""
    out: list[float] = []
    starts = sorted(r["started_at"] for r in replies)
    for i, end in enumerate(utterance_ends):
        heard = next((s for s in starts if s > end), None)
        following = next_starts[i] if i < len(next_starts) else float("inf")
        if heard is not None and heard < following:
            out.append((heard - end) * 1000)
    return out


async def one_caller(
    config: CallersConfig, slot: int, url: str, api_key: str, api_secret: str, stop: Path
) -> dict[str, Any]:
    from livekit import api

    room = f"{config.room_prefix}-{slot}"
    meter = AgentAudioMeter(threshold=ROOM_HEARD_THRESHOLD, gap_ms=ROOM_GAP_MS)
    caller = RoomCaller(
        f"caller-{slot}", sample_rate=config.caller_rate, keep_audio=False, on_frame=meter.push
    )
    options = PatternOptions(seed=config.seed * 1000 + slot, noise_lsb=ROOM_NOISE_LSB)
    script = CallerScript(config.caller_rate, options)
    token = (
        api.AccessToken(api_key, api_secret)
        .with_identity(caller.identity)
        .with_grants(api.VideoGrants(room_join=True, room=room))
        .to_jwt()
    )
    error: str | None = None
    try:
        await caller.connect(url, token)
        await caller.publish()
        async with api.LiveKitAPI(url.replace("ws", "http", 1), api_key, api_secret) as lk:
            await lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(
                    agent_name=config.agent_name, room=room, metadata=config.metadata
                )
            )
        await caller.until(lambda: caller.agent_state == "listening", JOIN_TIMEOUT_S)
        (Path(config.out_dir) / f"started-{room}").touch()  # the worker's window counts these
        frame_count = 0
        while frame_count % 20 or not stop.exists():  # look for the stop file every 200 ms
            samples = script.next_frame(meter)
            frame = rtc.AudioFrame(samples.tobytes(), config.caller_rate, 1, samples.size)
            if caller.started_at is None:
                caller.started_at = time.monotonic()
            await caller.source.capture_frame(frame)
            frame_count += 1
    except Exception as exc:  # reported; the phase goes on with the others
        error = f"{type(exc).__name__}: {exc}"
    finally:
        await caller.aclose()
    origin = caller.started_at or time.monotonic()
    replies = [asdict(r) for r in meter.replies()]
    ends = [origin + t for t in script.utterance_ends]
    starts = [origin + t for t in script.utterance_starts]
    return {
        "room": room,
        "slot": slot,
        "error": error,
        "replies": replies,
        "utterance_ends": ends,
        "mouth_to_ear_ms": [round(v, 3) for v in mouth_to_ear(ends, replies, starts[1:])],
        "utterances": script.counts.utterances,
        "caller_barge_ins": script.counts.barge_ins,
        "unanswered": script.counts.unanswered,
        "states": caller.state_values(),
    }


async def run_callers(config: CallersConfig, url: str, api_key: str, api_secret: str) -> None:
    import psutil

    out_dir = Path(config.out_dir)
    stop = out_dir / STOP_FILE
    me = psutil.Process()
    cpu0, t0 = sum(me.cpu_times()[:2]), time.monotonic()

    async def run(slot: int) -> None:
        await asyncio.sleep(slot * config.stagger_s)
        result = await one_caller(config, slot, url, api_key, api_secret, stop)
        path = out_dir / f"caller-{result['room']}.json"
        path.write_text(json.dumps(result), encoding="utf-8")

    await asyncio.gather(*(run(slot) for slot in range(config.sessions)))
    seconds = time.monotonic() - t0
    used = sum(me.cpu_times()[:2]) - cpu0
    (out_dir / "callers-cpu.json").write_text(
        json.dumps({"cpu_percent": round(100 * used / max(seconds, 1e-3), 2), "seconds": seconds})
    )


def main(argv: list[str] | None = None) -> int:
    from bridge.logs import configure_logging
    from bridge.pod.settings import LiveKitSettings

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bridge.bench.room_callers CONFIG_JSON", file=sys.stderr)
        return 2
    config = CallersConfig(**json.loads(args[0]))
    configure_logging(json=False, level="warning")
    logging.getLogger().setLevel(logging.WARNING)
    livekit = LiveKitSettings.from_env()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_callers(config, livekit.url, livekit.api_key, livekit.api_secret))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
