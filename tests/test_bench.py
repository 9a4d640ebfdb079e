"""``bridge bench`` end to end: both engines against the simulator process, real loopbacks.

Short (2 calls for a few seconds per phase): it checks what the benchmark reports and that it
measured something, not how fast anything is (the figures themselves belong to the README).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from bridge.bench.capacity import Criteria, failures, pod_estimate
from bridge.bench.report import capacity_table, svg_chart, table
from bridge.bench.summary import comparison, phase_summary

FIELDS = (
    "engine",
    "sessions",
    "duration_s",
    "cpu_percent_per_session",
    "cpu_percent_per_session_own",
    "rss_mb_per_session",
    "loop_stall_max_ms",
    "in_latency_ms",
    "out_latency_ms",
    "voice_to_voice_ms",
    "barge_in_stop_ms",
    "truncation_error_ms",
    "underruns",
    "dropped_frames",
)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Path]:
    out = tmp_path_factory.mktemp("bench")
    command = [
        sys.executable,
        "-m",
        "bridge",
        "bench",
        "--sessions",
        "2",
        "--duration",
        "6",
        "--json",
        str(out / "bench.json"),
        "--chart",
        str(out / "bench.svg"),
        "--keep",
        str(out / "phases"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "bench.json").read_text()), done.stdout, out


def test_both_engines_are_reported_with_every_field(
    bench: tuple[dict[str, Any], str, Path],
) -> None:
    document, _stdout, _out = bench
    runs = document["runs"]
    assert [r["engine"] for r in runs] == ["bridge", "livekit-plugin"]
    for run in runs:
        for field in FIELDS:
            assert field in run, field
        for key in ("in_latency_ms", "out_latency_ms", "barge_in_stop_ms", "truncation_error_ms"):
            assert set(run[key]) >= {"p50", "p99"}
        assert run["sessions"] == 2 and run["calls_measured"] == 2
        assert run["error_count"] == 0, run["errors"]
        assert run["cpu_percent_per_session"] > 0
        assert run["floor_cpu_percent_per_session"] > 0
    assert document["comparison"][0]["sessions"] == 2


def test_each_engine_held_conversations_the_probes_saw(
    bench: tuple[dict[str, Any], str, Path],
) -> None:
    for run in bench[0]["runs"]:
        assert run["utterances"] >= 2
        assert run["responses"] >= 1 and run["replies"] >= 1, run
        assert run["in_latency_ms"]["n"] > 500  # one figure per 10 ms of caller audio
        assert run["out_latency_ms"]["n"] > 0
        assert run["voice_to_voice_ms"]["n"] >= 1
        assert run["dropped_frames"] == 0


def test_the_plugin_really_appends_100_ms_and_we_20_ms(
    bench: tuple[dict[str, Any], str, Path],
) -> None:
    """The input probe sees each engine's own batching: the plugin's 50 ms frames and 100 ms
    appends make its caller audio wait longer than ours, whatever the machine's speed."""
    ours, theirs = bench[0]["runs"]
    assert theirs["in_latency_ms"]["p50"] > ours["in_latency_ms"]["p50"]


def test_the_table_chart_and_phase_files_are_written(
    bench: tuple[dict[str, Any], str, Path],
) -> None:
    document, stdout, out = bench
    assert stdout.splitlines()[0].startswith("| engine | calls |")
    assert "plugin / bridge" in stdout
    svg = ET.fromstring((out / "bench.svg").read_text())
    assert svg.tag.endswith("svg")
    assert len(list(out.glob("phases/*/result-*.json"))) == 8  # 4 phases x 2 calls
    assert svg_chart(document) == (out / "bench.svg").read_text()
    assert table(document).splitlines()[0] == stdout.splitlines()[0]


def test_bad_arguments_exit_2_with_a_message() -> None:
    for args in (["--sessions", "0"], ["--duration", "0.5"], ["--engine", "pipecat"]):
        done = subprocess.run(
            [sys.executable, "-m", "bridge", "bench", *args], capture_output=True, text=True
        )
        assert done.returncode == 2
        assert "error" in done.stderr


def _phase(executor: str, **figures: Any) -> dict[str, Any]:
    call = {
        "error": None,
        "engine_figures": {},
        "loop_stall_max_ms": 1.0,
        "loop_stall_p99_ms": 0.5,
        "gc": {"max_pause_ms": 2.0, "full_collections": 0},
        **{k: [1.0, 2.0] for k in ("in_latency_ms", "out_latency_ms", "voice_to_voice_ms")},
        **{k: [] for k in ("barge_in_stop_ms", "barge_in_silent_ms", "truncation_error_ms")},
        **dict.fromkeys(
            (
                "underruns",
                "dropped_frames",
                "replies",
                "responses",
                "truncations",
                "barge_ins_missed",
                "utterances",
                "caller_barge_ins",
                "unanswered",
            ),
            0,
        ),
    }
    return {
        "config": {"sessions": 4, "executor": executor},
        "calls": [call] * 4,
        "window_s": 10.0,
        "processes": 1,
        "cpu_percent": 40.0,
        **figures,
    }


def test_memory_per_call_is_marginal_in_one_process_and_whole_per_process() -> None:
    memory = {"rss_mb_base": 100.0, "rss_mb_one": 160.0, "rss_mb_peak": 190.0}
    one_process = phase_summary(_phase("thread", memory_mb_peak=190.0, **memory))
    assert one_process["rss_mb_per_session"] == pytest.approx(10.0)  # (190 - 160) / 3
    per_process = phase_summary(_phase("process", memory_mb_peak=700.0, **memory))
    assert per_process["rss_mb_per_session"] == pytest.approx(150.0)  # (700 - 100) / 4
    assert one_process["cpu_percent_per_session"] == pytest.approx(10.0)
    assert one_process["in_latency_ms"]["p50"] == pytest.approx(1.5)
    assert one_process["barge_in_stop_ms"]["p50"] is None  # nothing measured: no number


