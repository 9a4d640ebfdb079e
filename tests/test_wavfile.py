"""``bridge.local.wavfile.read_wav``: every WAV a recording tool writes plays, and everything
else is refused before the call with a message that names the file and the problem.

Files are crafted byte by byte (``tests/wavs.py``). The rate and bit-depth matrix is checked
through the same path the call takes (reader, then the streaming resampler to 24 kHz);
``tests/test_cli_inputs.py`` runs a handful of them through the real ``bridge try``.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from bridge.errors import ConfigError
from bridge.local import wavfile
from bridge.local.wavfile import Wav, parse_wav, read_wav
from resampling import Resampler
from tests.wavs import ALAW, FLOAT, MULAW, PCM, chunk, craft, tone

RATES = [8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 37_800, 44_100, 48_000]
RATES += [88_200, 96_000, 176_400, 192_000]
# (code, bits, extensible, tolerance in int16 LSB against the 16-bit reference)
ENCODINGS = [
    (PCM, 8, False, 256),
    (PCM, 16, False, 0),
    (PCM, 24, False, 1),
    (PCM, 32, False, 1),
    (FLOAT, 32, False, 1),
    (FLOAT, 64, False, 1),
    (PCM, 16, True, 0),
    (PCM, 24, True, 1),
    (FLOAT, 32, True, 1),
    (MULAW, 8, False, 1100),
    (ALAW, 8, True, 1100),
]


def reference(frames: np.ndarray) -> np.ndarray:
    return np.rint(frames.reshape(-1) * 32767).astype(np.int16)


@pytest.mark.parametrize(("code", "bits", "extensible", "tolerance"), ENCODINGS)
def test_every_encoding_reads_as_int16(
    code: int, bits: int, extensible: bool, tolerance: int
) -> None:
    frames = tone(16_000, 0.1, channels=2)
    wav = parse_wav(craft(frames, 16_000, code=code, bits=bits, extensible=extensible))
    assert (wav.rate, wav.channels, wav.frames) == (16_000, 2, 1_600)
    error = np.abs(wav.samples.astype(np.int32) - reference(frames))
    assert error.max() <= tolerance
    assert wav.notes == ()
    assert ("extensible" in wav.encoding) == extensible


def test_the_encoding_is_named() -> None:
    frames = tone(8_000, 0.01)
    names = {
        "16-bit PCM": craft(frames, 8_000),
        "24-bit PCM (extensible)": craft(frames, 8_000, bits=24, extensible=True),
        "32-bit float": craft(frames, 8_000, code=FLOAT, bits=32),
        "µ-law": craft(frames, 8_000, code=MULAW, bits=8),
        "24-bit PCM in 32-bit samples (extensible)": craft(
            frames, 8_000, bits=24, container_bits=32, extensible=True
        ),
    }
    for name, data in names.items():
        assert parse_wav(data).encoding == name


def test_valid_bits_in_a_wider_container_keep_their_level() -> None:
    frames = tone(48_000, 0.05)
    wav = parse_wav(craft(frames, 48_000, bits=24, container_bits=32, extensible=True))
    assert np.abs(wav.samples.astype(np.int32) - reference(frames)).max() <= 1


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize(("code", "bits"), [(PCM, 8), (PCM, 16), (PCM, 24), (PCM, 32), (FLOAT, 32)])
def test_every_rate_and_depth_reaches_24_khz(rate: int, code: int, bits: int) -> None:
    """The call's own path: the reader, then the streaming resampler, 10 ms at a time."""
    frames = tone(rate, 0.2, channels=2, freq=300.0)
    wav = parse_wav(craft(frames, rate, code=code, bits=bits, extensible=bits == 24))
    resampler = Resampler(wav.rate, 24_000, wav.channels)
    step = wav.channels * max(wav.rate // 100, 1)
    out = [resampler.push(wav.samples[i : i + step]) for i in range(0, wav.samples.size, step)]
    heard = np.concatenate([*out, resampler.flush()])
    assert heard.size == -(-wav.frames * 24_000 // wav.rate)
    rms = np.sqrt(np.mean(heard[1_000:].astype(np.float64) ** 2))
    assert rms == pytest.approx(0.5 * 32767 / np.sqrt(2), rel=0.05)


@pytest.mark.parametrize(
    ("rate", "words"),
    [
        (0, "a sample rate of 0 Hz"),
        (4_000, "a sample rate of 4000 Hz; bridge try plays 8000 to 192000 Hz"),
        (7_999, "7999 Hz"),
        (192_001, "192001 Hz"),
        (384_000, "384000 Hz"),
    ],
)
def test_rates_outside_8_to_192_khz_are_refused(rate: int, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_wav(craft(tone(8_000, 0.01), rate))


def test_a_data_chunk_ending_mid_frame_plays_without_the_partial_frame() -> None:
    frames = tone(16_000, 0.01)
    data = craft(frames, 16_000, data=reference(frames).astype("<i2").tobytes() + b"\x7f")
    wav = parse_wav(data)
    assert wav.frames == 160 and np.array_equal(wav.samples, reference(frames))
    assert wav.notes == (
        "the audio ends mid-frame: its last 1 byte (of a 2-byte frame) are ignored",
    )


def test_a_file_shorter_than_its_header_plays_what_is_there() -> None:
    frames = tone(16_000, 0.01)
    data = craft(frames, 16_000, data_size=10_000)
    wav = parse_wav(data[:-2])  # also cut mid-sample (the last sample is incomplete)
    assert wav.frames == 159
    assert "shorter than its header says (318 of 10000 bytes" in wav.notes[0]
    streamed = parse_wav(craft(frames, 16_000, data_size=0xFFFFFFFF))  # "to the end"
    assert streamed.frames == 160 and streamed.notes == ()


def test_float_beyond_full_scale_is_clipped_and_said() -> None:
    samples = np.array([0.0, 1.5, -2.0, np.nan, 0.25], dtype="<f4")
    wav = parse_wav(craft(np.zeros((5, 1)), 8_000, code=FLOAT, bits=32, data=samples.tobytes()))
    assert wav.samples.tolist() == [0, 32767, -32768, 0, 8192]
    assert wav.notes == ("2 float samples beyond full scale were clipped",)


def test_more_than_two_channels_are_mixed_to_mono() -> None:
    frames = np.repeat(tone(8_000, 0.01), 6, axis=1)
    frames[:, 3:] = 0.0  # half the channels silent: the mix is half the level
    wav = parse_wav(craft(frames, 8_000))
    assert wav.channels == 1 and wav.frames == 80
    assert np.abs(wav.samples - np.rint(reference(frames[:, 0]) / 2)).max() <= 1
    assert wav.notes == ("6 channels mixed down to mono",)


def test_chunks_around_the_audio_are_skipped() -> None:
    frames = tone(8_000, 0.01)
    info = chunk(b"LIST", b"INFOISFT\x05\x00\x00\x00tool\x00")  # odd size: padded
    wav = parse_wav(craft(frames, 8_000, before_data=info, after_data=chunk(b"id3 ", b"x" * 7)))
    assert np.array_equal(wav.samples, reference(frames))


FMT_PCM16 = struct.pack("<HHIIHH", 1, 1, 8_000, 16_000, 2, 16)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "the file is empty (0 bytes)"),
        (b"RIFF", "not a WAV file: only 4 bytes"),
        (b"RIFF not really a wav", "not a WAV file: it starts with b'RIFF not rea'"),
        (b"ID3\x04\x00" + bytes(100), "not a WAV file: it looks like an MP3 file"),
        (b"fLaC" + bytes(100), "it looks like a FLAC file"),
        (b"OggS" + bytes(100), "it looks like an Ogg file"),
        (bytes(4) + b"ftypM4A " + bytes(100), "it looks like an MP4/M4A file"),
        (b"RIFX" + bytes(4) + b"WAVE", "big-endian (RIFX)"),
        (b"RIFF" + bytes(4) + b"WAVE" + chunk(b"data", bytes(4)), "no format header"),
        (b"RIFF" + bytes(4) + b"WAVE" + chunk(b"fmt ", FMT_PCM16), "no audio ('data' chunk)"),
        (
            b"RIFF" + bytes(4) + b"WAVE" + chunk(b"fmt ", FMT_PCM16) + chunk(b"data", b""),
            "the file holds no audio (its data chunk is empty)",
        ),
        (
            b"RIFF" + bytes(4) + b"WAVE" + chunk(b"fmt ", FMT_PCM16[:12]),
            "a format header of 12 bytes",
        ),
        (
            b"RIFF" + bytes(4) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + b"ab",
            "ends inside its format header",
        ),
    ],
)
def test_what_is_not_a_playable_wav_file_is_named(data: bytes, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_wav(data)
    assert words in str(caught.value)
    assert not str(caught.value).endswith("()")


@pytest.mark.parametrize(
    ("code", "bits", "extensible", "words"),
    [
        (2, 4, False, "Microsoft ADPCM (WAV format code 2) is not read"),
        (0x55, 16, False, "MP3 (WAV format code 85) is not read"),
        (0x1234, 16, False, "an unknown encoding (WAV format code 4660) is not read"),
        (FLOAT, 16, False, "16-bit float in 16-bit samples is not read"),
        (PCM, 40, False, "40-bit integer PCM in 40-bit samples is not read"),
        (2, 4, True, "Microsoft ADPCM (WAV format code 2)"),
    ],
)
def test_encodings_not_read_are_named_with_what_is(
    code: int, bits: int, extensible: bool, words: str
) -> None:
    data = craft(
        tone(8_000, 0.01), 8_000, code=code, bits=bits, extensible=extensible, data=bytes(80)
    )
    with pytest.raises(ConfigError) as caught:
        parse_wav(data)
    assert words in str(caught.value)
    assert "bridge try reads PCM WAV (8, 16, 24 or 32-bit integer" in str(caught.value)


def test_header_nonsense_is_named() -> None:
    frames = tone(8_000, 0.01)
    with pytest.raises(ConfigError, match=r"less than one frame \(4 bytes; a frame of 3 channels"):
        parse_wav(craft(np.zeros((1, 3)), 8_000, data=bytes(4)))
    with pytest.raises(ConfigError, match="0 channels in the format header"):
        parse_wav(craft(frames, 8_000, channels=0))
    odd_guid = craft(frames, 8_000, extensible=True).replace(b"\x00\xaa\x00\x38\x9b\x71", bytes(6))
    with pytest.raises(ConfigError, match="WAVE_FORMAT_EXTENSIBLE subformat not read here"):
        parse_wav(odd_guid)


def test_the_path_is_named_and_the_file_only_read(tmp_path: Path) -> None:
    path = tmp_path / "in.wav"
    path.write_bytes(craft(tone(8_000, 0.05), 8_000))
    before = path.stat()
    assert isinstance(read_wav(path), Wav)
    after = path.stat()
    assert (before.st_mtime_ns, before.st_size) == (after.st_mtime_ns, after.st_size)
    with pytest.raises(ConfigError, match=f"{tmp_path}: is a directory, not a WAV file"):
        read_wav(tmp_path)
    with pytest.raises(ConfigError, match="nowhere.wav: no such file"):
        read_wav(tmp_path / "nowhere.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(ConfigError, match=r"empty.wav: the file is empty \(0 bytes\)$"):
        read_wav(empty)


def test_devices_and_huge_files_are_not_read_to_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="/dev/zero: not a WAV file"):
        read_wav("/dev/zero")  # refused after 12 bytes, not read forever
    monkeypatch.setattr(wavfile, "MAX_BYTES", 1_000)
    path = tmp_path / "long.wav"
    path.write_bytes(craft(tone(8_000, 0.1), 8_000))
    with pytest.raises(ConfigError, match="long.wav: larger than"):
        read_wav(path)


def test_the_bundled_recording_reads_as_before() -> None:
    from bridge.local.wavfile import demo_recording

    wav = read_wav(demo_recording())
    assert (wav.rate, wav.channels, wav.encoding, wav.notes) == (16_000, 1, "16-bit PCM", ())
    assert wav.frames == 152_071
