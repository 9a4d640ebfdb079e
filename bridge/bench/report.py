"""``bridge bench`` results for people: a Markdown table and an SVG chart of the engines."""

from __future__ import annotations

from html import escape
from typing import Any

ENGINE_COLORS = {"bridge": "#2b7bb9", "livekit-plugin": "#e07b39"}

# (title, unit, how to read it from a run)
PANELS: tuple[tuple[str, str, str], ...] = (
    ("caller frame → socket, p99", "ms", "in_latency_ms.p99"),
    ("CPU per call (process)", "% of a core", "cpu_percent_per_session"),
    ("own CPU per call (minus loopback floor)", "% of a core", "cpu_percent_per_session_own"),
    ("speech_started → source cleared, p99", "ms", "barge_in_stop_ms.p99"),
    ("event-loop stall, max", "ms", "loop_stall_max_ms"),
    ("memory per call (marginal)", "MB", "rss_mb_per_session"),
)


def _get(run: dict[str, Any], path: str) -> float | None:
    value: Any = run
    for key in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return float(value) if isinstance(value, int | float) else None


def _pair(run: dict[str, Any], key: str, digits: int = 1) -> str:
    figures = run.get(key) or {}
    p50, p99 = figures.get("p50"), figures.get("p99")
    if p50 is None or p99 is None:
        return "–"
    return f"{p50:.{digits}f} / {p99:.{digits}f}"


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def runs_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = document["runs"] if "runs" in document else [document]
    return runs


def room_table(document: dict[str, Any]) -> str:
    """Through a real server: what the callers heard, and who used the CPU."""
    header = (
        "| engine | calls | mouth-to-ear ms p50 / p99 | voice-to-voice ms p50 / p99 | "
        "silent after barge-in ms p99 | truncation error ms p99 | underruns | "
        "worker CPU/call % | server CPU % | callers CPU % |"
    )
    rule = "|" + " --- |" * (header.count("|") - 1)
    rows = [header, rule]
    for run in runs_of(document):
        silent = (run.get("barge_in_silent_ms") or {}).get("p99")
        trunc = (run.get("truncation_error_ms") or {}).get("p99")
        rows.append(
            f"| {run['engine']} | {run['sessions']} | {_pair(run, 'mouth_to_ear_ms')} | "
            f"{_pair(run, 'voice_to_voice_ms')} | {_num(silent)} | {_num(trunc)} | "
            f"{run['underruns']} | {_num(run['cpu_percent_per_session'])} | "
            f"{_num(run.get('server_cpu_percent'))} | {_num(run.get('callers_cpu_percent'))} |"
        )
    return "\n".join(rows)


def table(document: dict[str, Any]) -> str:
    """A Markdown table: one row per engine and number of sessions."""
    header = (
        "| engine | calls | CPU/call % | own CPU/call % | memory/call MB | frame → socket ms "
        "p50 / p99 | delta → source ms p50 / p99 | voice-to-voice ms p50 / p99 | barge-in stop "
        "ms p50 / p99 | silent after barge-in ms p99 | truncation error ms p99 | loop stall max ms "
        "| GC max ms | underruns | dropped |"
    )
    rule = "|" + " --- |" * (header.count("|") - 1)
    rows = [header, rule]
    for run in runs_of(document):
        silent = (run.get("barge_in_silent_ms") or {}).get("p99")
        trunc = (run.get("truncation_error_ms") or {}).get("p99")
        rows.append(
            f"| {run['engine']} | {run['sessions']} | {_num(run['cpu_percent_per_session'])} | "
            f"{_num(run.get('cpu_percent_per_session_own'))} | "
            f"{_num(run['rss_mb_per_session'])} | {_pair(run, 'in_latency_ms')} | "
            f"{_pair(run, 'out_latency_ms', 2)} | {_pair(run, 'voice_to_voice_ms')} | "
            f"{_pair(run, 'barge_in_stop_ms', 2)} | {_num(silent)} | {_num(trunc)} | "
            f"{_num(run['loop_stall_max_ms'])} | {_num(run['gc_max_pause_ms'])} | "
            f"{run['underruns']} | {run['dropped_frames']} |"
        )
    return "\n".join(rows)


