"""The streaming resampler: chunked == one-shot, exact counts, delay and quality at the default,
bad input, the same-rate path, downmix, handover and reset."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numpy.typing import NDArray

from bridge.bench.resampling_measure import judge, spurious_level, tone_gain_db, withheld_delay
from resampling import COMMON_RATES, HQ, LQ, MQ, QQ, VHQ, VR, Mode, Resampler, default_mode
from resampling.errors import (
    InvalidParameter,
    InvalidState,
    MalformedAudio,
    ResamplingError,
    UnsupportedFormat,
)
from resampling.pcm import Pcm
from tests.resampling_support import chunked, exact_count, noise, one_shot

CHUNK_SIZES = [1, 7, 160, 441, 480, 509, 960]


def default_factory(in_rate: int, out_rate: int) -> Resampler:
    return Resampler(in_rate, out_rate)


# -- chunked output equals one-shot soxr output ---------------------------------------------


@pytest.mark.parametrize("size", CHUNK_SIZES)
@pytest.mark.parametrize(
    ("in_rate", "out_rate", "mode"),
    [
        (48_000, 24_000, VR),
        (44_100, 24_000, VR),
        (16_000, 24_000, VR),
        (8_000, 24_000, VR),
        (24_000, 48_000, VR),
        (48_000, 24_000, HQ),
        (44_100, 24_000, LQ),
        (16_000, 24_000, MQ),
    ],
)
def test_chunked_output_equals_one_shot_within_one_lsb(
    size: int, in_rate: int, out_rate: int, mode: Mode
) -> None:
    signal = noise(in_rate // 5 + 13, seed=size)  # 0.2 s and an awkward remainder
    ours = chunked(Resampler(in_rate, out_rate, quality=mode), signal, [size])
    reference = one_shot(signal, in_rate, out_rate, mode)
    assert len(ours) == exact_count(len(signal), in_rate, out_rate)
    assert abs(len(reference) - len(ours)) <= 1  # libsoxr's own count wobbles by one
    common = min(len(ours), len(reference))
    assert np.max(np.abs(ours[:common].astype(np.int32) - reference[:common])) <= 1


@settings(derandomize=True, max_examples=60, deadline=None)
@given(
    data=st.data(),
    rates=st.sampled_from(
        [(rate, 24_000) for rate in COMMON_RATES if rate != 24_000]
        + [(8_001, 24_000), (37_800, 24_000), (191_999, 24_000)]  # any rate in range
        + [(24_000, 48_000), (24_000, 16_000), (24_000, 8_000)]
    ),
    mode=st.sampled_from([VR, QQ, LQ, MQ, HQ, VHQ]),
    length=st.integers(min_value=0, max_value=6_000),
)
def test_any_split_gives_the_one_shot_output_and_the_exact_count(
    data: st.DataObject, rates: tuple[int, int], mode: Mode, length: int
) -> None:
    in_rate, out_rate = rates
    signal = noise(length, seed=length)
    cuts = sorted(
        data.draw(st.lists(st.integers(min_value=0, max_value=length), max_size=12), "cuts")
    )
    resampler = Resampler(in_rate, out_rate, quality=mode)
    parts = [resampler.push(piece) for piece in np.split(signal, cuts)]
    parts.append(resampler.flush())
    ours = np.concatenate(parts)
    assert len(ours) == resampler.samples_out == exact_count(length, in_rate, out_rate)
    reference = one_shot(signal, in_rate, out_rate, mode)
    common = min(len(ours), len(reference))
    assert abs(len(reference) - len(ours)) <= 1
    if common:
        assert np.max(np.abs(ours[:common].astype(np.int32) - reference[:common])) <= 1
    # The last samples too: they are what libsoxr makes of the signal followed by silence
    # (where its own flush stops one short, ours does not make the missing one up).
    padded = one_shot(np.r_[signal, np.zeros(64, np.int16)], in_rate, out_rate, mode)
    if len(ours):
        assert np.max(np.abs(ours.astype(np.int32) - padded[: len(ours)])) <= 1


def test_output_is_deterministic() -> None:
    """Unlike libsoxr's int16 path (TPDF dither seeded from the clock), two runs agree."""
    signal = noise(48_000)
    first = chunked(Resampler(48_000, 24_000, quality=HQ), signal, [480])
    second = chunked(Resampler(48_000, 24_000, quality=HQ), signal, [480])
    assert np.array_equal(first, second)


