"""The load gate's CPU reading inside real cgroups (``bridge/pod/cpu.py``), as root.

A child process is moved into a cgroup made here (v2 when the unified hierarchy has the
``cpu`` controller, else v1's ``cpu`` and ``cpuset`` hierarchies, as on this machine's
hybrid layout), then reports what the worker would read:

- a cpuset of one CPU and no quota (what the static CPU manager gives a Guaranteed pod;
  ``cpu.max`` is ``max`` there): one CPU allotted, pinned; a process busy on it reads what
  the cgroup's own accounting says over that one CPU, not over the machine's CPUs;
- a quota of 0.2 CPU over every CPU (a pod without the static policy): 0.2 allotted, not
  pinned, and a busy process reads itself full (it is throttled at its quota).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path("/sys/fs/cgroup")
PROBE = r"""
import json, os, sys, time
from bridge.pod.cpu import PodCpu, allotted_cpus, cpu_layout
sys.stdin.readline()  # moved into the cgroup by now
layout = cpu_layout()
cpu = PodCpu()
start = time.monotonic()
while time.monotonic() - start < 1.0:
    pass
print(json.dumps({"allotted": allotted_cpus(), "pinned": layout.pinned,
                  "cpus": list(layout.cpus), "share": cpu.share()}), flush=True)
"""


def _v2_cpu() -> bool:
    controllers = ROOT / "cgroup.controllers"
    return controllers.is_file() and "cpu" in controllers.read_text().split()


def _v1() -> bool:
    return (ROOT / "cpu" / "cpu.cfs_quota_us").is_file() and (ROOT / "cpuset").is_dir()


@pytest.fixture
def cgroups() -> Iterator[list[Path]]:
    if os.geteuid() != 0 or not (_v2_cpu() or _v1()):
        pytest.skip("needs root and a cpu cgroup controller")
    made: list[Path] = []
    yield made
    for path in reversed(made):
        for _ in range(50):
            try:
                path.rmdir()
                break
            except OSError:
                import time

                time.sleep(0.1)  # the probe's exit is reaped by the kernel asynchronously


def _make(cgroups: list[Path], *, cpus: str | None, quota_us: int | None) -> list[Path]:
    """The cgroup directories a process must join (one, or one per v1 hierarchy)."""
    name = f"bridge-test-{uuid.uuid4().hex[:8]}"
    if _v2_cpu():
        path = ROOT / name
        path.mkdir()
        cgroups.append(path)
        if quota_us is not None:
            (path / "cpu.max").write_text(f"{quota_us} 100000")
        if cpus is not None:
            (path / "cpuset.cpus").write_text(cpus)
        return [path]
    cpu, cpuset = ROOT / "cpu" / name, ROOT / "cpuset" / name
    for path in (cpu, cpuset):
        path.mkdir()
        cgroups.append(path)
    (cpuset / "cpuset.mems").write_text((ROOT / "cpuset" / "cpuset.mems").read_text())
    (cpuset / "cpuset.cpus").write_text(cpus or (ROOT / "cpuset" / "cpuset.cpus").read_text())
    (cpu / "cpu.cfs_period_us").write_text("100000")
    (cpu / "cpu.cfs_quota_us").write_text(str(quota_us if quota_us is not None else -1))
    return [cpu, cpuset]


def _probe(groups: list[Path]) -> dict[str, object]:
    process = subprocess.Popen(
        [sys.executable, "-c", PROBE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    for group in groups:
        (group / "cgroup.procs").write_text(str(process.pid))
    out, _ = process.communicate("go\n", timeout=60)
    assert process.returncode == 0
    return dict(json.loads(out))


def test_a_pinned_pod_without_quota_is_measured_over_its_one_cpu(cgroups: list[Path]) -> None:
    first = min(os.sched_getaffinity(0))
    reading = _probe(_make(cgroups, cpus=str(first), quota_us=None))
    assert reading["allotted"] == 1.0 and reading["pinned"] is True
    assert reading["cpus"] == [first]
    # Busy the whole second on its one CPU: what it got of that CPU (the machine is shared),
    # never divided by the machine's CPUs.
    share = float(reading["share"])  # type: ignore[arg-type]
    assert 0.0 < share <= 1.0


def test_a_quota_is_the_allotment_and_a_busy_process_reads_full(cgroups: list[Path]) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs to tell a quota from a cpuset")
    reading = _probe(_make(cgroups, cpus=None, quota_us=20_000))
    assert reading["allotted"] == pytest.approx(0.2) and reading["pinned"] is False
    assert float(reading["share"]) >= 0.8, reading  # type: ignore[arg-type]
