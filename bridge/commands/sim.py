"""``bridge sim``: run the local Realtime API simulator until SIGINT/SIGTERM.

The first line on stdout is exactly ``realtime simulator listening on ws://HOST:PORT/v1``;
everything else (structlog records) goes to stderr. ``BRIDGE_SIM_JOURNAL`` supplies a default
for ``--journal``. A bad option (a port outside 0-65535, a fault spec, a negative lifetime, an
unknown log level), a host it cannot listen on or a journal it cannot write prints one line
naming the option and the value, and exits with status 2.
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import TYPE_CHECKING

from bridge.commands.options import log_level, port_or_zero

if TYPE_CHECKING:
    from sessions.simulator import SimulatorConfig


def _pace(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive (or inf)")
    return value


def _seconds(text: str) -> float:
    """``--expire-after``: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def _delta_ms(text: str) -> int:
    """``--delta-ms``: 1 to 10000 ms of audio per delta."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"{value} is not from 1 to 10000")
    return value


def _latency_ms(text: str) -> float:
    """``--latency-ms``: zero or more milliseconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not zero or a positive number")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bridge sim``."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=port_or_zero,
        default=8765,
        help="port to bind (0-65535); 0 picks a free one (default 8765)",
    )
    parser.add_argument(
        "--behavior",
        choices=("echo", "tone", "tool"),
        default="echo",
        help="echo: say the caller's utterance back; tone: a 440 Hz tone; tool: call a tool first",
    )
    parser.add_argument(
        "--tool-from-turn",
        type=int,
        default=1,
        metavar="N",
        help="with --behavior tool: call a tool from the Nth user turn on, echo before (default 1)",
    )
    parser.add_argument(
        "--expire-after",
        type=_seconds,
        default=3600.0,
        metavar="S",
        help="session lifetime in seconds (default 3600)",
    )
    parser.add_argument(
        "--pace",
        type=_pace,
        default=4.0,
        metavar="X",
        help="send audio X times faster than real time; inf = at once (default 4)",
    )
    parser.add_argument(
        "--delta-ms",
        type=_delta_ms,
        default=40,
        metavar="MS",
        help="audio per delta, 1-10000 (default 40)",
    )
    parser.add_argument(
        "--latency-ms",
        type=_latency_ms,
        default=0.0,
        metavar="MS",
        help="think time from response.created to the first output (default 0)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="inject a fault: KIND[:ARG][@PHASE][*COUNT]; repeatable (sessions.simulator.faults)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help="accept only this key (default: any key, or none)",
    )
    parser.add_argument(
        "--journal",
        metavar="FILE",
        help="append every frame as a JSON line to FILE (default: $BRIDGE_SIM_JOURNAL)",
    )
    parser.add_argument("--log-json", action="store_true", help="log JSON records to stderr")
    parser.add_argument(
        "--log-level", type=log_level, default="info", help="log level (default info)"
    )


def _config(args: argparse.Namespace) -> SimulatorConfig:
    from sessions.simulator import SimulatorConfig, parse_fault

    return SimulatorConfig(
        behavior=args.behavior,
        expire_after_s=args.expire_after,
        pace=args.pace,
        delta_ms=args.delta_ms,
        latency_ms=args.latency_ms,
        faults=tuple(parse_fault(spec) for spec in args.fault),
        api_key=args.api_key,
        tool_from_turn=args.tool_from_turn,
    )


async def _serve(config: SimulatorConfig, args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from sessions.simulator import Simulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Simulator(config, host=args.host, port=args.port, journal=args.journal) as sim:
        print(f"realtime simulator listening on {sim.url}", flush=True)
        await stop.wait()
    return 0


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; exit 0 then, 2 on a bad option."""
    import asyncio

    from bridge.logs import configure_logging, register_secret
    from bridge.pod.settings import sim_journal
    from sessions.errors import ConfigError

    configure_logging(json=args.log_json, level=args.log_level)
    register_secret(args.api_key)
    if args.journal is None:
        args.journal = sim_journal()  # $BRIDGE_SIM_JOURNAL: the test suite's hook
    try:
        config = _config(args)
    except ConfigError as exc:
        print(f"bridge sim: error: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(config, args))
    except OSError as exc:  # port taken, bad interface, journal not writable
        print(f"bridge sim: error: {_listen_error(exc, args)}", file=sys.stderr)
        return 2


def _listen_error(exc: OSError, args: argparse.Namespace) -> str:
    """What went wrong, naming the option: the journal, or the host and port."""
    reason = exc.strerror or str(exc)
    if args.journal and exc.filename is not None:
        return f"--journal {args.journal}: cannot write it ({reason}: {exc.filename})"
    if isinstance(exc, socket.gaierror):
        return f"--host {args.host!r}: unknown host ({reason})"
    return f"cannot listen on --host {args.host} --port {args.port} ({reason.split(': ')[-1]})"
