"""WAV files in and out: any PCM or float WAV a recording tool writes in, 16-bit PCM out.

:func:`read_wav` walks the RIFF chunks itself (the standard library's ``wave`` refuses
WAVE_FORMAT_EXTENSIBLE and float files before Python 3.12) and accepts:

- integer PCM of 8, 16, 24 or 32 bits (also 12 or 20 valid bits in a wider container), IEEE
  float of 32 or 64 bits, and G.711 µ-law and A-law (telephone recordings), each in the plain
  layout or in WAVE_FORMAT_EXTENSIBLE (``RIFF`` or ``RF64``);
- any whole sample rate from 8 to 192 kHz (what ``resampling`` converts);
- mono or stereo as they are; more channels are averaged to mono.

Everything becomes int16 (integer samples keep their top 16 bits; float is scaled by 32768,
rounded and clipped). What was repaired on the way is kept in :attr:`Wav.notes` so the command
line can say so: a data chunk that ends mid-frame (the partial frame is dropped), a file
shorter than its header says (what is there plays), float samples beyond full scale (clipped).
Anything else raises :class:`~bridge.errors.ConfigError` naming the file and the problem:
an empty file, another format (MP3, FLAC, Ogg, AIFF, MP4 are recognised by name; a device
such as ``/dev/zero`` is refused after its first bytes), a file over 2 GiB, an encoding or
bit depth that is not read (named, with its format code), a sample rate of 0 or outside
8-192 kHz, no audio at all. The file is only ever read.

:func:`write_wav` writes 16-bit PCM with the standard library.
"""

from __future__ import annotations

import struct
import wave
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from bridge.errors import ConfigError
from resampling import MAX_RATE, MIN_RATE

PCM: Final = 0x0001
FLOAT: Final = 0x0003
ALAW: Final = 0x0006
MULAW: Final = 0x0007
EXTENSIBLE: Final = 0xFFFE
# The 14 bytes after the format code in every KSDATAFORMAT_SUBTYPE_* GUID of a standard format.
_GUID_TAIL: Final = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_SIZE_UNKNOWN: Final = 0xFFFFFFFF  # RF64, and writers that stream: "to the end of the file"

# Encodings seen in the wild that are not read, by format code (for the message).
_OTHER_FORMATS: Final = {
    0x0002: "Microsoft ADPCM",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0040: "G.721 ADPCM",
    0x0050: "MPEG audio",
    0x0055: "MP3",
    0x0092: "Dolby AC-3",
    0x00FF: "AAC",
    0x0161: "Windows Media Audio",
    0x1610: "AAC (HE)",
    0xF1AC: "FLAC",
}
# What a file that is not a WAV file is, from its first bytes.
_OTHER_CONTAINERS: Final = (
    (b"ID3", "an MP3 file"),
    (b"\xff\xfb", "an MP3 file"),
    (b"\xff\xf3", "an MP3 file"),
    (b"\xff\xf2", "an MP3 file"),
    (b"fLaC", "a FLAC file"),
    (b"OggS", "an Ogg file (Vorbis or Opus)"),
    (b"FORM", "an AIFF file"),
    (b"caff", "a Core Audio file"),
    (b"\x1aE\xdf\xa3", "a Matroska/WebM file"),
    (b"#!AMR", "an AMR file"),
)
MAX_BYTES: Final = 1 << 31
"""The largest file read (2 GiB: hours of audio, which ``bridge try`` plays in real time)."""
ACCEPTED: Final = (
    "PCM WAV (8, 16, 24 or 32-bit integer, 32 or 64-bit float, µ-law or A-law; plain or"
    " WAVE_FORMAT_EXTENSIBLE), 8 to 192 kHz, mono or stereo (more channels are mixed to mono)"
)
"""What :func:`read_wav` accepts, in words (``bridge try --help`` and its error messages)."""


def demo_recording() -> Path:
    """The bundled caller recording (``bridge/assets/demo_caller.wav``): a question, then a
    correction spoken over the agent's answer (``bridge demo``, tests, the bench's caller)."""
    return Path(str(resources.files("bridge").joinpath("assets/demo_caller.wav")))


@dataclass(frozen=True, slots=True)
class Wav:
    samples: NDArray[np.int16]  # interleaved
    rate: int
    channels: int
    encoding: str = "16-bit PCM"  # what the file held, e.g. "32-bit float (extensible)"
    notes: tuple[str, ...] = ()  # what was repaired or converted on the way in

    @property
    def frames(self) -> int:
        return self.samples.size // self.channels

    @property
    def seconds(self) -> float:
        return self.frames / self.rate

    def mono(self) -> NDArray[np.int16]:
        if self.channels == 1:
            return self.samples
        mixed = self.samples.reshape(-1, self.channels).astype(np.int32).mean(axis=1)
        out: NDArray[np.int16] = np.rint(mixed).astype(np.int16)
        return out


