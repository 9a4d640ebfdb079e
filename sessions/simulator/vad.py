"""An energy voice-activity detector that runs in audio time.

Time here is the count of samples received, never the wall clock: a client may send audio
faster than real time (tests, benchmarks) and still gets speech events at the right
positions in its audio.

How it decides:

- the audio is cut into 10 ms windows, aligned on the first sample the detector saw;
- a window is *voiced* when its RMS level exceeds ``threshold_dbfs(threshold)``, a linear
  map of the API's 0..1 ``threshold`` onto -70..-10 dBFS. The default 0.5 gives -40 dBFS:
  normal speech (-30..-20 dBFS RMS) triggers it, silence and low room noise do not;
- speech *starts* after ``START_WINDOWS`` (3, i.e. 30 ms) voiced windows in a row; the onset
  is the start of the first of them;
- speech *stops* once ``silence_ms`` of unvoiced windows follow; the offset is the end of
  the last voiced window.

``semantic_vad`` uses the same detector with a silence length taken from its eagerness
(``SEMANTIC_SILENCE_MS``): the simulator does not model meaning, only patience.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from .audio import FULL_SCALE, Int16Array

WINDOW_MS: Final = 10
START_WINDOWS: Final = 3

SEMANTIC_SILENCE_MS: Final = {"low": 1000, "medium": 500, "high": 250, "auto": 500}
"""Silence that ends a turn under ``semantic_vad``, by eagerness (``auto`` is ``medium``)."""


def threshold_dbfs(threshold: float) -> float:
    """The RMS level (dBFS) above which a window counts as voiced: -70 + 60 x threshold."""
    return -70.0 + 60.0 * min(1.0, max(0.0, threshold))


def _power_floor(threshold: float) -> float:
    amplitude = FULL_SCALE * math.pow(10.0, threshold_dbfs(threshold) / 20.0)
    return amplitude * amplitude


def voiced_windows(samples: Int16Array, window: int, threshold: float) -> np.ndarray:
    """One bool per full window of ``samples``: is its RMS above the threshold?"""
    n = len(samples) // window
    if n == 0:
        return np.zeros(0, dtype=bool)
    frames = samples[: n * window].astype(np.float32).reshape(n, window)
    power = np.einsum("ij,ij->i", frames, frames) / window
    return np.asarray(power > _power_floor(threshold))


def voiced_span(samples: Int16Array, rate: int, threshold: float) -> tuple[int, int] | None:
    """``(start, end)`` sample offsets of the speech in ``samples``, by the rules above.

    The start is the first window of the first run of ``START_WINDOWS`` voiced windows; the
    end is the end of the last voiced window after it. ``None`` when nothing qualifies.
    """
    window = rate * WINDOW_MS // 1000
    padded = samples
    if len(samples) % window:
        padded = np.concatenate([samples, np.zeros(window - len(samples) % window, np.int16)])
    voiced = voiced_windows(padded, window, threshold)
    if len(voiced) < START_WINDOWS:
        return None
    runs = np.ones(len(voiced) - START_WINDOWS + 1, dtype=bool)
    for k in range(START_WINDOWS):
        runs &= voiced[k : len(voiced) - START_WINDOWS + 1 + k]
    starts = np.flatnonzero(runs)
    if len(starts) == 0:
        return None
    first = int(starts[0])
    last = int(np.flatnonzero(voiced)[-1])
    return first * window, min(len(samples), (last + 1) * window)


@dataclass(frozen=True, slots=True)
class VadParams:
    """What the detector needs from ``turn_detection``."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_ms: int = 500


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Speech began at ``sample`` (session-relative, first sample of the onset window)."""

    sample: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """Speech ended at ``sample`` (session-relative, end of the last voiced window)."""

    sample: int


VadEvent = SpeechStarted | SpeechStopped


class EnergyVad:
    """Streaming detector: push samples, get speech start/stop events with sample positions."""

    def __init__(self, params: VadParams, rate: int, *, first_sample: int = 0) -> None:
        self.params = params
        self.rate = rate
        self._window = rate * WINDOW_MS // 1000
        self._silence_windows = max(1, -(-params.silence_ms // WINDOW_MS))
        self._pending = np.zeros(0, dtype=np.int16)
        self._pos = first_sample  # session sample index of the next window's first sample
        self._run = 0  # voiced windows in a row (before speech starts)
        self._quiet = 0  # unvoiced windows in a row (while speaking)
        self._last_voiced_end = 0
        self.speaking = False

    def push(self, samples: Int16Array) -> list[VadEvent]:
        """Feed the next samples; returns the events they complete, in order."""
        if len(self._pending):
            samples = np.concatenate([self._pending, samples])
        voiced = voiced_windows(samples, self._window, self.params.threshold)
        used = len(voiced) * self._window
        self._pending = samples[used:].copy()
        events: list[VadEvent] = []
        for is_voiced in voiced.tolist():
            self._pos += self._window
            if not self.speaking:
                self._run = self._run + 1 if is_voiced else 0
                if self._run >= START_WINDOWS:
                    self.speaking = True
                    self._quiet = 0
                    self._last_voiced_end = self._pos
                    events.append(SpeechStarted(self._pos - START_WINDOWS * self._window))
            elif is_voiced:
                self._quiet = 0
                self._last_voiced_end = self._pos
            else:
                self._quiet += 1
                if self._quiet >= self._silence_windows:
                    self.speaking = False
                    self._run = 0
                    events.append(SpeechStopped(self._last_voiced_end))
        return events

    def reset(self) -> None:
        """Forget any speech in progress (after a commit or clear); keeps the time base."""
        self.speaking = False
        self._run = 0
        self._quiet = 0
