"""One conversation through a real LiveKit server (``bridge try --livekit-url``).

The same call as :mod:`bridge.local.trial`, with a real room between the caller and the
agent: the recording is published by a caller participant in a process of its own
(:mod:`bridge.local.caller_process`: Opus over WebRTC to the server, so that the agent's work
here never shifts when the caller plays or hears), and the output is what that caller
received from the agent (Opus back), aligned with the recording. The agent
is dispatched by the server like production:

- by default it runs in this process: ``livekit-agents``' own server as ``bridge start``
  builds it (:func:`bridge.pod.worker.build_server`, the thread executor), registered under
  an agent name of its own, dispatched with the profile as dispatch metadata; its call's
  record (truncations sent, socket events) joins the caller's figures;
- with ``agent_name``, an already running ``bridge start`` with that name answers; only
  what the caller experienced is known then.

What the caller experienced (:func:`bridge.local.heard.analyse`): mouth-to-ear per turn,
barge-in stop as heard, and, with the agent in-process, the truncation error as heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bridge.call.call import Call, CallOptions
from bridge.call.profiles import ProfileSet
from bridge.call.records import CallRecord
from bridge.errors import BridgeError
from bridge.local.caller_process import CallerConfig
from bridge.local.heard import Heard, analyse
from bridge.local.livekit_server import Credentials
from bridge.local.wavfile import Wav, read_wav
from bridge.metrics import BridgeMetrics
from sessions.usage import PriceTable

HEAR_RATE = 24_000
CALLER = "caller"


class RoomTrialError(BridgeError):
    """The caller could not take part (the server refused it, no agent came, …)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomTrialOptions:
    tail_s: float = 1.5  # quiet after the last reply before the caller leaves
    max_extra_s: float = 60.0  # longest the caller stays after the recording ends
    join_timeout_s: float = 30.0  # for the agent to join and listen
    end_timeout_s: float = 20.0  # for the in-process agent's call to close after the caller left


@dataclass(slots=True)
class RoomTrialResult:
    record: CallRecord  # the agent's (empty when the agent ran elsewhere)
    output: NDArray[np.int16]  # what the caller heard, 24 kHz mono, aligned with the input
    heard: Heard
    states: list[str]
    input_seconds: float
    room: str
    agent_known: bool  # the agent ran in this process: its record is real
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        summary = self.record.summary()
        summary["output_seconds"] = round(self.output.size / HEAR_RATE, 3)
        summary["agent_audio_seconds"] = round(self.record.output_seconds, 3)
        summary["input_file_seconds"] = round(self.input_seconds, 3)
        summary["states"] = self.states
        summary["room"] = self.room
        summary["heard"] = self.heard.summary()
        summary["mouth_to_ear_ms"] = summary["heard"]["mouth_to_ear_ms"]
        if not self.agent_known:
            summary["notes"] = [
                *self.notes,
                "the agent ran in another process: its figures (truncations sent, socket"
                " latencies, tokens) are not known here; 'heard' is what the caller got",
            ]
        return summary


