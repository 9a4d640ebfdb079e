"""``bridge demo``: ``bridge try`` on the bundled caller recording, zero configuration.

The recording asks a question, then talks over the agent's answer (a barge-in). The run uses
the in-process simulator unless Realtime settings are in the environment, prints the
conversation with timestamps and the latency figures, and writes the agent's audio.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bridge.commands.try_call import add_common_arguments, execute, usage_error

__all__ = ["add_arguments", "run", "usage_error"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        type=Path,
        metavar="OUT.wav",
        help="where to write the agent's audio (default: a temporary file)",
    )
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    output = args.output or Path(tempfile.mkdtemp(prefix="bridge-demo-")) / "agent.wav"
    from bridge.local.wavfile import demo_recording

    return execute(args, demo_recording(), output)
