"""From measured phases to the figures ``bridge bench`` reports (the ``--json`` fields).

A *run* is one engine at one number of sessions: its floor phase (the loopbacks alone) and
its engine phase, measured one after the other in the same invocation. Latencies are pooled
over every call of the phase (percentiles over all frames, turns, barge-ins), counts summed,
stalls and pauses the worst of any call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bridge.call.records import percentiles

LATENCIES = (
    "in_latency_ms",
    "out_latency_ms",
    "voice_to_voice_ms",
    "barge_in_stop_ms",
    "barge_in_silent_ms",
    "truncation_error_ms",
)
COUNTS = (
    "underruns",
    "dropped_frames",
    "replies",
    "responses",
    "truncations",
    "barge_ins_missed",
    "utterances",
    "caller_barge_ins",
    "unanswered",
)


def _pooled(calls: list[dict[str, Any]], key: str) -> dict[str, float | None]:
    arrays = [np.asarray(c.get(key, []), dtype=np.float64) for c in calls]
    values = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.float64)
    return percentiles(values)


def merge_repeats(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """The same phase measured several times, interleaved with the others: one phase.

    CPU and memory are the median of the repeats (this machine's noise moves a single run by
    a few % of a core); the calls of every repeat are pooled for the latencies and counts.
    """
    if len(phases) == 1:
        return phases[0]
    merged = {**phases[0], "calls": [c for p in phases for c in p["calls"]]}
    for key in (
        "cpu_percent",
        "rss_mb_base",
        "rss_mb_one",
        "memory_mb_one",
        "rss_mb_peak",
        "memory_mb_peak",
        "server_cpu_percent",
        "callers_cpu_percent",
    ):
        if key in phases[0]:
            merged[key] = round(float(np.median([p[key] for p in phases])), 2)
    merged["window_s"] = round(sum(p["window_s"] for p in phases), 3)
    merged["repeats"] = len(phases)
    merged["cpu_percent_repeats"] = [p["cpu_percent"] for p in phases]
    return merged


def phase_summary(phase: dict[str, Any]) -> dict[str, Any]:
    """One phase's figures: CPU, memory, pooled latencies, counts."""
    config = phase["config"]
    calls: list[dict[str, Any]] = phase["calls"]
    n = config["sessions"]
    process_executor = config["executor"] == "process"
    memory_peak = phase["memory_mb_peak"] if process_executor else phase["rss_mb_peak"]
    if process_executor:  # every call is a whole process: its share is the per-call cost
        per_session = (phase["memory_mb_peak"] - phase["rss_mb_base"]) / n
    elif n > 1:  # the first call pays one-time costs (libraries, runtimes): marginal after it
        per_session = (phase["rss_mb_peak"] - phase["rss_mb_one"]) / (n - 1)
    else:
        per_session = phase["rss_mb_peak"] - phase["rss_mb_base"]
    errors = [c["error"] for c in calls if c.get("error")]
    for call in calls:
        errors += [f"{e['code']}: {e['message']}" for e in call["engine_figures"].get("errors", [])]
    out: dict[str, Any] = {
        "sessions": n,
        "repeats": phase.get("repeats", 1),
        "cpu_percent_repeats": phase.get("cpu_percent_repeats", [phase["cpu_percent"]]),
        "calls_measured": len(calls),
        "executor": config["executor"],
        "window_s": phase["window_s"],
        "processes": phase["processes"],
        "cpu_percent": phase["cpu_percent"],
        "cpu_percent_per_session": round(phase["cpu_percent"] / n, 2),
        "rss_mb_base": phase["rss_mb_base"],
        "memory_mb_peak": round(memory_peak, 1),
        "rss_mb_per_session": round(per_session, 2),
        "loop_stall_max_ms": max((c["loop_stall_max_ms"] for c in calls), default=0.0),
        "loop_stall_p99_ms": max((c["loop_stall_p99_ms"] for c in calls), default=0.0),
        "gc_max_pause_ms": max((c["gc"]["max_pause_ms"] for c in calls), default=0.0),
        "gc_full_collections": max((c["gc"]["full_collections"] for c in calls), default=0),
        "errors": errors[:20],
        "error_count": len(errors),
    }
    for key in LATENCIES:
        out[key] = _pooled(calls, key)
    if config.get("room") == "livekit":  # measured by the callers, through the server
        out["mouth_to_ear_ms"] = _pooled(calls, "mouth_to_ear_ms")
        out["server_cpu_percent"] = phase.get("server_cpu_percent")
        out["callers_cpu_percent"] = phase.get("callers_cpu_percent")
    for key in COUNTS:
        out[key] = int(sum(c[key] for c in calls))
    return out


def run_summary(
    engine: str, duration_s: float, engine_phase: dict[str, Any], floor_phase: dict[str, Any] | None
) -> dict[str, Any]:
    """The reported run: the engine's figures, with its own CPU net of the loopback floor."""
    figures = phase_summary(engine_phase)
    run: dict[str, Any] = {"engine": engine, "duration_s": duration_s, **figures}
    if floor_phase is not None:
        floor = phase_summary(floor_phase)
        run["floor_cpu_percent_per_session"] = floor["cpu_percent_per_session"]
        run["cpu_percent_per_session_own"] = round(
            figures["cpu_percent_per_session"] - floor["cpu_percent_per_session"], 2
        )
    else:
        run["floor_cpu_percent_per_session"] = None
        run["cpu_percent_per_session_own"] = None
    return run


def comparison(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plugin ÷ bridge ratios for each number of sessions where both ran (> 1: ours is better)."""

    def ratio(a: float | None, b: float | None) -> float | None:
        if a is None or b is None or b <= 0:
            return None
        return round(a / b, 2)

    out = []
    for n in sorted({r["sessions"] for r in runs}):
        ours = next((r for r in runs if r["sessions"] == n and r["engine"] == "bridge"), None)
        theirs = next(
            (r for r in runs if r["sessions"] == n and r["engine"] == "livekit-plugin"), None
        )
        if ours is None or theirs is None:
            continue
        out.append(
            {
                "sessions": n,
                "in_latency_p99": ratio(
                    theirs["in_latency_ms"]["p99"], ours["in_latency_ms"]["p99"]
                ),
                "cpu_per_session_own": ratio(
                    theirs["cpu_percent_per_session_own"], ours["cpu_percent_per_session_own"]
                ),
                "cpu_per_session": ratio(
                    theirs["cpu_percent_per_session"], ours["cpu_percent_per_session"]
                ),
                "rss_per_session": ratio(theirs["rss_mb_per_session"], ours["rss_mb_per_session"]),
                "barge_in_stop_p99": ratio(
                    theirs["barge_in_stop_ms"]["p99"], ours["barge_in_stop_ms"]["p99"]
                ),
                "loop_stall_max": ratio(theirs["loop_stall_max_ms"], ours["loop_stall_max_ms"]),
            }
        )
    return out