# -- exact sample accounting ------------------------------------------------------------------


def count_after_flush(resampler: Resampler, frame: NDArray[np.int16], pushes: int) -> int:
    total = 0
    push = resampler.push
    for _ in range(pushes):
        total += len(push(frame))
    return total + len(resampler.flush())


def test_600_s_of_48k_in_480_sample_frames_gives_exactly_14_400_000_samples() -> None:
    resampler = Resampler(48_000, 24_000)
    frames = noise(480 * 100).reshape(100, 480)
    total = 0
    for i in range(60_000):
        total += len(resampler.push(frames[i % 100]))
    total += len(resampler.flush())
    assert total == resampler.samples_out == 14_400_000
    assert resampler.samples_in == 28_800_000


@pytest.mark.parametrize(
    ("in_rate", "channels", "frame"),
    [
        (44_100, 1, 441),
        (22_050, 1, 441),  # 20 ms: 10 ms at 22.05 kHz is not whole samples
        (16_000, 1, 160),
        (8_000, 1, 80),
        (48_000, 2, 960),  # 480 stereo frames, interleaved
        (16_000, 2, 320),
    ],
)
def test_600_s_at_other_rates_and_in_stereo_is_exact(
    in_rate: int, channels: int, frame: int
) -> None:
    resampler = Resampler(in_rate, 24_000, channels)
    pushes = 600 * in_rate * channels // frame
    assert count_after_flush(resampler, noise(frame, seed=in_rate), pushes) == 14_400_000
    assert resampler.samples_in == 600 * in_rate


@pytest.mark.parametrize("mode", [VR, QQ, LQ, HQ])
@pytest.mark.parametrize("in_rate", [8_000, 22_050, 44_100, 48_000])
def test_count_is_the_ceiling_for_awkward_lengths(mode: Mode, in_rate: int) -> None:
    for length in (1, 2, 3, 439, 441, 7_893, 10_007):
        resampler = Resampler(in_rate, 24_000, quality=mode)
        out = chunked(resampler, noise(length, seed=length), [97])
        assert len(out) == exact_count(length, in_rate, 24_000) == resampler.expected_out


def test_counters_and_withheld_follow_the_stream() -> None:
    resampler = Resampler(48_000, 24_000, 2)
    frame = noise(960)
    resampler.push(frame)
    assert resampler.samples_in == 480
    assert resampler.samples_out + resampler.withheld == pytest.approx(240)
    assert resampler.withheld_ms == pytest.approx(resampler.withheld / 24)
    resampler.flush()
    assert -1.0 < resampler.withheld <= 0.0  # the ceiling: under one sample over the exact
    assert resampler.finished


# -- delay and quality at the default ------------------------------------------------------


def test_default_never_withholds_more_than_6_ms_at_48k_over_a_long_run() -> None:
    result = withheld_delay(default_factory, 48_000, frame_ms=10, seconds=120.0)
    assert result.pushes == 12_000
    assert result.max_ms <= 6.0
    # The resampler's own property agrees with the measurement, push after push.
    resampler = Resampler(48_000, 24_000)
    frame = noise(480)
    worst = 0.0
    for _ in range(3_000):
        resampler.push(frame)
        worst = max(worst, resampler.withheld_ms)
    assert worst == pytest.approx(result.max_ms)


@pytest.mark.parametrize("freq", [3_000.0, 10_000.0])
def test_default_passes_3_and_10_khz_within_half_a_db(freq: float) -> None:
    assert abs(tone_gain_db(default_factory, 48_000, freq)) <= 0.5


@pytest.mark.parametrize("freq", [15_000.0, 20_000.0])
def test_default_keeps_15_and_20_khz_aliases_below_minus_80_db(freq: float) -> None:
    assert spurious_level(default_factory, 48_000, freq).db < -80.0


@pytest.mark.parametrize("in_rate", [8_000, 16_000, 22_050, 32_000, 44_100])
def test_default_meets_the_bar_at_the_other_rates(in_rate: int) -> None:
    verdict = judge(default_factory, in_rate, 24_000, seconds=5.0)
    assert verdict.passes, verdict
    expected_ms = 240 / in_rate * 1000  # the vr engine holds 240 input samples
    assert verdict.worst_delay_ms == pytest.approx(expected_ms, abs=0.05)


