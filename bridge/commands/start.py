"""``bridge start`` / ``bridge dev``: run the LiveKit worker with the configured profiles.

Settings come from the environment (``bridge.pod.settings``), and every one is checked before
anything starts: a missing LiveKit or Realtime setting (each missing variable is named), a
value that is not what it must be (``LIVEKIT_URL=garbage``, a port outside 0-65535, an
unknown log level), a bad profiles file, or a port that cannot be bound prints one line and
exits with status 2. A worker that gives up reaching LiveKit (``BRIDGE_LIVEKIT_RETRIES``)
prints one line naming the URL and the cause and exits with status 1, with nothing left
running. Never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bridge.commands.options import log_level
from bridge.errors import BAD_CONFIGURATION, EXPECTED

DEV = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        type=log_level,
        metavar="LEVEL",
        help="override BRIDGE_LOG_LEVEL (debug, info, warning, error or critical)",
    )


def run(args: argparse.Namespace, *, dev: bool = DEV) -> int:
    from bridge.logs import configure_logging
    from bridge.pod.settings import (
        LiveKitSettings,
        WorkerSettings,
        load_profiles,
        realtime_endpoint,
    )

    name = f"bridge {'dev' if dev else 'start'}"
    try:
        settings = WorkerSettings.from_env(dev=dev)
        configure_logging(
            json=settings.log_format == "json", level=args.log_level or settings.log_level
        )
        livekit = LiveKitSettings.from_env()
        profiles = load_profiles(settings.profiles_path)
        for profile in profiles.profiles.values():  # fail now, not on the first call
            realtime_endpoint(profile.session.model)
    except BAD_CONFIGURATION as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2

    from bridge.pod.worker import run_worker

    try:
        asyncio.run(run_worker(settings, livekit, dev=dev))
    except BAD_CONFIGURATION as exc:  # a port that cannot be bound
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    except EXPECTED as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    return 0
