"""The measurement functions, checked on fakes whose true figures are known."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from bridge.bench.resampling_measure import (
    Verdict,
    Withheld,
    band_edge_hz,
    choose,
    compare_push_costs,
    flatness_tones,
    frame_bounds,
    judge,
    noise,
    push_cost_us,
    resample_all,
    spurious_level,
    spurious_tones,
    tone,
    tone_gain_db,
    withheld_delay,
)
from bridge.errors import ConfigError
from resampling import Resampler


class DelayLine:
    """Same-rate stream that always holds back the last ``delay`` samples, scaled by ``gain``."""

    def __init__(self, delay: int, gain: float = 1.0) -> None:
        self._delay = delay
        self._held = np.empty(0, np.int16)
        self._gain = gain

    def push(self, pcm: NDArray[np.int16], /) -> NDArray[np.int16]:
        joined = np.concatenate([self._held, pcm])
        ready = max(len(joined) - self._delay, 0)
        out, self._held = joined[:ready], joined[ready:]
        return self._scale(out)

    def flush(self) -> NDArray[np.int16]:
        out, self._held = self._held, self._held[:0]
        return self._scale(out)

    def _scale(self, samples: NDArray[np.int16]) -> NDArray[np.int16]:
        scaled: NDArray[np.int16] = np.rint(samples * self._gain).astype(np.int16)
        return scaled


class Blocky:
    """Same-rate stream that releases output only in blocks of ``block`` samples."""

    def __init__(self, block: int) -> None:
        self._block = block
        self._pending = np.empty(0, np.int16)

    def push(self, pcm: NDArray[np.int16], /) -> NDArray[np.int16]:
        self._pending = np.concatenate([self._pending, pcm])
        ready = len(self._pending) // self._block * self._block
        out, self._pending = self._pending[:ready], self._pending[ready:]
        return out

    def flush(self) -> NDArray[np.int16]:
        out, self._pending = self._pending, self._pending[:0]
        return out


class Decimator:
    """48 kHz -> 24 kHz by dropping every other sample: no filter, so everything aliases."""

    def push(self, pcm: NDArray[np.int16], /) -> NDArray[np.int16]:
        return pcm[::2].copy()

    def flush(self) -> NDArray[np.int16]:
        return np.empty(0, np.int16)


def test_a_constant_delay_line_withholds_exactly_its_delay() -> None:
    result = withheld_delay(lambda i, o: DelayLine(120), 24_000, seconds=2.0)
    assert result == Withheld(mean_ms=5.0, max_ms=5.0, pushes=200)


def test_block_output_is_caught_by_the_mean_and_the_max() -> None:
    # 10 ms pushes (240) into 900-sample blocks: withheld cycles 240, 480, 720, 60, 300, ...,
    # 840, ..., 0 (every 15 pushes): mean 420 samples, max 840.
    result = withheld_delay(lambda i, o: Blocky(900), 24_000, seconds=3.0)
    assert result.max_ms == pytest.approx(840 / 24)
    assert result.mean_ms == pytest.approx(420 / 24)
    twenty = withheld_delay(lambda i, o: Blocky(900), 24_000, frame_ms=20, seconds=3.0)
    assert twenty.pushes == 150


def test_tone_gain_reads_back_a_known_gain() -> None:
    for gain in (1.0, 0.5, 0.1):

        def scaled(in_rate: int, out_rate: int, gain: float = gain) -> DelayLine:
            return DelayLine(37, gain)

        measured = tone_gain_db(scaled, 24_000, 3_000.0)
        assert measured == pytest.approx(20 * np.log10(gain), abs=0.01)


def test_spurious_level_sees_the_alias_of_an_unfiltered_decimator() -> None:
    assert spurious_level(lambda i, o: Decimator(), 48_000, 15_000.0).db == pytest.approx(
        0.0, abs=0.1
    )


def test_a_clean_path_shows_only_rounding_and_silence_shows_the_resolution_bound() -> None:
    clean = spurious_level(lambda i, o: DelayLine(10), 24_000, 3_000.0)
    assert clean.resolved and clean.db < -95.0
    silent = spurious_level(lambda i, o: DelayLine(10, 0.0), 24_000, 3_000.0)
    assert not silent.resolved and silent.db == pytest.approx(-92.4, abs=0.1)


def test_tones_must_be_representable() -> None:
    with pytest.raises(ConfigError):
        tone_gain_db(lambda i, o: DelayLine(0), 8_000, 5_000.0)
    with pytest.raises(ConfigError):
        tone_gain_db(lambda i, o: Decimator(), 48_000, 15_000.0)
    with pytest.raises(ConfigError):
        tone_gain_db(lambda i, o: DelayLine(0), 24_000, 1_000.0, seconds=0.2)


def test_frames_alternate_when_a_frame_is_not_whole_samples() -> None:
    bounds = frame_bounds(22_050, 10, 2_205)
    assert np.diff(bounds).tolist() == [220, 221] * 5
    assert frame_bounds(48_000, 10, 1_000) == [0, 480, 960, 1_000]
    with pytest.raises(ConfigError):
        frame_bounds(48_000, 0, 100)


def test_resample_all_returns_everything() -> None:
    signal = noise(48_000, 0.5)
    out = resample_all(Resampler(48_000, 24_000), signal, 48_000)
    assert len(out) == 12_000
    assert tone(8_000, 1_000.0, 0.5).dtype == np.int16


def test_push_costs_are_reported_per_candidate() -> None:
    calls: list[int] = []
    frames = list(range(20))
    cost = push_cost_us(calls.append, frames)
    assert cost > 0.0 and len(calls) == 20  # every frame pushed once, and it took time
    costs = compare_push_costs({"a": (calls.append, frames), "b": (len, ["x"])}, rounds=3)
    assert set(costs) == {"a", "b"} and len(calls) == 80


def test_the_band_edge_and_the_tones_follow_the_rates() -> None:
    assert band_edge_hz(48_000, 24_000) == 10_000.0
    assert band_edge_hz(8_000, 24_000) == 3_400.0
    assert band_edge_hz(16_000, 24_000) == 6_800.0
    assert flatness_tones(8_000, 24_000) == [1_000.0, 2_000.0, 3_000.0, 3_400.0]
    assert spurious_tones(48_000, 24_000) == [15_000.0, 20_000.0]
    assert spurious_tones(32_000, 24_000) == [15_000.0]
    assert spurious_tones(24_000, 8_000) == [5_000.0, 6_667.0, 10_000.0, 10_800.0]
    assert spurious_tones(96_000, 24_000) == [15_000.0, 20_000.0, 30_000.0, 42_000.0, 43_200.0]
    assert spurious_tones(25_000, 24_000) == [12_250.0]
    assert spurious_tones(16_000, 24_000) == [6_800.0]


def test_the_rule_picks_the_least_worst_case_delay_among_modes_that_pass() -> None:
    verdicts = [
        ("fast but aliasing", Verdict(0.0, -3.0, 0.0)),
        ("fast but dull", Verdict(5.4, -100.0, 20.0)),
        ("slow", Verdict(0.0, -100.0, 39.0)),
        ("chosen", Verdict(0.1, -95.0, 5.0)),
    ]
    assert choose(verdicts) == "chosen"
    assert choose(verdicts[:2]) is None


def test_judge_fails_an_aliasing_stream_and_passes_a_clean_one() -> None:
    assert not judge(lambda i, o: Decimator(), 48_000, 24_000, seconds=1.0).passes
    clean = judge(lambda i, o: DelayLine(24), 24_000, 24_000, seconds=1.0)
    assert clean.passes and clean.worst_delay_ms == pytest.approx(1.0)