async def run_room_trial(
    wav_path: Path,
    wav: Wav,
    profile: str,
    profiles: ProfileSet,
    livekit: Credentials,
    *,
    agent_name: str | None = None,
    realtime_url: str | None = None,
    metrics: BridgeMetrics | None = None,
    prices: PriceTable | None = None,
    stop: asyncio.Event | None = None,
    options: RoomTrialOptions | None = None,
) -> RoomTrialResult:
    """Have a caller process publish ``wav_path`` in a fresh room with the agent dispatched;
    what it heard, and the agent's record when the agent ran here."""
    options = options or RoomTrialOptions()
    room = f"try-{uuid.uuid4().hex[:10]}"
    ended: list[Call] = []
    here = agent_name is None
    name = agent_name or f"bridge-try-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="bridge-try-room-") as work:
        async with contextlib.AsyncExitStack() as stack:
            if here:
                await stack.enter_async_context(
                    _agent_here(livekit, name, profiles, realtime_url, metrics, prices, ended)
                )
            config = CallerConfig(
                url=livekit.url,
                room=room,
                agent_name=name,
                input=str(wav_path),
                out_dir=work,
                identity=CALLER,
                metadata=json.dumps({"profile": profile, "participant": CALLER}),
                tail_s=options.tail_s,
                max_extra_s=options.max_extra_s,
                join_timeout_s=options.join_timeout_s,
            )
            failure = await _caller(config, livekit, stop)
            if here and failure is None:  # the caller left: the call ends after its grace
                deadline = time.monotonic() + options.end_timeout_s
                while not ended and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
        if failure is not None:
            raise RoomTrialError(failure)
        said, heard_audio = read_wav(Path(work) / "said.wav"), read_wav(Path(work) / "heard.wav")
        seen = json.loads((Path(work) / "caller.json").read_text(encoding="utf-8"))
    record = ended[0].record if ended else CallRecord(started_at=0.0)
    heard = analyse(
        said.samples,
        said.rate,
        heard_audio.samples,
        HEAR_RATE,
        truncations_ms=[t.audio_end_ms for t in record.truncations] if ended else None,
    )
    return RoomTrialResult(
        record=record,
        output=heard_audio.samples,
        heard=heard,
        states=seen["states"],
        input_seconds=wav.seconds,
        room=room,
        agent_known=bool(ended),
    )


async def _caller(
    config: CallerConfig, livekit: Credentials, stop: asyncio.Event | None
) -> str | None:
    """Run the caller process to its end (or until ``stop``); its failure, or None."""
    from bridge.pod.settings import child_environment

    env = child_environment(  # the secret never goes on a command line
        LIVEKIT_API_KEY=livekit.api_key, LIVEKIT_API_SECRET=livekit.api_secret
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge.local.caller_process",
        json.dumps(asdict(config)),
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    waiting = asyncio.ensure_future(process.wait())
    stopped = asyncio.ensure_future((stop or asyncio.Event()).wait())
    await asyncio.wait({waiting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not waiting.done():  # Ctrl-C: the caller hangs up, what it heard is kept
        process.send_signal(signal.SIGINT)
        await waiting
    stopped.cancel()
    assert process.stderr is not None
    errors = (await process.stderr.read()).decode(errors="replace").strip()
    if process.returncode == 0:
        return None
    return errors.splitlines()[-1] if errors else f"the caller exited with {process.returncode}"


@contextlib.asynccontextmanager
async def _agent_here(
    livekit: Credentials,
    agent_name: str,
    profiles: ProfileSet,
    realtime_url: str | None,
    metrics: BridgeMetrics | None,
    prices: PriceTable | None,
    ended: list[Call],
) -> Any:
    """``bridge start``'s worker in this process, registered as ``agent_name``."""
    from bridge.pod.agent import AgentContext, prepare_ffi
    from bridge.pod.settings import LiveKitSettings, WorkerSettings
    from bridge.pod.worker import build_server

    prepare_ffi()
    shared = AgentContext(
        profiles=profiles,
        metrics=metrics or BridgeMetrics(),
        prices=prices or PriceTable(),
        options=CallOptions(empty_room_grace_s=0.5),  # the caller leaving ends the call
        realtime_url=realtime_url,
        on_ended=ended.append,
    )
    settings = WorkerSettings(metrics_port=0, idle_processes=1, health_port=0)
    lk = LiveKitSettings(livekit.url, livekit.api_key, livekit.api_secret, agent_name)
    server, _gate = build_server(settings, lk, shared, dev=True)
    registered = asyncio.Event()
    server.on("worker_registered", lambda *_: registered.set())
    runner = asyncio.ensure_future(server.run(devmode=True))
    try:
        done, _ = await asyncio.wait(
            {runner, asyncio.ensure_future(registered.wait())},
            timeout=30,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if runner in done:
            runner.result()  # it failed on its own: surface why
        if not registered.is_set():
            raise TimeoutError(f"the agent did not register with {livekit.url} within 30 s")
        yield server
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.aclose(), 10)
        runner.cancel()
        with contextlib.suppress(BaseException):
            await runner
