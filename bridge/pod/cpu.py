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
pins it to, or ``taskset``), or its cgroup quota when that is smaller: cgroup v2's
``cpu.max``, or v1's ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (hybrid hosts, older
nodes), found through ``/proc/self/cgroup`` (:func:`cgroup_quota`).

:func:`cpu_layout` says whether the pod is *pinned*: its affinity is no wider than what it
is allotted (the static CPU manager's exclusive cpuset, or ``taskset``), the layout the
per-pod maximum was measured on. The worker exports it (``bridge_cpu_pinned``) and lowers its
maximum when it is not (``bridge.pod.worker``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def _cpu_max(path: Path) -> float | None:
    """CPUs a cgroup v2 ``cpu.max`` allows (None: ``max``, or unreadable)."""
    try:
        quota, period = path.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _cfs_quota(directory: Path) -> float | None:
    """CPUs a cgroup v1 ``cpu`` directory's CFS quota allows (None: -1, or unreadable)."""
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def cgroup_quota(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> float | None:
    """The CPUs this process's cgroup quota allows, or None when it has none.

    Each hierarchy in ``/proc/self/cgroup`` is looked up under ``root``: the process's own
    cgroup directory when it is visible there, else the mount's top (inside a container the
    mount's top is the container's own cgroup).
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    found: list[float] = []
    for line in lines:
        hierarchy, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        relative = path.strip().lstrip("/")
        if hierarchy == "0":  # v2 (unified)
            for candidate in (root / relative / "cpu.max", root / "cpu.max"):
                if candidate.is_file():
                    quota = _cpu_max(candidate)
                    if quota is not None:
                        found.append(quota)
                    break
        elif "cpu" in controllers.split(","):  # v1: mounted as cpu, or cpu,cpuacct
            for mount in (root / "cpu", root / controllers):
                for directory in (mount / relative, mount):
                    if (directory / "cpu.cfs_quota_us").is_file():
                        quota = _cfs_quota(directory)
                        if quota is not None:
                            found.append(quota)
                        break
                else:
                    continue
                break
    return min(found) if found else None


def allotted_cpus(cpu_max: Path | None = None) -> float:
    """The CPUs this process may use: its affinity, or its cgroup quota when smaller.

    ``cpu_max``: read this cgroup v2 ``cpu.max`` file instead of the process's own cgroups.
    """
    cpus = float(len(os.sched_getaffinity(0)))
    quota = _cpu_max(cpu_max) if cpu_max is not None else cgroup_quota()
    return cpus if quota is None else min(cpus, quota)


@dataclass(frozen=True, slots=True)
class CpuLayout:
    """Where this process may run: its CPUs (affinity) and its cgroup quota (None: none)."""

    cpus: tuple[int, ...]
    quota: float | None

    @property
    def pinned(self) -> bool:
        """It has whole CPUs of its own: one CPU, or no more CPUs than its quota covers
        (a Guaranteed pod under the static CPU manager policy; ``taskset``)."""
        if len(self.cpus) == 1:
            return True
        return self.quota is not None and len(self.cpus) <= math.ceil(self.quota)


def cpu_layout() -> CpuLayout:
    return CpuLayout(tuple(sorted(os.sched_getaffinity(0))), cgroup_quota())


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
