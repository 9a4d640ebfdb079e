"""How long the protocol core takes on the audio hot path (a benchmark, not a test).

    python -m bridge.bench.protocol [--rounds 7] [--number 20000]

Prints microseconds per operation (the median of ``--rounds`` timings of ``--number`` calls
each, and the best round):

- encoding an ``input_audio_buffer.append`` of 10 and 20 ms (bytes and numpy input);
- the whole append path of a 10 ms frame (framer + encode), as the session does it;
- decoding a ``response.output_audio.delta`` of 20, 40 and 100 ms into an ``AudioDelta``.
Goals (issue "Realtime sessions"): ≤ 10 µs to encode a 20 ms append, ≤ 15 µs to decode a
delta.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import timeit
from collections.abc import Callable

import numpy as np

from resampling.framing import Framer
from sessions.protocol import RealtimeProtocol


def _time(fn: Callable[[], object], number: int, rounds: int) -> tuple[float, float]:
    runs = [t / number * 1e6 for t in timeit.repeat(fn, number=number, repeat=rounds)]
    return statistics.median(runs), min(runs)


def _delta_frame(ms: int) -> str:
    return json.dumps(
        {
            "type": "response.output_audio.delta",
            "event_id": "event_" + "a" * 21,
            "response_id": "resp_" + "b" * 21,
            "item_id": "item_" + "c" * 21,
            "output_index": 0,
            "content_index": 0,
            "delta": base64.b64encode(os.urandom(48 * ms)).decode(),
        }
    )


def measure(number: int, rounds: int) -> list[tuple[str, float, float]]:
    protocol = RealtimeProtocol()
    rows: list[tuple[str, float, float]] = []

    for ms in (10, 20):
        pcm = os.urandom(48 * ms)
        array = np.frombuffer(pcm, dtype=np.int16)

        def encode_bytes(pcm: bytes = pcm) -> None:
            protocol.append_audio(pcm)
            protocol.data_to_send()

        def encode_array(array: np.ndarray = array) -> None:
            protocol.append_audio(array)
            protocol.data_to_send()

        rows.append((f"encode {ms} ms append (bytes)", *_time(encode_bytes, number, rounds)))
        rows.append((f"encode {ms} ms append (int16 array)", *_time(encode_array, number, rounds)))

    framer = Framer.for_duration(24_000, 20)
    frame = np.frombuffer(os.urandom(480), dtype=np.int16)  # 10 ms at 24 kHz

    def session_path() -> None:
        for chunk in framer.push(frame):
            protocol.append_audio(chunk)
        protocol.data_to_send()

    rows.append(("10 ms frame -> framer -> 20 ms appends", *_time(session_path, number, rounds)))

    for ms in (20, 40, 100):
        text = _delta_frame(ms)

        def decode(text: str = text) -> None:
            protocol.receive_text(text)
            protocol.events_received()

        rows.append((f"decode {ms} ms output_audio.delta", *_time(decode, number, rounds)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bridge.bench.protocol",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--number", type=int, default=20_000, help="calls per timing")
    parser.add_argument("--rounds", type=int, default=7, help="timings (median reported)")
    args = parser.parse_args(argv)
    rows = measure(args.number, args.rounds)
    width = max(len(name) for name, _, _ in rows)
    print(f"{'operation':<{width}}  median µs  best µs")
    for name, median, best in rows:
        print(f"{name:<{width}}  {median:9.2f}  {best:7.2f}")
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
