"""WAV files in and out (16-bit PCM; 8-, 24- and 32-bit integer input is converted)."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bridge.errors import ConfigError


def demo_recording() -> Path:
    """The bundled caller recording (``bridge/assets/demo_caller.wav``): a question, then a
    correction spoken over the agent's answer (``bridge demo``, tests, the bench's caller)."""
    return Path(str(resources.files("bridge").joinpath("assets/demo_caller.wav")))


@dataclass(frozen=True, slots=True)
class Wav:
    samples: NDArray[np.int16]  # interleaved
    rate: int
    channels: int

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


def read_wav(path: str | Path) -> Wav:
    """Read a PCM WAV file; a clear :class:`ConfigError` for anything else."""
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            raw = w.readframes(w.getnframes())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (wave.Error, EOFError) as exc:
        raise ConfigError(f"{path}: not a PCM WAV file ({exc})") from None
    if channels not in (1, 2):
        raise ConfigError(f"{path}: {channels} channels; mono or stereo only")
    if width == 2:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    elif width == 1:
        samples = ((np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(
            np.int16
        )
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        samples = ((b[:, 2].astype(np.int8).astype(np.int16) << 8) | b[:, 1]).astype(np.int16)
    elif width == 4:
        samples = (np.frombuffer(raw, dtype="<i4") >> 16).astype(np.int16)
    else:
        raise ConfigError(f"{path}: {8 * width}-bit samples are not supported")
    if samples.size == 0:
        raise ConfigError(f"{path}: the file holds no audio")
    return Wav(samples, rate, channels)


def write_wav(path: str | Path, samples: NDArray[np.int16], rate: int, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
