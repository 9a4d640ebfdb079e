"""``bridge bench --impairment`` results for people: rows per condition and path, a Markdown
table, an SVG chart.

Every figure comes from the callers' own recordings (``bridge.local.heard.hear_turns``) and
the probe streams that ran beside each call:

- *measured*: the link during the calls, up (caller → servers): loss, and one-way delay
  p50 / p99 of the probes;
- *mouth-to-ear*: the caller's utterance end → the first audio of the reply to it (found
  by its content: a late reply to an earlier turn is not it), p50 / p99 / max over every
  turn of every call of the row (*n* turns; a turn with no reply recognisably repeating
  it is *not answered*: none came, or it repeats too little of what was said);
- *freeze*: the longest silence inside a reply as heard (the utterances' own longest pause
  is 190 ms: the clean rows show that floor);
- *late*: reply audio heard more than 150 ms behind its place (the utterance's end + the
  call's best mouth-to-ear + its place in the utterance), in seconds per call, and the most
  any of it was behind (ms): a reply held up by a stall and then played in a burst shows
  here (so does a reply starting later than the call's best), audio lost and concealed does
  not;
- *intelligibility*: the share of the utterance's 100 ms pieces a full reply repeats
  (normalised correlation ≥ 0.7; two Opus passes leave 0.75–0.95), mean over replies;
- *barge-in stop*: the caller starting to talk over a reply → that reply's last audio heard;
- *survived*: calls whose session lasted to the end of the script.
"""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np

from bridge.local.heard import TurnHeard

PATH_COLORS = {"webrtc": "#2b7bb9", "websocket": "#e07b39"}
PATH_LABELS = {"webrtc": "WebRTC → bridge", "websocket": "direct WebSocket"}


def _late(call: dict[str, Any]) -> list[tuple[float, float]]:
    """(late seconds, most behind ms) per turn of a call, against the call's best turn."""
    turns = [TurnHeard.from_json(t) for t in call["turns"]]
    best = min((t.mouth_to_ear_ms for t in turns if t.mouth_to_ear_ms is not None), default=0.0)
    return [t.late(best) for t in turns]


def rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per condition and path, in the run's order."""
    calls: list[dict[str, Any]] = document["calls"]
    out = []
    for condition in document["conditions"]:
        for path in ("webrtc", "websocket"):
            mine = [c for c in calls if c["condition"] == condition["name"] and c["path"] == path]
            if not mine:
                continue
            turns = [TurnHeard.from_json(t) for c in mine for t in c["turns"]]
            m2e = [t.mouth_to_ear_ms for t in turns if t.mouth_to_ear_ms is not None]
            full = [t.resemblance for t in turns if t.resemblance is not None]
            stops = [t.barge_in_stop_ms for t in turns if t.barge_in_stop_ms is not None]
            late = [x for c in mine for x in _late(c)]
            ups = [c["probe_up"] for c in mine if c["probe_up"]]
            row: dict[str, Any] = {
                "condition": condition["name"],
                "describe": condition["describe"],
                "path": path,
                "calls": len(mine),
                "survived": sum(bool(c["survived"]) for c in mine),
                "turns": len(turns),
                "unanswered": sum(t.reply is None for t in turns),
                "m2e_ms": _spread(m2e),
                "freeze_ms": max((t.longest_freeze_ms for t in turns), default=None),
                "late_s_per_call": sum(s for s, _ in late) / len(mine),
                "late_max_ms": max((w for _, w in late), default=0.0),
                "intelligibility": float(np.mean(full)) if full else None,
                "barge_in_stop_ms": _spread(stops),
                "measured_up_loss": _mean([u["loss"] for u in ups]),
                "measured_down_loss": _mean(
                    [c["probe_down"]["loss"] for c in mine if c["probe_down"]]
                ),
                "measured_up_delay_ms": (
                    _mean([u["delay_p50_ms"] for u in ups]),
                    _mean([u["delay_p99_ms"] for u in ups]),
                ),
                "udp_share": _udp_share(mine),
                "caller_stalled_ms": sum(float(c["caller"].get("stalled_ms") or 0) for c in mine),
                "attempts": sum(int(c.get("attempts") or 1) for c in mine),
            }
            bridge = [c["bridge"] for c in mine if c.get("bridge")]
            if bridge:
                row["bridge"] = _bridge_totals(bridge)
            out.append(row)
    return out


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    a = np.array(values)
    return {
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
        "n": len(values),
    }


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _udp_share(calls: list[dict[str, Any]]) -> float | None:
    udp = sum(c["packets"].get(d, {}).get("udp", 0) for c in calls for d in ("up", "down"))
    tcp = sum(c["packets"].get(d, {}).get("tcp", 0) for c in calls for d in ("up", "down"))
    return udp / (udp + tcp) if udp + tcp else None


