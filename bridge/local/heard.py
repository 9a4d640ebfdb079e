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


# ---------------------------------------------------------------------- turn by turn


@dataclass(frozen=True, slots=True)
class PieceHeard:
    """Where a 100 ms piece of an utterance was heard again in its reply (an echo's)."""

    offset_s: float  # its place in the utterance
    heard_s: float | None  # where it was found in OUT (None: not repeated recognisably)
    ncc: float


@dataclass(frozen=True, slots=True)
class TurnHeard:
    """One turn as the caller experienced it: an utterance said, its reply heard.

    Seconds on IN's clock. ``reply`` runs from where the reply to *this* utterance begins
    (found by its content: :func:`hear_turns`) to the last agent audio heard before the next
    utterance ends (the next one may talk over it); None when no reply repeating the
    utterance was heard. Audio before it (a late reply to an earlier turn) is not this
    turn's reply.
    """

    utterance: Segment
    reply: Segment | None
    mouth_to_ear_ms: float | None
    longest_freeze_ms: float  # the longest quiet run inside the reply as heard
    barge_in_stop_ms: float | None  # the next utterance's start → the reply's last audio
    pieces: tuple[PieceHeard, ...]  # the utterance's voiced pieces, found or not
    cut: bool  # talked over by the caller

    @property
    def repeated(self) -> float:
        """Share of the utterance's voiced pieces heard again in the reply, cut or not (a
        reply talked over early and stopped repeats little of it)."""
        if not self.pieces:
            return 0.0
        return sum(p.heard_s is not None for p in self.pieces) / len(self.pieces)

    @property
    def resemblance(self) -> float | None:
        """Share of the utterance's voiced pieces the reply repeats (None: a cut reply)."""
        if self.cut or not self.pieces:
            return None
        return self.repeated

    def late(self, best_ms: float, *, beyond_ms: float = 150.0) -> tuple[float, float]:
        """(seconds of reply heard more than ``beyond_ms`` behind its place, the most behind
        in ms). Its place: the utterance's end + ``best_ms`` (the best mouth-to-ear of the
        call: what this network gives at its best) + the piece's own offset in the
        utterance. A reply that starts late, or stalls and then bursts, is behind."""
        late_s, worst = 0.0, 0.0
        for piece in self.pieces:
            if piece.heard_s is None:
                continue
            place = self.utterance[1] + best_ms / 1000 + piece.offset_s
            behind = (piece.heard_s - place) * 1000
            worst = max(worst, behind)
            if behind > beyond_ms:
                late_s += PIECE_S
        return late_s, worst

    def to_json(self) -> dict[str, Any]:
        def r(v: float | None, digits: int = 1) -> float | None:
            return None if v is None else round(v, digits)

        return {
            "utterance": [round(self.utterance[0], 3), round(self.utterance[1], 3)],
            "reply": None if self.reply is None else [round(x, 3) for x in self.reply],
            "mouth_to_ear_ms": r(self.mouth_to_ear_ms),
            "longest_freeze_ms": r(self.longest_freeze_ms),
            "barge_in_stop_ms": r(self.barge_in_stop_ms),
            "resemblance": r(self.resemblance, 3),
            "cut": self.cut,
            "pieces": [
                [round(p.offset_s, 3), r(p.heard_s, 4), round(p.ncc, 3)] for p in self.pieces
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TurnHeard:
        return cls(
            utterance=(data["utterance"][0], data["utterance"][1]),
            reply=None if data["reply"] is None else (data["reply"][0], data["reply"][1]),
            mouth_to_ear_ms=data["mouth_to_ear_ms"],
            longest_freeze_ms=data["longest_freeze_ms"],
            barge_in_stop_ms=data["barge_in_stop_ms"],
            pieces=tuple(PieceHeard(o, h, n) for o, h, n in data["pieces"]),
            cut=data["cut"],
        )


PIECE_S = 0.1


def hear_turns(
    said: NDArray[np.int16],
    heard: NDArray[np.int16],
    rate: int,
    utterances: list[Segment],
    *,
    cut: list[bool],
    reply_threshold: float = 30,
    match: float = 0.7,
) -> list[TurnHeard]:
    """Each turn's figures from IN and OUT (aligned, both at ``rate``), given where the
    utterances are in IN (the caller's own record of what it said) and which replies it
    talked over (``cut``). For the echo model, whose replies repeat the utterance: each
    voiced 100 ms piece of the utterance is looked for between its end and the next one's
    end; where the pieces say the reply begins is its start (so mouth-to-ear is to the
    answer, not to whatever was heard first), and the pieces found give the intelligibility
    and the lateness."""
    window = rate // 100
    n = heard.size // window
    loud = np.abs(heard[: n * window].astype(np.int32)).reshape(n, window).max(axis=1)
    loud = loud > reply_threshold
    turns = []
    for i, (start, end) in enumerate(utterances):
        until = utterances[i + 1][1] if i + 1 < len(utterances) else n / 100
        utterance = said[int(start * rate) : int(end * rate)]
        span = heard[int(end * rate) : int(until * rate)]
        pieces = tuple(
            PieceHeard(o, None if at is None else float(end + at), c)
            for o, at, c in _locate(utterance, span, rate, match)
        )
        begins = _reply_start(pieces, loud, end)
        reply: Segment | None = None
        freeze = 0.0
        stop: float | None = None
        if begins is not None:
            a, b = int(round(begins * 100)), min(int(until * 100), n)
            found = np.flatnonzero(loud[a:b]) + a
            if found.size:
                reply = (begins, float(found[-1] + 1) / 100)
                gaps = np.diff(found) - 1
                freeze = float(gaps.max()) * 10 if gaps.size else 0.0
                if cut[i] and i + 1 < len(utterances):
                    stop = (reply[1] - utterances[i + 1][0]) * 1000
        turns.append(
            TurnHeard(
                utterance=(start, end),
                reply=reply,
                mouth_to_ear_ms=None if reply is None else (reply[0] - end) * 1000,
                longest_freeze_ms=freeze,
                barge_in_stop_ms=stop,
                pieces=pieces,
                cut=cut[i],
            )
        )
    return turns


def _reply_start(
    pieces: tuple[PieceHeard, ...], loud: NDArray[np.bool_], end: float
) -> float | None:
    """Where the reply to this utterance begins in OUT (seconds), from its content: the
    pieces found are grouped by alignment (heard at − offset, within 50 ms); the earliest
    heard piece of a group of two or more (or the only piece found) is in the reply, whose
    first audio is the start of the run of sound around it (gaps under 300 ms), not before
    the utterance ended. So a reply missing its first words (lost, or never heard by the
    model) still starts where it was first heard, and audio before it (a late reply to an
    earlier turn) is not this turn's. None: nothing recognisably this utterance's."""
    found = sorted((p.heard_s - p.offset_s, p.heard_s) for p in pieces if p.heard_s is not None)
    if not found:
        return None
    members = [found[0][1]] if len(found) == 1 else []
    for (a0, h0), (a1, h1) in zip(found, found[1:], strict=False):
        if a1 - a0 <= 0.05:
            members += [h0, h1]
    if not members:
        return None
    first = min(members)
    i, floor = int(first * 100), int(np.ceil(end * 100))
    quiet = 0
    start = i
    while i > floor:
        i -= 1
        if loud[i]:
            start, quiet = i, 0
        else:
            quiet += 1
            if quiet >= 30:
                break
    return max(float(start) / 100, end)


def _locate(
    utterance: NDArray[np.int16], span: NDArray[np.int16], rate: int, match: float
) -> list[tuple[float, float | None, float]]:
    """For each voiced ``PIECE_S`` piece of ``utterance``: (its offset, where in ``span`` it
    is best repeated if its normalised correlation there exceeds ``match``, that
    correlation). One FFT of ``span``; each piece correlated against all of it, except
    stretches with less than a tenth of its energy."""
    n = int(PIECE_S * rate)
    pieces = [
        (i / rate, utterance[i : i + n].astype(np.float64))
        for i in range(0, utterance.size - n + 1, n)
    ]
    norms = [float(np.linalg.norm(p)) for _, p in pieces]
    loudest = max(norms, default=0.0)
    voiced = [(o, p, m) for (o, p), m in zip(pieces, norms, strict=True) if m > loudest / 10]
    if span.size < n:
        return [(o, None, 0.0) for o, _, _ in voiced]
    x = span.astype(np.float64)
    size = 1 << int(np.ceil(np.log2(x.size + n)))
    spectrum = np.fft.rfft(x, size)
    energy = np.concatenate(([0.0], np.cumsum(x * x)))
    window = np.sqrt(np.maximum(energy[n:] - energy[:-n], 0.0))  # under each lag
    out: list[tuple[float, float | None, float]] = []
    for offset, piece, norm in voiced:
        corr = np.fft.irfft(spectrum * np.conj(np.fft.rfft(piece, size)), size)[: window.size]
        # Stretches far quieter than the piece cannot repeat it (and their tiny energy would
        # turn the FFT's rounding noise into huge ratios).
        ncc = np.where(window > norm / 10, corr / (window * norm + 1e-9), 0.0)
        best = int(np.argmax(ncc))
        score = float(ncc[best])
        out.append((offset, best / rate if score > match else None, score))
    return out
