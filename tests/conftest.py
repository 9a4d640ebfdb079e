"""Fixtures shared by the whole suite.

- ``realtime_schema`` (autouse): every server event any simulator emits during a test, in
  process (through ``sessions.simulator.add_observer``) or in a subprocess (through the journal
  named by ``BRIDGE_SIM_JOURNAL``, set per test), must validate against the ``openai`` SDK's
  models; the test fails at teardown otherwise, listing the offending events.
- ``simulator``: async factory of in-process simulators on 127.0.0.1, port 0, closed at
  teardown: ``sim = await simulator(behavior="tone", faults=(...))``.
- ``sim_process``: factory of ``python -m bridge sim --port 0 ...`` subprocesses; returns a
  ``SimProcess`` (``url``, ``stderr_text()``), terminated at teardown.
- ``quiet_collector`` (autouse, per module): what ``bridge start`` does before taking calls
  (``bridge/heap.py``): the objects alive when a module starts leave the garbage collector's
  full collections until it ends. The suite's process accumulates what hundreds of tests
  left; without this, one full collection took 250 ms in the middle of ``tests/test_trial.py``'s
  real-time calls, long enough for the caller's loopback source to run dry.

The whole run happens inside a network namespace of its own (``pytest_configure``: made with
``bridge.local.netns`` and entered by the main thread before anything else starts; removed at
the end): its loopback for the simulators, and a veth pair with private addresses for what
WebRTC needs (a LiveKit server, workers, callers: ``tests/realroom.py``). Nothing a test starts
can reach the machine's own interfaces, and fixed ports cannot collide with another run's.
Without root (no namespaces) the run stays where it is and the real-room tests skip.
"""

from __future__ import annotations

import gc
import os
import select
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bridge.heap import freeze
from bridge.local import netns, processes
from bridge.pod.settings import drop_proxy_settings
from sessions.simulator import Simulator, SimulatorConfig, add_observer, remove_observer
from tests.realtime_schema import check_event, check_journal

pytest_plugins = ["tests.realroom"]

REPO_ROOT = Path(__file__).resolve().parent.parent
JOURNAL_ENV = "BRIDGE_SIM_JOURNAL"
NETNS_PREFIX = "bridge-test-"
NETNS: netns.Namespace | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Move the run into a private network namespace (see the module docstring)."""
    global NETNS
    if netns.unavailable() or os.environ.get("BRIDGE_TEST_NETNS") == "0":
        return
    for stale in netns.NETNS_DIR.glob(f"{NETNS_PREFIX}*"):  # left by a run that was killed
        pid = stale.name.removeprefix(NETNS_PREFIX)
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            netns.Namespace(stale.name).delete()
    NETNS = netns.create(f"{NETNS_PREFIX}{os.getpid()}")
    NETNS.enter()
    drop_proxy_settings()  # nothing here goes through a proxy
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "*"


def pytest_unconfigure(config: pytest.Config) -> None:
    if NETNS is not None:
        NETNS.delete()


@pytest.fixture(scope="module", autouse=True)
def quiet_collector() -> Iterator[None]:
    freeze(collect=True)  # bridge/heap.py, as bridge start does before calls; per module here
    yield
    gc.unfreeze()


@dataclass
class SchemaGuard:
    """Collects schema problems of every server event seen during one test."""

    journal: Path
    seen: int = 0
    problems: list[str] = field(default_factory=list)

    def observe(self, dialect: str, event: dict[str, Any]) -> None:
        """Observer for in-process simulators."""
        self.seen += 1
        for problem in check_event(dialect, event):
            self.problems.append(f"in-process: {problem}")


@pytest.fixture(autouse=True)
def realtime_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SchemaGuard]:
    """Fail the test if any simulator event of the test breaks the SDK's models."""
    guard = SchemaGuard(journal=tmp_path / "sim-journal.jsonl")
    monkeypatch.setenv(JOURNAL_ENV, str(guard.journal))
    add_observer(guard.observe)
    try:
        yield guard
    finally:
        remove_observer(guard.observe)
    checked, problems = check_journal(guard.journal)
    guard.seen += checked
    problems = guard.problems + problems
    if problems:
        shown = "\n  ".join(problems[:20])
        pytest.fail(
            f"{len(problems)} simulator event(s) do not validate against the openai SDK"
            f" models:\n  {shown}",
            pytrace=False,
        )


SimulatorFactory = Callable[..., Awaitable[Simulator]]


@pytest.fixture
async def simulator(realtime_schema: SchemaGuard) -> AsyncIterator[SimulatorFactory]:
    """Start in-process simulators (``SimulatorConfig`` keywords, or ``config=``)."""
    started: list[Simulator] = []

    async def start(
        config: SimulatorConfig | None = None,
        *,
        journal: Path | None = None,
        port: int = 0,
        **options: Any,
    ) -> Simulator:
        sim = Simulator(
            config or SimulatorConfig(**options), host="127.0.0.1", port=port, journal=journal
        )
        await sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in reversed(started):
        await sim.close()


@dataclass
class SimProcess:
    """A running ``bridge sim`` subprocess."""

    process: subprocess.Popen[bytes]
    url: str
    stderr_path: Path

    def stderr_text(self) -> str:
        """What the simulator logged so far."""
        return self.stderr_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait, and return the exit status (SIGKILL if it hangs)."""
        return processes.stop(self.process, timeout)


@pytest.fixture
def sim_process(
    realtime_schema: SchemaGuard, tmp_path: Path
) -> Iterator[Callable[..., SimProcess]]:
    """Start ``python -m bridge sim --port 0 ARGS...`` and read its URL from stdout."""
    started: list[SimProcess] = []

    def start(*args: str, timeout: float = 20.0) -> SimProcess:
        stderr_path = tmp_path / f"sim-{len(started)}.stderr"
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "bridge", "sim", "--port", "0", *args],
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        line = process.stdout.readline().decode().strip() if ready else ""
        prefix = "realtime simulator listening on "
        if not line.startswith(prefix):
            process.kill()
            process.wait()
            raise AssertionError(
                f"bridge sim did not start (first line {line!r}):\n{stderr_path.read_text()}"
            )
        sim = SimProcess(process, line.removeprefix(prefix), stderr_path)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()
