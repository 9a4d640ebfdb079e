"""Imports point one way: ``bridge → sessions → resampling``, and inside ``bridge/`` down its rooms.

Every module's imports (module level and inside functions) are read with ``ast``; any arrow
against the order fails, as does any ``livekit`` import below ``bridge/``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Packages, bottom first: a module may import its own package and those below it.
PACKAGES = ("resampling", "sessions", "bridge")
# Rooms of bridge/, bottom first; a room may import itself and the rooms below it.
BRIDGE_ROOMS = ("shared", "room", "call", "pod", "local", "bench", "console", "cli")
SHARED = frozenset({"errors", "logs", "heap", "metrics", "__init__"})
CLI = frozenset({"cli", "commands", "__main__"})
NO_LIVEKIT = frozenset({"resampling", "sessions"})


def room_of(parts: tuple[str, ...]) -> str:
    """The room of ``bridge.<parts>`` (a module or package name under bridge/)."""
    head = parts[0] if parts else "__init__"
    if head in SHARED:
        return "shared"
    if head in CLI:
        return "cli"
    assert head in BRIDGE_ROOMS, f"bridge/{head} belongs to no room: add it to tests/test_layers"
    return head


def imports_of(source: str, module: str) -> list[str]:
    """Absolute names imported by ``source`` (the module ``module``), relative ones resolved."""
    names: list[str] = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names.append(target)
            names.extend(f"{target}.{alias.name}" for alias in node.names)
    return names


def violations(module: str, imported: list[str]) -> list[str]:
    """Arrows from ``module`` that go against the order."""
    found = []
    top = module.split(".")[0]
    for name in imported:
        head = name.split(".")[0]
        if head == "livekit" and top in NO_LIVEKIT:
            found.append(f"{module} imports {name}: livekit is only for bridge/")
        if head not in PACKAGES:
            continue
        if PACKAGES.index(head) > PACKAGES.index(top):
            found.append(f"{module} imports {name}: {top}/ may not import {head}/")
        elif head == top == "bridge":
            mine = room_of(tuple(module.split(".")[1:]))
            theirs = room_of(tuple(name.split(".")[1:2]))
            if BRIDGE_ROOMS.index(theirs) > BRIDGE_ROOMS.index(mine):
                found.append(f"{module} imports {name}: bridge/{mine} may not import {theirs}")
    return found


def modules() -> list[tuple[str, Path]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found.append((".".join(parts), path))
    return found


def test_every_import_points_down_the_layers() -> None:
    problems = []
    for module, path in modules():
        problems += violations(module, imports_of(path.read_text(encoding="utf-8"), module))
    assert not problems, "\n".join(problems)


def test_every_module_is_checked() -> None:
    names = {module for module, _ in modules()}
    assert {"resampling.resampler", "sessions.protocol", "bridge.call.call"} <= names
    assert len(names) >= 80


@pytest.mark.parametrize(
    ("module", "source", "why"),
    [
        ("resampling.pcm", "from sessions.errors import MalformedAudio", "resampling/ may not"),
        ("resampling.pcm", "import bridge.errors", "resampling/ may not"),
        ("sessions.session", "from bridge.errors import ConfigError", "sessions/ may not"),
        ("sessions.session", "from livekit import rtc", "livekit is only"),
        ("resampling.resampler", "from livekit.rtc import AudioFrame", "livekit is only"),
        ("sessions.simulator.model", "from ..errors import X\nimport bridge", "sessions/ may"),
        ("bridge.errors", "from bridge.call.profiles import Profile", "shared may not"),
        ("bridge.room.loopback", "from bridge.call.call import Call", "room may not import call"),
        ("bridge.call.call", "from bridge.pod.metrics import x", "call may not import pod"),
        ("bridge.pod.agent", "def f():\n    from bridge.local import trial", "pod may not"),
        ("bridge.local.trial", "from bridge.bench.meter import Meter", "local may not"),
        ("bridge.bench.job", "from bridge.commands import bench", "bench may not import cli"),
    ],
)
def test_an_arrow_against_the_order_is_caught(module: str, source: str, why: str) -> None:
    found = violations(module, imports_of(source, module))
    assert found and why in found[0], found


def test_arrows_with_the_order_pass() -> None:
    for module, source in [
        ("sessions.session", "from resampling.framing import Framer"),
        ("bridge.call.call", "from sessions import events\nfrom bridge.room import loopback"),
        ("bridge.commands.try_call", "from bridge.local.trial import run_trial"),
        ("bridge.pod.agent", "from livekit import rtc\nfrom bridge.errors import ConfigError"),
        ("sessions.simulator.model", "from .session_update import SessionState"),
    ]:
        assert violations(module, imports_of(source, module)) == [], source
