"""The ``bridge`` command line: ``start``, ``dev``, ``sim``, ``try``, ``demo``, ``bench``,
``console``.

Each subcommand lives in its own module under ``bridge.commands`` with ``add_arguments`` and
``run``. Those modules import heavy packages (``livekit``) inside ``run`` only, so building the
parser stays cheap and ``bridge sim`` never loads the LiveKit SDK.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

# subcommand -> (module under bridge.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "start": ("start", "run the LiveKit worker (production: JSON logs, drain on SIGTERM)"),
    "dev": ("dev", "run the LiveKit worker in development mode"),
    "sim": ("sim", "run the local Realtime API simulator"),
    "try": ("try_call", "one conversation through the real pipeline, a WAV file as the caller"),
    "demo": ("demo", "`bridge try` on the bundled caller recording (with a barge-in)"),
    "bench": ("bench", "capacity and latency, side by side with LiveKit Agents' OpenAI plugin"),
    "console": ("console", "a local web page: talk to the agent with the browser's microphone"),
}


class UsageError(Exception):
    """A command line argparse refused: raised instead of exiting, so :func:`main` can let
    the command answer too (``try --json`` still ends with its JSON line)."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser
        self.message = message


class BridgeParser(argparse.ArgumentParser):
    """argparse's parser (its subcommand parsers are of the same class), whose usage errors
    raise :class:`UsageError` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(self, message)


def build_parser() -> argparse.ArgumentParser:
    parser = BridgeParser(
        prog="bridge",
        description="LiveKit room audio <-> OpenAI Realtime API bridge.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"bridge.commands.{module_name}")
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; a refused command line prints argparse's usage and message, lets the
    command add its own answer (its ``usage_error(message, argv)``, if it has one) and exits 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        exc.parser.print_usage(sys.stderr)
        print(f"{exc.parser.prog}: error: {exc.message}", file=sys.stderr)
        module = exc.parser.get_default("_module")
        if module is None and argv and argv[0] in COMMANDS:  # e.g. an unknown option after it
            module = importlib.import_module(f"bridge.commands.{COMMANDS[argv[0]][0]}")
        answer = getattr(module, "usage_error", None)
        if answer is not None:
            answer(exc.message, argv)
        return 2
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
