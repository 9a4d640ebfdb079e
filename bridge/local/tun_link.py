"""An impaired network link between two namespaces, in user space: a TUN device in each.

The kernel here has no ``netem``, but TUN devices work inside network namespaces. A link is a
process (``python -m bridge.local.tun_link SPEC``) that makes a TUN device in each of two
namespaces (``setns`` then ``TUNSETIFF``: a device is made in the namespace of the thread that
opens it), gives each end its point-to-point address and routes, and moves every IPv4 packet
from one device's file descriptor to the other's, as :mod:`bridge.local.impairment` decides:
lost, or held in a heap until its release time. UDP (WebRTC) and TCP (WebSockets) alike;
IPv6 is dropped (nothing here uses it; the kernel's own router solicitations would only add
noise). The devices are not persistent: they vanish with the process.

The two ends are *near* (a caller, or the bridge) and *far* (the servers, or the model):
``up`` is near → far, ``down`` far → near.

Timing: the process asks for ``SCHED_FIFO`` (it sleeps in ``epoll`` between packets, so it
never hogs a core), turns its garbage collector off (its loop makes no cycles) and releases
each packet on a monotonic clock within the millisecond ``epoll`` rounds to. So the link
delivers on time even when the callers, the server and the bridge load the machine: the
network is not part of what is measured.

Control, one JSON object per line on its stdin, answered on its stdout:

- ``{"set": {"up": {...}, "down": {...}}}``: new :class:`~bridge.local.impairment.Impairment`
  settings per direction (a missing direction stays as it is);
- ``{"outage": SECONDS, "at": T}``: lose everything both ways from ``T`` (``time.monotonic()``
  of any process of the machine; now when absent) for ``SECONDS``;
- ``{"stats": true}``: counters per direction (packets, lost, outage, reordered, delivered,
  and packets by protocol: ``udp``, ``tcp``, ``other``, ``ipv6``).

Each is answered with one JSON line (``{"ok": true}`` or the stats). :class:`Link` is the
parent's side: it starts the process, sends the commands and stops it.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import gc
import heapq
import json
import os
import random
import select
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bridge.errors import BridgeError
from bridge.local.impairment import CLEAN, Impairment, Outages, PathModel
from bridge.local.netns import NETNS_DIR, Namespace

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000
PROTOCOLS = {6: "tcp", 17: "udp"}


class LinkError(BridgeError):
    """The link could not be made, or stopped answering."""


@dataclass(frozen=True, slots=True)
class End:
    """One end of the link: its namespace, device name, address and routes through it."""

    namespace: str
    device: str  # at most 15 characters; not "tun…" (libwebrtc takes those for VPNs)
    address: str  # the end's own address, e.g. "10.201.0.2"
    routes: tuple[str, ...] = ()  # networks reached through the link, e.g. "10.200.0.0/24"


@dataclass(frozen=True, slots=True)
class LinkSpec:
    near: End
    far: End
    seed: int = 1

    def to_json(self) -> str:
        def end(e: End) -> dict[str, Any]:
            return {
                "namespace": e.namespace,
                "device": e.device,
                "address": e.address,
                "routes": list(e.routes),
            }

        return json.dumps({"near": end(self.near), "far": end(self.far), "seed": self.seed})

    @classmethod
    def from_json(cls, text: str) -> LinkSpec:
        data = json.loads(text)

        def end(d: dict[str, Any]) -> End:
            return End(d["namespace"], d["device"], d["address"], tuple(d["routes"]))

        return cls(end(data["near"]), end(data["far"]), int(data["seed"]))


# ---------------------------------------------------------------------- the link process


def _setns(namespace: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(NETNS_DIR / namespace, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise LinkError(f"setns {namespace}: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)


def _open_tun(end: End) -> int:
    """Make ``end``'s device in its namespace; the file descriptor carries its packets."""
    _setns(end.namespace)
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", end.device.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def _configure(end: End, peer: End) -> None:
    def ip(*args: str) -> None:
        result = subprocess.run(
            ["ip", "-n", end.namespace, *args], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise LinkError(f"ip -n {end.namespace} {' '.join(args)}: {result.stderr.strip()}")

    ip("addr", "add", end.address, "peer", peer.address, "dev", end.device)
    ip("link", "set", end.device, "up")
    for network in end.routes:
        ip("route", "replace", network, "dev", end.device)


def _realtime() -> str:
    """Ask for a real-time scheduling class (see the module docstring); say what was got."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        return "fifo"
    except (OSError, AttributeError):
        with contextlib.suppress(OSError):
            os.nice(-10)
        return "nice"


@dataclass
class _Direction:
    model: PathModel
    out_fd: int
    protocols: Counter[str] = field(default_factory=Counter)

    def stats(self) -> dict[str, Any]:
        kinds = ("udp", "tcp", "other", "ipv6")
        return {**self.model.counters.to_json(), **{k: self.protocols[k] for k in kinds}}


def serve(spec: LinkSpec, control: IO[bytes], report: IO[str]) -> None:
    """The link process: make the devices, then move packets until ``control`` closes."""
    near_fd = _open_tun(spec.near)
    far_fd = _open_tun(spec.far)
    _configure(spec.near, spec.far)
    _configure(spec.far, spec.near)
    scheduling = _realtime()
    gc.collect()
    gc.freeze()
    gc.disable()
    rng = random.Random(spec.seed)
    directions = {
        near_fd: _Direction(PathModel(CLEAN, random.Random(rng.random())), far_fd),  # up
        far_fd: _Direction(PathModel(CLEAN, random.Random(rng.random())), near_fd),  # down
    }
    up, down = directions[near_fd], directions[far_fd]
    outages = Outages()
    control_fd = control.fileno()
    os.set_blocking(control_fd, False)
    poller = select.epoll()
    for fd in (near_fd, far_fd, control_fd):
        poller.register(fd, select.EPOLLIN)
    heap: list[tuple[float, int, int, bytes]] = []
    sequence = 0
    pending = b""

    def answer(message: dict[str, Any]) -> None:
        report.write(json.dumps(message) + "\n")
        report.flush()

    answer({"ready": True, "scheduling": scheduling})
    while True:
        timeout = max(heap[0][0] - time.monotonic(), 0.0) if heap else None
        for fd, _ in poller.poll(timeout):
            if fd == control_fd:
                try:
                    chunk = os.read(control_fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    return  # the parent is gone or closed us
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    answer(_command(json.loads(line), up, down, outages))
                continue
            direction = directions[fd]
            while True:
                try:
                    packet = os.read(fd, 65536)
                except BlockingIOError:
                    break
                now = time.monotonic()
                if not packet or packet[0] >> 4 != 4:
                    direction.protocols["ipv6"] += 1
                    continue
                direction.protocols[PROTOCOLS.get(packet[9], "other")] += 1
                if outages.active(now):
                    direction.model.counters.packets += 1
                    direction.model.counters.outage += 1
                    continue
                release = direction.model.admit(now)
                if release is not None:
                    sequence += 1
                    heapq.heappush(heap, (release, sequence, direction.out_fd, packet))
        now = time.monotonic()
        while heap and heap[0][0] <= now:
            _, _, out_fd, packet = heapq.heappop(heap)
            with contextlib.suppress(OSError):  # a device going down at the end
                os.write(out_fd, packet)
                directions[near_fd if out_fd == far_fd else far_fd].model.counters.delivered += 1


def _command(
    message: dict[str, Any], up: _Direction, down: _Direction, outages: Outages
) -> dict[str, Any]:
    try:
        if "set" in message:
            settings = message["set"]
            for key, direction in (("up", up), ("down", down)):
                if key in settings:
                    direction.model.configure(Impairment.from_json(settings[key]))
            return {"ok": True}
        if "outage" in message:
            outages.add(float(message.get("at") or time.monotonic()), float(message["outage"]))
            return {"ok": True}
        if "stats" in message:
            return {"up": up.stats(), "down": down.stats()}
        return {"error": f"unknown command {message!r}"}
    except (TypeError, ValueError, KeyError) as exc:
        return {"error": str(exc)}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m bridge.local.tun_link SPEC_JSON", file=sys.stderr)
        return 2
    try:
        serve(LinkSpec.from_json(args[0]), sys.stdin.buffer, sys.stdout)
    except (LinkError, OSError) as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return 1
    return 0


# ---------------------------------------------------------------------- the parent's side


class Link:
    """A running link process (a context manager): configure it, cut it, read its counters.

    Both namespaces must exist; the devices it makes vanish when it stops.
    """

    def __init__(self, spec: LinkSpec, *, start_timeout: float = 10.0) -> None:
        self.spec = spec
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bridge.local.tun_link", spec.to_json()],
            bufsize=0,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[2],
        )
        try:
            first = self._read(start_timeout)
        except BaseException:
            self.close()
            raise
        if not first.get("ready"):
            self.close()
            raise LinkError(f"the link did not start: {first.get('error') or first}")
        self.scheduling = str(first.get("scheduling"))

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int:
        return self._process.pid

    def _read(self, timeout: float) -> dict[str, Any]:
        out = self._process.stdout
        assert out is not None
        ready, _, _ = select.select([out], [], [], timeout)
        line = out.readline() if ready else b""
        if not line:
            stderr = self._process.stderr
            gone = self._process.poll() is not None and stderr is not None
            err = stderr.read().decode() if gone and stderr is not None else ""
            raise LinkError(f"the link process did not answer{': ' + err if err else ''}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        stdin = self._process.stdin
        assert stdin is not None
        try:
            stdin.write((json.dumps(message) + "\n").encode())
        except BrokenPipeError:
            raise LinkError("the link process is gone") from None
        answer = self._read(10.0)
        if "error" in answer:
            raise LinkError(str(answer["error"]))
        return answer

    def set(self, up: Impairment | None = None, down: Impairment | None = None) -> None:
        """New settings per direction (``None``: unchanged)."""
        settings = {}
        if up is not None:
            settings["up"] = up.to_json()
        if down is not None:
            settings["down"] = down.to_json()
        self._ask({"set": settings})

    def both(self, impairment: Impairment) -> None:
        self.set(impairment, impairment)

    def outage(self, seconds: float, at: float | None = None) -> None:
        """Lose every packet both ways for ``seconds`` from ``at`` (``time.monotonic()``)."""
        self._ask({"outage": seconds, "at": at})

    def stats(self) -> dict[str, dict[str, int]]:
        return self._ask({"stats": True})

    def close(self) -> None:
        """Stop the process (its devices and their routes go with it)."""
        process = self._process
        if process.poll() is None:
            with contextlib.suppress(OSError):
                assert process.stdin is not None
                process.stdin.close()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


# ---------------------------------------------------------------------- address plans

#: The servers' network (the veth pair of ``bridge.local.netns.DEFAULT_LINK``).
SERVERS_NETWORK = "10.200.0.0/24"


def caller_link(tag: int, caller: Namespace, servers: Namespace, *, seed: int = 1) -> LinkSpec:
    """A caller's namespace (near, 10.201.0.2) behind a link to the servers' (far, 10.201.0.1),
    through which it reaches the servers' network. ``tag`` (a pid) names the devices."""
    return LinkSpec(
        End(caller.name, f"imc{tag}", "10.201.0.2", (SERVERS_NETWORK,)),
        End(servers.name, f"imc{tag}", "10.201.0.1"),
        seed,
    )


def model_link(tag: int, servers: Namespace, model: Namespace, *, seed: int = 2) -> LinkSpec:
    """The servers' namespace (near, where the bridge runs: 10.202.0.1) linked to the model's
    (far, 10.202.0.2, where a simulator listens)."""
    return LinkSpec(
        End(servers.name, f"imm{tag}", "10.202.0.1"),
        End(model.name, f"imm{tag}", "10.202.0.2"),
        seed,
    )


def devices_present(namespace: Namespace, device: str) -> bool:
    """Whether ``device`` exists in ``namespace`` (for tests of the cleanup)."""
    result = subprocess.run(
        ["ip", "-n", namespace.name, "link", "show", device],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


if __name__ == "__main__":
    sys.exit(main())
