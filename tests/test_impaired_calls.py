"""Short calls behind the impaired link, on both paths, measured from the callers' recordings.

A caller namespace sits behind the user-space link (``bridge.local.tun_link``) from the run's
namespace, where the LiveKit server, ``bridge start`` and the simulators are. Each path gets
two conditions, 10 % loss and a 2 s outage while the caller hears a reply, with the short
script (a reply talked over, then one heard out):

- ``webrtc``: a LiveKit participant (Opus over WebRTC through the link) and ``bridge start``;
- ``websocket``: the official SDK's client straight to ``bridge sim`` through the link, with
  a browser's playout.

What is checked is that the measures work and what each path does by construction: the
media really crossed the link (ICE over it: the UDP packets it counted), the link did what
was asked during the call (its probes), every figure is read, TCP delivered every byte of
every reply, a WebRTC reply loses what the outage swallowed. How the paths compare is the
benchmark's (``bridge bench --impairment``), not a test's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from bridge.bench.impairment import parse_condition
from bridge.local.caller_script import SHORT_TURNS
from bridge.local.impaired_call import CallResult, Hop, Reach, run_call
from bridge.local.livekit_server import Credentials
from bridge.local.tun_link import Link, caller_link
from tests.impairedkit import namespace, sim_in, webrtc_reach
from tests.realroom import SimProcess, Worker, clean_env, require_livekit

CONDITIONS = ("loss=10", "outage=2@listening")


@pytest.fixture(scope="module")
def hop() -> Iterator[Hop]:
    require_livekit()
    from tests import conftest

    assert conftest.NETNS is not None
    with namespace("caller") as caller:
        with Link(caller_link(os.getpid(), caller, conftest.NETNS)) as link:
            yield Hop(link, caller, conftest.NETNS)


@pytest.fixture(scope="module")
def direct_sim(hop: Hop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    """A simulator the caller's own socket reaches through the link."""
    with sim_in(hop.far, hop.far.links[0].hosts[0], tmp_path_factory.mktemp("direct")) as sim:
        yield sim


@pytest.fixture(scope="module")
def calls(
    hop: Hop,
    livekit: Credentials,
    bridge_worker: Worker,
    direct_sim: SimProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[tuple[str, str], CallResult]:
    work = tmp_path_factory.mktemp("impaired-calls")
    results = {}
    for spec in CONDITIONS:
        condition = parse_condition(spec)
        for path in ("webrtc", "websocket"):
            reach = (
                webrtc_reach(livekit, "bridge-test")
                if path == "webrtc"
                else Reach("websocket", direct_sim.url)
            )
            result = run_call(
                hop.near,
                hop,
                reach,
                condition,
                work / f"{path}-{spec.replace('=', '-').replace('@', '-')}",
                turns=SHORT_TURNS,
                env=clean_env(),
            )
            print(f"\n{path} {spec}: {[t.to_json() for t in result.turns]}")
            results[(path, spec)] = result
    return results


@pytest.mark.parametrize("spec", CONDITIONS)
@pytest.mark.parametrize("path", ["webrtc", "websocket"])
def test_the_call_survives_and_every_figure_is_read(
    calls: dict[tuple[str, str], CallResult], path: str, spec: str
) -> None:
    result = calls[(path, spec)]
    assert result.survived, result.failure
    assert len(result.turns) == 2
    first, second = result.turns
    assert first.mouth_to_ear_ms is not None and first.mouth_to_ear_ms > 0
    # Talked over 600 ms into its reply (the question's echo, 3.65 s) and stopped: most of
    # it was never heard (a reply played on through the barge-in repeats 0.8-1 of it; to
    # reach 0.6 here the stop would take 1.6 s, three lost retransmissions in a row).
    assert first.cut and first.barge_in_stop_ms is not None and first.barge_in_stop_ms > 0
    assert 0 < first.repeated < 0.6, first.repeated
    assert second.reply is not None and second.resemblance is not None
    # The correction's echo, recognisably (an outage while it plays swallows part of it:
    # test_a_webrtc_reply_loses_what_the_outage_swallowed).
    assert second.resemblance >= (0.5 if spec == "loss=10" else 0.01), second.resemblance
    assert result.caller["path"] == path


@pytest.mark.parametrize("path", ["webrtc", "websocket"])
def test_the_link_did_what_was_asked_during_the_call(
    calls: dict[tuple[str, str], CallResult], path: str
) -> None:
    lossy = calls[(path, "loss=10")]
    assert lossy.probe_up is not None and lossy.probe_down is not None
    for probe in (lossy.probe_up, lossy.probe_down):
        assert 0.04 < probe.loss < 0.18  # ~500 probes a way
        assert probe.delay_p50_ms >= 25  # never early (how close: tests/test_tun_link.py)
    cut = calls[(path, "outage=2@listening")]
    assert cut.outage_at_s is not None and cut.probe_up is not None
    lost_s = (cut.probe_up.sent - cut.probe_up.received) / 50
    assert 1.6 <= lost_s <= 2.5  # the outage (a stalled probe sender blurs its edges), no loss else


def test_webrtc_media_crossed_the_link_over_udp(calls: dict[tuple[str, str], CallResult]) -> None:
    for spec in CONDITIONS:
        result = calls[("webrtc", spec)]
        assert result.probe_up is not None and result.probe_down is not None
        media_up = result.packets["up"]["udp"] - result.probe_up.sent
        media_down = result.packets["down"]["udp"] - result.probe_down.sent
        # ICE chose the path through the link (Opus with DTX: fewer packets in silences)
        assert media_up > 100 and media_down > 100


def test_the_websocket_caller_used_tcp_only(calls: dict[tuple[str, str], CallResult]) -> None:
    for spec in CONDITIONS:
        result = calls[("websocket", spec)]
        assert result.probe_up is not None
        assert result.packets["up"]["udp"] == result.probe_up.sent  # the probes, nothing else
        assert result.packets["up"]["tcp"] > 200


def test_tcp_delivers_every_reply_whole(calls: dict[tuple[str, str], CallResult]) -> None:
    for spec in CONDITIONS:
        second = calls[("websocket", spec)].turns[1]
        assert second.resemblance is not None and second.resemblance >= 0.9


def test_a_webrtc_reply_loses_what_the_outage_swallowed(
    calls: dict[tuple[str, str], CallResult],
) -> None:
    reply = calls[("webrtc", "outage=2@listening")].turns[1]
    assert reply.resemblance is not None and reply.resemblance <= 0.7
