"""``python -m bridge.local.phone_call``: a phone call from a WAV file through the whole chain.

    python -m bridge.local.phone_call --input IN.wav --output OUT.wav [--profile phone]
        [--profiles FILE] [--sim-behavior echo|tool] [--tool-from-turn N] [--json]
        [--workdir DIR]

Everything runs on this machine, inside a network namespace of its own (root needed; removed
at the end): Redis, a ``livekit-server`` node with Redis (``deploy/livekit/install.sh`` and
``install-sip.sh`` install them), the simulator as the model (``bridge sim``), a
``bridge start`` worker registered under an agent name, and, made through ``livekit-api``, an
inbound trunk for a number and a dispatch rule sending the worker with the profile into each
call's room (``bridge.local.phone_routing``). Then the call: IN.wav is said into a phone
(``bridge.local.phone_caller``: the participant LiveKit's SIP service makes of a call, its
audio through G.711 both ways), the line stays open until the agent has been quiet for
``--tail`` seconds after the recording (or hangs up), and OUT.wav is what the phone's earpiece
played: 8 kHz mono, aligned with IN.wav (sample 0: the first sample said).

``livekit-sip`` itself is the one piece that does not run here (the Go module proxy refuses
``github.com/livekit/sip``); the phone stand-in models what it does in the room.

Printed: the figures as the phone heard them (mouth-to-ear, barge-in stop, truncation error:
``bridge.local.heard``) and the bridge's own, read from the worker's ``call.ended`` record
(responses, interruptions, truncations, voice-to-voice, output seconds, dropped frames,
errors). With ``--json`` the last stdout line is all of it as JSON. Exit status: 0 when the
call ran, 1 when it did not (the reason, and where the logs are), 2 on bad arguments or a
missing piece.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bridge.errors import BridgeError
from bridge.local import netns, processes
from bridge.local.g711 import PHONE_RATE, resample
from bridge.local.heard import analyse
from bridge.local.livekit_server import Credentials, LocalLiveKit, Ports
from bridge.local.phone_caller import PhoneCaller
from bridge.local.phone_routing import PhoneRoute, connect_number
from bridge.local.redis_server import LocalRedis
from bridge.local.wavfile import read_wav, write_wav
from bridge.pod.settings import child_environment

REPO_ROOT = Path(__file__).resolve().parents[2]
AGENT = "bridge-phone-call"
NUMBER = "+15550100"
CALLER = "+15551234567"
METRICS_PORT = 9104
SIM_PREFIX = "realtime simulator listening on "


class PhoneCallError(BridgeError):
    """The call could not be placed or did not run to its end."""


@dataclass
class Lab:
    """The pieces of one run, started in order and stopped in reverse."""

    work: Path
    livekit: Credentials
    sim_url: str
    journal: Path
    worker_log: Path
    route: PhoneRoute


@contextmanager
def _process(argv: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=out, env=env)
    try:
        yield process
    finally:
        processes.stop(process, 30)


@contextmanager
def phone_lab(work: Path, args: argparse.Namespace) -> Iterator[Lab]:
    """Redis, a LiveKit node with Redis, the simulator, a worker, a number routed to it."""
    from livekit import api

    namespace = netns.create(f"bridge-phone-{os.getpid()}")
    with ExitStack() as stack:
        stack.callback(namespace.delete)
        namespace.enter()  # this thread, and every process it starts from now on
        redis = stack.enter_context(LocalRedis(work / "redis"))
        server = stack.enter_context(
            LocalLiveKit(
                work / "livekit",
                bind=namespace.host,
                ports=Ports().shifted(100),
                redis=redis.address,
                name="livekit-phone",
            )
        )
        creds = server.credentials
        journal = work / "sim-journal.jsonl"
        sim_args = ["--behavior", args.sim_behavior, "--tool-from-turn", str(args.tool_from_turn)]
        sim = stack.enter_context(
            _process(
                [sys.executable, "-m", "bridge", "sim", "--port", "0", "--journal", str(journal)]
                + sim_args,
                work / "sim.log",
                child_environment(fresh=True),
            )
        )
        assert sim.stdout is not None
        ready, _, _ = select.select([sim.stdout], [], [], 30)
        line = sim.stdout.readline().decode().strip() if ready else ""
        if not line.startswith(SIM_PREFIX):
            raise PhoneCallError(f"the simulator did not start: see {work / 'sim.log'}")
        sim_url = line.removeprefix(SIM_PREFIX)
        worker_log = work / "worker.log"
        settings = {
            "LIVEKIT_URL": creds.url,
            "LIVEKIT_API_KEY": creds.api_key,
            "LIVEKIT_API_SECRET": creds.api_secret,
            "LIVEKIT_AGENT_NAME": AGENT,
            "BRIDGE_REALTIME_URL": sim_url,
            "BRIDGE_METRICS_PORT": str(METRICS_PORT),
            "BRIDGE_LOG_FORMAT": "json",
            "BRIDGE_EMPTY_ROOM_GRACE": "1",
        }
        if args.profiles:
            settings["BRIDGE_PROFILES"] = str(Path(args.profiles).resolve())
        worker = stack.enter_context(
            _process(
                [sys.executable, "-m", "bridge", "start"],
                worker_log,
                child_environment(fresh=True, **settings),
            )
        )
        deadline = time.monotonic() + 90
        while not processes.worker_ready(METRICS_PORT):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise PhoneCallError(f"bridge start did not register: see {worker_log}")
            time.sleep(0.1)

        async def route() -> PhoneRoute:
            async with api.LiveKitAPI(creds.url, creds.api_key, creds.api_secret) as lk:
                return await connect_number(lk, NUMBER, agent_name=AGENT, profile=args.profile)

        yield Lab(work, creds, sim_url, journal, worker_log, asyncio.run(route()))


async def place_call(
    lab: Lab, said: np.ndarray, rate: int, *, tail_s: float, max_s: float
) -> tuple[PhoneCaller, float]:
    """Dial, wait for the agent, say ``said``, keep the line open until the agent has been
    quiet for ``tail_s`` (or hung up); returns the phone and when it started."""
    phone = PhoneCaller(lab.route, CALLER)
    caller = phone.caller
    started = time.monotonic()
    await phone.dial(lab.livekit)
    stop = asyncio.Event()
    line: asyncio.Future[None] | None = None
    try:
        await caller.until(lambda: caller.agent_state == "listening", 30)
        await phone.say(said, rate)
        line = asyncio.ensure_future(phone.silence_until(stop, max_s))
        deadline = time.monotonic() + max_s
        quiet_since = time.monotonic()
        while phone.hung_up is None and time.monotonic() < deadline:
            if caller.agent_state != "listening":
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= tail_s:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        if line is not None:
            await line
        await phone.aclose()
    return phone, started


def _journal(journal: Path, since: float) -> list[dict[str, Any]]:
    frames = []
    for text in journal.read_text().splitlines():
        entry = json.loads(text)
        if entry["t"] >= since and "frame" in entry:
            frames.append({"dir": entry["dir"], **entry["frame"]})
    return frames


def _call_ended(log: Path, room: str, timeout: float = 20.0) -> dict[str, Any] | None:
    """The worker's ``call.ended`` record for ``room`` (it follows the caller's leaving)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for text in log.read_text(errors="replace").splitlines():
            if text.startswith("{"):
                record = json.loads(text)
                if record.get("event") == "call.ended" and record.get("room") == room:
                    return dict(record)
        time.sleep(0.2)
    return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    wav = read_wav(args.input)
    said = wav.mono()
    for tool, hint in (("livekit-server", "deploy/livekit/install.sh"),):
        from bridge.local.livekit_server import find_binary

        if find_binary(tool) is None:
            raise PhoneCallError(f"{tool} is not installed: run {hint}")
    if shutil.which("redis-server") is None:
        raise PhoneCallError("redis-server is not installed: run deploy/livekit/install-sip.sh")
    reason = netns.unavailable()
    if reason:
        raise PhoneCallError(f"a private network namespace is needed: {reason}")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bridge-phone-"))
    work.mkdir(parents=True, exist_ok=True)
    with phone_lab(work, args) as lab:
        print(
            f"phone {CALLER} calls {NUMBER} (trunk {lab.route.trunk_id}, rule"
            f" {lab.route.rule_id}, profile {args.profile!r}); {args.input}"
            f" ({wav.seconds:.1f} s) said into it over G.711",
            flush=True,
        )
        phone, started = asyncio.run(
            place_call(lab, said, wav.rate, tail_s=args.tail, max_s=args.max_extra)
        )
        ended = _call_ended(lab.worker_log, phone.room)
        frames = _journal(lab.journal, started)
    heard = phone.heard()
    said_8k = resample(said, wav.rate, PHONE_RATE)
    truncations = [f for f in frames if f["type"] == "conversation.item.truncate"]
    figures = analyse(
        said_8k,
        PHONE_RATE,
        heard,
        PHONE_RATE,
        truncations_ms=[t["audio_end_ms"] for t in truncations],
    )
    write_wav(args.output, heard, PHONE_RATE)
    bridge = ended or {}
    return {
        "responses": bridge.get("responses"),
        "interruptions": bridge.get("interruptions"),
        "truncations": bridge.get("truncations"),
        "voice_to_voice_ms": bridge.get("voice_to_voice_ms"),
        "barge_in_stop_ms": bridge.get("barge_in_stop_ms"),
        "output_seconds": bridge.get("output_seconds"),
        "dropped_frames": bridge.get("dropped_frames"),
        "underruns": bridge.get("underruns"),
        "errors": [{"code": code, "message": ""} for code in bridge.get("error_codes", [])],
        "end_reason": bridge.get("reason"),
        "heard": figures.summary(),
        "hung_up": phone.hung_up.reason if phone.hung_up else None,
        "room": phone.room,
        "input_file_seconds": round(wav.seconds, 3),
        "output_file": str(args.output),
        "output_file_seconds": round(heard.size / PHONE_RATE, 3),
        "workdir": str(work),
    }