def test_qq_is_rejected_by_the_bar_because_it_aliases() -> None:
    """The bar can fail: QQ decimates without a filter, so 15 kHz comes back at 0 dB."""
    assert spurious_level(lambda i, o: Resampler(i, o, quality=QQ), 48_000, 15_000.0).db > -3.0


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (b"\x01\x02\x03", "not a whole number of int16"),
        (bytearray(5), "not a whole number of int16"),
        (np.zeros(480, np.float32), "must be int16"),
        (np.zeros(480, np.int32), "must be int16"),
        (np.zeros(480, ">i2"), "must be int16"),
        (np.zeros(481, np.int16), "do not divide into frames of 2 channels"),
        (b"\x00" * 962, "do not divide into frames of 2 channels"),
        (np.zeros((240, 3), np.int16), "shape"),
        (np.zeros(10, np.float32).data, "not int16 PCM"),
        (np.zeros(20, np.int16).data[::2], "unreadable"),
        ([0, 1, 2, 3], "expected bytes"),
    ],
)
def test_bad_input_raises_and_loses_nothing(bad: object, words: str) -> None:
    signal = noise(9_600, seed=3)
    reference = chunked(Resampler(48_000, 24_000, 2), signal, [960])
    resampler = Resampler(48_000, 24_000, 2)
    parts = [resampler.push(signal[:4_800])]
    with pytest.raises(MalformedAudio, match=words) as caught:
        resampler.push(bad)  # type: ignore[arg-type]
    assert isinstance(caught.value, ResamplingError)
    assert resampler.samples_in == 2_400
    parts.append(resampler.push(signal[4_800:]))
    parts.append(resampler.flush())
    assert np.array_equal(np.concatenate(parts), reference)


@pytest.mark.parametrize("rate", [7_999, 0, -8_000, 192_001, 384_000, 44_100.0])
def test_unsupported_rates_are_refused(rate: int) -> None:
    with pytest.raises(UnsupportedFormat, match=f"unsupported sample rate {rate!r}"):
        Resampler(rate, 24_000)
    with pytest.raises(UnsupportedFormat):
        Resampler(48_000, rate)


@pytest.mark.parametrize("channels", [0, 9])
def test_unsupported_channel_counts_are_refused(channels: int) -> None:
    with pytest.raises(UnsupportedFormat, match="channel count"):
        Resampler(48_000, 24_000, channels)


def test_quality_must_be_a_mode() -> None:
    with pytest.raises(InvalidParameter):
        Resampler(48_000, 24_000, quality="HQ")  # type: ignore[arg-type]


def test_push_after_flush_is_a_bug() -> None:
    resampler = Resampler(48_000, 24_000)
    resampler.push(noise(480))
    tail = resampler.flush()
    assert len(tail) > 0
    assert len(resampler.flush()) == 0  # a second flush has nothing left
    with pytest.raises(InvalidState):
        resampler.push(noise(480))


# -- input forms, empty input, ownership ----------------------------------------------------


def test_bytes_memoryview_arrays_and_2d_arrays_give_the_same_output() -> None:
    signal = noise(4_800, seed=5)
    reference = chunked(Resampler(48_000, 24_000, 2), signal, [960])
    forms: list[Callable[[NDArray[np.int16]], Pcm]] = [
        lambda piece: piece.tobytes(),
        lambda piece: bytearray(piece.tobytes()),
        lambda piece: memoryview(piece.tobytes()),
        lambda piece: memoryview(bytearray(piece.tobytes())).cast("h"),
        lambda piece: piece.reshape(-1, 2),
        lambda piece: piece,
    ]
    for form in forms:
        resampler = Resampler(48_000, 24_000, 2)
        parts = [resampler.push(form(signal[i : i + 960])) for i in range(0, 4_800, 960)]
        parts.append(resampler.flush())
        assert np.array_equal(np.concatenate(parts), reference)


def test_empty_input_gives_empty_output_and_changes_nothing() -> None:
    resampler = Resampler(48_000, 24_000, 2)
    for empty in (b"", np.empty(0, np.int16), memoryview(b"")):
        out = resampler.push(empty)
        assert out.dtype == np.int16 and out.shape == (0,)
    assert resampler.samples_in == resampler.samples_out == 0
    assert len(resampler.flush()) == 0


def test_output_never_aliases_the_callers_buffer() -> None:
    for in_rate in (24_000, 48_000):
        frame = noise(480)
        out = Resampler(in_rate, 24_000).push(frame)
        assert not np.shares_memory(out, frame)
        assert out.flags.writeable


