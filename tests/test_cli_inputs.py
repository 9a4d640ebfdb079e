"""Every bad input gets a clear answer: the command line as a careless user drives it.

One table of cases (crafted files, odd paths, ports, URLs, environments) for ``bridge try``,
``demo``, ``start``, ``sim`` and ``bench``. Each case runs the real command in a subprocess
(in a process group of its own) with a fresh copy of the input files, and every case asserts:
the exit status; that stderr names the problem; that nothing printed a traceback; that a
``--json`` run ends with its JSON line (with the same exit status, and the problem in
``errors``); that no input file was changed and nothing but the expected output was left
behind; that the process left nothing running. Cases that refuse fail before any call (that
is the point); the few that play are short recordings at the edges of what is accepted (the
whole rate and bit-depth matrix goes through the reader and the resampler in
``tests/test_wavfile.py``). The cases run a few at a time, so the table costs about as long
as its slowest rows.

Servers the cases point at, all on 127.0.0.1 and port 0: a port held bound but not listening
(connection refused), a listening socket that closes every connection at once, a plain
HTTP/1.0 server answering 404, a listening socket that never accepts (a port in use), and a
``bridge sim`` that accepts one key only.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bridge.local.wavfile import read_wav
from tests.conftest import REPO_ROOT
from tests.realtime_schema import check_journal
from tests.wavs import FLOAT, PCM, craft, tone

KEY = "sk-proj-wrongwrongwrong0123456789"
PROFILES = REPO_ROOT / "bridge/call/default_profiles.toml"


def input_files() -> dict[str, bytes]:
    """The files every case gets a fresh copy of (in ``in/``)."""
    short = tone(16_000, 1.0)
    files = {
        "ok.wav": craft(short, 16_000),
        "empty.wav": b"",
        "junk.wav": b"RIFF not really a wav",
        "song.mp3": b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(200),
        "rate0.wav": craft(short[:100], 0),
        "rate4k.wav": craft(short[:100], 4_000),
        "rate384k.wav": craft(short[:100], 384_000),
        "adpcm.wav": craft(short[:100], 8_000, code=2, bits=4, data=bytes(200)),
        "profiles.toml": PROFILES.read_bytes(),
        "binary.toml": bytes(range(256)),
        "prices.toml": b"not = [valid toml",
        # Plays: the edges of what is accepted, one second each.
        "odd.wav": craft(tone(16_000, 1.0), 16_000, data=craft_pcm16(tone(16_000, 1.0)) + b"\x01"),
        "r11025.wav": craft(tone(11_025, 1.0), 11_025, bits=8),
        "r96k.wav": craft(tone(96_000, 1.0, channels=2), 96_000, bits=24, extensible=True),
        "r192k.wav": craft(tone(192_000, 1.0), 192_000, code=FLOAT, bits=32),
        "ext16.wav": craft(tone(48_000, 1.0, channels=2), 48_000, code=PCM, extensible=True),
    }
    return files


def craft_pcm16(frames: np.ndarray) -> bytes:
    return np.rint(frames.reshape(-1) * 32767).astype("<i2").tobytes()


@dataclass
class Servers:
    held: int  # bound, not listening: connection refused
    busy: int  # listening, never accepting: a port in use
    closing: int  # accepts and closes at once
    http404: int  # a plain HTTP/1.0 server
    keyed_sim: str  # bridge sim --api-key the-right-key


@dataclass(frozen=True)
class Case:
    name: str
    argv: Callable[[Path, Servers], list[str]]  # (case directory, servers) -> arguments
    code: int
    words: Callable[[Path, Servers], str] | str  # what stderr must say
    env: Callable[[Path, Servers], dict[str, str]] = lambda d, s: {}  # noqa: E731
    plays: bool = False  # a real call: input_seconds > 0, OUT.wav written

    def says(self, d: Path, s: Servers) -> str:
        return self.words if isinstance(self.words, str) else self.words(d, s)


def try_(*rest: str, json_: bool = True) -> Callable[[Path, Servers], list[str]]:
    """``bridge try`` with ``{in}``/``{out}``/``{held}``… filled in per case."""

    def argv(d: Path, s: Servers) -> list[str]:
        names = {
            "in": str(d / "in"),
            "out": str(d / "out"),
            "held": str(s.held),
            "busy": str(s.busy),
            "closing": str(s.closing),
            "http404": str(s.http404),
            "keyed": s.keyed_sim,
        }
        filled = [part.format(**names) for part in rest]
        return [*filled, *(["--json"] if json_ else [])]

    return argv


def plain(*parts: str) -> Callable[[Path, Servers], list[str]]:
    return try_(*parts, json_=False)


def start_env(**extra: str) -> Callable[[Path, Servers], dict[str, str]]:
    """A ``bridge start`` environment: LiveKit at the held port, no fixed ports."""

    def env(d: Path, s: Servers) -> dict[str, str]:
        base = {
            "LIVEKIT_URL": f"ws://127.0.0.1:{s.held}",
            "LIVEKIT_API_KEY": "devkey",
            "LIVEKIT_API_SECRET": "devsecret-devsecret-devsecret-32b",
            "BRIDGE_REALTIME_URL": f"ws://127.0.0.1:{s.held}/v1",
            "BRIDGE_METRICS_PORT": "0",
            "BRIDGE_LIVEKIT_HEALTH_PORT": "0",
            "BRIDGE_LIVEKIT_RETRIES": "1",
            "BRIDGE_LOG_FORMAT": "json",
        }
        names = {"held": s.held, "busy": s.busy, "closing": s.closing, "dir": d}
        return {**base, **{k: v.format(**names) for k, v in extra.items()}}

    return env


IN, OUT = "{in}", "{out}"
CASES = [
    # -- bridge try: the input file ---------------------------------------------------------
    Case("input is a directory", try_("try", "--input", IN, "--output", f"{OUT}/o.wav"), 2,
         "is a directory, not a WAV file"),
    Case("input missing", try_("try", "--input", f"{IN}/nope.wav", "--output", f"{OUT}/o.wav"), 2,
         "nope.wav: no such file"),
    Case("input is /dev/zero", try_("try", "--input", "/dev/zero", "--output", f"{OUT}/o.wav"), 2,
         "/dev/zero: not a WAV file"),
    Case("empty file", try_("try", "--input", f"{IN}/empty.wav", "--output", f"{OUT}/o.wav"), 2,
         "empty.wav: the file is empty (0 bytes)"),
    Case("not a WAV file", try_("try", "--input", f"{IN}/junk.wav", "--output", f"{OUT}/o.wav"),
         2, "junk.wav: not a WAV file"),
    Case("an MP3 file", try_("try", "--input", f"{IN}/song.mp3", "--output", f"{OUT}/o.wav"), 2,
         "it looks like an MP3 file"),
    Case("sample rate 0", try_("try", "--input", f"{IN}/rate0.wav", "--output", f"{OUT}/o.wav"),
         2, "a sample rate of 0 Hz"),
    Case("4 kHz", try_("try", "--input", f"{IN}/rate4k.wav", "--output", f"{OUT}/o.wav"), 2,
         "a sample rate of 4000 Hz; bridge try plays 8000 to 192000 Hz"),
    Case("384 kHz", try_("try", "--input", f"{IN}/rate384k.wav", "--output", f"{OUT}/o.wav"), 2,
         "384000 Hz"),
    Case("ADPCM", try_("try", "--input", f"{IN}/adpcm.wav", "--output", f"{OUT}/o.wav"), 2,
         "Microsoft ADPCM (WAV format code 2) is not read"),
    # -- the output path ----------------------------------------------------------------------
    Case("output is the input", try_("try", "--input", f"{IN}/ok.wav", "--output", f"{IN}/ok.wav"),
         2, "is the input file"),
    Case("output is the input, spelled otherwise",
         try_("try", "--input", f"{IN}/ok.wav", "--output", f"{IN}/../in/./ok.wav"), 2,
         "is the input file"),
    Case("output is a link to the input",
         try_("try", "--input", f"{IN}/ok.wav", "--output", f"{OUT}/link.wav"), 2,
         "is the input file"),
    Case("output is the profiles file",
         try_("try", "--input", f"{IN}/ok.wav", "--profiles", f"{IN}/profiles.toml",
              "--output", f"{IN}/profiles.toml"), 2, "profiles.toml: it would be lost"),
    Case("output directory missing",
         try_("try", "--input", f"{IN}/ok.wav", "--output", f"{OUT}/nowhere/o.wav"), 2,
         "nowhere does not exist"),
    Case("output is a directory", try_("try", "--input", f"{IN}/ok.wav", "--output", OUT), 2,
         "is a directory; give a file name"),
    Case("output under a file",
         try_("try", "--input", f"{IN}/ok.wav", "--output", f"{IN}/ok.wav/o.wav"), 2,
         "ok.wav is not a directory"),
    Case("output not writable",
         try_("try", "--input", f"{IN}/ok.wav", "--output", "/proc/bridge-try-out.wav"), 2,
         "cannot write in /proc"),
    # -- options ------------------------------------------------------------------------------
    Case("metrics port 0", try_("try", "--input", f"{IN}/ok.wav", "--output", f"{OUT}/o.wav",
                                "--metrics-port", "0"), 2, "0 is not a port (1 to 65535)"),
    Case("metrics port 70000", try_("try", "--input", f"{IN}/ok.wav", "--output", f"{OUT}/o.wav",
                                    "--metrics-port", "70000"), 2, "70000 is not a port"),
    Case("metrics port in use", try_("try", "--input", f"{IN}/ok.wav", "--output", f"{OUT}/o.wav",
                                     "--metrics-port", "{busy}"), 2,
         lambda d, s: f"--metrics-port {s.busy}: cannot listen"),
    Case("log level nonsense", try_("try", "--input", f"{IN}/ok.wav", "--output", f"{OUT}/o.wav",
                                    "--log-level", "nonsense"), 2,
         "log level 'nonsense' is not one of debug, info, warning, error, critical"),
    Case("no --input", try_("try", "--output", f"{OUT}/o.wav"), 2,
         "the following arguments are required: --input"),
    Case("unknown option", try_("try", "--input", f"{IN}/ok.wav", "--output", f"{OUT}/o.wav",
                                "--colour"), 2, "unrecognized arguments: --colour"),
    Case("unknown profile", try_("try", "--input", f"{IN}/ok.wav", "--output", f"{OUT}/o.wav",
                                 "--profile", "nope"), 2, "no profile named 'nope'"),
    Case("profiles file missing", try_("try", "--input", f"{IN}/ok.wav", "--output",
                                       f"{OUT}/o.wav", "--profiles", f"{IN}/nope.toml"), 2,
         "cannot read the file"),
    Case("profiles file binary", try_("try", "--input", f"{IN}/ok.wav", "--output",
                                      f"{OUT}/o.wav", "--profiles", f"{IN}/binary.toml"), 2,
         "binary.toml: not a UTF-8 text (TOML) file"),
    Case("prices file broken", try_("try", "--input", f"{IN}/ok.wav", "--output", f"{OUT}/o.wav"),
         2, "BRIDGE_PRICES=", env=lambda d, s: {"BRIDGE_PRICES": str(d / "in/prices.toml")}),
    # -- the Realtime endpoint ----------------------------------------------------------------
    Case("URL garbage", try_("try", "--input", f"{IN}/ok.wav", "--output", f"{OUT}/o.wav",
                             "--realtime-url", "garbage"), 2,
         "--realtime-url: not a usable endpoint URL: 'garbage'"),
    Case("connection refused", try_("try", "--input", f"{IN}/ok.wav", "--output", f"{OUT}/o.wav",
                                    "--realtime-url", "ws://127.0.0.1:{held}/v1"), 1,
         "connection refused"),
    Case("server closes at once", try_("try", "--input", f"{IN}/ok.wav", "--output",
                                       f"{OUT}/o.wav", "--realtime-url",
                                       "ws://127.0.0.1:{closing}/v1"), 1,
         "closed the connection without answering"),
    Case("plain HTTP 404", try_("try", "--input", f"{IN}/ok.wav", "--output", f"{OUT}/o.wav",
                                "--realtime-url", "http://127.0.0.1:{http404}/v1"), 1,
         "no Realtime endpoint at this URL (HTTP 404)"),
    Case("key refused", try_("try", "--input", f"{IN}/ok.wav", "--output", f"{OUT}/o.wav",
                             "--realtime-url", "{keyed}"), 1, "API key was rejected",
         env=lambda d, s: {"OPENAI_API_KEY": KEY}),
    # -- plays: the edges of what is accepted -------------------------------------------------
    Case("11.025 kHz 8-bit plays", try_("try", "--input", f"{IN}/r11025.wav", "--output",
                                        f"{OUT}/o.wav"), 0, "", plays=True),
    Case("96 kHz 24-bit stereo EXTENSIBLE plays", try_("try", "--input", f"{IN}/r96k.wav",
                                                       "--output", f"{OUT}/o.wav"), 0, "",
         plays=True),
    Case("192 kHz float plays", try_("try", "--input", f"{IN}/r192k.wav", "--output",
                                     f"{OUT}/o.wav"), 0, "", plays=True),
    Case("16-bit EXTENSIBLE plays", try_("try", "--input", f"{IN}/ext16.wav", "--output",
                                         f"{OUT}/o.wav"), 0, "", plays=True),
    Case("data ending on an odd byte plays", try_("try", "--input", f"{IN}/odd.wav", "--output",
                                                  f"{OUT}/o.wav"), 0,
         "note: ", plays=True),
    # -- bridge demo ----------------------------------------------------------------------------
    Case("demo output directory missing", try_("demo", "--output", f"{OUT}/nowhere/d.wav"), 2,
         "nowhere does not exist"),
    Case("demo unknown option", try_("demo", "--colour"), 2, "unrecognized arguments: --colour"),
    # -- bridge start -------------------------------------------------------------------------
    Case("start: LIVEKIT_URL garbage", plain("start"), 2,
         "LIVEKIT_URL='garbage' is not a LiveKit server URL", env=start_env(LIVEKIT_URL="garbage")),
    Case("start: LIVEKIT_URL without a host", plain("start"), 2,
         "LIVEKIT_URL='wss://' is not a LiveKit server URL", env=start_env(LIVEKIT_URL="wss://")),
    Case("start: LIVEKIT_URL bad port", plain("start"), 2, "is not a LiveKit server URL",
         env=start_env(LIVEKIT_URL="ws://127.0.0.1:99999")),
    Case("start: metrics port out of range", plain("start"), 2,
         "BRIDGE_METRICS_PORT=70000 must be from 0 to 65535",
         env=start_env(BRIDGE_METRICS_PORT="70000")),
    Case("start: metrics port in use", plain("start"), 2,
         lambda d, s: f"BRIDGE_METRICS_PORT={s.busy}: cannot listen",
         env=start_env(BRIDGE_METRICS_PORT="{busy}")),
    Case("start: health port in use", plain("start"), 2,
         lambda d, s: f"BRIDGE_LIVEKIT_HEALTH_PORT={s.busy}: livekit-agents' health server",
         env=start_env(BRIDGE_LIVEKIT_HEALTH_PORT="{busy}")),
    Case("start: log level nonsense", plain("start"), 2, "log level 'nonsense' is not one of",
         env=start_env(BRIDGE_LOG_LEVEL="nonsense")),
    Case("start: --log-level nonsense", plain("start", "--log-level", "nonsense"), 2,
         "log level 'nonsense' is not one of", env=start_env()),
    Case("start: retries negative", plain("start"), 2,
         "BRIDGE_LIVEKIT_RETRIES=-1 must be at least 0",
         env=start_env(BRIDGE_LIVEKIT_RETRIES="-1")),
    Case("start: profiles binary", plain("start"), 2, "not a UTF-8 text (TOML) file",
         env=start_env(BRIDGE_PROFILES="{dir}/in/binary.toml")),
    Case("start: LiveKit refuses connections", plain("start"), 1,
         lambda d, s: f"bridge start: cannot reach LiveKit at ws://127.0.0.1:{s.held}:"
         " connection refused (nothing listens there) (gave up after 3 attempts)",
         env=start_env(BRIDGE_LIVEKIT_RETRIES="2")),
    Case("start: LiveKit closes connections", plain("start"), 1,
         lambda d, s: f"cannot reach LiveKit at ws://127.0.0.1:{s.closing}: the server closed the"
         " connection without answering (gave up after 2 attempts)",
         env=start_env(LIVEKIT_URL="ws://127.0.0.1:{closing}")),
    # -- bridge sim ---------------------------------------------------------------------------
    Case("sim: port out of range", plain("sim", "--port", "70000"), 2, "70000 is not a port"),
    Case("sim: port negative", plain("sim", "--port", "-1"), 2, "-1 is not a port"),
    Case("sim: port in use", plain("sim", "--port", "{busy}"), 2,
         lambda d, s: f"--host 127.0.0.1 --port {s.busy} (address already in use)"),
    Case("sim: host not here", plain("sim", "--host", "192.0.2.1", "--port", "0"), 2,
         "cannot listen on --host 192.0.2.1 --port 0"),
    Case("sim: expire-after negative", plain("sim", "--expire-after", "-1"), 2,
         "-1 is not a positive number of seconds"),
    Case("sim: delta-ms 0", plain("sim", "--delta-ms", "0"), 2, "0 is not from 1 to 10000"),
    Case("sim: latency-ms negative", plain("sim", "--latency-ms", "-5"), 2,
         "-5 is not zero or a positive number"),
    Case("sim: log level nonsense", plain("sim", "--log-level", "nonsense"), 2,
         "log level 'nonsense' is not one of"),
    Case("sim: fault spec", plain("sim", "--port", "0", "--fault", "bogus"), 2,
         "bad fault spec 'bogus'"),
    Case("sim: journal not writable", plain("sim", "--port", "0", "--journal", "/proc/x/j.jsonl"),
         2, "--journal /proc/x/j.jsonl: cannot write it"),
    # -- bridge bench -------------------------------------------------------------------------
    Case("bench: sessions 0", plain("bench", "--sessions", "0"), 2, "sessions must be at least 1"),
    Case("bench: duration 0", plain("bench", "--duration", "0"), 2, "must be at least 1"),
]  # fmt: skip


@dataclass
class Outcome:
    directory: Path
    result: subprocess.CompletedProcess[str]
    before: dict[str, str]
    after: dict[str, str]
    left_running: bool
    journal_problems: list[str] = field(default_factory=list)


def clean_env() -> dict[str, str]:
    """The environment without Realtime, LiveKit or bridge settings (the embedded simulator)."""
    drop = ("OPENAI_", "AZURE_OPENAI_", "LIVEKIT_", "BRIDGE_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def run_case(case: Case, directory: Path, servers: Servers) -> Outcome:
    (directory / "in").mkdir(parents=True)
    (directory / "out").mkdir()
    for name, data in input_files().items():
        (directory / "in" / name).write_bytes(data)
    (directory / "out/link.wav").symlink_to(directory / "in/ok.wav")
    journal = directory / "journal.jsonl"
    env = {**clean_env(), "BRIDGE_SIM_JOURNAL": str(journal), **case.env(directory, servers)}
    before = digests(directory / "in")
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", *case.argv(directory, servers)],
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=180)  # a guard against a hang, no more
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    try:
        os.killpg(process.pid, 0)
        left_running = True
    except ProcessLookupError:
        left_running = False
    _, problems = check_journal(journal)
    after = digests(directory / "in")
    return Outcome(directory, result, before, after, left_running, problems)


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    closing = socket.socket()
    closing.bind(("127.0.0.1", 0))
    closing.listen(64)

    def close_everything() -> None:
        while True:
            try:
                connection, _ = closing.accept()
            except OSError:
                return
            connection.close()

    threading.Thread(target=close_everything, daemon=True).start()

    class NotFound(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_error(404)

        def log_message(self, *args: Any) -> None:
            pass

    http404 = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=http404.serve_forever, daemon=True).start()
    sim = subprocess.Popen(
        [sys.executable, "-m", "bridge", "sim", "--port", "0", "--api-key", "the-right-key"],
        cwd=REPO_ROOT,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert sim.stdout is not None
    line = sim.stdout.readline()
    url = line.strip().rsplit(" ", 1)[-1]
    try:
        yield Servers(
            held=held.getsockname()[1],
            busy=busy.getsockname()[1],
            closing=closing.getsockname()[1],
            http404=http404.server_address[1],
            keyed_sim=url,
        )
    finally:
        sim.terminate()
        sim.wait(timeout=30)
        http404.shutdown()
        http404.server_close()
        closing.shutdown(socket.SHUT_RDWR)  # wakes close_everything's accept: it returns
        for sock in (held, busy, closing):
            sock.close()


@pytest.fixture(scope="module")
def outcomes(
    servers: Servers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[Outcome]]]:
    """Every case, started at once on a few workers; each test waits for its own."""
    root = tmp_path_factory.mktemp("cli-inputs")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            case.name: pool.submit(run_case, case, root / f"case{i}", servers)
            for i, case in enumerate(CASES)
        }
        yield futures


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_every_bad_input_gets_a_clear_answer(
    case: Case, outcomes: dict[str, Future[Outcome]], servers: Servers
) -> None:
    outcome = outcomes[case.name].result()
    result, directory = outcome.result, outcome.directory
    out, err = result.stdout, result.stderr
    context = f"exit {result.returncode}\nstdout:\n{out[-2000:]}\nstderr:\n{err[-3000:]}"
    assert result.returncode == case.code, context
    assert "Traceback" not in out + err, context
    assert case.says(directory, servers) in err, context
    assert "livekit_ffi" not in err and KEY not in out + err, context
    assert outcome.after == outcome.before, "an input file was changed"
    assert not outcome.left_running, "the command left a process running"
    assert outcome.journal_problems == []
    if "--json" in result.args:
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["exit_code"] == case.code
        assert {"responses", "interruptions", "truncations", "voice_to_voice_ms"} <= set(summary)
        assert {"output_seconds", "dropped_frames", "errors", "input_seconds"} <= set(summary)
        if case.code:
            assert summary["failed"] is True and summary["errors"], summary
            assert summary["errors"][0]["message"] in err
    if case.plays:
        assert summary["input_seconds"] > 0 and summary["errors"] == []
        agent = read_wav(directory / "out/o.wav")
        assert (agent.rate, agent.channels) == (24_000, 1) and agent.seconds >= 1.0
        left = sorted(path.name for path in (directory / "out").iterdir())
        assert left == ["link.wav", "o.wav"], "a temporary file was left behind"
    elif case.code:
        assert sorted(path.name for path in (directory / "out").iterdir()) == ["link.wav"]
    if case.name.startswith("start: LiveKit"):
        check_gave_up_cleanly(case, outcome, servers)


def check_gave_up_cleanly(case: Case, outcome: Outcome, servers: Servers) -> None:
    """One line per failed attempt naming the URL and the cause, then the closing line; the
    health port livekit-agents bound is free again."""
    env = case.env(outcome.directory, servers)
    url = env["LIVEKIT_URL"]
    retries = int(env["BRIDGE_LIVEKIT_RETRIES"])
    lines = outcome.result.stderr.splitlines()
    attempts = [line for line in lines if f"cannot reach LiveKit at {url}: " in line]
    assert len(attempts) == retries + 1, lines
    for number, line in enumerate(attempts[:-1], 1):
        assert f"; retry {number} of {retries} in " in json.loads(line)["event"]
    assert attempts[-1].startswith("bridge start: ")
    health = re.search(r"HTTP server listening on :(\d+)", outcome.result.stderr)
    assert health is not None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", int(health.group(1))))  # free: nothing holds it any more


def test_ctrl_c_while_the_agent_speaks_ends_the_call_cleanly(tmp_path: Path) -> None:
    """SIGINT while the agent's reply plays: the call ends the way the recording's end does,
    the JSON summary and OUT.wav hold what happened so far, exit 130, and nothing native
    complains on the way out. The moment comes from the simulator's journal, read through a
    FIFO: half a second of the caller's appends (real time) after its first audio delta."""
    fifo = tmp_path / "journal.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    keeper = os.open(fifo, os.O_WRONLY)  # no EOF before the simulator opens it
    os.set_blocking(reader, True)
    speaking = threading.Event()

    def drain() -> None:  # the simulator blocks if the FIFO fills: read it to the end
        pending, appends = b"", -1
        while chunk := os.read(reader, 1 << 16):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if appends < 0 and b"response.output_audio.delta" in line:
                    appends = 0
                elif appends >= 0 and b"input_audio_buffer.append" in line:
                    appends += 1  # 20 ms of the caller each, in real time: the clock
            if appends >= 25:
                speaking.set()

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    out = tmp_path / "out.wav"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bridge",
            "try",
            "--input",
            str(REPO_ROOT / "bridge/assets/demo_caller.wav"),
            "--output",
            str(out),
            "--json",
        ],
        cwd=tmp_path,
        env={**clean_env(), "BRIDGE_SIM_JOURNAL": str(fifo)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert speaking.wait(timeout=120), "the agent never spoke"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        os.close(keeper)
        thread.join(timeout=60)
        os.close(reader)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stdout + stderr and "livekit_ffi" not in stderr, stderr
    assert "stopped: interrupted (Ctrl-C)" in stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["exit_code"] == 130 and summary["end_reason"] == "interrupted (Ctrl-C)"
    assert "speaking" in summary["states"] and summary["input_seconds"] > 0
    assert summary["agent_audio_seconds"] > 0 and "conversation:" in stdout
    agent = read_wav(out)
    assert agent.rate == 24_000 and np.count_nonzero(agent.samples) > 0
