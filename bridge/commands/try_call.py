"""``bridge try``: one conversation through the real pipeline with a recording as the caller.

    bridge try --input IN.wav --output OUT.wav [--profile NAME] [--profiles FILE]
               [--realtime-url URL] [--json] [--metrics-port P]

Without ``--realtime-url`` and without Realtime credentials in the environment, the
simulator runs in-process (``--sim-behavior``). With ``--json`` the last stdout line is a
JSON summary. Exit status: 0 when the call ran to the end of the recording, 1 when it ended
on an error (the reason is printed, never a traceback, never a key), 2 on bad arguments or
configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from bridge.errors import BAD_CONFIGURATION, EXPECTED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, type=Path, help="the caller: a PCM WAV file")
    parser.add_argument(
        "--output",
        required=True,
        type=Path,
        help="where to write the agent's audio (24 kHz mono WAV)",
    )
    add_common_arguments(parser)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``try`` and ``demo``."""
    parser.add_argument("--profile", default="default", help="profile name (default: default)")
    parser.add_argument(
        "--profiles",
        type=Path,
        help="profiles file (default: $BRIDGE_PROFILES or the built-in ones)",
    )
    parser.add_argument(
        "--realtime-url", help="a Realtime endpoint base URL, e.g. ws://127.0.0.1:8765/v1"
    )
    parser.add_argument(
        "--sim-behavior",
        default="echo",
        choices=("echo", "tone", "tool"),
        help="what the in-process simulator says (when it is used)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON summary as the last line of stdout"
    )
    parser.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics on this port during the run"
    )
    parser.add_argument("--log-level", default="warning", help="log level (default: warning)")


def run(args: argparse.Namespace) -> int:
    return execute(args, args.input, args.output)


def execute(args: argparse.Namespace, input_path: Path, output_path: Path) -> int:
    """Run the trial described by ``args``; shared by ``try`` and ``demo``."""
    from bridge.logs import configure_logging

    configure_logging(json=False, level=args.log_level)
    try:
        summary = asyncio.run(_main(args, input_path, output_path))
    except BAD_CONFIGURATION as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EXPECTED as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    failed = summary.get("failed", False)
    if args.json:
        print(json.dumps(summary))
    if failed:
        print(f"error: {summary['end_reason']}", file=sys.stderr)
        return 1
    return 0


async def _main(args: argparse.Namespace, input_path: Path, output_path: Path) -> dict[str, Any]:
    from bridge.heap import freeze_long_lived
    from bridge.local.trial import run_trial
    from bridge.local.wavfile import read_wav, write_wav
    from bridge.metrics import BridgeMetrics
    from bridge.pod.settings import (
        has_realtime_credentials,
        load_profiles,
        price_table,
        realtime_endpoint,
    )
    from sessions.endpoint import Endpoint

    profiles = load_profiles(args.profiles)  # --profiles, BRIDGE_PROFILES, or the built-in
    profile = profiles.get(args.profile)
    wav = read_wav(input_path)
    model = profile.session.model
    async with AsyncExitStack() as stack:
        if args.realtime_url or has_realtime_credentials():
            endpoint = realtime_endpoint(model, url=args.realtime_url)
            where = endpoint.redacted_url
        else:
            from sessions.simulator import Simulator, SimulatorConfig

            journal = os.environ.get("BRIDGE_SIM_JOURNAL")
            sim = await stack.enter_async_context(
                Simulator(
                    SimulatorConfig(behavior=args.sim_behavior),
                    journal=Path(journal) if journal else None,
                )
            )
            endpoint = Endpoint.compatible(sim.url, model, api_key="local-simulator")
            where = f"the in-process simulator ({args.sim_behavior})"
        metrics = BridgeMetrics()
        if args.metrics_port is not None:
            from bridge.pod.health import serve_metrics

            await stack.enter_async_context(serve_metrics(args.metrics_port, metrics))
        print(
            f"caller: {input_path} ({wav.seconds:.1f} s, {wav.rate} Hz, {wav.channels} ch);"
            f" profile {profile.name!r}; Realtime: {where}",
            flush=True,
        )
        freeze_long_lived(collect=True)  # as bridge start does before calls: bridge/heap.py
        result = await run_trial(wav, profile, endpoint, metrics=metrics, prices=price_table())
    write_wav(output_path, result.output, 24_000)
    summary = result.summary()
    summary["output_file"] = str(output_path)
    print_conversation(summary)
    print_figures(summary)
    return summary


def print_conversation(summary: dict[str, Any]) -> None:
    print("\nconversation:")
    for line in summary["conversation"]:
        print(f"  {line['at']:7.2f} s  {line['who']:>6}: {line['text']}")


def print_figures(summary: dict[str, Any]) -> None:
    v2v = summary["voice_to_voice_ms"]
    stops = summary["barge_in_stop_ms"]
    inl = summary["in_latency_ms"]["total"]
    out = summary["out_latency_ms"]
    print("\nfigures:")
    print(
        f"  responses {summary['responses']}, interruptions {summary['interruptions']},"
        f" agent audio {summary['agent_audio_seconds']:.2f} s"
    )
    if v2v:
        print(
            "  voice-to-voice (caller's speech end -> first agent audio out):"
            f" {', '.join(f'{x:.0f}' for x in v2v)} ms"
        )
    if stops:
        print(
            "  barge-in stop (speech_started -> agent source cleared, the bridge's part):"
            f" {', '.join(f'{x:.2f}' for x in stops)} ms"
        )
    for t in summary["truncations"]:
        print(
            f"  truncation {t['item_id']}: played {t['played_ms']} ms,"
            f" audio_end_ms {t['audio_end_ms']} ({t['action']})"
        )
    if inl["n"]:
        print(f"  caller frame -> on the socket: p50 {inl['p50']:.1f} ms, p99 {inl['p99']:.1f} ms")
    if out["n"]:
        print(f"  model audio -> into the source: p50 {out['p50']:.2f} ms, p99 {out['p99']:.2f} ms")
    if summary["errors"]:
        print(f"  errors: {summary['errors']}")
    print(
        f"  output: {summary['output_file']} ({summary['output_seconds']:.1f} s, aligned with"
        " the input)"
    )
