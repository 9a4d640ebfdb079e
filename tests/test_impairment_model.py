"""The impairment model, the callers' script and player, and the turn figures, without I/O.

Seeded randomness; long simulated runs, so the statistics are tight: what the link's own
test (``tests/test_tun_link.py``) then checks end to end with probe packets.
"""

from __future__ import annotations

import math
import os
import random

import numpy as np
import pytest

from bridge.bench.impairment import parse_condition
from bridge.bench.impairment_report import rows, table
from bridge.local.caller_script import FRAME_S, Ear, Mouth, Turn, phrase
from bridge.local.heard import hear_turns
from bridge.local.impairment import Impairment, Outages, PathModel
from bridge.local.ws_caller import BrowserPlayer

RATE = 24_000


def run(imp: Impairment, times: np.ndarray, seed: int = 7) -> list[float | None]:
    model = PathModel(imp, random.Random(seed))
    return [model.admit(float(t)) for t in times]


def test_random_loss_is_the_share_asked_and_comes_alone() -> None:
    out = run(Impairment(loss=0.1), np.arange(200_000) * 0.001)
    lost = np.array([r is None for r in out])
    assert abs(lost.mean() - 0.1) < 0.003
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate(([0], lost, [0])))))[::2]
    assert abs(runs.mean() - 1 / 0.9) < 0.02  # independent losses: geometric runs


def test_gilbert_elliott_loss_keeps_the_share_in_bursts_of_the_mean_length() -> None:
    out = run(Impairment(loss=0.1, burst=3), np.arange(300_000) * 0.001)
    lost = np.array([r is None for r in out])
    assert abs(lost.mean() - 0.1) < 0.005
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate(([0], lost, [0])))))[::2]
    assert abs(runs.mean() - 3) < 0.1


def test_delay_is_added_to_every_packet() -> None:
    times = np.arange(1000) * 0.02
    out = run(Impairment(delay_ms=30), times)
    assert np.allclose(np.array(out, dtype=float) - times, 0.030)


@pytest.mark.parametrize("jitter_ms", [30.0, 100.0])
def test_jitter_is_the_standard_deviation_of_the_added_delay(jitter_ms: float) -> None:
    times = np.sort(np.random.default_rng(3).uniform(0, 3600, 200_000))
    out = np.array(run(Impairment(delay_ms=20, jitter_ms=jitter_ms), times), dtype=float)
    added = (out - times - 0.020) * 1000
    assert abs(added.std() - jitter_ms) < 0.05 * jitter_ms
    assert abs(added.mean() - 0.577 * jitter_ms) < 0.05 * jitter_ms
    assert np.median(added) == pytest.approx(0, abs=0.01 * jitter_ms)
    assert np.all(np.diff(out) >= 0)  # a queue: nothing overtakes


def test_jitter_does_not_depend_on_how_many_packets_are_sent() -> None:
    imp = Impairment(jitter_ms=50)
    sparse = np.arange(0, 3600, 0.02)  # an RTP flow
    dense = np.sort(np.random.default_rng(5).uniform(0, 3600, 900_000))  # bursty TCP
    for times in (sparse, dense):
        added = (np.array(run(imp, times), dtype=float) - times) * 1000
        assert abs(added.std() - 50) < 2.5 and abs(added.mean() - 28.9) < 2.5


def test_reordered_packets_are_overtaken_by_the_ones_behind() -> None:
    times = np.arange(100_000) * 0.005
    model = PathModel(Impairment(reorder=0.05, reorder_ms=20), random.Random(1))
    out = np.array([model.admit(float(t)) for t in times], dtype=float)
    arrival_order = np.argsort(out, kind="stable")
    late = np.sum(arrival_order < np.maximum.accumulate(arrival_order))
    assert abs(late / times.size - 0.05) < 0.005
    assert model.counters.reordered == pytest.approx(5000, rel=0.05)


def test_outages_lose_everything_only_while_they_last() -> None:
    outages = Outages()
    outages.add(10.0, 2.0)
    assert [outages.active(t) for t in (9.99, 10.0, 11.99, 12.0)] == [False, True, True, False]
    assert outages.spells == []


@pytest.mark.parametrize(
    "kwargs",
    [{"loss": 1.0}, {"loss": -0.1}, {"burst": 0.5}, {"delay_ms": -1}, {"reorder": 1.0}],
)
def test_impossible_impairments_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Impairment(**kwargs)


