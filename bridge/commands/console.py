"""``bridge console``: a local web page to talk to the agent with the browser's microphone.

    bridge console [--host 127.0.0.1] [--port 8787] [--profiles FILE] [--agent-name NAME]
                   [--agent-timeout S]

Needs ``LIVEKIT_URL``, ``LIVEKIT_API_KEY`` and ``LIVEKIT_API_SECRET`` (the same server as
the worker's; a local one or LiveKit Cloud) and the agent name the worker registered
(``LIVEKIT_AGENT_NAME`` or ``--agent-name``), and the page built once
(``cd web && npm ci && npm run build``). The first stdout line is
``bridge console on http://HOST:PORT/``. Exit status: 0 on SIGINT/SIGTERM, 2 on a missing
setting, a bad profiles file, a page that is not built or a port that is taken.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; anyone who reaches it can start calls)",
    )
    parser.add_argument("--port", type=int, default=8787, help="port (default 8787; 0: any)")
    parser.add_argument(
        "--profiles",
        type=Path,
        help="profiles file, the worker's (default: $BRIDGE_PROFILES or the built-in ones)",
    )
    parser.add_argument(
        "--agent-name", help="the worker's agent name (default: $LIVEKIT_AGENT_NAME)"
    )
    parser.add_argument(
        "--agent-timeout",
        type=float,
        default=15.0,
        help="seconds the page waits for the agent to join before saying why not (default 15)",
    )
    parser.add_argument("--log-level", default="info", help="log level (default: info)")


async def _serve(app: web.Application, host: str, port: int) -> int:
    import asyncio
    import signal

    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"bridge console: error: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 2
    bound = runner.addresses[0][1] if runner.addresses else port
    print(f"bridge console on http://{host}:{bound}/", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    return 0


def run(args: argparse.Namespace) -> int:
    import asyncio

    from bridge.console.assets import missing
    from bridge.console.joins import Rooms
    from bridge.console.server import console_app
    from bridge.errors import BAD_CONFIGURATION
    from bridge.logs import configure_logging
    from bridge.pod.settings import LiveKitSettings, load_profiles

    configure_logging(json=False, level=args.log_level)
    try:
        settings = LiveKitSettings.from_env()
        profiles = load_profiles(str(args.profiles) if args.profiles else None)
    except BAD_CONFIGURATION as exc:
        print(f"bridge console: error: {exc}", file=sys.stderr)
        return 2
    agent_name = args.agent_name or settings.agent_name
    if not agent_name:
        print(
            "bridge console: error: the console sends the agent by name: set LIVEKIT_AGENT_NAME"
            " (as the worker has it) or pass --agent-name",
            file=sys.stderr,
        )
        return 2
    problem = missing()
    if problem is not None:
        print(f"bridge console: error: {problem}", file=sys.stderr)
        return 2
    rooms = Rooms(settings, profiles, agent_name, agent_timeout_s=args.agent_timeout)
    return asyncio.run(_serve(console_app(rooms), args.host, args.port))
