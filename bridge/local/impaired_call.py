"""One call of a caller behind the impaired link, run and measured from outside.

:func:`run_call` starts a caller process (``bridge.local.impaired_caller``) in the caller's
namespace, waits until it is connected (on a clean link), sets the link to the
:class:`Condition`, starts probe streams both ways (``bridge.local.probe``: the link's real
loss and delay during this very call), tells the caller to go, cuts the link when the
condition's :class:`Outage` is due (timed from the caller's own events: its n-th utterance
starting, or its reply being heard), and when the caller has finished puts the link back to
clean and reads the recordings (``bridge.local.heard.hear_turns``).

The caller must have been started on a clean link: joining (signalling, ICE, the SDK's
session) is not what is measured, talking is.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bridge.errors import BridgeError
from bridge.local.caller_script import DEFAULT_TURNS, Turn
from bridge.local.heard import TurnHeard, hear_turns
from bridge.local.impairment import CLEAN, Impairment
from bridge.local.netns import Namespace
from bridge.local.probe import ProbeFigures, ProbeStream
from bridge.local.tun_link import Link
from bridge.local.wavfile import read_wav

Path_ = Literal["webrtc", "websocket"]
PROBE_PORTS = (9901, 9902)  # up (received on the far side), down (on the near side)
PROBE_RATE = 50.0


class CallError(BridgeError):
    """The caller could not be started, or stopped answering."""


@dataclass(frozen=True, slots=True)
class Outage:
    """The link loses everything for ``seconds`` from ``after_s`` after the caller starts
    its turn ``turn`` (``speaking``) or first hears that turn's reply (``listening``)."""

    seconds: float = 2.0
    during: Literal["speaking", "listening"] = "speaking"
    turn: int = 1
    after_s: float = 0.3


@dataclass(frozen=True, slots=True)
class Condition:
    name: str
    up: Impairment = CLEAN  # caller → server
    down: Impairment = CLEAN
    outage: Outage | None = None

    def describe(self) -> str:
        parts = []
        same = self.up == self.down
        if same:
            parts.append(self.up.describe())
        else:
            parts.append(f"up {self.up.describe()}; down {self.down.describe()}")
        if self.outage is not None:
            o = self.outage
            parts.append(f"{o.seconds:g} s outage while the caller is {o.during}")
        return ", ".join(p for p in parts if p != "clean") or "clean"


@dataclass(frozen=True, slots=True)
class Hop:
    """The impaired link a condition is applied to, and its two namespaces."""

    link: Link
    near: Namespace
    far: Namespace


@dataclass(frozen=True, slots=True)
class Reach:
    """How the caller reaches the agent: the path, its URL, the WebRTC token, and what to
    do once the caller process runs (dispatch the agent to its room)."""

    path: Path_
    url: str
    token: str | None = None
    after_start: Callable[[], None] | None = None


@dataclass
class CallResult:
    path: Path_
    condition: str
    survived: bool
    failure: str | None
    turns: list[TurnHeard]
    probe_up: ProbeFigures | None
    probe_down: ProbeFigures | None
    packets: dict[str, dict[str, int]]  # link counters during the call, per direction
    outage_at_s: float | None  # said time the outage began
    caller: dict[str, Any] = field(default_factory=dict)  # the caller's result.json
    wall_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "condition": self.condition,
            "survived": self.survived,
            "failure": self.failure,
            "turns": [t.to_json() for t in self.turns],
            "probe_up": self.probe_up.to_json() if self.probe_up else None,
            "probe_down": self.probe_down.to_json() if self.probe_down else None,
            "packets": self.packets,
            "outage_at_s": self.outage_at_s,
            "caller": self.caller,
            "wall_s": round(self.wall_s, 2),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CallResult:
        return cls(
            path=data["path"],
            condition=data["condition"],
            survived=data["survived"],
            failure=data["failure"],
            turns=[TurnHeard.from_json(t) for t in data["turns"]],
            probe_up=ProbeFigures(**data["probe_up"]) if data["probe_up"] else None,
            probe_down=ProbeFigures(**data["probe_down"]) if data["probe_down"] else None,
            packets=data["packets"],
            outage_at_s=data["outage_at_s"],
            caller=data["caller"],
            wall_s=data["wall_s"],
        )


