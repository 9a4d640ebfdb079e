"""Token usage from ``response.done`` and what it costs.

Prices are list prices in USD per million tokens (``realtime-protocol.md`` §8). A model id
is matched exactly, then without its date suffix (``gpt-realtime-2025-08-28`` is priced as
``gpt-realtime``, ``gpt-realtime-mini-2025-10-06`` as ``gpt-realtime-mini``). Deployments
override or extend the table through configuration (``PriceTable.with_overrides``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from sessions.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one response, split the way they are priced."""

    text_in: int = 0
    text_in_cached: int = 0
    audio_in: int = 0
    audio_in_cached: int = 0
    text_out: int = 0
    audio_out: int = 0

    @property
    def input_tokens(self) -> int:
        return self.text_in + self.audio_in

    @property
    def output_tokens(self) -> int:
        return self.text_out + self.audio_out

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def by_kind(self) -> dict[str, int]:
        """Token counts keyed by kind (``text_in``, ``audio_out``, ...), for metrics."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_wire(cls, usage: Mapping[str, Any] | None) -> Usage | None:
        """Parse ``response.usage``; tolerant of missing parts (returns None when absent)."""
        if not isinstance(usage, Mapping):
            return None
        ind = _mapping(usage.get("input_token_details"))
        cached = _mapping(ind.get("cached_tokens_details"))
        outd = _mapping(usage.get("output_token_details"))
        text_in = _int(ind.get("text_tokens"))
        audio_in = _int(ind.get("audio_tokens"))
        text_out = _int(outd.get("text_tokens"))
        audio_out = _int(outd.get("audio_tokens"))
        if not (text_in or audio_in):  # no breakdown given: count it all as text
            text_in = _int(usage.get("input_tokens"))
        if not (text_out or audio_out):
            text_out = _int(usage.get("output_tokens"))
        return cls(
            text_in=text_in,
            text_in_cached=min(_int(cached.get("text_tokens")), text_in),
            audio_in=audio_in,
            audio_in_cached=min(_int(cached.get("audio_tokens")), audio_in),
            text_out=text_out,
            audio_out=audio_out,
        )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per million tokens."""

    text_in: float
    text_in_cached: float
    text_out: float
    audio_in: float
    audio_in_cached: float
    audio_out: float

    def cost(self, usage: Usage) -> float:
        """USD for ``usage`` at these prices."""
        return (
            (usage.text_in - usage.text_in_cached) * self.text_in
            + usage.text_in_cached * self.text_in_cached
            + (usage.audio_in - usage.audio_in_cached) * self.audio_in
            + usage.audio_in_cached * self.audio_in_cached
            + usage.text_out * self.text_out
            + usage.audio_out * self.audio_out
        ) / 1_000_000


_GPT_REALTIME = Prices(4.0, 0.40, 16.0, 32.0, 0.40, 64.0)
_GPT_REALTIME_2 = Prices(4.0, 0.40, 24.0, 32.0, 0.40, 64.0)
_MINI = Prices(0.60, 0.06, 2.40, 10.0, 0.30, 20.0)

#: List prices from realtime-protocol.md §8 (developers.openai.com model pages).
DEFAULT_PRICES: dict[str, Prices] = {
    "gpt-realtime": _GPT_REALTIME,
    "gpt-realtime-1.5": _GPT_REALTIME,
    "gpt-realtime-2": _GPT_REALTIME_2,
    "gpt-realtime-2.1": _GPT_REALTIME_2,
    "gpt-realtime-mini": _MINI,
    "gpt-realtime-2.1-mini": _MINI,
    "gpt-4o-realtime-preview": Prices(5.0, 2.50, 20.0, 40.0, 2.50, 80.0),
    "gpt-4o-realtime-preview-2024-10-01": Prices(5.0, 2.50, 20.0, 100.0, 20.0, 200.0),
    "gpt-4o-mini-realtime-preview": Prices(0.60, 0.30, 2.40, 10.0, 0.30, 20.0),
}


_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Model id → prices, matched exactly or without a ``-YYYY-MM-DD`` snapshot suffix."""

    prices: Mapping[str, Prices] = field(default_factory=lambda: dict(DEFAULT_PRICES))

    def lookup(self, model: str) -> Prices | None:
        if model in self.prices:
            return self.prices[model]
        return self.prices.get(_SNAPSHOT.sub("", model))

    def cost(self, model: str, usage: Usage) -> float:
        """USD for ``usage`` on ``model``; 0.0 for a model with no known price."""
        prices = self.lookup(model)
        return prices.cost(usage) if prices is not None else 0.0

    def with_overrides(self, overrides: Mapping[str, Mapping[str, float]]) -> PriceTable:
        """A table with some models' prices replaced or added.

        ``overrides`` maps a model id to all six prices (``text_in``, ``text_in_cached``,
        ``text_out``, ``audio_in``, ``audio_in_cached``, ``audio_out``), USD per 1M tokens.
        """
        merged = dict(self.prices)
        names = [f.name for f in fields(Prices)]
        for model, table in overrides.items():
            missing = [n for n in names if n not in table]
            unknown = [k for k in table if k not in names]
            if missing or unknown:
                raise ConfigError(
                    f"prices for {model!r}: missing {missing or 'nothing'},"
                    f" unknown {unknown or 'nothing'}"
                )
            values = [table[n] for n in names]
            if any(not isinstance(v, int | float) or isinstance(v, bool) or v < 0 for v in values):
                raise ConfigError(f"prices for {model!r} must be non-negative numbers")
            merged[model] = Prices(*(float(v) for v in values))
        return PriceTable(merged)