# -- same-rate path and downmix -------------------------------------------------------------


def test_same_rate_mono_passes_samples_through_untouched() -> None:
    signal = noise(24_000, seed=9)
    resampler = Resampler(24_000, 24_000)
    out = chunked(resampler, signal, [240, 7, 1])
    assert np.array_equal(out, signal)
    assert resampler.withheld == 0


def test_same_rate_stereo_is_the_rounded_average() -> None:
    left = np.array([1, 3, -3, 32767, -32768, 100, -1, 0], np.int16)
    right = np.array([2, 4, -4, 32767, -32768, -100, 0, 1], np.int16)
    interleaved = np.stack([left, right], axis=1).reshape(-1)
    out = Resampler(24_000, 24_000, 2).push(interleaved)
    # Half-way cases round to even: 1.5 -> 2, 3.5 -> 4, -3.5 -> -4, -0.5 -> -0, 0.5 -> 0.
    assert out.tolist() == [2, 4, -4, 32767, -32768, 0, 0, 0]


def test_stereo_downmix_equals_resampling_the_average() -> None:
    """Averaging happens before resampling, in float, with no rounding in between."""
    left = noise(9_600, seed=1)
    right = noise(9_600, seed=2)
    interleaved = np.stack([left, right], axis=1).reshape(-1)
    stereo = chunked(Resampler(48_000, 24_000, 2), interleaved, [960])
    average = (left.astype(np.float64) + right) / 2
    reference = one_shot(average.astype(np.float32), 48_000, 24_000, VR)
    assert np.max(np.abs(stereo.astype(np.int32) - reference)) <= 1


def test_identical_channels_give_the_mono_output() -> None:
    mono = noise(9_600, seed=4)
    stereo = np.repeat(mono, 2)
    three = np.repeat(mono, 3)
    reference = chunked(Resampler(48_000, 24_000, 1), mono, [480])
    assert np.array_equal(chunked(Resampler(48_000, 24_000, 2), stereo, [960]), reference)
    assert np.array_equal(chunked(Resampler(48_000, 24_000, 3), three, [1440]), reference)


def test_output_clips_instead_of_wrapping() -> None:
    """A full-scale square wave overshoots in the filter; int16 output saturates."""
    square = np.tile(np.r_[np.full(24, 32767), np.full(24, -32768)].astype(np.int16), 200)
    out = chunked(Resampler(48_000, 24_000), square, [480])
    assert out.max() == 32767 and out.min() == -32768
    wraps = np.abs(np.diff(out.astype(np.int32))) > 40_000
    assert not wraps[100:-100].any()


# -- handover ---------------------------------------------------------------------------------


def cosine(rate: int, start_s: float, seconds: float, freq: float = 200.0) -> NDArray[np.int16]:
    """A continuous 200 Hz cosine at 20000: its peak lands on every whole 5 ms."""
    t = start_s + np.arange(round(rate * seconds)) / rate
    wave: NDArray[np.int16] = np.rint(20_000 * np.cos(2 * np.pi * freq * t)).astype(np.int16)
    return wave


NATURAL_STEP = 20_000 * 2 * math.pi * 200 / 24_000  # the cosine's own largest step at 24 kHz


