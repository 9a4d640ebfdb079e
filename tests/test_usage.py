"""Usage from response.done and its cost from the price table."""

from __future__ import annotations

import pytest

from sessions.errors import ConfigError
from sessions.usage import DEFAULT_PRICES, PriceTable, Usage
from tests.frames import USAGE


def test_usage_is_parsed_with_cached_tokens() -> None:
    usage = Usage.from_wire(USAGE)
    assert usage == Usage(
        text_in=59, text_in_cached=0, audio_in=73, audio_in_cached=64, text_out=41, audio_out=147
    )
    assert usage is not None and usage.total_tokens == 320


def test_missing_or_odd_usage_is_tolerated() -> None:
    assert Usage.from_wire(None) is None
    assert Usage.from_wire({"input_tokens": 10, "output_tokens": "x"}) == Usage(text_in=10)


def test_cost_uses_the_model_prices() -> None:
    usage = Usage(
        text_in=1_000_000, audio_out=1_000_000, audio_in=1_000_000, audio_in_cached=500_000
    )
    table = PriceTable()
    # gpt-realtime: text in $4, audio in $32 (cached $0.40), audio out $64 per 1M.
    assert table.cost("gpt-realtime", usage) == pytest.approx(4 + 16 + 0.2 + 64)


def test_model_ids_match_the_longest_known_prefix() -> None:
    table = PriceTable()
    assert table.lookup("gpt-realtime-2025-08-28") == DEFAULT_PRICES["gpt-realtime"]
    assert table.lookup("gpt-realtime-mini-2025-10-06") == DEFAULT_PRICES["gpt-realtime-mini"]
    assert table.lookup("unknown-model") is None
    assert table.cost("unknown-model", Usage(text_in=5)) == 0.0


def test_prices_can_be_overridden() -> None:
    table = PriceTable().with_overrides(
        {
            "my-deployment": {
                "text_in": 1,
                "text_in_cached": 0,
                "text_out": 2,
                "audio_in": 3,
                "audio_in_cached": 0,
                "audio_out": 4,
            }
        }
    )
    assert table.cost("my-deployment", Usage(audio_out=1_000_000)) == 4.0
    with pytest.raises(ConfigError, match="missing"):
        PriceTable().with_overrides({"m": {"text_in": 1}})
    with pytest.raises(ConfigError, match="non-negative"):
        PriceTable().with_overrides(
            {
                "m": {
                    "text_in": -1,
                    "text_in_cached": 0,
                    "text_out": 0,
                    "audio_in": 0,
                    "audio_in_cached": 0,
                    "audio_out": 0,
                }
            }
        )
