"""Probe packets: what a link really does to packets, measured end to end.

A sender (``python -m bridge.local.probe send HOST PORT --rate R --seconds S``, run in one
namespace) sends small UDP packets at a fixed rate, each carrying its sequence number and
the wall-clock time it was sent (``time.time_ns()``); a receiver (``... receive PORT
--seconds S``, in the other namespace) records each arrival with the kernel's receive time
(``SO_TIMESTAMPNS``: the moment the link wrote it, whatever the receiver's own scheduling)
and prints them as JSON. Both run on one machine, so the difference of the two clocks is
the one-way delay. :func:`figures` turns sent count and arrivals into what was asked of the
link: loss, the mean length of loss bursts, delay (mean, standard deviation, p50, p99,
minimum), the share of packets reordered, and RFC 3550's interarrival jitter.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bridge.local.netns import Namespace

HEADER = struct.Struct("!Iq")  # sequence, sent at (ns, wall clock)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
PAYLOAD = 160  # bytes per probe: an Opus packet's size


@dataclass(frozen=True, slots=True)
class ProbeFigures:
    sent: int
    received: int
    loss: float
    mean_burst: float  # packets per run of consecutive losses (0 without loss)
    delay_mean_ms: float
    delay_sd_ms: float
    delay_p50_ms: float
    delay_p99_ms: float
    delay_min_ms: float
    reordered: float  # share of received packets that arrived after a later one
    rfc3550_jitter_ms: float

    def to_json(self) -> dict[str, float]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def figures(sent: int, arrivals: Sequence[tuple[int, int, int]]) -> ProbeFigures:
    """Figures from ``sent`` probes and ``arrivals`` (sequence, sent ns, received ns)."""
    seen = sorted({seq for seq, _, _ in arrivals})
    received = len(seen)
    lost = [True] * sent
    for seq in seen:
        if seq < sent:
            lost[seq] = False
    runs, run = [], 0
    for gone in lost:
        if gone:
            run += 1
        elif run:
            runs.append(run)
            run = 0
    if run:
        runs.append(run)
    delays = np.array([(got - at) / 1e6 for _, at, got in arrivals], dtype=np.float64)
    late, highest = 0, -1
    for seq, _, _ in arrivals:
        if seq < highest:
            late += 1
        highest = max(highest, seq)
    jitter = 0.0
    ordered = sorted(arrivals)
    for (_, a0, r0), (_, a1, r1) in zip(ordered, ordered[1:], strict=False):
        d = abs((r1 - r0) - (a1 - a0)) / 1e6
        jitter += (d - jitter) / 16
    empty = delays.size == 0
    return ProbeFigures(
        sent=sent,
        received=received,
        loss=1 - received / sent if sent else 0.0,
        mean_burst=float(np.mean(runs)) if runs else 0.0,
        delay_mean_ms=math.nan if empty else float(delays.mean()),
        delay_sd_ms=math.nan if empty else float(delays.std()),
        delay_p50_ms=math.nan if empty else float(np.percentile(delays, 50)),
        delay_p99_ms=math.nan if empty else float(np.percentile(delays, 99)),
        delay_min_ms=math.nan if empty else float(delays.min()),
        reordered=late / len(arrivals) if arrivals else 0.0,
        rfc3550_jitter_ms=jitter,
    )


class _Stop(Exception):
    pass


def _stop_on_sigterm() -> None:
    def stop(signum: int, frame: object) -> None:
        raise _Stop

    signal.signal(signal.SIGTERM, stop)


def send(host: str, port: int, rate: float, seconds: float) -> int:
    """Send probes at ``rate`` per second for ``seconds`` (or until SIGTERM), paced on the
    monotonic clock; returns how many were sent."""
    count = int(rate * seconds)
    padding = bytes(PAYLOAD - HEADER.size)
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        start = time.monotonic()
        try:
            for seq in range(count):
                delay = start + seq / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                sock.sendto(HEADER.pack(seq, time.time_ns()) + padding, (host, port))
                sent = seq + 1
        except _Stop:
            pass
    return sent


def receive(port: int, quiet_s: float, host: str = "0.0.0.0") -> list[tuple[int, int, int]]:
    """Record probes arriving on ``port`` until ``quiet_s`` pass without one (0: until
    SIGTERM)."""
    arrivals: list[tuple[int, int, int]] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((host, port))
        sock.settimeout(quiet_s or 0.5)
        print(json.dumps({"listening": port}), flush=True)
        try:
            while True:
                try:
                    data, ancillary, _, _ = sock.recvmsg(2048, 64)
                except TimeoutError:
                    if quiet_s:
                        return arrivals
                    continue
                got = time.time_ns()
                for level, kind, value in ancillary:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        s, ns = struct.unpack("qq", value[:16])
                        got = s * 1_000_000_000 + ns
                seq, at = HEADER.unpack_from(data)
                arrivals.append((seq, at, got))
        except _Stop:
            return arrivals


def measure(
    sender: Namespace,
    receiver: Namespace,
    host: str,
    port: int,
    *,
    rate: float = 200.0,
    seconds: float = 10.0,
    quiet_s: float = 3.0,
) -> ProbeFigures:
    """Probe from a process in ``sender`` to ``host:port`` where a process in ``receiver``
    listens (both started here, in their namespaces); the figures of what arrived."""
    python = [sys.executable, "-m", "bridge.local.probe"]
    cwd = Path(__file__).resolve().parents[2]
    listener = subprocess.Popen(
        receiver.command([*python, "receive", str(port), "--seconds", str(quiet_s)]),
        stdout=subprocess.PIPE,
        cwd=cwd,
    )
    try:
        assert listener.stdout is not None
        json.loads(listener.stdout.readline())  # {"listening": port}
        out = subprocess.run(
            sender.command(
                [*python, "send", host, str(port), "--rate", str(rate), "--seconds", str(seconds)]
            ),
            capture_output=True,
            check=True,
            cwd=cwd,
        ).stdout
        sent = int(json.loads(out)["sent"])
        arrivals = json.loads(listener.stdout.read())["arrivals"]
    finally:
        if listener.poll() is None:
            listener.wait(quiet_s + seconds + 10)
        if listener.stdout is not None:
            listener.stdout.close()
    return figures(sent, [tuple(a) for a in arrivals])


class ProbeStream:
    """Probes one way through a link for as long as something else runs (a call): start,
    then :meth:`stop` for the figures. The receiver is started first and waits for SIGTERM,
    so an outage does not end it."""

    def __init__(
        self, sender: Namespace, receiver: Namespace, host: str, port: int, rate: float = 50.0
    ) -> None:
        python = [sys.executable, "-m", "bridge.local.probe"]
        cwd = Path(__file__).resolve().parents[2]
        self._receiver = subprocess.Popen(
            receiver.command([*python, "receive", str(port), "--seconds", "0"]),
            stdout=subprocess.PIPE,
            cwd=cwd,
        )
        try:
            assert self._receiver.stdout is not None
            json.loads(self._receiver.stdout.readline())  # {"listening": port}
            self._sender = subprocess.Popen(
                sender.command(
                    [*python, "send", host, str(port), "--rate", str(rate), "--seconds", "86400"]
                ),
                stdout=subprocess.PIPE,
                cwd=cwd,
            )
        except BaseException:
            self._receiver.kill()
            self._receiver.wait()
            raise

    def stop(self, drain_s: float = 1.0) -> ProbeFigures:
        """Stop sending, give what is in flight ``drain_s`` to arrive, and measure."""
        self._sender.send_signal(signal.SIGTERM)
        out, _ = self._sender.communicate(timeout=10)
        sent = int(json.loads(out)["sent"])
        time.sleep(drain_s)
        self._receiver.send_signal(signal.SIGTERM)
        data, _ = self._receiver.communicate(timeout=10)
        arrivals = json.loads(data)["arrivals"]
        return figures(sent, [tuple(a) for a in arrivals])

    def kill(self) -> None:
        for process in (self._sender, self._receiver):
            if process.poll() is None:
                process.kill()
                process.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.local.probe")
    sub = parser.add_subparsers(dest="role", required=True)
    sender = sub.add_parser("send")
    sender.add_argument("host")
    sender.add_argument("port", type=int)
    sender.add_argument("--rate", type=float, default=100.0)
    sender.add_argument("--seconds", type=float, default=10.0)
    receiver = sub.add_parser("receive")
    receiver.add_argument("port", type=int)
    receiver.add_argument(
        "--seconds", type=float, default=3.0, help="quiet time that ends it (0: SIGTERM does)"
    )
    args = parser.parse_args(argv)
    if args.role == "send":
        _stop_on_sigterm()
        print(json.dumps({"sent": send(args.host, args.port, args.rate, args.seconds)}))
    else:
        _stop_on_sigterm()
        print(json.dumps({"arrivals": receive(args.port, args.seconds)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
