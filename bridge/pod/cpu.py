"""How busy this pod's CPUs are with this pod's own work.

The worker's load (``bridge.pod.worker.CapacityGate``) counts CPU as well as calls. Reading
the *machine's* CPU, as ``livekit-agents``' default monitor does outside a cgroup with a
quota, makes a pod report itself full because of its neighbours: on a node whose kubelet
runs the static CPU manager policy, a Guaranteed pod's ``cpu.max`` is ``max`` (no quota; the
pod owns whole CPUs through its cpuset instead), so usage over the node's CPUs never reaches
the gate, or, on a shared machine, other processes' work fills it.

:class:`PodCpu` reads what this process and its children used (user + system time, from the
kernel's per-process accounting) over the wall time since the last reading, divided by the
CPUs the pod may use: the CPUs it may run on (its affinity: the cpuset the static policy
pins it to, or ``taskset``), or its cgroup quota (``cpu.max``) when that is smaller.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import psutil

CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def allotted_cpus(cpu_max: Path = CPU_MAX) -> float:
    """The CPUs this process may use: its affinity, or its cgroup v2 quota when smaller."""
    cpus = float(len(os.sched_getaffinity(0)))
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    return min(cpus, int(quota) / int(period))


def _own_cpu_seconds(process: psutil.Process) -> float:
    """User + system seconds of ``process``, its exited children and its live ones."""
    times = process.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in process.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.Error:  # gone between listing and reading
            continue
        total += child_times.user + child_times.system
    return total


class PodCpu:
    """Successive readings of the pod's own CPU share (0..1 of its allotted CPUs)."""

    def __init__(
        self,
        cpus: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        used: Callable[[], float] | None = None,
    ) -> None:
        self.cpus = cpus or allotted_cpus()
        self._clock = clock
        process = psutil.Process()
        self._used = used or (lambda: _own_cpu_seconds(process))
        self._last = (clock(), self._used())

    def share(self) -> float:
        """CPU used since the previous reading over the CPUs allotted, clamped to 0..1."""
        now, used = self._clock(), self._used()
        then, before = self._last
        self._last = (now, used)
        elapsed = now - then
        if elapsed <= 0:
            return 0.0
        return min(max((used - before) / (elapsed * self.cpus), 0.0), 1.0)
