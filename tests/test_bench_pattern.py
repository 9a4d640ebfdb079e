"""The benchmark caller: seeded, reactive, never digitally silent."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from bridge.bench.pattern import CallerScript, PatternOptions, bundled_utterances

RATE = 16_000
SPEECH = (np.full(RATE // 2, 8000, dtype=np.int16),)  # a 500 ms "utterance"


@dataclass
class Agent:
    speaking: bool = False
    quiet_s: float = float("inf")


def play(script: CallerScript, agent: Agent, frames: int) -> np.ndarray:
    return np.concatenate([script.next_frame(agent) for _ in range(frames)])


def test_the_same_seed_gives_the_same_caller() -> None:
    options = PatternOptions(seed=7)
    a = play(CallerScript(RATE, options, SPEECH), Agent(), 300)
    b = play(CallerScript(RATE, options, SPEECH), Agent(), 300)
    c = play(CallerScript(RATE, PatternOptions(seed=8), SPEECH), Agent(), 300)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_frames_are_ten_milliseconds_and_never_contain_an_exact_zero() -> None:
    script = CallerScript(RATE, PatternOptions(seed=1), SPEECH)
    frames = [script.next_frame(Agent()) for _ in range(500)]
    assert {f.size for f in frames} == {RATE // 100}
    audio = np.concatenate(frames)
    assert np.count_nonzero(audio) == audio.size
    assert np.abs(audio).max() > 1000  # it did speak
    floor = audio[np.abs(audio) < 100]
    assert floor.size and np.abs(floor).max() <= 6  # and the rest is a -77 dBFS floor


def test_with_no_reply_the_caller_speaks_again_after_the_timeout() -> None:
    options = PatternOptions(seed=1, reply_timeout_s=1.0, first_pause_s=(0, 0), pause_s=(0, 0))
    script = CallerScript(RATE, options, SPEECH)
    play(script, Agent(), 200)  # 0.5 s of speech, 1 s of waiting, then speak again
    assert script.counts.utterances == 2
    assert script.counts.unanswered == 1


def test_it_talks_over_a_reply_when_the_dice_say_barge_in() -> None:
    options = PatternOptions(
        seed=3, barge_in_probability=1.0, barge_in_after_s=(0.2, 0.2), first_pause_s=(0, 0)
    )
    script = CallerScript(RATE, options, SPEECH)
    agent = Agent()
    play(script, agent, 60)  # its utterance
    assert script.state == "await_reply"
    agent.speaking, agent.quiet_s = True, 0.0
    play(script, agent, 10)
    assert script.state == "barge_wait"
    play(script, agent, 15)
    assert script.speaking and script.counts.barge_ins == 1


def test_otherwise_it_waits_for_the_reply_to_end_then_pauses() -> None:
    options = PatternOptions(
        seed=3, barge_in_probability=0.0, pause_s=(0.5, 0.5), first_pause_s=(0, 0)
    )
    script = CallerScript(RATE, options, SPEECH)
    agent = Agent()
    play(script, agent, 60)
    agent.speaking, agent.quiet_s = True, 0.0
    play(script, agent, 100)
    assert script.state == "listening"
    agent.speaking, agent.quiet_s = False, 0.5
    play(script, agent, 1)
    assert script.state == "pause"
    play(script, agent, 52)
    assert script.speaking and script.counts.utterances == 2 and script.counts.barge_ins == 0


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="barge_in_probability"):
        PatternOptions(barge_in_probability=1.5)
    with pytest.raises(ValueError, match="pause_s"):
        PatternOptions(pause_s=(2.0, 1.0))


def test_the_bundled_utterances_are_speech_at_the_requested_rate() -> None:
    question, correction = bundled_utterances(48_000)
    assert question.size == pytest.approx(3.65 * 48_000, rel=0.01)
    assert correction.size == pytest.approx(2.35 * 48_000, rel=0.01)
    assert np.sqrt(np.mean(question.astype(np.float64) ** 2)) > 1000
