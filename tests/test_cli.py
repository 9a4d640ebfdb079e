"""The command line contract: ``bridge try``, ``bridge demo``, ``bridge start`` as users run
them (subprocesses), including their failures: a refused key, bad files, missing settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from bridge.local.wavfile import read_wav, write_wav
from tests.conftest import REPO_ROOT
from tests.net import free_port

KEY = "sk-proj-wrongwrongwrong0123456789"
SUMMARY_KEYS = {
    "responses",
    "interruptions",
    "truncations",
    "voice_to_voice_ms",
    "output_seconds",
    "dropped_frames",
    "errors",
}
METRICS = [
    "bridge_sessions_active",
    "bridge_voice_to_voice_seconds",
    "bridge_barge_in_stop_seconds",
    "bridge_frames_dropped_total",
    "bridge_realtime_reconnects_total",
    "bridge_realtime_errors_total",
    "bridge_audio_seconds_total",
    "bridge_tokens_total",
    "bridge_cost_usd_total",
]


def bridge(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**clean_env(), **(env or {})},
    )


def clean_env() -> dict[str, str]:
    """The environment without any Realtime or LiveKit settings (the embedded simulator)."""
    drop = ("OPENAI_", "AZURE_OPENAI_", "LIVEKIT_", "BRIDGE_REALTIME_URL")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


@pytest.fixture(scope="module")
def question(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 6 s of the demo caller: one question and room for its answer."""
    demo = read_wav(REPO_ROOT / "bridge/assets/demo_caller.wav")
    path = tmp_path_factory.mktemp("wav") / "question.wav"
    write_wav(path, demo.samples[: 6 * demo.rate], demo.rate)
    return path


def test_try_writes_the_agent_audio_and_a_json_summary(question: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    result = bridge("try", "--input", str(question), "--output", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert SUMMARY_KEYS <= set(summary)
    assert summary["responses"] == 1 and summary["errors"] == []
    assert len(summary["voice_to_voice_ms"]) == 1
    agent = read_wav(out)
    assert (agent.rate, agent.channels) == (24_000, 1)
    assert agent.seconds >= 6.0  # aligned with the input: at least as long
    assert np.count_nonzero(agent.samples) > 24_000  # the echo of the question is in it
    assert "conversation:" in result.stdout and "figures:" in result.stdout


def test_a_refused_key_ends_try_with_a_clear_message(
    sim_process, question: Path, tmp_path: Path
) -> None:
    sim = sim_process("--api-key", "the-right-key")
    started = time.monotonic()
    result = bridge(
        "try",
        "--input",
        str(question),
        "--output",
        str(tmp_path / "o.wav"),
        "--realtime-url",
        sim.url,
        env={"OPENAI_API_KEY": KEY},
        timeout=30,
    )
    assert time.monotonic() - started < 30
    assert result.returncode == 1
    assert "API key was rejected" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "wrongwrong" not in result.stderr + result.stdout
    assert "wrongwrong" not in sim.stderr_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "/nonexistent.wav"], "no such file"),
        (["--profile", "nope"], "no profile named 'nope'"),
        (["--profiles", "/nonexistent.toml"], "cannot read the file"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    question: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    base = {"--input": str(question)}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    flat = [x for pair in base.items() for x in pair]
    result = bridge("try", *flat, "--output", str(tmp_path / "o.wav"), timeout=30)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_bad_wav_file_is_refused_clearly(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not really a wav")
    result = bridge("try", "--input", str(junk), "--output", str(tmp_path / "o.wav"), timeout=30)
    assert result.returncode == 2 and "not a WAV file" in result.stderr


def test_demo_runs_and_metrics_are_served_during_the_run(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bridge",
            "demo",
            "--json",
            "--metrics-port",
            str(port),
            "--output",
            str(tmp_path / "demo.wav"),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    page = ""
    deadline = time.monotonic() + 60
    try:
        # Wait (polling the live endpoint) until the barge-in has been counted.
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    page = r.read().decode()
            except OSError:
                page = ""
            if "bridge_interruptions_total 1.0" in page:
                break
            time.sleep(0.2)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    for name in METRICS:
        assert f"# TYPE {name}" in page, name
    assert "bridge_interruptions_total 1.0" in page
    assert "bridge_barge_in_stop_seconds_count 1.0" in page
    assert "bridge_voice_to_voice_seconds_count" in page
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["interruptions"] == 1 and summary["responses"] == 2
    assert "voice-to-voice" in stdout and "barge-in stop" in stdout


def test_start_without_livekit_settings_names_what_is_missing() -> None:
    result = bridge("start", timeout=60)
    assert result.returncode != 0
    for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        assert name in result.stderr
    assert "Traceback" not in result.stderr


def test_start_without_realtime_settings_names_them() -> None:
    env = {
        "LIVEKIT_URL": "ws://127.0.0.1:1",
        "LIVEKIT_API_KEY": "devkey",
        "LIVEKIT_API_SECRET": "devsecret-devsecret",
    }
    result = bridge("start", env=env, timeout=60)
    assert result.returncode != 0 and "OPENAI_API_KEY" in result.stderr
