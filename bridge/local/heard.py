"""What a caller experienced, read from its own recordings.

Given what the caller said (IN) and what it heard (OUT, aligned with IN: sample 0 of both is
the moment the first sample of IN was played), find the utterances and replies by level and
read off the figures a person notices:

- *mouth-to-ear*: the caller's speech end in IN → the first agent audio after it in OUT
  (everything in between: the caller's encoder and network, the server, the bridge, the
  model's turn detection and reply, the way back, the caller's jitter buffer);
- *barge-in stop as heard*: the caller starts talking while a reply is heard → that reply's
  last audio in OUT;
- *truncation as heard*: the length of an interrupted reply as heard, against the
  ``audio_end_ms`` the bridge sent for it;
- *resemblance*: how much of what was said a reply repeats (the echo simulator's replies
  are the caller's own words: a plain intelligibility proxy after two Opus passes).

Levels are peak absolute sample values per 10 ms window. Silence through Opus is exact zeros
or near them, so a low threshold on OUT finds replies; IN uses a speech-level threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

Segment = tuple[float, float]  # (start, end) in seconds


def segments(
    samples: NDArray[np.int16], rate: int, *, threshold: float, gap_ms: int = 300
) -> list[Segment]:
    """(start, end) in seconds of runs louder than ``threshold``, merging gaps < ``gap_ms``.

    Runs are found on 10 ms windows; their edges are then the first and the last sample
    above the threshold, so a boundary is exact to the sample, not to the window.
    """
    window = rate // 100
    n = samples.size // window
    if n == 0:
        return []
    loud = np.abs(samples[: n * window].astype(np.int32)) > threshold
    level = loud.reshape(n, window).any(axis=1)
    runs: list[list[int]] = []
    for i in np.flatnonzero(level):
        if runs and i - runs[-1][1] <= gap_ms // 10:
            runs[-1][1] = int(i) + 1
        else:
            runs.append([int(i), int(i) + 1])
    found = []
    for a, b in runs:
        first = a * window + int(np.argmax(loud[a * window : (a + 1) * window]))
        last = (b - 1) * window + int(np.flatnonzero(loud[(b - 1) * window : b * window])[-1])
        found.append((first / rate, (last + 1) / rate))
    return found


@dataclass(frozen=True, slots=True)
class Heard:
    """One call as the caller experienced it (seconds on IN's clock; figures in ms)."""

    utterances: list[Segment]
    replies: list[Segment]
    mouth_to_ear_ms: list[float] = field(default_factory=list)
    barge_in_stop_ms: list[float] = field(default_factory=list)  # per reply cut by the caller
    cut_replies: list[Segment] = field(default_factory=list)
    truncation_error_ms: list[float] = field(default_factory=list)  # sent − heard, per cut

    def summary(self) -> dict[str, Any]:
        def r(values: list[float]) -> list[float]:
            return [round(v, 1) for v in values]

        return {
            "utterances": [[round(a, 3), round(b, 3)] for a, b in self.utterances],
            "replies": [[round(a, 3), round(b, 3)] for a, b in self.replies],
            "mouth_to_ear_ms": r(self.mouth_to_ear_ms),
            "barge_in_stop_heard_ms": r(self.barge_in_stop_ms),
            "truncation_error_heard_ms": r(self.truncation_error_ms),
        }


def analyse(
    said: NDArray[np.int16],
    said_rate: int,
    heard: NDArray[np.int16],
    heard_rate: int,
    *,
    truncations_ms: list[int] | None = None,
    speech_threshold: float = 400,
    reply_threshold: float = 30,
    gap_ms: int = 300,
) -> Heard:
    """The figures of one call from IN (``said``, mono) and OUT (``heard``, aligned).

    ``truncations_ms`` are the ``audio_end_ms`` values the bridge sent, in order; each is
    matched with the next reply the caller cut.
    """
    utterances = segments(said, said_rate, threshold=speech_threshold, gap_ms=gap_ms)
    replies = segments(heard, heard_rate, threshold=reply_threshold, gap_ms=gap_ms)
    mouth_to_ear: list[float] = []
    for i, (_, end) in enumerate(utterances):
        following = utterances[i + 1][0] if i + 1 < len(utterances) else float("inf")
        answer = next((s for s, _ in replies if end < s < following), None)
        if answer is not None:
            mouth_to_ear.append((answer - end) * 1000)
    stops: list[float] = []
    cut: list[Segment] = []
    for start, end in replies:
        barge = next((u for u, _ in utterances if start < u < end), None)
        if barge is not None:
            stops.append((end - barge) * 1000)
            cut.append((start, end))
    errors = [
        sent - (end - start) * 1000
        for sent, (start, end) in zip(truncations_ms or [], cut, strict=False)
    ]
    return Heard(utterances, replies, mouth_to_ear, stops, cut, errors)


def resemblance(
    reply: NDArray[Any],
    said: NDArray[Any],
    rate: int,
    *,
    piece_s: float = 0.25,
    match: float = 0.8,
) -> float:
    """The share of the voiced ``piece_s`` pieces of ``said`` that ``reply`` repeats.

    A piece is repeated when its normalised cross-correlation with some stretch of the reply
    exceeds ``match`` (two Opus passes leave 0.75-0.95 on speech; plain PCM 0.99). Piece by
    piece, each at its own best alignment, so a gap somewhere (a caller's source that ran dry,
    a concealed packet) shifts nothing else; pieces quieter than a tenth of the loudest are
    silence and not counted. Both at ``rate``, mono. A reply that is not the utterance
    matches no piece.
    """
    n = int(piece_s * rate)
    x = reply.astype(np.float64)
    pieces = [said[i : i + n].astype(np.float64) for i in range(0, said.size - n + 1, n)]
    norms = [float(np.linalg.norm(p)) for p in pieces]
    loudest = max(norms, default=0.0)
    voiced = [(p, norm) for p, norm in zip(pieces, norms, strict=True) if norm > loudest / 10]
    if x.size < n or not voiced:
        return 0.0
    window = np.sqrt(np.convolve(x * x, np.ones(n), mode="valid"))  # energy under each lag
    found = 0
    for piece, norm in voiced:
        corr = np.correlate(x, piece, mode="valid") / (window * norm + 1e-9)
        found += float(np.max(np.abs(corr))) > match
    return found / len(voiced)
