"""Modes, the default per rate, and the package's architecture rule (no livekit, no asyncio)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from resampling import COMMON_RATES, HQ, MAX_RATE, MIN_RATE, VR, Mode, default_mode
from resampling.errors import InvalidParameter, UnsupportedFormat
from resampling.modes import ALL_MODES, FIXED_MODES, check_rate

PACKAGE = Path(__file__).resolve().parent.parent / "resampling"
STDLIB = {"__future__", "collections", "dataclasses", "functools", "gc", "itertools", "math"}
STDLIB |= {"time", "types", "typing"}
ALLOWED_IMPORTS = STDLIB | {"numpy", "soxr", "resampling", "sessions"}


def test_a_mode_is_a_frozen_quality_and_vr_flag() -> None:
    assert VR == Mode("HQ", vr=True) and VR.name == "VR"
    assert HQ.name == "HQ" and not HQ.vr
    assert [mode.name for mode in ALL_MODES] == ["QQ", "LQ", "MQ", "HQ", "VHQ", "VR"]
    assert len(FIXED_MODES) == 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        HQ.vr = True  # type: ignore[misc]
    with pytest.raises(InvalidParameter, match="must be one of"):
        Mode("XQ")  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", [rate for rate in COMMON_RATES if rate != 24_000])
def test_default_is_vr_towards_24k_at_every_room_rate(rate: int) -> None:
    # Justified by the report: see resampling/modes.py and README "Resampling".
    assert default_mode(rate) == VR
    assert default_mode(24_000, rate) == VR


@pytest.mark.parametrize("rate", [MIN_RATE, 8_001, 37_800, 50_000, 191_999, MAX_RATE])
def test_any_whole_rate_from_8_to_192_khz_converts_with_vr(rate: int) -> None:
    assert check_rate(rate) == rate
    assert default_mode(rate) == VR and default_mode(24_000, rate) == VR
    assert default_mode(rate, 48_000) == VR


def test_unsupported_rates_are_refused_by_name() -> None:
    assert check_rate(44_100) == 44_100
    with pytest.raises(UnsupportedFormat) as caught:
        default_mode(7_999)
    assert str(caught.value) == "unsupported sample rate 7999 (supported: 8000 to 192000 Hz)"
    assert (caught.value.what, caught.value.value) == ("sample rate", 7_999)
    for rate in (0, -1, 192_001, 16_000.0, True):
        with pytest.raises(UnsupportedFormat):
            check_rate(rate)  # type: ignore[arg-type]


def _imports_and_names(path: Path) -> tuple[set[str], set[str]]:
    """Top-level modules imported by ``path``, and every name/attribute it uses."""
    tree = ast.parse(path.read_text(), str(path))
    modules: set[str] = set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.Name):
            names.add(node.id)
    return modules, names


def test_resampling_imports_only_numpy_soxr_the_stdlib_and_the_error_tree() -> None:
    sources = sorted(PACKAGE.glob("*.py"))
    assert len(sources) >= 6
    for path in sources:
        imported, names = _imports_and_names(path)
        assert not imported & {"livekit", "asyncio", "os", "bridge"}, path.name
        third_party = imported - ALLOWED_IMPORTS
        assert not third_party, (path.name, third_party)
        assert not names & {"environ", "environb", "getenv", "putenv"}, path.name