def test_conditions_parse_from_the_command_line() -> None:
    c = parse_condition("loss=10/3+jitter=30+up:reorder=1", delay_ms=25)
    assert c.up == Impairment(loss=0.1, burst=3, jitter_ms=30, delay_ms=25, reorder=0.01)
    assert c.down == Impairment(loss=0.1, burst=3, jitter_ms=30, delay_ms=25)
    assert c.outage is None
    outage = parse_condition("outage=2@listening").outage
    assert outage is not None and (outage.seconds, outage.during) == (2.0, "listening")
    assert parse_condition("clean", delay_ms=0).up == Impairment()
    assert parse_condition("delay=80").up.delay_ms == 80
    for bad in (
        "loss",
        "loss=x",
        "wobble=3",
        "outage=2@sleeping",
        "loss=100",
        "outage=-2@speaking",  # would never be active
        "outage=0@listening",
        "outage=nan@speaking",
        "up:outage=2@speaking",  # an outage cuts both ways
        "delay=nan",  # would stop the link's clock
        "delay=inf",  # would deliver nothing
        "jitter=inf",
    ):
        with pytest.raises(ValueError):
            parse_condition(bad)


# ---------------------------------------------------------------------- the callers


def drive(mouth: Mouth, heard_at: list[tuple[float, float]]) -> list[float]:
    """Run ``mouth`` with an ear that hears something loud during each (start, end)."""
    ear = Ear()
    frame_ms = FRAME_S
    loud = np.full(int(RATE * frame_ms), 1000, dtype=np.int16)
    t = 0.0
    while mouth.frame(ear) is not None:
        t += frame_ms
        if any(a <= t < b for a, b in heard_at):
            ear.hear(t - frame_ms, loud, RATE)
    return [t]


def test_the_mouth_waits_for_replies_and_talks_over_one_when_told() -> None:
    turns = (Turn("berlin", barge_in_ms=500), Turn("berlin"), Turn("berlin"))
    mouth = Mouth(turns, RATE, reply_timeout_s=3.0)
    # First reply heard 2.2-4.0 s (the caller talks over it at 2.7 s); the second's reply
    # 5.0-6.0 s; the third never comes.
    drive(mouth, [(2.2, 4.0), (4.9, 6.0)])
    first, second, third = mouth.records
    assert first.start == pytest.approx(0.3) and first.end == pytest.approx(0.3 + 1.47, abs=0.011)
    assert first.barged_in and first.reply_heard == pytest.approx(2.2, abs=0.011)
    assert second.start == pytest.approx(2.7, abs=0.011)  # 500 ms into the reply
    assert second.end is not None and second.reply_heard == pytest.approx(4.9, abs=0.011)
    assert third.start == pytest.approx(6.0 + 0.7 + 0.3, abs=0.021)  # quiet, then a pause
    assert third.unanswered and not third.barged_in
    kinds = [e["event"] for e in mouth.take_events()]
    assert kinds.count("said") == 3 and kinds[-1] == "done" and "unanswered" in kinds


def test_a_stalled_caller_pauses_instead_of_losing_its_place() -> None:
    mouth = Mouth((Turn("berlin"),), RATE)
    ear = Ear()
    said = [mouth.frame(ear) for _ in range(50)]  # 0.3 s quiet, then 0.2 s of speech
    said.append(mouth.pause(10))
    said += [mouth.frame(ear) for _ in range(20)]
    track = np.concatenate([s for s in said if s is not None])
    utterance = phrase("berlin", RATE)
    start = int(0.3 * RATE)
    assert np.array_equal(track[start : start + int(0.2 * RATE)], utterance[: int(0.2 * RATE)])
    assert not track[int(0.5 * RATE) : int(0.6 * RATE)].any()  # the stall: silence
    resumed = track[int(0.6 * RATE) :]
    assert np.array_equal(resumed, utterance[int(0.2 * RATE) : int(0.2 * RATE) + resumed.size])
    assert mouth.stalled_frames == 10 and mouth.now == pytest.approx(0.8)


def test_the_browser_player_plays_late_audio_late_and_stops_on_interrupt() -> None:
    player = BrowserPlayer()
    a = np.arange(1, 481, dtype=np.int16)
    player.write("item_1", a)
    first = player.render(240)
    assert np.array_equal(first, a[:240])
    assert np.array_equal(player.render(480), np.concatenate((a[240:], np.zeros(240, np.int16))))
    assert not player.render(240).any()  # dry: silence, nothing skipped
    player.write("item_1", a)  # arrives late: plays now, from its start
    assert np.array_equal(player.render(240), a[:240])
    assert player.interrupt() == ("item_1", 720)
    player.write("item_1", a)  # the rest of an interrupted item is ignored
    assert not player.render(240).any() and player.interrupt() is None
    player.write("item_2", a)
    assert np.array_equal(player.render(240), a[:240])