def comparison_lines(document: dict[str, Any]) -> list[str]:
    """Plugin ÷ bridge, per number of sessions (> 1: ours is better)."""
    lines = []
    for row in document.get("comparison", []):
        parts = [
            f"{label} {row[key]}x"
            for key, label in (
                ("in_latency_p99", "frame→socket p99"),
                ("cpu_per_session_own", "own CPU"),
                ("cpu_per_session", "total CPU"),
                ("rss_per_session", "memory"),
                ("barge_in_stop_p99", "barge-in stop p99"),
                ("loop_stall_max", "loop stall"),
            )
            if row.get(key) is not None
        ]
        lines.append(f"N={row['sessions']}: plugin / bridge = " + ", ".join(parts))
    return lines


def svg_chart(document: dict[str, Any]) -> str:
    """Bars per engine for each panel, grouped by number of sessions."""
    runs = runs_of(document)
    engines = [e for e in ENGINE_COLORS if any(r["engine"] == e for r in runs)]
    counts = sorted({r["sessions"] for r in runs})
    panel_w, panel_h, columns = 330, 220, 3
    rows = (len(PANELS) + columns - 1) // columns
    width, height = panel_w * columns + 20, panel_h * rows + 70
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        '<text x="10" y="20" font-size="14" font-weight="bold">bridge bench: '
        + escape(", ".join(engines))
        + " (lower is better)</text>",
    ]
    for i, engine in enumerate(engines):
        key_x = 10 + i * 160
        out.append(
            f'<rect x="{key_x}" y="30" width="12" height="12" fill="{ENGINE_COLORS[engine]}"/>'
        )
        out.append(f'<text x="{key_x + 16}" y="40">{escape(engine)}</text>')
    for p, (title, unit, path) in enumerate(PANELS):
        ox = 10.0 + (p % columns) * panel_w
        oy = 55.0 + (p // columns) * panel_h
        plot_x, plot_y = ox + 30, oy + 44
        plot_w, plot_h = panel_w - 50.0, panel_h - 84.0
        out.append(f'<text x="{ox}" y="{oy + 12}" font-weight="bold">{escape(title)}</text>')
        out.append(f'<text x="{ox}" y="{oy + 25}" fill="#555">{escape(unit)}</text>')
        values = [_get(r, path) for r in runs]
        top = max((v for v in values if v is not None), default=0.0) or 1.0
        out.append(
            f'<line x1="{plot_x}" y1="{plot_y + plot_h}" x2="{plot_x + plot_w}" '
            f'y2="{plot_y + plot_h}" stroke="#333"/>'
        )
        group_w = plot_w / max(len(counts), 1)
        bar_w = min(28.0, group_w / (len(engines) + 1))
        for g, n in enumerate(counts):
            gx = plot_x + g * group_w + (group_w - bar_w * len(engines)) / 2
            out.append(
                f'<text x="{plot_x + (g + 0.5) * group_w:.1f}" y="{plot_y + plot_h + 14}" '
                f'text-anchor="middle">N={n}</text>'
            )
            for e, engine in enumerate(engines):
                run = next((r for r in runs if r["sessions"] == n and r["engine"] == engine), None)
                value = _get(run, path) if run is not None else None
                if value is None:
                    continue
                h = max(value, 0.0) / top * plot_h
                x, y = gx + e * bar_w, plot_y + plot_h - h
                out.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" '
                    f'fill="{ENGINE_COLORS[engine]}"/>'
                )
                out.append(
                    f'<text x="{x + bar_w / 2 - 1:.1f}" y="{y - 3:.1f}" text-anchor="middle" '
                    f'font-size="8">{value:.3g}</text>'
                )
    out.append("</svg>")
    return "\n".join(out)


def capacity_table(document: dict[str, Any]) -> str:
    """A Markdown table of ``--capacity`` results: what held here, and on a pod."""
    rows = [
        "| layout | cores | held (calls) | failed at | why | CPU/call % | memory/call MB "
        "| pod of 4 cores / 8 GiB holds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in document["capacity"]:
        pod = entry.get("pod") or {}
        why = "; ".join(entry.get("why") or []) or "–"
        failed = entry["failed_at"] if entry["failed_at"] is not None else "–"
        holds = f"{pod.get('calls', '–')} ({pod.get('limited_by', '–')})" if pod else "–"
        rows.append(
            f"| {entry['layout']}: {entry['description']} | {entry.get('cores', '–')} | "
            f"{entry['holds']} | {failed} | "
            f"{why} | {_num(pod.get('cpu_percent_per_call'), 2)} | "
            f"{_num(pod.get('memory_mb_per_call'))} | {holds} |"
        )
    return "\n".join(rows)
