"""What an impaired network does to each packet, without I/O: loss, delay, jitter, reordering.

The user-space link (``bridge.local.tun_link``) asks a :class:`PathModel` per direction, for
every IP packet it reads, when to deliver it (or whether to drop it). Time comes in as an
argument (seconds on any monotonic clock); randomness from the ``random.Random`` given. The
same model serves UDP (WebRTC) and TCP (WebSockets) alike: it sees packets, not flows.

- **Loss**, ``loss`` (mean share of packets lost) and ``burst`` (mean length of a run of lost
  packets). ``burst=1``: each packet is lost independently. ``burst>1``: a Gilbert–Elliott
  chain in its simple (Gilbert) form: the Bad state loses every packet and lasts ``burst``
  packets on average (``P(B→G) = 1/burst``); the Good state loses none, and is left with
  ``P(G→B) = loss / (burst · (1 − loss))``, so the stationary share of loss is ``loss``.
- **Delay**, ``delay_ms``: the same for every packet.
- **Jitter**, ``jitter_ms``: the standard deviation of the delay added on top of
  ``delay_ms``. It is a property of the path over time, not of each packet: the path
  alternates between *clear* spells (nothing added) and *holds*; a packet sent during a hold
  waits for its end, then leaves with everything held with it, as a Wi-Fi retry storm or a
  cellular scheduling gap does. Spells and holds are exponential, the path is held half the
  time (``HELD``) and a hold lasts ``1.155 × jitter_ms`` on average, which makes the added
  delay's standard deviation ``jitter_ms``, its median 0, its mean ``0.577 × jitter_ms`` and
  its p99 ``4.52 × jitter_ms``. Because the added delay never falls faster than time passes,
  packets keep their order, and a packet's delay does not depend on how many packets are
  sent: a 50-packet/s RTP flow and a bursty TCP flow see the same delays. (netem's
  ``delay D J`` draws each packet's delay independently, which reorders packets whenever
  ``J`` exceeds their spacing: a TCP flow then sees far more reordering than a real queue
  makes, and an RTP flow less.)
- **Reordering**, ``reorder`` (share of packets) and ``reorder_ms``: a chosen packet is
  delivered ``reorder_ms`` late without holding back the ones behind it, which overtake it.

Outages (everything lost, both ways, for a while) belong to the link, which owns both
directions (:meth:`Outages.active`).
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any

HELD = 0.5  # share of the time the path holds packets (jitter)
# With holds ~ Exp(h) half the time, the added delay is 0 w.p. 1/2 and ~ Exp(h)
# otherwise (the rest of a hold is exponential too): its sd is h * sqrt(HELD * (2 - HELD)).
HOLD_PER_JITTER = 1.0 / math.sqrt(HELD * (2.0 - HELD))


@dataclass(frozen=True, slots=True, kw_only=True)
class Impairment:
    """What one direction of the link does (see the module docstring for each field)."""

    loss: float = 0.0
    burst: float = 1.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    reorder: float = 0.0
    reorder_ms: float = 20.0

    def __post_init__(self) -> None:
        values = (self.loss, self.burst, self.delay_ms, self.jitter_ms, self.reorder)
        if not all(math.isfinite(v) for v in (*values, self.reorder_ms)):
            raise ValueError("every figure of an impairment must be a finite number")
        if not 0.0 <= self.loss < 1.0:
            raise ValueError(f"loss must be in [0, 1), not {self.loss}")
        if self.burst < 1.0:
            raise ValueError(f"burst must be at least 1 packet, not {self.burst}")
        if self.loss > 0 and self.burst > 1 and self.loss / (self.burst * (1 - self.loss)) > 1:
            raise ValueError(f"loss {self.loss} cannot come in bursts of {self.burst}")
        if min(self.delay_ms, self.jitter_ms, self.reorder_ms) < 0:
            raise ValueError("delay_ms, jitter_ms and reorder_ms cannot be negative")
        if not 0.0 <= self.reorder < 1.0:
            raise ValueError(f"reorder must be in [0, 1), not {self.reorder}")

    @property
    def mean_hold_s(self) -> float:
        return self.jitter_ms * HOLD_PER_JITTER / 1000.0

    @property
    def mean_clear_s(self) -> float:
        return self.mean_hold_s * (1.0 - HELD) / HELD

    def to_json(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Impairment:
        return cls(**{k: float(v) for k, v in data.items()})

    def describe(self) -> str:
        """A short label: ``10% loss (bursts of 3), 30±30 ms, 1% reordered``."""
        parts = []
        if self.loss:
            bursts = f" (bursts of {self.burst:g})" if self.burst > 1 else ""
            parts.append(f"{self.loss * 100:g}% loss{bursts}")
        if self.delay_ms or self.jitter_ms:
            jitter = f"±{self.jitter_ms:g}" if self.jitter_ms else ""
            parts.append(f"{self.delay_ms:g}{jitter} ms")
        if self.reorder:
            parts.append(f"{self.reorder * 100:g}% reordered by {self.reorder_ms:g} ms")
        return ", ".join(parts) or "clean"


CLEAN = Impairment()


@dataclass(slots=True)
class PathCounters:
    """What one direction did to the packets it saw."""

    packets: int = 0
    lost: int = 0  # by loss (random or in a burst)
    outage: int = 0  # dropped during an outage
    reordered: int = 0
    delivered: int = 0  # counted by the link when written out

    def to_json(self) -> dict[str, int]:
        return asdict(self)


class PathModel:
    """One direction: :meth:`admit` says when a packet entering at ``now`` leaves, or None."""

    def __init__(self, impairment: Impairment = CLEAN, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()
        self.counters = PathCounters()
        self.impairment = impairment
        self._bad = False  # the Gilbert–Elliott state
        self._held = False  # the jitter process: in a hold, or clear
        self._switch_at = -math.inf  # when the jitter process changes state next
        self._last_release = -math.inf

    def configure(self, impairment: Impairment) -> None:
        """New settings from the next packet on (the jitter process restarts)."""
        self.impairment = impairment
        self._bad = False
        self._switch_at = -math.inf

    def admit(self, now: float) -> float | None:
        """The time the packet entering at ``now`` leaves the link; None: it is lost."""
        self.counters.packets += 1
        if self._lost():
            self.counters.lost += 1
            return None
        imp = self.impairment
        release = now + imp.delay_ms / 1000.0 + self.added_delay(now)
        if imp.reorder and self.rng.random() < imp.reorder:
            self.counters.reordered += 1
            return release + imp.reorder_ms / 1000.0  # the ones behind it overtake it
        # Equal release times keep arrival order in the link's heap; never earlier than
        # the packet before (only a change of settings could make it so).
        release = max(release, self._last_release)
        self._last_release = release
        return release

    def _lost(self) -> bool:
        imp = self.impairment
        if imp.loss <= 0:
            return False
        if imp.burst <= 1:
            return self.rng.random() < imp.loss
        if self._bad:
            self._bad = self.rng.random() >= 1.0 / imp.burst
        else:
            self._bad = self.rng.random() < imp.loss / (imp.burst * (1.0 - imp.loss))
        return self._bad

    def added_delay(self, now: float) -> float:
        """The jitter delay of the path at ``now`` (seconds): the rest of the current hold."""
        imp = self.impairment
        if imp.jitter_ms <= 0:
            return 0.0
        if self._switch_at == -math.inf:  # start in the stationary state
            self._held = self.rng.random() < HELD
            self._switch_at = now + self._spell(self._held)
        while now >= self._switch_at:
            self._held = not self._held
            self._switch_at += self._spell(self._held)
        return self._switch_at - now if self._held else 0.0

    def _spell(self, held: bool) -> float:
        imp = self.impairment
        mean = imp.mean_hold_s if held else imp.mean_clear_s
        return self.rng.expovariate(1.0 / mean)


@dataclass(slots=True)
class Outages:
    """Spells during which the link loses everything, both ways (a tunnel, a dead cell)."""

    spells: list[tuple[float, float]] = field(default_factory=list)  # (start, end)

    def add(self, start: float, seconds: float) -> None:
        self.spells.append((start, start + seconds))

    def active(self, now: float) -> bool:
        self.spells = [(a, b) for a, b in self.spells if b > now]
        return any(a <= now for a, _ in self.spells)
