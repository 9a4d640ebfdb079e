"""``bridge start`` / ``bridge dev``: run the LiveKit worker with the configured profiles.

Settings come from the environment (``bridge.pod.settings``). Missing LiveKit or Realtime
settings print a message naming each missing variable and exit with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bridge.errors import BAD_CONFIGURATION, EXPECTED

DEV = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", help="override BRIDGE_LOG_LEVEL")


def run(args: argparse.Namespace, *, dev: bool = DEV) -> int:
    from bridge.logs import configure_logging
    from bridge.pod.settings import (
        LiveKitSettings,
        WorkerSettings,
        load_profiles,
        realtime_endpoint,
    )

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
        print(f"bridge {'dev' if dev else 'start'}: {exc}", file=sys.stderr)
        return 2

    from bridge.pod.worker import run_worker

    try:
        asyncio.run(run_worker(settings, livekit, dev=dev))
    except EXPECTED as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return 1
    return 0
