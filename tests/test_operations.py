"""Operating the bridge: the session-end record, drain, readiness and liveness."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import structlog

from bridge.call.call import Call
from bridge.call.profiles import ProfileSet
from bridge.local.trial import run_trial
from bridge.local.wavfile import Wav, demo_recording, read_wav
from bridge.logs import configure_logging
from bridge.pod.agent import CallRegistry
from bridge.pod.cpu import PodCpu, allotted_cpus
from bridge.room.loopback import LoopbackParticipant
from sessions.endpoint import Endpoint
from tests.conftest import REPO_ROOT
from tests.net import free_port


def question() -> Wav:
    demo = read_wav(demo_recording())
    return Wav(demo.samples[: 6 * demo.rate], demo.rate, demo.channels)


async def test_the_session_end_record_carries_the_figures(simulator) -> None:
    stream = io.StringIO()
    configure_logging(json=True, level="info", stream=stream)
    try:
        sim = await simulator(behavior="echo")
        await run_trial(
            question(), ProfileSet.builtin().default, Endpoint.compatible(sim.url, api_key="k")
        )
    finally:
        structlog.reset_defaults()
    records = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    [started] = [r for r in records if r.get("event") == "call.started"]
    [ended] = [r for r in records if r.get("event") == "call.ended"]
    for key in (
        "duration_s",
        "turns",
        "responses",
        "interruptions",
        "reconnects",
        "tokens",
        "cost_usd",
        "reason",
    ):
        assert key in ended, key
    assert ended["turns"] == 1 and ended["responses"] == 1 and ended["cost_usd"] > 0
    assert ended["tokens"]["audio_out"] > 0
    # bound once per call: every record of the call carries the same ids
    assert ended["call"] == started["call"] and ended["call"].startswith("call_")
    assert ended["session"].startswith("sess_")


async def test_drain_ends_the_remaining_calls_cleanly_within_the_limit(simulator) -> None:
    sim = await simulator(behavior="echo")
    endpoint = Endpoint.compatible(sim.url, api_key="k")
    profile = ProfileSet.builtin().default
    registry = CallRegistry()
    rooms = [LoopbackParticipant(f"agent-{n}") for n in range(3)]
    calls = [Call(room, profile, endpoint) for room in rooms]
    for call in calls:
        await call.start()
        registry.calls.add(call)
    calls[2].end("the caller hung up")  # finished on its own before the drain
    ended = await registry.drain(limit=0.2)
    for call in calls:
        await call.aclose()
    assert ended == 2
    for call, room in zip(calls[:2], rooms[:2], strict=True):
        assert "drain" in call.record.end_reason and not call.record.failed
        assert room.states()[-1] == "idle"  # the final state was published
        assert call.realtime.current_socket is None  # the Realtime socket is closed
    assert calls[2].record.end_reason == "the caller hung up"


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_worker_is_live_not_ready_until_registered_and_drains_on_sigterm() -> None:
    port = free_port()
    env = {
        **os.environ,
        "LIVEKIT_URL": "ws://127.0.0.1:9",  # nothing listens there: never registered
        "LIVEKIT_API_KEY": "devkey",
        "LIVEKIT_API_SECRET": "devsecret-devsecret-devsecret-32b",
        "OPENAI_API_KEY": "sk-test-0123456789",
        "BRIDGE_METRICS_PORT": str(port),
        "BRIDGE_LOG_FORMAT": "json",
        "BRIDGE_LIVEKIT_HEALTH_PORT": "0",  # livekit-agents' own: any free port, not 8081
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", "start"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        health = (0, "")
        while time.monotonic() < deadline and health[0] != 200:
            try:
                health = get(f"http://127.0.0.1:{port}/healthz")
            except OSError:
                time.sleep(0.1)  # the server is not up yet
        ready = get(f"http://127.0.0.1:{port}/readyz")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert health[0] == 200
    # Registering, or already retrying (nothing listens on port 9): not ready either way.
    assert ready[0] == 503 and ready[1] in (
        "not ready: registering with LiveKit\n",
        "not ready: cannot reach LiveKit at ws://127.0.0.1:9:"
        " connection refused (nothing listens there)\n",
    )
    assert process.returncode == 0
    events = [json.loads(line).get("event") for line in stderr.splitlines() if line.startswith("{")]
    assert "worker.draining" in events and "worker.stopped" in events


def test_the_pod_cpu_share_is_its_own_work_over_its_allotted_cpus(tmp_path: Path) -> None:
    """Only what this process (and its children) used counts, over the CPUs it may use."""
    now, used = [0.0], [0.0]
    cpu = PodCpu(2.0, clock=lambda: now[0], used=lambda: used[0])
    now[0], used[0] = 1.0, 0.5  # half a CPU-second in one second, on two CPUs
    assert cpu.share() == 0.25
    now[0], used[0] = 2.0, 3.5  # more than the allotment (a burst on a third CPU): clamped
    assert cpu.share() == 1.0
    assert cpu.share() == 0.0  # no time passed
    quota = tmp_path / "cpu.max"
    quota.write_text("50000 100000\n")
    assert allotted_cpus(quota) == min(0.5, len(os.sched_getaffinity(0)))
    quota.write_text("max 100000\n")  # the static CPU manager's pods: no quota, a cpuset
    assert allotted_cpus(quota) == len(os.sched_getaffinity(0))
    assert allotted_cpus(tmp_path / "absent") == len(os.sched_getaffinity(0))


def test_a_busy_neighbour_does_not_fill_the_pod() -> None:
    """A process burning CPU next to the pod (not one of its own) leaves its reading low."""
    import psutil

    cpu = PodCpu()
    burn = f"{sys.executable} -c 'import time\nt=time.time()\nwhile time.time()-t<1.5: pass'"
    shell = subprocess.run(
        ["sh", "-c", f"{burn} >/dev/null 2>&1 & echo $!"], capture_output=True, text=True
    )
    neighbour = psutil.Process(int(shell.stdout))  # reparented: not a child of this process
    neighbour.wait(30)
    assert cpu.share() < 0.2  # this process only waited
