"""Private networks on one machine: Linux network namespaces with veth pairs.

libwebrtc (in the ``livekit`` SDK, the agents worker and Chromium) ignores the loopback
interface, so a LiveKit server, its workers and callers on one machine need a real interface
to find ICE candidates on. Where the machine's own interfaces must not carry that traffic, they
run inside a namespace made here: its own loopback, and a veth pair whose two ends (both in the
namespace) carry private addresses. Nothing in it can reach the machine's interfaces or
anything beyond them.

- :func:`create` makes a named namespace (``ip netns add``) with its links up and addresses
  set; :meth:`Namespace.delete` removes it (processes still inside keep their network until
  they exit).
- :meth:`Namespace.enter` moves the *calling thread* into it (``setns``): threads and processes
  started afterwards from that thread are inside too. The test suite does this in its main
  thread before anything else starts, so every server, worker, caller and simulator of a run
  shares one private network with fixed, conflict-free ports.
- :meth:`Namespace.command` prefixes a command with ``ip netns exec`` for a process that should
  run inside while its parent stays outside.

Needs root (``CAP_SYS_ADMIN``) and iproute2; :func:`unavailable` says why not otherwise.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bridge.errors import BridgeError

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")


class NamespaceError(BridgeError):
    """A namespace could not be made, entered or removed (``ip`` said why)."""


@dataclass(frozen=True, slots=True)
class Link:
    """A veth pair inside one namespace: two interfaces and the address each end carries."""

    names: tuple[str, str]
    addresses: tuple[str, str]  # with prefix length: "10.200.0.1/24"

    @property
    def hosts(self) -> tuple[str, str]:
        """The two addresses without their prefix length."""
        a, b = (str(ipaddress.ip_interface(x).ip) for x in self.addresses)
        return a, b


DEFAULT_LINK = Link(("veth0", "veth1"), ("10.200.0.1/24", "10.200.0.2/24"))


@dataclass(slots=True)
class Namespace:
    name: str
    links: Sequence[Link] = field(default_factory=lambda: (DEFAULT_LINK,))

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.name

    @property
    def host(self) -> str:
        """The first address of the first link: where servers inside should bind."""
        return self.links[0].hosts[0]

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the namespace (from a process outside it)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def enter(self) -> None:
        """Move the calling thread into the namespace (and whatever it starts from now on)."""
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                raise NamespaceError(f"setns into {self.name}: {os.strerror(errno)}")
        finally:
            os.close(fd)

    def delete(self) -> None:
        """Remove the namespace's name (idempotent)."""
        if self.path.exists():
            _ip("netns", "delete", self.name)


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "network namespaces need iproute2 (the ip command)"
    return None


def create(name: str, links: Sequence[Link] = (DEFAULT_LINK,)) -> Namespace:
    """A fresh namespace ``name`` with loopback and ``links`` up (an old one is replaced)."""
    reason = unavailable()
    if reason:
        raise NamespaceError(reason)
    namespace = Namespace(name, tuple(links))
    namespace.delete()
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        for link in links:
            first, second = link.names
            _ip("-n", name, "link", "add", first, "type", "veth", "peer", "name", second)
            for interface, address in zip(link.names, link.addresses, strict=True):
                _ip("-n", name, "addr", "add", address, "dev", interface)
                _ip("-n", name, "link", "set", interface, "up")
    except NamespaceError:
        namespace.delete()
        raise
    return namespace


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NamespaceError(f"ip {' '.join(args)}: {result.stderr.strip() or result.returncode}")
