"""``bridge bench``: capacity and latency, side by side with LiveKit Agents' OpenAI plugin.

    bridge bench --sessions N --duration S [--engine bridge|livekit-plugin]... [--json FILE]
                 [--executor thread|process] [--chart FILE.svg] [--no-floor] [--seed K]
    bridge bench --capacity [--layouts a,b] [--duration S] [--max-sessions M] [--json FILE]
    bridge bench --impairment [--condition SPEC]... [--uplink] (see bridge.bench.impairment)

Prints a progress line per phase while it runs, then a Markdown table (and, with both
engines, the plugin ÷ bridge ratios). ``--sessions`` takes a comma list (``1,4,8``); without
``--engine`` both engines run. With one engine and one number of sessions the JSON file is
that run's figures; otherwise ``{"runs": [...], "comparison": [...]}``. Exit status 0, or 1
when a phase failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENGINE_CHOICES = ("bridge", "livekit-plugin", "bridge-sdk-audio")


def _sessions(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or comma list: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("sessions must be at least 1")
    return values


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sessions", type=_sessions, default=(4,), help="concurrent calls (N, or N1,N2,…)"
    )
    parser.add_argument(
        "--duration", type=_positive, default=60.0, metavar="S", help="measured seconds per phase"
    )
    parser.add_argument(
        "--engine",
        action="append",
        choices=ENGINE_CHOICES,
        help="engine to measure (repeatable; default: bridge and livekit-plugin; "
        "bridge-sdk-audio: ours with the SDK's own audio stream and source, no routing)",
    )
    parser.add_argument(
        "--executor",
        choices=("thread", "process"),
        default="thread",
        help="livekit-agents job executor: all calls in one process (thread, the default) or "
        "one process per call (process)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--chart", type=Path, metavar="FILE", help="write an SVG chart")
    parser.add_argument("--seed", type=int, default=1, help="seed of the callers' patterns")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="K",
        help="measure each engine K times, interleaved; CPU and memory are the median",
    )
    parser.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="skip the loopback-only phases (no own-CPU figure)",
    )
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="keep every phase's files and logs in DIR"
    )
    parser.add_argument(
        "--sim-url", help="use this running simulator instead of starting one (ws://…/v1)"
    )
    parser.add_argument(
        "--room",
        choices=("loopback", "livekit"),
        default="loopback",
        help="loopback: the rtc loopback as the room (default); livekit: through a real LiveKit "
        "server, callers as rtc participants in a process of their own (a local server in a "
        "private network namespace, which needs root, unless --livekit-url is given)",
    )
    parser.add_argument(
        "--livekit-url",
        metavar="URL",
        help="--room livekit: an existing server (LIVEKIT_API_KEY and LIVEKIT_API_SECRET from "
        "the environment)",
    )
    parser.add_argument(
        "--capacity",
        action="store_true",
        help="search how many calls each layout holds (see --layouts); --duration per probe",
    )
    parser.add_argument(
        "--layouts",
        help="comma list for --capacity (default: all): plugin-process, plugin-thread, "
        "bridge, bridge-x2, bridge-pinned, bridge-x2-pinned, bridge-process, "
        "plugin-process-x2-pinned",
    )
    parser.add_argument(
        "--max-sessions", type=int, default=64, help="--capacity: the most calls to try"
    )
    from bridge.bench import impairment_command

    impairment_command.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.impairment:
        from bridge.bench import impairment_command

        return impairment_command.run(args)
    stray = [
        flag
        for flag, given in (
            ("--condition", args.condition),
            ("--paths", args.paths),
            ("--uplink", args.uplink),
        )
        if given
    ]
    if stray:
        print(f"error: {', '.join(stray)} only with --impairment", file=sys.stderr)
        return 2
    with _room(args) as room:
        if room is None:
            return 2
        if args.capacity:
            return _capacity(args, room)
        return _bench(args, room)


@contextlib.contextmanager
def _room(args: argparse.Namespace) -> Iterator[RoomChoice | None]:
    """Where calls happen: the loopback, a given server, or a local server in a private
    network namespace entered here, before anything else starts a thread (libwebrtc needs a
    real interface, and this machine's own must not carry the traffic)."""
    from bridge.errors import BAD_CONFIGURATION

    if args.room == "loopback":
        yield RoomChoice("loopback")
        return
    if args.livekit_url:
        from bridge.pod.settings import livekit_credentials

        try:
            url, key, secret = livekit_credentials(args.livekit_url)
        except BAD_CONFIGURATION as exc:
            print(f"error: {exc}", file=sys.stderr)
            yield None
            return
        yield RoomChoice("livekit", url=url, api_key=key, api_secret=secret)
        return
    from bridge.local import netns

    reason = netns.unavailable()
    if reason:
        print(f"error: --room livekit without --livekit-url: {reason}", file=sys.stderr)
        yield None
        return
    namespace = netns.create(f"bridge-bench-{os.getpid()}")
    try:
        namespace.enter()
        yield RoomChoice("livekit", bind=namespace.host)
    finally:
        namespace.delete()


@dataclass(frozen=True)
class RoomChoice:
    room: str
    url: str | None = None
    api_key: str = ""
    api_secret: str = field(default="", repr=False)
    bind: str | None = None

    def bench_options(self) -> dict[str, Any]:
        from bridge.local.livekit_server import Credentials

        given = Credentials(self.url, self.api_key, self.api_secret) if self.url else None
        return {"room": self.room, "livekit": given, "livekit_bind": self.bind}


def _bench(args: argparse.Namespace, room: RoomChoice) -> int:
    from bridge.bench.report import comparison_lines, room_table, svg_chart, table
    from bridge.bench.runner import BenchOptions, Progress, run_bench
    from bridge.errors import BenchmarkError

    try:
        options = BenchOptions(
            engines=tuple(dict.fromkeys(args.engine or ENGINE_CHOICES[:2])),
            sessions=args.sessions,
            duration_s=args.duration,
            executor=args.executor,
            seed=args.seed,
            floor=args.floor,
            repeat=args.repeat,
            sim_url=args.sim_url,
            keep_dir=args.keep,
            **room.bench_options(),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    progress = Progress()
    try:
        document = run_bench(options, progress)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(table(document))
    if room.room == "livekit":
        print()
        print(room_table(document))
    for line in comparison_lines(document):
        print(line)
    if args.json is not None:
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if args.chart is not None:
        args.chart.write_text(svg_chart(document), encoding="utf-8")
    return 0


def _capacity(args: argparse.Namespace, room: RoomChoice) -> int:
    from bridge.bench.capacity import LAYOUTS, CapacityOptions, run_capacity
    from bridge.bench.report import capacity_table
    from bridge.bench.runner import Progress
    from bridge.errors import BenchmarkError

    layouts = (
        tuple(x.strip() for x in args.layouts.split(",") if x.strip())
        if args.layouts
        else tuple(layout.key for layout in LAYOUTS)
    )
    try:
        options = CapacityOptions(
            layouts=layouts,
            duration_s=args.duration if args.duration != 60.0 else 30.0,
            max_sessions=args.max_sessions,
            seed=args.seed,
            sim_url=args.sim_url,
            keep_dir=args.keep,
            **room.bench_options(),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        document = run_capacity(options, Progress())
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(capacity_table(document))
    if args.json is not None:
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0
