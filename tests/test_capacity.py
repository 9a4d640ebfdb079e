"""The per-pod capacity gate: full before overloaded, never past the maximum."""

from __future__ import annotations

import pytest

from bridge.pod.worker import ADMISSION_TTL_S, CapacityGate


def test_load_is_sessions_over_the_maximum() -> None:
    gate = CapacityGate(max_sessions=4)
    assert gate.load(0) == 0.0
    assert gate.load(2) == 0.5
    assert gate.load(4) == 1.0
    assert gate.load(9) == 1.0


def test_cpu_counts_when_it_is_the_larger() -> None:
    gate = CapacityGate(max_sessions=10, cpu_full=0.8)
    for share in (0.4, 0.4, 0.4):
        gate.note_cpu(share)
    assert gate.load(1) == pytest.approx(0.5)  # 0.4 / 0.8 beats 1 / 10
    gate.note_cpu(1.5)  # clamped to 1.0
    assert gate.load(0) == pytest.approx(min((0.4 * 3 + 1.0) / 4 / 0.8, 1.0))


def test_admission_refuses_past_the_maximum_even_between_load_updates() -> None:
    gate = CapacityGate(max_sessions=2)
    running: set[str] = set()
    assert gate.admit("j1", running, now=0.0)
    assert gate.admit("j2", running, now=0.1)  # j1 not running yet: still counted
    assert not gate.admit("j3", running, now=0.2)
    assert gate.load(len(running)) == 1.0  # admitted jobs count in the load too
    running = {"j1", "j2"}
    assert not gate.admit("j3", running, now=0.3)
    running = {"j2"}  # j1 ended
    assert gate.admit("j3", running, now=0.4)


def test_an_admitted_job_that_never_starts_stops_counting() -> None:
    gate = CapacityGate(max_sessions=1)
    assert gate.admit("lost", set(), now=0.0)
    assert not gate.admit("next", set(), now=1.0)
    assert gate.admit("next", set(), now=ADMISSION_TTL_S + 1)