@dataclass(frozen=True, slots=True)
class _Format:
    code: int  # PCM, FLOAT, ALAW or MULAW (the subformat, for EXTENSIBLE)
    channels: int
    rate: int
    width: int  # bytes per sample in the file (the container)
    bits: int  # valid bits
    extensible: bool


def read_wav(path: str | Path) -> Wav:
    """Read a WAV file (see the module docstring); a :class:`ConfigError` naming the file and
    the problem for anything it cannot play."""
    try:
        with open(path, "rb") as file:
            data = file.read(12)  # a device like /dev/zero is refused here, not read forever
            if len(data) == 12 and data[:4] in (b"RIFF", b"RF64") and data[8:12] == b"WAVE":
                data += file.read(MAX_BYTES)
                if file.read(1):
                    raise ConfigError(f"{path}: larger than {MAX_BYTES >> 30} GiB")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a WAV file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        return parse_wav(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse_wav(data: bytes) -> Wav:
    """The audio of a WAV file's bytes; :class:`ConfigError` (without the file name) otherwise."""
    if not data:
        raise ConfigError("the file is empty (0 bytes)")
    magic = data[:4]
    if len(data) < 12 or magic not in (b"RIFF", b"RIFX", b"RF64") or data[8:12] != b"WAVE":
        raise ConfigError(f"not a WAV file: {_what_it_is(data)}; bridge try reads {ACCEPTED}")
    if magic == b"RIFX":
        raise ConfigError("a big-endian (RIFX) WAV file: convert it to an ordinary WAV file")
    notes: list[str] = []
    fmt: _Format | None = None
    audio: bytes | None = None
    offset = 12
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack_from("<I", data, offset + 4)
        body = offset + 8
        available = len(data) - body
        if chunk_id == b"fmt ":
            if size > available:
                raise ConfigError("the file ends inside its format header")
            fmt = _parse_format(data[body : body + size])
        elif chunk_id == b"data" and audio is None:
            if size == _SIZE_UNKNOWN:
                size = available
            elif size > available:
                notes.append(
                    f"the file is shorter than its header says ({available} of {size} bytes"
                    " of audio): what is there plays"
                )
                size = available
            audio = data[body : body + size]
        offset = body + size + (size & 1)  # chunks are padded to an even length
    if fmt is None:
        raise ConfigError("no format header ('fmt ' chunk): not a complete WAV file")
    if audio is None:
        raise ConfigError("no audio ('data' chunk): not a complete WAV file")
    frame_bytes = fmt.width * fmt.channels
    extra = len(audio) % frame_bytes
    if extra and len(audio) < frame_bytes:
        raise ConfigError(
            f"the audio holds less than one frame ({len(audio)} bytes; a frame of"
            f" {fmt.channels} channels is {frame_bytes} bytes)"
        )
    if extra:
        notes.append(
            f"the audio ends mid-frame: its last {extra} byte{'s' if extra > 1 else ''}"
            f" (of a {frame_bytes}-byte frame) are ignored"
        )
        audio = audio[: len(audio) - extra]
    if not audio:
        raise ConfigError("the file holds no audio (its data chunk is empty)")
    samples, clipped = _to_int16(audio, fmt)
    if clipped:
        notes.append(f"{clipped} float samples beyond full scale were clipped")
    channels = fmt.channels
    if channels > 2:
        mixed = samples.reshape(-1, channels).astype(np.float64).mean(axis=1)
        samples = np.rint(mixed).astype(np.int16)
        notes.append(f"{channels} channels mixed down to mono")
        channels = 1
    return Wav(samples, fmt.rate, channels, _describe(fmt), tuple(notes))


def _parse_format(chunk: bytes) -> _Format:
    if len(chunk) < 16:
        raise ConfigError(f"a format header of {len(chunk)} bytes (at least 16 expected)")
    code, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", chunk)
    extensible = code == EXTENSIBLE
    if extensible:
        if len(chunk) < 40:
            raise ConfigError("a WAVE_FORMAT_EXTENSIBLE header too short for its subformat")
        valid_bits = struct.unpack_from("<H", chunk, 18)[0]
        guid = chunk[24:40]
        if guid[2:] != _GUID_TAIL:
            raise ConfigError(f"a WAVE_FORMAT_EXTENSIBLE subformat not read here ({guid.hex()})")
        code = struct.unpack_from("<H", guid)[0]
        bits = valid_bits or bits
    if code not in (PCM, FLOAT, ALAW, MULAW):
        name = _OTHER_FORMATS.get(code, "an unknown encoding")
        raise ConfigError(
            f"{name} (WAV format code {code}) is not read; bridge try reads {ACCEPTED}"
        )
    if channels == 0:
        raise ConfigError("0 channels in the format header")
    if rate == 0:
        raise ConfigError("a sample rate of 0 Hz in the format header")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ConfigError(
            f"a sample rate of {rate} Hz; bridge try plays {MIN_RATE} to {MAX_RATE} Hz"
        )
    width = (bits + 7) // 8
    if block_align and block_align % channels == 0 and block_align // channels >= width:
        width = block_align // channels  # e.g. 20 valid bits in a 32-bit container
    supported = {PCM: (1, 2, 3, 4), FLOAT: (4, 8), ALAW: (1,), MULAW: (1,)}[code]
    if width not in supported or bits < 1:
        kind = {PCM: "integer PCM", FLOAT: "float", ALAW: "A-law", MULAW: "µ-law"}[code]
        raise ConfigError(
            f"{bits}-bit {kind} in {8 * width}-bit samples is not read; bridge try reads {ACCEPTED}"
        )
    return _Format(code, channels, rate, width, bits, extensible)


def _to_int16(audio: bytes, fmt: _Format) -> tuple[NDArray[np.int16], int]:
    """The samples as int16, and how many float samples had to be clipped."""
    if fmt.code == PCM:
        if fmt.width == 1:  # 8-bit WAV is unsigned
            shifted = (np.frombuffer(audio, np.uint8).astype(np.int16) - 128) << 8
            return shifted.astype(np.int16), 0
        if fmt.width == 2:
            return np.frombuffer(audio, "<i2").astype(np.int16), 0
        if fmt.width == 3:
            b = np.frombuffer(audio, np.uint8).reshape(-1, 3)
            top = (b[:, 2].astype(np.int8).astype(np.int16) << 8) | b[:, 1]
            return top.astype(np.int16), 0
        return (np.frombuffer(audio, "<i4") >> 16).astype(np.int16), 0
    if fmt.code in (ALAW, MULAW):
        table = _ALAW if fmt.code == ALAW else _MULAW
        return table[np.frombuffer(audio, np.uint8)], 0
    values = np.frombuffer(audio, "<f4" if fmt.width == 4 else "<f8").astype(np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=-1.0) * 32768.0
    clipped = int(np.count_nonzero((values > 32767.0) | (values < -32768.0)))
    return np.clip(np.rint(values), -32768, 32767).astype(np.int16), clipped


def _g711_tables() -> tuple[NDArray[np.int16], NDArray[np.int16]]:
    """Decoding tables of G.711 A-law and µ-law, the 256 codes each (ITU-T G.711)."""
    code = np.arange(256, dtype=np.int32)
    a = code ^ 0x55
    exponent, mantissa = (a >> 4) & 7, a & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    alaw = np.where(a & 0x80, magnitude, -magnitude)
    u = ~code & 0xFF
    exponent, mantissa = (u >> 4) & 7, u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    mulaw = np.where(u & 0x80, -magnitude, magnitude)
    return alaw.astype(np.int16), mulaw.astype(np.int16)


_ALAW, _MULAW = _g711_tables()


def _describe(fmt: _Format) -> str:
    if fmt.code == PCM:
        kind = (
            f"{fmt.bits}-bit PCM"
            if fmt.bits == 8 * fmt.width
            else (f"{fmt.bits}-bit PCM in {8 * fmt.width}-bit samples")
        )
    elif fmt.code == FLOAT:
        kind = f"{8 * fmt.width}-bit float"
    else:
        kind = "A-law" if fmt.code == ALAW else "µ-law"
    return f"{kind} (extensible)" if fmt.extensible else kind


def _what_it_is(data: bytes) -> str:
    for magic, name in _OTHER_CONTAINERS:
        if data.startswith(magic):
            return f"it looks like {name}"
    if data[4:8] == b"ftyp":
        return "it looks like an MP4/M4A file"
    if len(data) < 12:
        return f"only {len(data)} bytes"
    return f"it starts with {data[:12]!r}"


def write_wav(path: str | Path, samples: NDArray[np.int16], rate: int, channels: int = 1) -> None:
    """Write 16-bit PCM (interleaved ``samples``)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
