"""``bridge bench --room livekit``: both engines through the real server, callers apart.

Short (one call each, a few seconds): it checks that the bench measured through the server
what it says it measures, not how fast anything is. The joining of the engine's figures with
what each caller heard is checked on its own, without sockets.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from bridge.bench.room_runner import join_call
from bridge.local.livekit_server import Credentials
from tests.realroom import clean_env


@pytest.fixture(scope="module")
def room_bench(livekit: Credentials, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("room-bench")
    command = [sys.executable, "-m", "bridge", "bench", "--room", "livekit"]
    command += ["--livekit-url", livekit.url, "--sessions", "1", "--duration", "6"]
    command += ["--json", str(out / "bench.json"), "--keep", str(out / "phases")]
    env = clean_env(LIVEKIT_API_KEY=livekit.api_key, LIVEKIT_API_SECRET=livekit.api_secret)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mouth-to-ear" in done.stdout  # the table of what the callers heard
    document: dict[str, Any] = json.loads((out / "bench.json").read_text())
    return document


def test_both_engines_ran_through_the_server(room_bench: dict[str, Any]) -> None:
    assert room_bench["room"] == "livekit"
    runs = {run["engine"]: run for run in room_bench["runs"]}
    assert set(runs) == {"bridge", "livekit-plugin"}
    for engine, run in runs.items():
        assert run["calls_measured"] == 1 and run["error_count"] == 0, (engine, run["errors"])
        assert run["replies"] >= 1 and run["utterances"] >= 1, engine
        assert run["mouth_to_ear_ms"]["n"] >= 1, engine  # heard by a caller of its own process
        assert run["voice_to_voice_ms"]["n"] >= 1, engine  # socket events joined with arrivals
        assert run["in_latency_ms"]["n"] > 100, engine  # the engine's own probes
        assert run["callers_cpu_percent"] > 0, engine  # reported apart from the worker's
        assert run["server_cpu_percent"] is None  # a given server: not ours to measure
        assert run["cpu_percent_per_session_own"] is None  # no loopback floor in a real room


def heard(**extra: Any) -> dict[str, Any]:
    return {
        "room": "r1",
        "error": None,
        "replies": [
            {"start": 0, "end": 24_000, "started_at": 10.4, "ended_at": 11.4, "gaps": 0},
            {"start": 30_000, "end": 40_000, "started_at": 13.0, "ended_at": 13.5, "gaps": 1},
        ],
        "mouth_to_ear_ms": [420.0],
        "utterances": 2,
        "caller_barge_ins": 1,
        "unanswered": 0,
        **extra,
    }


def engine(**extra: Any) -> dict[str, Any]:
    return {
        "error": None,
        "in_latency_ms": [15.0],
        "out_latency_ms": [0.1],
        "barge_in_stop_ms": [0.2],
        "barge_ins_missed": 0,
        "speech_stopped": [10.0, 12.9],
        "speech_started": [9.0, 11.0],
        "barge_in_started": [11.0],
        "truncations": [{"at": 11.01, "cause_at": 11.0, "item_id": "i1", "audio_end_ms": 990}],
        "responses": 2,
        "dropped_frames": 0,
        "loop_stall_max_ms": 3.0,
        "loop_stall_p99_ms": 1.0,
        "gc": {"collections": 1, "full_collections": 0, "max_pause_ms": 0.5},
        "engine_figures": {},
        **extra,
    }


def test_a_call_joins_socket_events_with_what_the_caller_heard() -> None:
    call = join_call("bridge", heard(), engine())
    assert call["voice_to_voice_ms"] == [400.0, 100.0]  # speech_stopped → first audio heard
    assert call["barge_in_silent_ms"] == [400.0]  # barge-in at 11.0, last audio at 11.4
    assert call["truncation_error_ms"] == [10.0]  # 990 sent, 1000 ms heard
    assert call["underruns"] == 1 and call["replies"] == 2 and call["error"] is None


def test_a_call_without_the_engine_s_figures_is_an_error() -> None:
    call = join_call("bridge", heard(), {})
    assert call["error"] == "the engine reported no figures"
    assert call["voice_to_voice_ms"] == [] and call["truncations"] == 0
    failed = join_call("bridge", heard(error="TimeoutError: no agent"), engine())
    assert failed["error"] == "TimeoutError: no agent"