def _delta(after: dict[str, dict[str, int]], before: dict[str, dict[str, int]]) -> dict[str, Any]:
    return {d: {k: v - before.get(d, {}).get(k, 0) for k, v in after[d].items()} for d in after}


def run_call(
    caller_ns: Namespace,
    hop: Hop,
    reach: Reach,
    condition: Condition,
    out: Path,
    *,
    turns: tuple[Turn, ...] = DEFAULT_TURNS,
    env: dict[str, str] | None = None,
    probe: bool = True,
    timeout_s: float = 180.0,
) -> CallResult:
    """One call of a caller in ``caller_ns`` with ``condition`` applied to ``hop`` (the
    caller's own link, or the bridge's to the model); the caller's files go to ``out``."""
    link, near, far = hop.link, hop.near, hop.far
    out.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "bridge.local.impaired_caller", reach.path]
    argv += [
        "--url",
        reach.url,
        "--out",
        str(out),
        "--turns",
        json.dumps([t.to_json() for t in turns]),
    ]
    if reach.token:
        argv += ["--token", reach.token]
    started = time.monotonic()
    with (out / "caller.stderr").open("wb") as stderr:
        process = subprocess.Popen(
            caller_ns.command(argv),
            bufsize=0,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            cwd=Path(__file__).resolve().parents[2],
        )
    probes: list[ProbeStream] | None = None
    outage_at: float | None = None
    figures: tuple[ProbeFigures | None, ProbeFigures | None] = (None, None)
    try:
        if reach.after_start is not None:
            reach.after_start()
        before: dict[str, dict[str, int]] = {}
        for event in _events(process, started + timeout_s, out):
            kind = event["event"]
            if kind == "ready":
                link.set(condition.up, condition.down)
                before = link.stats()
                if probe:
                    probes = []  # each one killed below if the next fails to start
                    probes.append(
                        ProbeStream(near, far, link.spec.far.address, PROBE_PORTS[0], PROBE_RATE)
                    )
                    probes.append(
                        ProbeStream(far, near, link.spec.near.address, PROBE_PORTS[1], PROBE_RATE)
                    )
                assert process.stdin is not None
                process.stdin.write(b"go\n")
                process.stdin.flush()
            elif kind == "failed":
                raise CallError(f"the {reach.path} caller could not start: {event['error']}")
            elif kind == "finished":
                break
            outage = condition.outage
            if (
                outage is not None
                and outage_at is None
                and event.get("turn") == outage.turn
                and kind == ("said" if outage.during == "speaking" else "reply")
            ):
                outage_at = float(event["at_s"]) + outage.after_s
                link.outage(outage.seconds, at=float(event["at"]) + outage.after_s)
        if probes is not None:
            figures = (probes[0].stop(), probes[1].stop())
            probes = None
        packets = _delta(link.stats(), before)
        link.set(CLEAN, CLEAN)
        process.wait(30)
    finally:
        link.set(CLEAN, CLEAN)
        if probes is not None:
            for p in probes:
                p.kill()
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
    caller = json.loads((out / "result.json").read_text())
    said = read_wav(out / "said.wav").samples
    heard = read_wav(out / "heard.wav").samples
    records = caller["turns"]
    heard_turns = hear_turns(
        said,
        heard,
        int(caller["rate"]),
        [(r["start_s"], r["end_s"] if r["end_s"] is not None else r["start_s"]) for r in records],
        cut=[bool(r["barged_in"]) for r in records],
    )
    return CallResult(
        path=reach.path,
        condition=condition.name,
        survived=bool(caller["survived"]),
        failure=caller["failure"],
        turns=heard_turns,
        probe_up=figures[0],
        probe_down=figures[1],
        packets=packets,
        outage_at_s=outage_at,
        caller=caller,
        wall_s=time.monotonic() - started,
    )


def _events(process: subprocess.Popen[bytes], deadline: float, out: Path) -> Any:
    """The caller's stdout lines as JSON objects, until it ends or ``deadline`` passes."""
    stdout = process.stdout
    assert stdout is not None
    while True:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([stdout], [], [], max(left, 0))
        if not ready:
            raise CallError(f"the caller did not finish in time (see {out / 'caller.stderr'})")
        line = stdout.readline()
        if not line:
            tail = (out / "caller.stderr").read_text(errors="replace")[-2000:]
            raise CallError(f"the caller exited early:\n{tail}")
        yield json.loads(line)
