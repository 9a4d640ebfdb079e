"""Imports point one way: ``bridge → sessions → resampling``, and inside ``bridge/`` down its rooms.

Every module's imports (module level and inside functions) are read with ``ast``; any arrow
against the order fails, as does any ``livekit`` import below ``bridge/``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
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


# --- The environment is read in one place ---------------------------------------------------

SETTINGS_MODULE = "bridge.pod.settings"


ENVIRONMENT = ("environ", "getenv", "putenv", "unsetenv")


def environment_uses(source: str) -> list[str]:
    """Every read or write of the process environment in ``source``: ``os.environ``,
    ``os.getenv``/``putenv``/``unsetenv`` and those names imported from ``os``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "os" and node.attr in ENVIRONMENT:
                found.append(f"line {node.lineno}: os.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            for alias in node.names:
                if alias.name in ENVIRONMENT:
                    found.append(f"line {node.lineno}: from os import {alias.name}")
    return found


def findings(finder: Callable[[str], list[str]], where: Callable[[str], bool]) -> list[str]:
    """``finder``'s findings in every module whose name passes ``where``, each named."""
    return [
        f"{module} {found}"
        for module, path in modules()
        if where(module)
        for found in finder(path.read_text(encoding="utf-8"))
    ]


def test_only_the_settings_module_touches_the_environment() -> None:
    problems = findings(environment_uses, lambda module: module != SETTINGS_MODULE)
    assert not problems, "\n".join(problems)
    assert environment_uses((ROOT / "bridge/pod/settings.py").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "source",
    [
        "import os\nx = os.environ.get('A')",
        "import os\nos.getenv('A')",
        "from os import environ",
        "import os\nos.environ.pop('HTTP_PROXY', None)",
    ],
)
def test_an_environment_read_is_caught(source: str) -> None:
    assert environment_uses(source)


# --- The bench measures the call through its probe, never by patching it --------------------


def call_patches(source: str) -> list[str]:
    """Assignments (or ``setattr``) in a bench module onto anything of the bridge's own call
    or room: names imported from ``bridge.call``/``bridge.room`` and values named ``call``."""
    tree = ast.parse(source)
    ours = {"call"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            ("bridge.call", "bridge.room")
        ):
            ours.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            ours.update(
                (alias.asname or alias.name).split(".")[0]
                for alias in node.names
                if alias.name.startswith(("bridge.call", "bridge.room"))
            )

    def root(node: ast.expr) -> str | None:
        while isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        return node.id if isinstance(node, ast.Name) else None

    found = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "setattr"
            and node.args
            and root(node.args[0]) in ours
        ):
            found.append(f"line {node.lineno}: setattr on {ast.unparse(node.args[0])}")
        for target in targets:
            for part in ast.walk(target):
                if isinstance(part, ast.Attribute) and root(part) in ours:
                    found.append(f"line {node.lineno}: {ast.unparse(part)} = …")
    return found


def test_the_bench_assigns_nothing_of_the_call() -> None:
    problems = findings(call_patches, lambda module: module.startswith("bridge.bench"))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "source",
    [
        "def f(call):\n    call.playout.clear = None",
        "from bridge.call.call import Call\nCall.interrupt = None",
        "from bridge.room.routed_audio import RoutedAudioSource as R\nsetattr(R, 'x', 1)",
        "import bridge.call.turns\nbridge.call.turns.TurnCore.on = None",
    ],
)
def test_a_patch_of_the_call_is_caught(source: str) -> None:
    assert call_patches(source)