def test_comparison_is_plugin_over_bridge() -> None:
    def run(engine: str, p99: float, cpu: float) -> dict[str, Any]:
        return {
            "engine": engine,
            "sessions": 4,
            "in_latency_ms": {"p99": p99},
            "cpu_percent_per_session_own": cpu,
            "cpu_percent_per_session": cpu * 3,
            "rss_mb_per_session": 5.0,
            "barge_in_stop_ms": {"p99": None},
            "loop_stall_max_ms": 0.0,
        }

    (row,) = comparison([run("bridge", 20.0, 1.0), run("livekit-plugin", 90.0, 3.0)])
    assert row["in_latency_p99"] == 4.5
    assert row["cpu_per_session_own"] == 3.0
    assert row["barge_in_stop_p99"] is None and row["loop_stall_max"] is None


def _run(**over: Any) -> dict[str, Any]:
    run: dict[str, Any] = {
        "sessions": 8,
        "calls_measured": 8,
        "error_count": 0,
        "replies": 20,
        "underruns": 0,
        "dropped_frames": 0,
        "voice_to_voice_ms": {"p99": 30.0},
        "in_latency_ms": {"p99": 22.0},
        "loop_stall_max_ms": 8.0,
        "cpu_percent": 80.0,
        "rss_mb_base": 150.0,
        "memory_mb_peak": 230.0,
    }
    run.update(over)
    return run


def test_capacity_criteria_name_every_reason_a_run_did_not_hold() -> None:
    criteria = Criteria()
    assert failures(_run(), 21.0, criteria, cpus=2) == []
    why = failures(
        _run(underruns=3, cpu_percent=190.0, loop_stall_max_ms=250.0, replies=5),
        21.0,
        criteria,
        cpus=2,
    )
    assert any("underruns" in w for w in why) and any("CPU" in w for w in why)
    assert any("stall" in w for w in why) and any("without a reply" in w for w in why)
    assert failures(_run(in_latency_ms={"p99": 60.0}), 21.0, criteria, cpus=2)
    assert failures(_run(voice_to_voice_ms={"p99": None}), 21.0, criteria, cpus=2)


def test_a_pod_holds_the_calls_per_core_measured_here_unless_memory_runs_out() -> None:
    pod = pod_estimate(_run(), holds=8, cores_here=2)  # 10 MB per call
    assert pod["cpu_percent_per_call"] == 10.0 and pod["memory_mb_per_call"] == 10.0
    assert pod["calls"] == 16 and pod["limited_by"] == "calls per core measured here"
    heavy = pod_estimate(_run(memory_mb_peak=150.0 + 8 * 500.0), holds=8, cores_here=2)
    assert heavy["calls"] == 14 and heavy["limited_by"] == "memory"  # (7373 - 300) / 500
    document = {
        "capacity": [
            {
                "layout": "bridge",
                "description": "d",
                "cores": 2,
                "holds": 8,
                "failed_at": 16,
                "why": ["CPU"],
                "pod": pod,
            }
        ]
    }
    assert (
        "| bridge: d | 2 | 8 | 16 | CPU | 10.00 | 10.0 | 16 (calls per core measured here) |"
        in (capacity_table(document))
    )


PIN_PROBE = """
import os, sys, threading
from bridge.bench.phase import pin
release, seen = threading.Event(), {}
def before():  # a thread already running when the process is pinned
    release.wait()
    seen["before"] = sorted(os.sched_getaffinity(0))
early = threading.Thread(target=before)
early.start()
pin((int(sys.argv[1]),))
late = threading.Thread(target=lambda: seen.setdefault("after", sorted(os.sched_getaffinity(0))))
late.start()
release.set()
early.join()
late.join()
print(sorted(os.sched_getaffinity(0)), seen["before"], seen["after"])
"""


def test_a_pinned_layout_runs_every_thread_of_each_worker_on_its_own_cpu() -> None:
    from bridge.bench.capacity import LAYOUTS, CapacityOptions, _configs, _Search
    from bridge.bench.runner import Progress

    cpu = max(os.sched_getaffinity(0))
    out = subprocess.run(
        [sys.executable, "-c", PIN_PROBE, str(cpu)], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == [f"[{cpu}]"] * 3
    layout = next(x for x in LAYOUTS if x.key == "bridge-x2-pinned")
    configs = _configs(layout, 5, CapacityOptions(), "ws://127.0.0.1:1/v1", Path("/tmp/x"))
    cpus = os.cpu_count() or 1
    assert [(c.sessions, c.cpus) for c in configs] == [(3, (0,)), (2, (1 % cpus,))]
    plain = next(x for x in LAYOUTS if x.key == "bridge-x2")
    assert all(c.cpus == () for c in _configs(plain, 5, CapacityOptions(), "ws://x/v1", Path(".")))

    def cores(key: str) -> int:  # what the CPU criterion and the pod estimate count
        layout = next(x for x in LAYOUTS if x.key == key)
        progress = Progress(io.StringIO())
        return _Search(layout, CapacityOptions(), Path("."), "", progress, itertools.count()).cpus

    assert cores("bridge-pinned") == 1 and cores("bridge") == cpus
    assert cores("bridge-x2-pinned") == min(2, cpus)
