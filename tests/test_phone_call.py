"""Phone calls: a number routed to the bridge, a caller on G.711, through a real LiveKit server.

One set of processes for the module (``phone_lab``), inside the run's network namespace:
Redis; a ``livekit-server`` node with Redis (the SIP API needs it), on ports of its own so the
session's ``livekit`` server is untouched; the simulator (``tool`` behaviour from the third
user turn on: two turns echoed, then the model calls the profile's first tool, ``end_call``);
a ``bridge start`` worker registered as ``bridge-phone``; and, created through ``livekit-api``,
an inbound trunk for +15550100 and an individual dispatch rule sending ``bridge-phone`` with
``{"profile": "phone-test"}`` into each call's room.

The caller is :class:`~bridge.local.phone_caller.PhoneCaller`: the participant LiveKit's SIP
service makes of a phone call (kind SIP, ``sip.*`` attributes, the rule's room configuration
in its token, 48 kHz Opus carrying G.711 audio) — ``livekit-sip`` itself cannot be installed
here (the Go module proxy refuses ``github.com/livekit/sip``: ``deploy/livekit/install-sip.sh``).
What it says goes 8 kHz → µ-law → 48 kHz → Opus → server → bridge; what it hears comes back
through Opus and 48 → 8 kHz µ-law. Every figure is read from what the phone played.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bridge.local.g711 import PHONE_RATE, resample
from bridge.local.heard import Heard, analyse, resemblance, segments
from bridge.local.livekit_server import Credentials, LocalLiveKit, Ports
from bridge.local.phone_caller import HangUp, PhoneCaller
from bridge.local.phone_routing import PhoneRoute, connect_number
from bridge.local.redis_server import LocalRedis
from bridge.local.wavfile import demo_recording, read_wav
from tests.realroom import (
    REPO_ROOT,
    SimProcess,
    Worker,
    clean_env,
    journal_frames,
    require_livekit,
    start_sim,
    start_worker,
    stop_sim,
    stop_worker,
)

AGENT = "bridge-phone"
NUMBER = "+15550100"
CALLER = "+15551234567"
REDIS_PORT = 6392  # ports of the module's own: nothing else in the run uses them
PORTS = Ports().shifted(300)
METRICS_PORT = 9103
PROFILES = """
[profiles.default]
instructions = "You are a test agent."

