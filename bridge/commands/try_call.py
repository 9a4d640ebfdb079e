"""``bridge try``: one conversation through the real pipeline with a recording as the caller.

    bridge try --input IN.wav --output OUT.wav [--profile NAME] [--profiles FILE]
               [--realtime-url URL] [--sim-behavior echo|tone|tool] [--json]
               [--metrics-port P] [--log-level LEVEL]

Without ``--realtime-url`` and without Realtime credentials in the environment, the
simulator runs in-process (``--sim-behavior``).

Everything that can be checked before the call is checked before it (:func:`prepare`): the
profile, the input file (read whole, never written), the output path (its directory exists
and takes a new file, it is not a directory, and it is none of the input files), the
endpoint settings, ``BRIDGE_PRICES`` and the metrics port. The output is written at the end
through a temporary file in its directory, so a failed write never leaves half a file.

Exit status (:data:`EXIT_CODES`): 0 when the call ran to the end of the recording, 1 when it
ended on an error (the reason is printed, never a traceback, never a key), 2 on bad
arguments, files or configuration, 130 when interrupted (Ctrl-C: the call ends cleanly and
what happened so far is printed). With ``--json`` the last stdout line is always the JSON
summary (:func:`finish`), whatever the outcome: a run that could not start has the same keys,
its reason in ``errors`` and ``exit_code``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import textwrap
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.commands.options import log_level, port
from bridge.errors import BAD_CONFIGURATION, EXPECTED, ConfigError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from bridge.call.profiles import Profile, ProfileSet
    from bridge.local.livekit_server import Credentials
    from bridge.local.room_trial import RoomTrialResult
    from bridge.local.trial import TrialResult
    from bridge.local.wavfile import Wav
    from sessions.endpoint import Endpoint
    from sessions.usage import PriceTable

EXIT_CODES = {
    0: "the call ran to the end of the recording",
    1: "the call ended on an error (the reason is printed)",
    2: "bad arguments, files, profiles or settings (checked before the call)",
    130: "interrupted (Ctrl-C); what happened so far is printed",
}
INTERRUPTED = "interrupted (Ctrl-C)"


def accepted_input() -> str:
    from bridge.local.wavfile import ACCEPTED

    return ACCEPTED


def epilog() -> str:
    """What ``try`` and ``demo`` accept and how they exit (their ``--help``)."""
    codes = "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES.items())
    accepted = textwrap.fill(f"input: {accepted_input()}.", width=78)
    return f"{accepted}\n\nexit status:\n{codes}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input",
        required=True,
        type=Path,
        metavar="IN.wav",
        help="the caller: a WAV file (see below); only read",
    )
    parser.add_argument(
        "--output",
        required=True,
        type=Path,
        metavar="OUT.wav",
        help="where to write the agent's audio (24 kHz mono 16-bit WAV); never an input file",
    )
    add_common_arguments(parser)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``try`` and ``demo``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = epilog()
    parser.add_argument(
        "--profile", default="default", metavar="NAME", help="profile name (default: default)"
    )
    parser.add_argument(
        "--profiles",
        type=Path,
        metavar="FILE",
        help="profiles file (default: $BRIDGE_PROFILES or the built-in ones)",
    )
    parser.add_argument(
        "--realtime-url",
        metavar="URL",
        help="a Realtime endpoint base URL, e.g. ws://127.0.0.1:8765/v1",
    )
    parser.add_argument(
        "--livekit-url",
        metavar="URL",
        help="through this LiveKit server instead of the loopback room (LIVEKIT_API_KEY and "
        "LIVEKIT_API_SECRET from the environment): IN.wav published by a caller, OUT.wav what "
        "that caller received; the agent runs here, dispatched by the server",
    )
    parser.add_argument(
        "--agent-name",
        metavar="NAME",
        help="with --livekit-url: dispatch an already running `bridge start` of this agent "
        "name instead of running the agent here",
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
        "--metrics-port",
        type=port,
        metavar="P",
        help="serve Prometheus metrics on this port (1-65535) during the run",
    )
    parser.add_argument(
        "--log-level",
        type=log_level,
        default="warning",
        metavar="LEVEL",
        help="debug, info, warning, error or critical (default: warning)",
    )


def usage_error(message: str, argv: list[str]) -> None:
    """A refused command line (``bridge.cli``): with ``--json`` the JSON line still ends it."""
    if any(len(arg) > 2 and "--json".startswith(arg) for arg in argv):
        summary = failure(ConfigError(message), 2, code="bad_arguments")
        finish(argparse.Namespace(json=True), summary, quiet=True)


def run(args: argparse.Namespace) -> int:
    return execute(args, args.input, args.output)


@dataclass(frozen=True, slots=True)
class Trial:
    """A run that passed every check made before the call."""

    wav: Wav
    input: Path
    output: Path
    profile: Profile
    endpoint: Endpoint | None  # None: the in-process simulator
    prices: PriceTable
    profiles: ProfileSet
    livekit: Credentials | None = None  # through this server (None: the loopback room)
    agent_name: str | None = None  # an already running agent to dispatch


def execute(args: argparse.Namespace, input_path: Path, output_path: Path) -> int:
    """Run the trial described by ``args``; shared by ``try`` and ``demo``."""
    from bridge.logs import configure_logging

    configure_logging(json=False, level=args.log_level)
    try:
        trial = prepare(args, input_path, output_path)
        summary = asyncio.run(_main(args, trial))
    except BAD_CONFIGURATION as exc:
        return finish(args, failure(exc, 2))
    except EXPECTED as exc:
        return finish(args, failure(exc, 1))
    except KeyboardInterrupt:  # a second Ctrl-C: stop without waiting for a clean end
        return finish(args, failure(INTERRUPTED, 130))
    return finish(args, summary)


def prepare(args: argparse.Namespace, input_path: Path, output_path: Path) -> Trial:
    """Every check that can be made before the call; a :class:`ConfigError` (or another
    :data:`BAD_CONFIGURATION` error) for the first problem found."""
    from bridge.local.wavfile import read_wav
    from bridge.pod.settings import (
        has_realtime_credentials,
        load_profiles,
        price_table,
        profiles_path,
        realtime_endpoint,
    )

    path = profiles_path(args.profiles)  # --profiles, else BRIDGE_PROFILES (None: built-in)
    profiles = load_profiles(path)
    # An agent running elsewhere has its own profiles: the name goes to it as dispatch metadata.
    profile = profiles.default if args.agent_name else profiles.get(args.profile)
    wav = read_wav(input_path)
    inputs = [input_path, *([Path(path)] if path else [])]
    check_output(output_path, inputs)
    endpoint = None
    if args.realtime_url:
        try:
            endpoint = realtime_endpoint(profile.session.model, url=args.realtime_url)
        except BAD_CONFIGURATION as exc:
            raise ConfigError(f"--realtime-url: {exc}") from None
    elif has_realtime_credentials():
        endpoint = realtime_endpoint(profile.session.model)
    livekit = None
    if args.livekit_url:
        from bridge.local.livekit_server import Credentials
        from bridge.pod.settings import livekit_credentials

        livekit = Credentials(*livekit_credentials(args.livekit_url))
    elif args.agent_name:
        raise ConfigError("--agent-name needs --livekit-url (the server that dispatches it)")
    return Trial(
        wav,
        input_path,
        output_path,
        profile,
        endpoint,
        price_table(),
        profiles,
        livekit,
        args.agent_name,
    )


def check_output(output: Path, inputs: list[Path]) -> None:
    """The output can be written and overwrites none of ``inputs``; :class:`ConfigError`
    naming the problem otherwise. Nothing is created or changed."""
    for source in inputs:
        if _same_file(output, source):
            raise ConfigError(f"--output {output} is the input file {source}: it would be lost")
    if output.is_dir():
        raise ConfigError(f"--output {output} is a directory; give a file name")
    parent = output.parent
    if not parent.exists():
        raise ConfigError(f"--output {output}: the directory {parent} does not exist")
    if not parent.is_dir():
        raise ConfigError(f"--output {output}: {parent} is not a directory")
    if output.exists() and not output.is_file():
        if not os.access(output, os.W_OK):
            raise ConfigError(f"--output {output}: not writable")
        return  # a device such as /dev/null: written in place
    if output.exists() and not os.access(output, os.W_OK):
        raise ConfigError(f"--output {output}: the file is not writable")
    try:  # the real test of the directory (read-only mounts, permissions, root or not)
        descriptor, probe = tempfile.mkstemp(prefix=".bridge-try-", dir=parent)
    except OSError as exc:
        raise ConfigError(f"--output {output}: cannot write in {parent} ({exc.strerror})") from None
    os.close(descriptor)
    os.unlink(probe)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def save_output(trial: Trial, samples: NDArray[np.int16], rate: int) -> None:
    """Write the agent's audio: through a temporary file renamed over ``trial.output``, or in
    place for a device (``/dev/null``)."""
    from bridge.local.wavfile import write_wav

    output = trial.output
    if output.exists() and not output.is_file():
        write_wav(output, samples, rate)
        return
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{output.name}.", suffix=".tmp", dir=output.parent
    )
    os.close(descriptor)
    try:
        write_wav(temporary, samples, rate)
        os.replace(temporary, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


async def _main(args: argparse.Namespace, trial: Trial) -> dict[str, Any]:
    from bridge.heap import freeze_long_lived
    from bridge.local.trial import run_trial
    from bridge.metrics import BridgeMetrics
    from sessions.endpoint import Endpoint

    wav, profile = trial.wav, trial.profile
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def interrupted() -> None:  # the first Ctrl-C ends the call cleanly; a second one exits
        stop.set()
        loop.remove_signal_handler(signal.SIGINT)

    loop.add_signal_handler(signal.SIGINT, interrupted)
    async with AsyncExitStack() as stack:
        metrics = BridgeMetrics()
        if args.metrics_port is not None:
            from bridge.pod.health import serve_metrics

            try:
                await stack.enter_async_context(serve_metrics(args.metrics_port, metrics))
            except OSError as exc:
                raise ConfigError(
                    f"--metrics-port {args.metrics_port}: cannot listen ({exc.strerror or exc})"
                ) from None
        sim_url: str | None = None  # the in-process simulator's base URL, when it is used
        if trial.endpoint is not None:
            endpoint = trial.endpoint
            where = endpoint.redacted_url
        else:
            from bridge.pod.settings import sim_journal
            from sessions.simulator import Simulator, SimulatorConfig

            sim = await stack.enter_async_context(
                Simulator(SimulatorConfig(behavior=args.sim_behavior), journal=sim_journal())
            )
            sim_url = sim.url
            endpoint = Endpoint.compatible(sim_url, profile.session.model, api_key="local")
            where = f"the in-process simulator ({args.sim_behavior})"
        print(
            f"caller: {trial.input} ({wav.seconds:.1f} s, {wav.rate} Hz, {wav.channels} ch,"
            f" {wav.encoding}); profile {profile.name!r}; Realtime: {where}",
            flush=True,
        )
        for note in wav.notes:
            print(f"note: {trial.input}: {note}", file=sys.stderr)
        freeze_long_lived(collect=True)  # as bridge start does before calls: bridge/heap.py
        result: TrialResult | RoomTrialResult
        if trial.livekit is not None:
            from bridge.local.room_trial import run_room_trial

            print(f"room: {trial.livekit.url} (agent: {trial.agent_name or 'in this process'})")
            result = await run_room_trial(
                trial.input,
                wav,
                args.profile,
                trial.profiles,
                trial.livekit,
                agent_name=trial.agent_name,
                realtime_url=args.realtime_url or sim_url,  # None: the environment's endpoint
                metrics=metrics,
                prices=trial.prices,
                stop=stop,
            )
        else:
            result = await run_trial(
                wav, profile, endpoint, metrics=metrics, prices=trial.prices, stop=stop
            )
    summary = result.summary()
    summary["output_file"] = str(trial.output)
    if stop.is_set():
        summary["end_reason"] = INTERRUPTED
        summary["exit_code"] = 130
    try:
        save_output(trial, result.output, 24_000)
    except OSError as exc:
        message = f"--output {trial.output}: cannot write it ({exc.strerror or exc})"
        summary["errors"].append({"code": "output_not_written", "message": message})
        summary["failed"], summary["end_reason"], summary["exit_code"] = True, message, 1
        summary["output_file"] = None
    print_conversation(summary)
    print_figures(summary)
    return summary


def failure(
    problem: BaseException | str, exit_code: int, *, code: str | None = None
) -> dict[str, Any]:
    """The summary of a run that never got to (or never finished) its call: every key of a
    real summary, empty, with the reason in ``end_reason`` and ``errors`` (``code``, or
    :func:`error_code`'s)."""
    from bridge.call.records import CallRecord

    message = str(problem)
    summary = CallRecord(started_at=0.0, end_reason=message, failed=exit_code != 130).summary()
    summary["errors"] = [{"code": code or error_code(problem), "message": message}]
    summary.update(output_seconds=0.0, agent_audio_seconds=0.0, output_file=None)
    summary["exit_code"] = exit_code
    return summary


def error_code(problem: BaseException | str) -> str:
    """A short code for ``errors``: the error's own ``code`` when it has a textual one, else
    its class name in snake case (``HandshakeRejected`` → ``handshake_rejected``)."""
    if isinstance(problem, str):
        return "interrupted" if problem == INTERRUPTED else "error"
    code = getattr(problem, "code", None)
    if isinstance(code, str) and code:
        return code
    name = type(problem).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def finish(args: argparse.Namespace, summary: dict[str, Any], *, quiet: bool = False) -> int:
    """The one place a run's outcome is reported: the reason on stderr (never a traceback;
    ``quiet`` when it was already printed), and with ``--json`` the summary as the last stdout
    line. Returns the exit status."""
    code = int(summary.get("exit_code", 1 if summary.get("failed") else 0))
    summary["exit_code"] = code
    if code and not quiet:
        print(f"{'stopped' if code == 130 else 'error'}: {summary['end_reason']}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary), flush=True)
    return code


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
    heard = summary.get("heard")
    if heard is not None:
        figures = [
            ("mouth-to-ear as the caller heard it (speech end -> agent audio)", "mouth_to_ear_ms"),
            ("barge-in stop as heard (caller speaks -> agent silent)", "barge_in_stop_heard_ms"),
            ("truncation error as heard (audio_end_ms - heard)", "truncation_error_heard_ms"),
        ]
        for label, key in figures:
            if heard[key]:
                print(f"  {label}: {', '.join(f'{x:.0f}' for x in heard[key])} ms")
    if inl["n"]:
        print(f"  caller frame -> on the socket: p50 {inl['p50']:.1f} ms, p99 {inl['p99']:.1f} ms")
    if out["n"]:
        print(f"  model audio -> into the source: p50 {out['p50']:.2f} ms, p99 {out['p99']:.2f} ms")
    if summary["errors"]:
        print(f"  errors: {summary['errors']}")
    if summary["output_file"]:
        print(
            f"  output: {summary['output_file']} ({summary['output_seconds']:.1f} s, aligned"
            " with the input)"
        )
