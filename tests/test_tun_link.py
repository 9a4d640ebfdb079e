"""The impaired link itself, end to end: TUN devices in two namespaces, probe packets through.

What was asked of each direction (loss, bursts, delay, jitter, reordering, an outage) is
compared with what probe packets measured (``bridge.local.probe``: kernel receive times,
one clock for both namespaces), within bounds a few standard errors wide; TCP crosses it
too; and nothing the link made is left behind. The exact figures are printed (``-s``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from bridge.local import netns
from bridge.local.impairment import Impairment
from bridge.local.probe import ProbeFigures, measure
from bridge.local.tun_link import End, Link, LinkSpec, devices_present
from tests.impairedkit import require_namespaces

NEAR, FAR = "10.203.0.2", "10.203.0.1"


def spec(near: netns.Namespace, far: netns.Namespace, device: str) -> LinkSpec:
    return LinkSpec(End(near.name, device, NEAR), End(far.name, device, FAR), seed=11)


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[netns.Namespace, netns.Namespace, Link]]:
    require_namespaces()
    pid = os.getpid()
    near = netns.create(f"bridge-linktest-near-{pid}", links=())
    far = netns.create(f"bridge-linktest-far-{pid}", links=())
    try:
        with Link(spec(near, far, f"ilt{pid}")) as link:
            yield near, far, link
    finally:
        near.delete()
        far.delete()


def both_ways(
    near: netns.Namespace, far: netns.Namespace, *, rate: float, seconds: float
) -> tuple[ProbeFigures, ProbeFigures]:
    """Probe up (near → far) and down at once."""
    found: dict[str, ProbeFigures] = {}

    def up() -> None:
        found["up"] = measure(near, far, FAR, 9801, rate=rate, seconds=seconds)

    thread = threading.Thread(target=up)
    thread.start()
    found["down"] = measure(far, near, NEAR, 9802, rate=rate, seconds=seconds)
    thread.join()
    print(f"\n  up   {found['up'].to_json()}\n  down {found['down'].to_json()}")
    return found["up"], found["down"]


def test_asked_loss_and_delay_are_measured(
    pair: tuple[netns.Namespace, netns.Namespace, Link],
) -> None:
    near, far, link = pair
    link.set(up=Impairment(loss=0.1, delay_ms=30), down=Impairment(loss=0.1, burst=3, delay_ms=10))
    before = link.stats()
    up, down = both_ways(near, far, rate=500, seconds=6)
    after = link.stats()
    link.set(Impairment(), Impairment())
    # 3000 probes a way: random loss has a standard error of 0.55 %, bursts of 3 about 1 %.
    assert abs(up.loss - 0.1) < 0.03 and abs(down.loss - 0.1) < 0.045
    assert up.mean_burst < 1.5 and 2.0 < down.mean_burst < 4.5
    assert 30 <= up.delay_min_ms and up.delay_p50_ms < 32.5 and up.delay_p99_ms < 35
    assert 10 <= down.delay_min_ms and down.delay_p50_ms < 12.5
    assert up.reordered == 0 and down.reordered == 0
    counted = {d: after[d]["lost"] - before[d]["lost"] for d in ("up", "down")}
    assert counted == {"up": up.sent - up.received, "down": down.sent - down.received}
    assert after["up"]["udp"] - before["up"]["udp"] == up.sent


def test_jitter_keeps_order_and_reordering_is_what_was_asked(
    pair: tuple[netns.Namespace, netns.Namespace, Link],
) -> None:
    near, far, link = pair
    link.set(up=Impairment(delay_ms=20, jitter_ms=30), down=Impairment(reorder=0.05))
    up, down = both_ways(near, far, rate=500, seconds=8)
    link.set(Impairment(), Impairment())
    # The added delay: sd 30 ms, mean 0.577 x 30 = 17 ms, median 0 (ms).
    assert abs(up.delay_sd_ms - 30) < 9
    assert abs(up.delay_mean_ms - 20 - 17.3) < 7
    assert up.delay_p50_ms < 23 and up.delay_min_ms >= 20
    assert up.reordered == 0 and up.loss == 0
    assert abs(down.reordered - 0.05) < 0.02


def test_an_outage_loses_everything_both_ways_for_its_length(
    pair: tuple[netns.Namespace, netns.Namespace, Link],
) -> None:
    near, far, link = pair
    before = link.stats()
    found: list[tuple[ProbeFigures, ProbeFigures]] = []
    probing = threading.Thread(
        target=lambda: found.append(both_ways(near, far, rate=200, seconds=4))
    )
    probing.start()
    deadline = time.monotonic() + 30  # a safety net: the probes flow within a second or two
    while any(link.stats()[d]["udp"] < before[d]["udp"] + 50 for d in ("up", "down")):
        assert time.monotonic() < deadline, "no probes went through"
        time.sleep(0.02)
    link.outage(1.0)  # from now, both ways
    probing.join()
    [(up, down)] = found
    for way in (up, down):  # 1 s of 4 s, in one run of ~200 probes (the senders are plain
        # processes: one stalled at an edge of the outage moves a few dozen probes across it)
        assert abs(way.loss - 0.25) < 0.05
        assert abs(way.mean_burst - 200) < 30


TCP_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 9803)); s.listen(1); print("ready", flush=True)
c, _ = s.accept()
while data := c.recv(65536):
    c.sendall(data)
"""
TCP_CLIENT = """
import hashlib, socket, sys, threading
payload = bytes(range(256)) * 1200  # 300 kB
c = socket.create_connection((sys.argv[1], 9803), timeout=60)
threading.Thread(target=lambda: (c.sendall(payload), c.shutdown(socket.SHUT_WR))).start()
got = b""
while data := c.recv(65536):
    got += data
print(len(got), hashlib.sha256(got).hexdigest() == hashlib.sha256(payload).hexdigest())
"""


def test_tcp_crosses_the_link_whole_under_loss(
    pair: tuple[netns.Namespace, netns.Namespace, Link],
) -> None:
    near, far, link = pair
    link.both(Impairment(loss=0.1, delay_ms=20))
    before = link.stats()
    server = subprocess.Popen(
        far.command([sys.executable, "-c", TCP_SERVER, FAR]), stdout=subprocess.PIPE
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
        out = subprocess.run(
            near.command([sys.executable, "-c", TCP_CLIENT, FAR]),
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout.split()
    finally:
        link.both(Impairment())
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()
    assert out == [b"307200", b"True"]
    after = link.stats()
    assert after["up"]["tcp"] > before["up"]["tcp"] + 100
    assert after["up"]["lost"] > before["up"]["lost"]  # the loss applied to TCP too


def test_the_link_leaves_no_device_and_the_namespaces_go() -> None:
    require_namespaces()
    pid = os.getpid()
    near = netns.create(f"bridge-linktest-gone-n-{pid}", links=())
    far = netns.create(f"bridge-linktest-gone-f-{pid}", links=())
    try:
        link = Link(spec(near, far, f"ilg{pid}"))
        try:
            assert devices_present(near, f"ilg{pid}") and devices_present(far, f"ilg{pid}")
            assert json.dumps(link.stats())  # it answers
        finally:
            link.close()
        assert not devices_present(near, f"ilg{pid}") and not devices_present(far, f"ilg{pid}")
    finally:
        near.delete()
        far.delete()
    assert not near.path.exists() and not far.path.exists()