def _bridge_totals(records: list[dict[str, Any]]) -> dict[str, Any]:
    def total(key: str) -> float:
        return float(sum(r.get(key) or 0 for r in records))

    return {
        "reconnects": total("reconnects"),
        "caller_audio_resent_ms": total("caller_audio_resent_ms"),
        "caller_audio_lost_ms": total("caller_audio_lost_ms"),
        "caller_audio_dropped_ms": total("caller_audio_dropped_ms"),
        "outage_ms": [x for r in records for x in (r.get("reconnect_ms") or [])],
    }


def _n(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def table(document: dict[str, Any]) -> str:
    """The Markdown table of :func:`rows`."""
    uplink = bool(document.get("uplink"))
    header = [
        "condition",
        "path",
        "measured up: loss, delay p50/p99 ms",
        "mouth-to-ear ms p50 / p99 / max (n)",
        "longest freeze ms",
        "heard late s/call (max behind ms)",
        "intelligibility",
        "barge-in stop ms",
        "survived",
    ]
    if uplink:
        header += ["bridge: reconnects", "caller audio re-sent / lost / dropped ms"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows(document):
        m2e, stop = row["m2e_ms"], row["barge_in_stop_ms"]
        delay = row["measured_up_delay_ms"]
        measured = (
            f"{_n(row['measured_up_loss'] and row['measured_up_loss'] * 100, 1)} %, "
            f"{_n(delay[0])}/{_n(delay[1])}"
        )
        unanswered = f", {row['unanswered']} not answered" if row["unanswered"] else ""
        cells = [
            row["describe"],
            PATH_LABELS[row["path"]],
            measured,
            "–"
            if m2e is None
            else f"{m2e['p50']:.0f} / {m2e['p99']:.0f} / {m2e['max']:.0f} ({m2e['n']}{unanswered})",
            _n(row["freeze_ms"]),
            f"{row['late_s_per_call']:.1f} ({row['late_max_ms']:.0f})",
            _n(row["intelligibility"], 2),
            "–"
            if stop is None
            else f"{stop['p50']:.0f}" + (f" (max {stop['max']:.0f})" if stop["n"] > 1 else ""),
            f"{row['survived']}/{row['calls']}",
        ]
        if uplink:
            b = row.get("bridge") or {}
            cells += [
                _n(b.get("reconnects")),
                f"{_n(b.get('caller_audio_resent_ms'))} / {_n(b.get('caller_audio_lost_ms'))}"
                f" / {_n(b.get('caller_audio_dropped_ms'))}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def svg_chart(document: dict[str, Any]) -> str:
    """Mouth-to-ear (p50 bar, p99 and max marks) and intelligibility, per condition, both
    paths side by side."""
    table_rows = rows(document)
    conditions = list(dict.fromkeys(r["describe"] for r in table_rows))
    paths = [p for p in PATH_COLORS if any(r["path"] == p for r in table_rows)]
    group_w = 74.0
    plot_x, width = 60.0, 60 + group_w * len(conditions) + 30
    panels = (
        ("mouth-to-ear, ms (bar p50, tick p99, dot max; log scale)", 250.0),
        ("intelligibility (share of the utterance repeated)", 150.0),
    )
    height = 70 + sum(h + 110 for _, h in panels)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        'font-family="sans-serif" font-size="10">',
        f'<rect width="{width:.0f}" height="{height:.0f}" fill="white"/>',
        '<text x="10" y="18" font-size="13" font-weight="bold">Callers on an impaired network:'
        " WebRTC to the bridge vs a direct WebSocket</text>",
    ]
    for i, path in enumerate(paths):
        out.append(
            f'<rect x="{10 + i * 170}" y="28" width="11" height="11" fill="{PATH_COLORS[path]}"/>'
        )
        out.append(f'<text x="{25 + i * 170}" y="37">{escape(PATH_LABELS[path])}</text>')
    top = 60.0
    ms = [v for r in table_rows if r["m2e_ms"] for v in (r["m2e_ms"]["p50"], r["m2e_ms"]["max"])]
    lo, hi = 100.0, max([1000.0, *ms])
    for title, plot_h in panels:
        out.append(f'<text x="10" y="{top + 12}" font-weight="bold">{escape(title)}</text>')
        py = top + 24
        out.append(
            f'<line x1="{plot_x}" y1="{py + plot_h}" x2="{width - 20:.0f}" '
            f'y2="{py + plot_h}" stroke="#333"/>'
        )
        log = title.startswith("mouth")

        def y_of(v: float, log: bool = log, py: float = py, plot_h: float = plot_h) -> float:
            if log:
                f = (np.log10(max(v, lo)) - np.log10(lo)) / (np.log10(hi) - np.log10(lo))
            else:
                f = max(min(v, 1.0), 0.0)
            return float(py + plot_h - f * plot_h)

        ticks = [100, 300, 1000, 3000, 10000, 30000] if log else [0.0, 0.5, 1.0]
        for t in ticks:
            if log and t > hi * 1.05:
                continue
            y = y_of(t)
            out.append(
                f'<line x1="{plot_x - 4}" y1="{y:.1f}" x2="{width - 20:.0f}" '
                f'y2="{y:.1f}" stroke="#ddd"/>'
            )
            out.append(f'<text x="{plot_x - 6}" y="{y + 3:.1f}" text-anchor="end">{t:g}</text>')
        bar_w = (group_w - 14) / max(len(paths), 1)
        for g, name in enumerate(conditions):
            gx = plot_x + g * group_w + 7
            for p, path in enumerate(paths):
                row = next(
                    (r for r in table_rows if r["describe"] == name and r["path"] == path), None
                )
                if row is None:
                    continue
                x = gx + p * bar_w
                color = PATH_COLORS[path]
                if log and row["m2e_ms"]:
                    s = row["m2e_ms"]
                    y50, y99, ymax = y_of(s["p50"]), y_of(s["p99"]), y_of(s["max"])
                    out.append(
                        f'<rect x="{x:.1f}" y="{y50:.1f}" width="{bar_w - 2:.1f}" '
                        f'height="{py + plot_h - y50:.1f}" fill="{color}"/>'
                    )
                    out.append(
                        f'<line x1="{x:.1f}" y1="{y99:.1f}" x2="{x + bar_w - 2:.1f}" '
                        f'y2="{y99:.1f}" stroke="#000" stroke-width="2"/>'
                    )
                    out.append(
                        f'<circle cx="{x + bar_w / 2 - 1:.1f}" cy="{ymax:.1f}" r="2.5" '
                        f'fill="#000"/>'
                    )
                elif not log and row["intelligibility"] is not None:
                    y = y_of(row["intelligibility"])
                    out.append(
                        f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" '
                        f'height="{py + plot_h - y:.1f}" fill="{color}"/>'
                    )
            label_y = py + plot_h + 12
            cx = gx + group_w / 2 - 7
            out.append(
                f'<text x="{cx:.1f}" y="{label_y:.1f}" text-anchor="end" '
                f'transform="rotate(-35 {cx:.1f} {label_y:.1f})">{escape(name)}</text>'
            )
        top = py + plot_h + 86
    out.append("</svg>")
    return "\n".join(out)