def print_figures(summary: dict[str, Any]) -> None:
    heard = summary["heard"]

    def ms(values: Sequence[float] | None) -> str:
        return ", ".join(f"{v:.0f}" for v in values) if values else "-"

    print("\nas the phone heard it:")
    for label, key in (
        ("mouth-to-ear (speech end -> first agent audio)", "mouth_to_ear_ms"),
        ("barge-in stop (caller speaks -> last agent audio)", "barge_in_stop_heard_ms"),
        ("truncation error (audio_end_ms - cut reply heard)", "truncation_error_heard_ms"),
    ):
        print(f"  {label}: {ms(heard[key])} ms")
    print("the bridge's own (the worker's call.ended record):")
    print(f"  responses {summary['responses']}, interruptions {summary['interruptions']}")
    print(f"  voice-to-voice: {ms(summary['voice_to_voice_ms'])} ms")
    for t in summary["truncations"] or []:
        played, end = t["played_ms"], t["audio_end_ms"]
        print(f"  truncation {t['item_id']}: played {played} ms, audio_end_ms {end}")
    print(
        f"  output {summary['output_seconds']} s, dropped frames {summary['dropped_frames']},"
        f" errors {summary['errors']}; ended: {summary['end_reason']}"
    )
    if summary["hung_up"]:
        print(f"  the phone was hung up by the bridge ({summary['hung_up']})")
    print(
        f"  output: {summary['output_file']} (8 kHz, what the phone played, aligned with the input)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bridge.local.phone_call", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--input", required=True, type=Path, help="what the caller says (WAV)")
    parser.add_argument("--output", required=True, type=Path, help="what the phone played (WAV)")
    parser.add_argument("--profile", default="phone", help="the profile the rule picks")
    parser.add_argument("--profiles", help="profiles file (default: the built-in ones)")
    parser.add_argument("--sim-behavior", default="echo", choices=("echo", "tone", "tool"))
    parser.add_argument("--tool-from-turn", type=int, default=1, metavar="N")
    parser.add_argument("--tail", type=float, default=1.5, help="quiet seconds that end the call")
    parser.add_argument("--max-extra", type=float, default=60.0, help="longest wait after IN.wav")
    parser.add_argument("--workdir", help="keep the logs here (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    args = parser.parse_args(argv)
    if not args.input.is_file():
        print(f"error: no such file: {args.input}", file=sys.stderr)
        return 2
    try:
        summary = run(args)
    except PhoneCallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (BridgeError, TimeoutError, OSError) as exc:
        print(f"error: the call did not run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print_figures(summary)
    if args.json:
        print(json.dumps(summary))
    return 0 if summary["end_reason"] is not None else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