[profiles.phone-test]
instructions = "Say back what you hear; end the call when asked."
voice = "cedar"
tools = ["end_call"]
[profiles.phone-test.turn_detection]
type = "server_vad"
silence_duration_ms = 400
"""
# What two codec passes leave (G.711 both ways around Opus both ways), measured on this harness
# over four calls: an echo's voiced 100 ms pieces match its utterance at a median of 0.83-0.87
# (90-100 % of them above 0.7); a reply to the other utterance at a median of 0.44-0.50
# (0-7 % above 0.7).
MATCH = 0.7


@dataclass
class PhoneLab:
    livekit: Credentials
    route: PhoneRoute
    rule: Any  # the SIPDispatchRuleInfo the server stored
    sim: SimProcess
    worker: Worker


@pytest.fixture(scope="module")
def phone_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhoneLab]:
    require_livekit()
    from livekit import api

    from tests import conftest

    assert conftest.NETNS is not None
    work = tmp_path_factory.mktemp("phone")
    with (
        LocalRedis(work / "redis", port=REDIS_PORT) as redis,
        LocalLiveKit(
            work / "livekit",
            bind=conftest.NETNS.host,
            ports=PORTS,
            redis=redis.address,
            name="livekit-phone",
        ) as server,
    ):
        creds = server.credentials

        async def route() -> tuple[PhoneRoute, Any]:
            async with api.LiveKitAPI(creds.url, creds.api_key, creds.api_secret) as lk:
                made = await connect_number(lk, NUMBER, agent_name=AGENT, profile="phone-test")
                rules = await lk.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())
            [rule] = [r for r in rules.items if r.sip_dispatch_rule_id == made.rule_id]
            return made, rule

        made, rule = asyncio.run(route())
        sim = start_sim(work, "--behavior", "tool", "--tool-from-turn", "3")
        try:
            worker = start_worker(
                work,
                creds,
                sim,
                agent_name=AGENT,
                metrics_port=METRICS_PORT,
                profiles_text=PROFILES,
                BRIDGE_EMPTY_ROOM_GRACE="2",
            )
            try:
                yield PhoneLab(creds, made, rule, sim, worker)
            finally:
                stop_worker(worker)
        finally:
            stop_sim(sim)


def demo_at(rate: int) -> np.ndarray:
    wav = read_wav(demo_recording())
    return resample(wav.mono(), wav.rate, rate)


@dataclass
class PhoneCall:
    """The demo recording said into the phone (a question, its echo cut by a correction, the
    correction's echo), then a goodbye the model answers by hanging up."""

    said: np.ndarray  # what the phone captured, 8 kHz
    heard: np.ndarray  # what the phone played, 8 kHz, aligned with said
    figures: Heard
    phone: PhoneCaller
    hang_up: HangUp
    truncations: list[dict[str, Any]]
    started: float


@pytest.fixture(scope="module")
def phone_call(phone_lab: PhoneLab) -> PhoneCall:
    said = demo_at(PHONE_RATE)
    (q_start, q_end) = segments(said, PHONE_RATE, threshold=400)[0]  # the question
    goodbye = said[int(q_start * PHONE_RATE) : int(min(q_end, q_start + 1.5) * PHONE_RATE)]
    started = time.monotonic()
    goodbye_at = 0  # where the goodbye starts on the phone's clock (8 kHz samples)
    phone: PhoneCaller

    async def main() -> HangUp:
        nonlocal goodbye_at, phone
        phone = PhoneCaller(phone_lab.route, CALLER, room_config=phone_lab.rule.room_config)
        caller = phone.caller
        await phone.dial(phone_lab.livekit)
        try:
            await caller.until(lambda: caller.agent_state == "listening", 30)
            await phone.say(said, PHONE_RATE)
            quiet = asyncio.ensure_future(phone.silence(60))
            await caller.until(
                lambda: (
                    caller.state_values().count("speaking") >= 2
                    and caller.agent_state == "listening"
                ),
                30,
            )
            quiet.cancel()
            await phone.silence(1.0)  # the caller hears the answer out, then says goodbye
            goodbye_at = caller.played * PHONE_RATE // caller.sample_rate
            await phone.say(goodbye, PHONE_RATE)  # the third turn: the model hangs up
            quiet = asyncio.ensure_future(phone.silence(60))
            return await phone.until_hung_up(30)
        except TimeoutError:
            raise AssertionError(stuck(phone, phone_lab.worker)) from None
        finally:
            await phone.aclose()

    hang_up = asyncio.run(main())
    heard = phone.heard()
    spoken = np.zeros(max(heard.size, goodbye_at + goodbye.size), dtype=np.int16)
    spoken[: said.size] = said  # what the phone said, on its own clock
    spoken[goodbye_at : goodbye_at + goodbye.size] = goodbye
    truncations = [
        f
        for f in journal_frames(phone_lab.sim, started, "in")
        if f["type"] == "conversation.item.truncate"
    ]
    figures = analyse(
        spoken,
        PHONE_RATE,
        heard,
        PHONE_RATE,
        truncations_ms=[t["audio_end_ms"] for t in truncations],
    )
    print("\nas heard on the phone:", figures.summary())
    return PhoneCall(spoken, heard, figures, phone, hang_up, truncations, started)


def stuck(phone: PhoneCaller, worker: Worker) -> str:
    records = "\n".join(
        f"  {r.get('event')} {r.get('reason', '')}"
        for r in worker.records()[-15:]
        if r.get("level") != "debug"
    )
    caller = phone.caller
    return (
        f"phone {phone.identity} in {phone.room} timed out: agent {caller.agent_identity},"
        f" states {caller.state_values()}, hung up {phone.hung_up}; the worker's last"
        f" records:\n{records}"
    )


def echoes(reply: np.ndarray, said: np.ndarray) -> float:
    """The share of the reply's 100 ms pieces found in ``said`` (both 8 kHz)."""
    return resemblance(said, reply, PHONE_RATE, piece_s=0.1, match=MATCH)


def test_the_rule_the_server_stored_routes_calls_to_the_bridge(phone_lab: PhoneLab) -> None:
    rule = phone_lab.rule
    assert list(rule.trunk_ids) == [phone_lab.route.trunk_id]
    assert rule.rule.dispatch_rule_individual.room_prefix == "call"
    [agent] = rule.room_config.agents
    assert agent.agent_name == AGENT
    assert json.loads(agent.metadata) == {"profile": "phone-test"}


def test_the_bridge_reads_the_phone_track_as_sip_audio(
    phone_call: PhoneCall, phone_lab: PhoneLab
) -> None:
    formats = [
        r
        for r in phone_lab.worker.records("input.format")
        if r.get("participant") == phone_call.phone.identity
    ]
    assert formats, "the worker never read the phone's track"
    assert formats[0]["kind"] == "PARTICIPANT_KIND_SIP"
    assert (formats[0]["rate"], formats[0]["channels"]) == (48_000, 1)


def test_the_echo_of_the_question_is_heard_and_cut_within_400_ms(phone_call: PhoneCall) -> None:
    figures = phone_call.figures
    assert len(figures.utterances) >= 2 and len(figures.replies) >= 2, figures
    (q_start, q_end), _ = figures.utterances[:2]
    (r_start, r_end), _ = figures.replies[:2]
    assert q_end < r_start
    reply = phone_call.heard[int(r_start * PHONE_RATE) : int(r_end * PHONE_RATE)]
    question = phone_call.said[int(q_start * PHONE_RATE) : int(q_end * PHONE_RATE)]
    assert echoes(reply, question) >= 0.7, "the echo does not resemble the question"
    stop = figures.barge_in_stop_ms[0]
    assert 0 < stop <= 400, f"the agent was still heard {stop:.0f} ms after the caller spoke"


def test_the_truncation_sent_matches_what_the_phone_heard(phone_call: PhoneCall) -> None:
    [truncation] = phone_call.truncations
    error = phone_call.figures.truncation_error_ms[0]
    assert truncation["audio_end_ms"] > 0
    assert abs(error) <= 60, f"audio_end_ms {truncation['audio_end_ms']}, off by {error:.0f} ms"


def test_the_correction_is_answered(phone_call: PhoneCall) -> None:
    figures = phone_call.figures
    _, (c_start, c_end) = figures.utterances[:2]
    _, (r_start, r_end) = figures.replies[:2]
    assert c_end < r_start
    reply = phone_call.heard[int(r_start * PHONE_RATE) : int(r_end * PHONE_RATE)]
    correction = phone_call.said[int(c_start * PHONE_RATE) : int(c_end * PHONE_RATE)]
    assert echoes(reply, correction) >= 0.7
    (q_start, q_end), _ = figures.utterances[:2]
    question = phone_call.said[int(q_start * PHONE_RATE) : int(q_end * PHONE_RATE)]
    assert echoes(reply, question) < 0.3  # the measure tells one utterance from another


def test_end_call_hangs_the_phone_up(phone_call: PhoneCall, phone_lab: PhoneLab) -> None:
    assert phone_call.hang_up.reason == "PARTICIPANT_REMOVED"
    [hung_up] = [
        r
        for r in phone_lab.worker.records("call.hung_up")
        if r.get("participant") == phone_call.phone.identity
    ]
    assert hung_up["room"] == phone_call.phone.room


def test_a_transfer_request_reaches_the_sip_service_queue(phone_lab: PhoneLab) -> None:
    """The pod's transfer request, signed with the worker's credentials, for a SIP caller of a
    call's room: the server validates it (grants, room, participant) and hands it to the SIP
    service over Redis, which is where it stops here (no ``livekit-sip``: nobody answers).
    The same request for someone not in the room is refused by the server itself."""
    from livekit import api

    from bridge.pod.room_control import LiveKitRoomControl
    from bridge.pod.settings import LiveKitSettings

    creds = phone_lab.livekit
    settings = LiveKitSettings(creds.url, creds.api_key, creds.api_secret, AGENT)

    async def transfer(control: LiveKitRoomControl, identity: str) -> api.ServerError:
        with pytest.raises(api.ServerError) as caught:
            await control.transfer_sip_participant(identity, "tel:+15550199", play_dialtone=False)
        return caught.value

    async def main() -> tuple[api.ServerError, api.ServerError]:
        # A call's room without the agent: only the request is looked at here.
        phone = PhoneCaller(phone_lab.route, "+15557654321", room_config=api.RoomConfiguration())
        await phone.dial(creds)
        try:
            control = LiveKitRoomControl(settings, phone.room)
            return await transfer(control, phone.identity), await transfer(control, "nobody")
        finally:
            await phone.aclose()

    forwarded, refused = asyncio.run(main())
    assert (forwarded.code, forwarded.message) == (
        "unavailable",
        "twirp error unknown: no response from servers",
    )
    assert refused.code == "not_found" and "participant does not exist" in refused.message


def test_the_phone_call_command_places_a_call_from_a_wav(tmp_path: Path) -> None:
    """``python -m bridge.local.phone_call``: its own namespace, server, worker and number;
    the demo said into the phone; the model hangs up at the correction (``tool`` from turn 2)."""
    require_livekit()
    out = tmp_path / "heard.wav"
    argv = [sys.executable, "-m", "bridge.local.phone_call", "--input", str(demo_recording())]
    argv += ["--output", str(out), "--workdir", str(tmp_path / "run"), "--json"]
    argv += ["--sim-behavior", "tool", "--tool-from-turn", "2"]
    done = subprocess.run(
        argv, cwd=REPO_ROOT, env=clean_env(), capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["responses"], summary["interruptions"]) == (3, 1)
    assert len(summary["truncations"]) == 1 and summary["errors"] == []
    assert len(summary["voice_to_voice_ms"]) == 2
    assert summary["hung_up"] == "PARTICIPANT_REMOVED"
    assert summary["end_reason"] == "the agent ended the call"
    heard = read_wav(out)
    assert heard.rate == PHONE_RATE and heard.seconds >= summary["input_file_seconds"]
    assert len(summary["heard"]["mouth_to_ear_ms"]) == 2
