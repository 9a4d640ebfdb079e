"""``bridge dev``: the worker in development mode (console logs, debug level, random port)."""

from __future__ import annotations

import argparse

from bridge.commands import start


def add_arguments(parser: argparse.ArgumentParser) -> None:
    start.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return start.run(args, dev=True)