def test_turn_figures_from_recordings() -> None:
    utterance = phrase("correction", RATE)
    said = np.zeros(12 * RATE, dtype=np.int16)
    heard = np.zeros_like(said)
    u1 = (0.5, 0.5 + utterance.size / RATE)
    said[int(u1[0] * RATE) : int(u1[0] * RATE) + utterance.size] = utterance
    u2 = (6.0, 6.0 + utterance.size / RATE)
    said[int(u2[0] * RATE) : int(u2[0] * RATE) + utterance.size] = utterance
    # Reply 1: 600 ms after the utterance, with 1 s of it arriving 800 ms late (a freeze,
    # then the rest in a burst); reply 2: 400 ms after, cut 250 ms after the caller spoke.
    r1 = int((u1[1] + 0.6) * RATE)
    cut = RATE
    heard[r1 : r1 + cut] = utterance[:cut]
    rest = utterance[cut:]
    heard[r1 + cut + int(0.8 * RATE) : r1 + cut + int(0.8 * RATE) + rest.size] = rest
    r2 = int((u2[1] + 0.4) * RATE)
    peaks = np.abs(utterance[: utterance.size // 240 * 240].astype(int)).reshape(-1, 240).max(1)
    k = (80 + int(np.argmax(peaks[80:] > 5000)) + 1) * 240  # cut at a loud 10 ms, ~0.8 s in
    heard[r2 : r2 + k] = utterance[:k]
    u3 = ((r2 + k) / RATE - 0.25, 11.5)
    turns = hear_turns(said, heard, RATE, [u1, u2, u3], cut=[False, True, False])
    one, two, three = turns
    assert one.mouth_to_ear_ms == pytest.approx(600, abs=10)
    assert one.longest_freeze_ms >= 800
    assert one.resemblance == pytest.approx(1.0)
    late_s, worst = one.late(best_ms=600)
    assert worst == pytest.approx(800, abs=15)
    after = sum(0.1 for p in one.pieces if p.offset_s >= 1.0)  # voiced pieces of the rest
    assert late_s == pytest.approx(after)  # the burst after the freeze, nothing before it
    assert one.late(best_ms=400)[0] == pytest.approx(0.1 * len(one.pieces))  # all of it
    assert two.mouth_to_ear_ms == pytest.approx(400, abs=10) and two.cut
    assert two.barge_in_stop_ms == pytest.approx(250, abs=10) and two.resemblance is None
    assert three.reply is None and three.mouth_to_ear_ms is None
    assert math.isclose(two.late(400)[1], 0, abs_tol=15)


def test_the_report_reads_a_run() -> None:
    turn = hear_turns(
        np.zeros(RATE, np.int16), np.zeros(RATE, np.int16), RATE, [(0.1, 0.5)], cut=[False]
    )[0]
    document = {
        "uplink": False,
        "conditions": [{"name": "clean", "describe": "25 ms"}],
        "calls": [
            {
                "path": path,
                "condition": "clean",
                "survived": True,
                "turns": [turn.to_json()],
                "probe_up": {"loss": 0.0, "delay_p50_ms": 25.2, "delay_p99_ms": 26.0},
                "probe_down": {"loss": 0.0},
                "packets": {"up": {"udp": 90, "tcp": 10}, "down": {}},
                "caller": {"stalled_ms": 30.0},
            }
            for path in ("webrtc", "websocket")
        ],
    }
    [webrtc, websocket] = rows(document)
    assert webrtc["unanswered"] == 1 and webrtc["udp_share"] == 0.9
    assert webrtc["caller_stalled_ms"] == 30 and webrtc["attempts"] == 1
    assert "| 25 ms | direct WebSocket | 0.0 %, 25/26 | – |" in table(document)


def test_the_command_says_why_it_cannot_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bridge.cli import main

    assert main(["bench", "--impairment", "--condition", "loss=lots"]) == 2
    assert "loss=lots" in capsys.readouterr().err
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # not root: no namespaces, no TUN
    assert main(["bench", "--impairment", "--condition", "clean"]) == 2
    err = capsys.readouterr().err
    assert "bridge bench --impairment" in err and "need root" in err


@pytest.mark.parametrize("flags", [["--condition", "loss=10"], ["--uplink"], ["--paths", "webrtc"]])
def test_impairment_options_without_impairment_are_refused(
    flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from bridge.cli import main

    assert main(["bench", *flags]) == 2  # not ignored while the ordinary bench runs
    assert "only with --impairment" in capsys.readouterr().err
