"""A caller participant in a process of its own: plays a recording into a room, records the agent.

    python -m bridge.local.caller_process '{"url": "ws://…", "room": "…", …}'

with ``LIVEKIT_API_KEY`` and ``LIVEKIT_API_SECRET`` in the environment. It joins ``room`` as
``identity`` (:class:`~bridge.room.caller.RoomCaller`), publishes its microphone, dispatches
``agent_name`` with ``metadata`` (as a backend would), waits until the agent listens, plays
``input`` in real time, keeps its microphone open until the agent has answered and been
quiet for ``tail_s``, then leaves. Into ``out_dir`` it writes ``said.wav`` (what it played,
mono, on the wall clock's time line: :meth:`RoomCaller.as_played`), ``heard.wav`` (what it
received from the agent, 24 kHz, aligned with ``said.wav``) and ``caller.json`` (the agent's
states as seen, its captions, timing notes).

Its own process, so that nothing else's work (an agent in the parent, its garbage
collections, the GIL) shifts when this caller plays or hears: the figures read from these
files are the caller's experience. Exit status 0, or 1 with the reason on stderr.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RATE_HEARD = 24_000


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerConfig:
    url: str
    room: str
    agent_name: str
    input: str
    out_dir: str
    identity: str = "caller"
    metadata: str = "{}"
    tail_s: float = 1.5
    max_extra_s: float = 60.0
    join_timeout_s: float = 30.0


async def run(config: CallerConfig, api_key: str, api_secret: str) -> dict[str, Any]:
    from livekit import api

    from bridge.local.wavfile import read_wav, write_wav
    from bridge.room.caller import RoomCaller

    wav = read_wav(config.input)
    out = Path(config.out_dir)
    caller = RoomCaller(config.identity, sample_rate=wav.rate, channels=wav.channels)
    token = (
        api.AccessToken(api_key, api_secret)
        .with_identity(config.identity)
        .with_grants(api.VideoGrants(room_join=True, room=config.room))
        .to_jwt()
    )
    try:
        await caller.connect(config.url, token)
        await caller.publish()
        http = "http" + config.url.removeprefix("ws")
        async with api.LiveKitAPI(http, api_key, api_secret) as lk:
            await lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(
                    agent_name=config.agent_name, room=config.room, metadata=config.metadata
                )
            )
        await caller.until(
            lambda: caller.agent_state in ("listening", "thinking", "speaking"),
            config.join_timeout_s,
        )
        await caller.play(wav.samples)
        quiet = asyncio.ensure_future(caller.silence(config.max_extra_s))
        try:
            await until_quiet(caller, config)
        finally:
            quiet.cancel()
        heard = caller.heard()
        said = caller.as_played(wav.mono())
    finally:
        await caller.aclose()
    write_wav(out / "said.wav", said, wav.rate)
    write_wav(out / "heard.wav", heard, RATE_HEARD)
    return {
        "states": caller.state_values(),
        "agent_identity": caller.agent_identity,
        "captions": [
            {"text": s.text, "attributes": s.final_attributes, "sender": s.sender}
            for s in caller.captions()
        ],
        "said_rate": wav.rate,
    }


async def until_quiet(caller: Any, config: CallerConfig) -> None:
    """After the recording: until the agent has answered and been quiet for ``tail_s``."""
    deadline = time.monotonic() + config.max_extra_s
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        now = time.monotonic()
        listener = caller.listener
        heard_recently = listener is not None and listener.heard_within(now, 0.3)
        if caller.agent_state not in ("listening", "idle") or heard_recently:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= config.tail_s:
            return
        await asyncio.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    from bridge.logs import configure_logging
    from bridge.pod.settings import livekit_credentials

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bridge.local.caller_process CONFIG_JSON", file=sys.stderr)
        return 2
    config = CallerConfig(**json.loads(args[0]))
    configure_logging(json=False, level="error")
    try:
        url, key, secret = livekit_credentials(config.url)
        result = asyncio.run(run(config, key, secret))
    except Exception as exc:  # reported to the parent, which says what failed
        print(f"caller: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    (Path(config.out_dir) / "caller.json").write_text(
        json.dumps({**result, "config": asdict(config)}), encoding="utf-8"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
