"""The bridge's own latencies at one session (a benchmark, not a test).

    python -m bridge.bench.pipeline [--rounds 2] [--rate 48000]

Plays the bundled caller recording (resampled to ``--rate``, read from the loopback in 10 ms
frames as WebRTC delivers them) through the real pipeline against the in-process echo
simulator, once per append chunk (10 and 20 ms), and prints, from the call's own records:

- caller frame received from the room → the append carrying its last sample written to the
  socket, p50/p99, split into *waiting* (resampler delay plus chunk filling: input that had
  not arrived yet) and *processing* (resampling, framing, encoding, queueing, writing);
- audio delta read off the socket → its audio captured into the ``AudioSource`` (beyond any
  wait for the source to have room), p50/p99;
- ``speech_started`` read off the socket → the agent's source cleared (barge-in stop).
Goals (issue "The LiveKit bridge"): processing ≤ 2 ms p99, waiting ≤ resampler delay + one
chunk; delta → source ≤ 3 ms; barge-in stop ≤ 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import replace
from typing import Any

import numpy as np
import soxr

from bridge.call.profiles import ProfileSet
from bridge.call.records import Window, percentiles
from bridge.local.trial import run_trial
from bridge.local.wavfile import Wav, demo_recording, read_wav
from resampling.modes import default_mode
from sessions.endpoint import Endpoint


def _caller(rate: int) -> Wav:
    path = demo_recording()
    wav = read_wav(path)
    if wav.rate == rate:
        return wav
    samples = soxr.resample(wav.samples.astype(np.float32), wav.rate, rate, "VHQ")
    return Wav(np.clip(np.rint(samples), -32768, 32767).astype(np.int16), rate, 1)


async def _run(chunk_ms: int, rounds: int, rate: int) -> dict[str, Any]:
    from sessions.simulator import Behavior, Simulator, SimulatorConfig

    waiting, processing, out = Window(), Window(), Window()
    stops: list[float] = []
    profile = replace(ProfileSet.builtin().default, chunk_ms=chunk_ms)
    wav = _caller(rate)
    async with Simulator(SimulatorConfig(behavior=Behavior.ECHO), host="127.0.0.1", port=0) as sim:
        for _ in range(rounds):
            result = await run_trial(wav, profile, Endpoint.compatible(sim.url, api_key="k"))
            record = result.record
            waiting += record.in_waiting_ms
            processing += record.in_processing_ms
            out += record.out_latency_ms
            stops += record.barge_in_stop_ms
    return {
        "chunk_ms": chunk_ms,
        "waiting": percentiles(waiting),
        "processing": percentiles(processing),
        "total": percentiles(waiting.array() + processing.array()),
        "out": percentiles(out),
        "barge_in": percentiles(stops),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bridge.bench.pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=2, help="runs of the recording per chunk")
    parser.add_argument("--rate", type=int, default=48_000, help="caller sample rate")
    args = parser.parse_args(argv)
    from bridge.logs import configure_logging

    configure_logging(json=False, level="error")
    delay_ms = 240 / 48 if default_mode(args.rate).vr and args.rate == 48_000 else None
    print(
        f"caller: bundled recording at {args.rate} Hz, 10 ms frames; {args.rounds} run(s)"
        f" per chunk; resampler delay at this rate: "
        f"{delay_ms if delay_ms is not None else 'see the resampling report'} ms"
    )
    header = (
        f"{'chunk':>5}  {'waiting p50/p99':>16}  {'processing p50/p99':>19}"
        f"  {'total p50/p99':>14}  {'delta->source p50/p99':>22}  {'barge-in stop':>13}"
    )
    print(header)
    for chunk_ms in (10, 20):
        row = asyncio.run(_run(chunk_ms, args.rounds, args.rate))
        w, p, t, o, b = (row[k] for k in ("waiting", "processing", "total", "out", "barge_in"))
        print(
            f"{chunk_ms:>3} ms  {w['p50']:7.2f}/{w['p99']:6.2f} ms  "
            f"{p['p50']:8.3f}/{p['p99']:7.3f} ms  {t['p50']:6.2f}/{t['p99']:5.2f} ms  "
            f"{o['p50']:10.3f}/{o['p99']:8.3f} ms  {b['max']:10.3f} ms"
        )
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
