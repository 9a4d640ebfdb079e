"""Acceptance: the bridge's own hop to the model impaired (10 % loss; a 2 s outage while the
caller speaks; and a 5 s one). Calls continue, the caller's longest silence and the audio
lost are reported, and no caller audio is lost that the link did not lose (TCP loses none:
so, none at all).

``bridge start`` runs in the run's namespace as always; the simulator runs in a namespace of
its own behind the impaired link (``bridge.local.tun_link``). The caller (a LiveKit
participant, on the run's clean network) says two utterances, talking over the first
reply. What the model received is read three ways: the bridge's own accounting
(``call.ended``: caller audio re-sent, lost from its ring, dropped by its queue), the
simulator's journal (every append that reached it), and the echo the caller hears back.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bridge.bench.impairment import parse_condition
from bridge.local.caller_script import SHORT_TURNS
from bridge.local.impaired_call import CallResult, Condition, Hop, run_call
from bridge.local.livekit_server import Credentials
from bridge.local.tun_link import Link, model_link
from tests.impairedkit import namespace, sim_in, webrtc_reach
from tests.realroom import SimProcess, Worker, clean_env, require_livekit, start_worker, stop_worker

AGENT = "bridge-uplink"
# The acceptance's two, and a 5 s outage: longer than TCP rides out quickly (the socket's
# pong is late, so it is replaced), where the bridge used to drop the caller's audio.
CONDITIONS = ("loss=10", "outage=2@speaking", "outage=5@speaking")


@pytest.fixture(scope="module")
def model_hop() -> Iterator[Hop]:
    require_livekit()
    from tests import conftest

    assert conftest.NETNS is not None
    with namespace("model") as model:
        with Link(model_link(os.getpid(), conftest.NETNS, model)) as link:
            yield Hop(link, conftest.NETNS, model)


@pytest.fixture(scope="module")
def model(model_hop: Hop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    host = model_hop.link.spec.far.address
    with sim_in(model_hop.far, host, tmp_path_factory.mktemp("model")) as sim:
        yield sim


@pytest.fixture(scope="module")
def uplink_worker(
    livekit: Credentials, model: SimProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    worker = start_worker(
        tmp_path_factory.mktemp("uplink-worker"),
        livekit,
        model,
        agent_name=AGENT,
        metrics_port=9103,
        BRIDGE_EMPTY_ROOM_GRACE="2",
    )
    yield worker
    stop_worker(worker)


class Call:
    result: CallResult
    bridge: dict[str, Any]  # the worker's call.ended record
    appended_ms: float  # caller audio that reached the model (every socket)


@pytest.fixture(scope="module")
def calls(
    model_hop: Hop,
    livekit: Credentials,
    uplink_worker: Worker,
    model: SimProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Call]:
    work = tmp_path_factory.mktemp("uplink-calls")
    found = {}
    for spec in CONDITIONS:
        call = Call()
        reach = webrtc_reach(livekit, AGENT)
        started = time.monotonic()
        call.result = run_call(
            model_hop.near,  # the caller is on the run's clean network
            model_hop,
            reach,
            _condition(spec),
            work / spec.replace("=", "-").replace("@", "-"),
            turns=SHORT_TURNS,
            env=clean_env(),
        )
        call.bridge = _ended(uplink_worker, len(found))
        call.appended_ms = _appended_ms(model.journal, started)
        found[spec] = call
        print(
            f"\n{spec}: caller's longest silence {_longest_silence(call.result):.0f} ms, "
            f"mouth-to-ear {[t.mouth_to_ear_ms for t in call.result.turns]} ms; the bridge: "
            + json.dumps({k: v for k, v in call.bridge.items() if k.startswith(("caller", "rec"))})
        )
    return found


def _condition(spec: str) -> Condition:
    """``spec``, its outage starting 1 s into the caller's second utterance (1.47 s long):
    that utterance is also the barge-in, and its ``speech_started`` must reach the bridge
    before the link goes (a barge-in is not heard while the model is unreachable: README,
    "Callers on an impaired network"); 0.3 s in, as the benchmark has it, races it."""
    condition = parse_condition(spec)
    if condition.outage is None:
        return condition
    return replace(condition, outage=replace(condition.outage, after_s=1.0))


def _ended(worker: Worker, index: int) -> dict[str, Any]:
    """The ``index``-th ``call.ended`` record of the worker, once it is written."""
    deadline = time.monotonic() + 20  # a safety net: the call ends 2 s after the caller left
    while len(records := worker.records("call.ended")) <= index:
        assert time.monotonic() < deadline, "the call did not end"
        time.sleep(0.1)
    return records[index]


def _appended_ms(journal: Path, since: float) -> float:
    total = 0
    for line in journal.read_text().splitlines():
        entry = json.loads(line)
        frame = entry.get("frame") or {}
        if (
            entry["t"] >= since
            and entry["dir"] == "in"
            and frame.get("type", "").endswith("input_audio_buffer.append")
        ):
            total += int(frame["bytes"])
    return total / 48  # 24 kHz PCM16: 48 bytes a millisecond


def _longest_silence(result: CallResult) -> float:
    """The longest the caller waited for or inside a reply, ms."""
    waits = [t.mouth_to_ear_ms or 0.0 for t in result.turns]
    return max(waits + [t.longest_freeze_ms for t in result.turns])


@pytest.mark.parametrize("spec", CONDITIONS)
def test_the_call_continues_and_every_turn_is_answered(calls: dict[str, Call], spec: str) -> None:
    result = calls[spec].result
    assert result.survived, result.failure
    first, second = result.turns
    # Talked over 600 ms into its reply and stopped: most of the question's echo was never
    # heard (played on through the barge-in, 0.8-1 of it would be).
    assert first.cut and first.barge_in_stop_ms is not None
    assert 0 < first.repeated < 0.6, first.repeated
    assert second.reply is not None and second.mouth_to_ear_ms is not None
    # How long the caller waited (printed above, and in bridge bench --impairment --uplink)
    # is a figure of this machine's timing, not asserted here.


@pytest.mark.parametrize("spec", CONDITIONS)
def test_no_caller_audio_is_lost(calls: dict[str, Call], spec: str) -> None:
    call = calls[spec]
    bridge = call.bridge
    assert bridge["caller_audio_lost_ms"] == 0 and bridge["caller_audio_dropped_ms"] == 0
    # Everything the bridge took from the room reached the model (the last partial append
    # may stay unsent). Without a reconnect this is exact; after one, audio re-sent from
    # the ring is counted again, so the check is as loose as what was re-sent.
    assert call.appended_ms >= bridge["caller_audio_ms"] - 20
    if bridge["caller_audio_resent_ms"] == 0:
        assert call.appended_ms <= bridge["caller_audio_ms"] + 20
    second = call.result.turns[1]
    assert second.resemblance is not None and second.resemblance >= 0.8  # the echo is whole


def test_the_link_was_impaired_as_asked(calls: dict[str, Call]) -> None:
    lossy, cut = calls["loss=10"].result, calls["outage=2@speaking"].result
    assert lossy.probe_up is not None and 0.04 < lossy.probe_up.loss < 0.18
    assert lossy.packets["up"]["tcp"] > 200 and lossy.packets["up"]["lost"] > 10
    assert cut.outage_at_s is not None and cut.packets["up"]["outage"] > 20
