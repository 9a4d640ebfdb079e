"""The ``--impairment`` options of ``bridge bench`` and what they run (``bridge.bench.impairment``).

Kept apart from ``bridge.commands.bench`` so that command only adds the options and hands
over; importing this module is cheap (the benchmark's modules load inside :func:`run`).
``--json``, ``--chart``, ``--keep``, ``--repeat`` and ``--seed`` are the command's own.
Exit status 0; 1 when a call or the set-up failed; 2 on bad arguments or when the machine
cannot run it (no root: namespaces and TUN devices need it); 130 when interrupted (SIGINT
or SIGTERM: everything it made is taken down first).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "impairment",
        "bridge bench --impairment: callers over an impaired network (made here: needs root), "
        "WebRTC through the bridge against a direct WebSocket to the model",
    )
    group.add_argument(
        "--impairment",
        action="store_true",
        help="run the impaired-network matrix instead (--condition, --paths, --uplink)",
    )
    group.add_argument(
        "--condition",
        action="append",
        metavar="SPEC",
        help="a condition, repeatable (default: the whole matrix): clean, loss=10, loss=10/3 "
        "(bursts), jitter=30, delay=80, reorder=1, outage=2@speaking|@listening; join terms "
        "with +, prefix one with up: or down: for one direction",
    )
    group.add_argument(
        "--paths",
        default=None,
        help="comma list: webrtc, websocket (default: both; --uplink: webrtc)",
    )
    group.add_argument(
        "--delay-ms",
        type=float,
        default=25.0,
        help="one-way delay each way in every condition (default 25)",
    )
    group.add_argument(
        "--uplink",
        action="store_true",
        help="impair the bridge's own hop to the model instead of the callers' link",
    )


def run(args: argparse.Namespace) -> int:
    from bridge.bench.impairment import (
        DEFAULT_CONDITIONS,
        UPLINK_CONDITIONS,
        ImpairmentOptions,
        run_impairment,
        unavailable,
    )
    from bridge.bench.impairment_report import svg_chart, table
    from bridge.errors import BenchmarkError

    conditions = tuple(args.condition or (UPLINK_CONDITIONS if args.uplink else DEFAULT_CONDITIONS))
    paths = tuple(
        p.strip()
        for p in (args.paths or ("webrtc" if args.uplink else "webrtc,websocket")).split(",")
    )
    try:
        options = ImpairmentOptions(
            conditions=conditions,
            paths=paths,
            repeat=args.repeat,
            delay_ms=args.delay_ms,
            uplink=args.uplink,
            seed=args.seed,
            keep_dir=args.keep,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    reason = unavailable()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # so the namespaces, links and servers are taken down

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        document = run_impairment(options)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(table(document))
    if args.json is not None:
        args.json.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    if args.chart is not None:
        args.chart.write_text(svg_chart(document), encoding="utf-8")
    return 0