def play_across_a_switch(
    first_rate: int, second_rate: int, mode: Mode | None, fade_ms: float | None
) -> tuple[NDArray[np.int16], int, Resampler, Resampler]:
    """0.5 s at ``first_rate``, then (at a peak) 0.5 s at ``second_rate`` of the same cosine."""
    first = Resampler(first_rate, 24_000, quality=mode)
    a = cosine(first_rate, 0.0, 0.5)
    parts = [first.push(a[i : i + first_rate // 100]) for i in range(0, len(a), first_rate // 100)]
    if fade_ms is None:  # the naive way: end one stream, start another
        parts.append(first.flush())
        second = Resampler(second_rate, 24_000, quality=mode)
    else:
        tail, second = first.handover(second_rate, quality=mode, fade_ms=fade_ms)
        parts.append(tail)
    b = cosine(second_rate, 0.5, 0.5)
    step = second_rate // 100
    parts += [second.push(b[i : i + step]) for i in range(0, len(b), step)]
    parts.append(second.flush())
    return np.concatenate(parts), first.samples_out, first, second


@pytest.mark.parametrize(
    ("first_rate", "second_rate", "mode"),
    [
        (48_000, 16_000, None),  # defaults: a 5 ms tail, faded
        (16_000, 48_000, None),  # a 15 ms tail, the fade covers its end
        (24_000, 48_000, None),  # same-rate first: no tail at all, the last sample is held
        (48_000, 44_100, QQ),  # QQ withholds ~0: held as well
        (44_100, 8_000, HQ),  # block-wise tail of any length
    ],
)
def test_handover_leaves_no_click_at_the_seam(
    first_rate: int, second_rate: int, mode: Mode | None
) -> None:
    out, seam, first, second = play_across_a_switch(first_rate, second_rate, mode, 5.0)
    around = out[seam - 600 : seam + 600].astype(np.int32)
    assert np.max(np.abs(np.diff(around))) <= 1.1 * NATURAL_STEP
    assert abs(int(out[seam - 1])) <= 1  # the fade-out reaches zero
    assert abs(int(out[seam])) <= 1  # the fade-in starts from zero
    # Per-stream accounting adds up to the output timeline.
    assert first.samples_out + second.samples_out == len(out)
    assert first.samples_out >= exact_count(first.samples_in, first_rate, 24_000)
    assert first.samples_out <= exact_count(first.samples_in, first_rate, 24_000) + 120
    assert second.samples_out == exact_count(second.samples_in, second_rate, 24_000)


def test_without_handover_the_seam_clicks() -> None:
    """The check above can fail: cutting one stream and starting another jumps >3x the sine."""
    out, seam, _, _ = play_across_a_switch(48_000, 16_000, None, None)
    around = out[seam - 600 : seam + 600].astype(np.int32)
    assert np.max(np.abs(np.diff(around))) > 3 * NATURAL_STEP


def test_handover_with_no_fade_is_a_plain_flush() -> None:
    signal = noise(4_800)
    plain = Resampler(48_000, 24_000)
    plain.push(signal)
    expected = plain.flush()
    resampler = Resampler(48_000, 24_000)
    resampler.push(signal)
    tail, successor = resampler.handover(16_000, 2, fade_ms=0.0)
    assert np.array_equal(tail, expected)
    assert (successor.in_rate, successor.channels, successor.out_rate) == (16_000, 2, 24_000)
    assert successor.mode == default_mode(16_000)


def test_handover_to_an_unsupported_rate_changes_nothing() -> None:
    resampler = Resampler(48_000, 24_000)
    resampler.push(noise(480))
    with pytest.raises(UnsupportedFormat):
        resampler.handover(384_000)
    with pytest.raises(InvalidParameter):
        resampler.handover(16_000, fade_ms=-1.0)
    assert not resampler.finished
    resampler.push(noise(480))  # still streaming


def test_handover_after_flush_is_a_bug() -> None:
    resampler = Resampler(48_000, 24_000)
    resampler.flush()
    with pytest.raises(InvalidState):
        resampler.handover(16_000)


def test_successor_fades_in_over_its_first_5_ms_even_across_tiny_pushes() -> None:
    first = Resampler(24_000, 24_000)
    first.push(np.full(240, 10_000, np.int16))
    _, successor = first.handover(24_000)
    out = np.concatenate([successor.push(np.full(7, 10_000, np.int16)) for _ in range(30)])
    assert out[0] == 0
    assert np.all(np.diff(out[:120].astype(np.int32)) >= 0)  # rising, monotonically
    assert out[60] == pytest.approx(5_000, abs=150)  # half way
    assert np.all(out[120:] == 10_000)


# -- reset --------------------------------------------------------------------------------------


def test_reset_drops_the_withheld_audio_and_restarts_the_stream() -> None:
    signal = noise(4_800)
    fresh = chunked(Resampler(48_000, 24_000), signal, [480])
    resampler = Resampler(48_000, 24_000)
    resampler.push(noise(4_800, seed=8))
    resampler.flush()
    resampler.reset()
    assert (resampler.samples_in, resampler.samples_out, resampler.finished) == (0, 0, False)
    assert np.array_equal(chunked(resampler, signal, [480]), fresh)


def test_repr_names_the_stream() -> None:
    resampler = Resampler(44_100, 24_000, 2)
    assert repr(resampler) == "Resampler(44100 -> 24000 Hz, 2 ch, VR, in=0, out=0)"
