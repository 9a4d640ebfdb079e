"""Where the console's page is: ``index.html`` (ours, in the package) and the built bundle.

The bundle (``static/console.js``, ``static/levels.js``, ``static/console.css``) is built
from ``web/`` with ``npm ci && npm run build`` into this package's ``static/`` folder, which
git ignores: it holds LiveKit's client code, installed from npm with a lock file, never
committed. An editable install serves it from there; a wheel built after the build step
carries it (package data).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
INDEX = HERE / "index.html"
STATIC = HERE / "static"
BUNDLE = ("console.js", "levels.js", "console.css")
BUILD_HINT = "cd web && npm ci && npm run build"


def built() -> bool:
    """Whether the bundle is there (every file of :data:`BUNDLE`)."""
    return all((STATIC / name).is_file() for name in BUNDLE)


def missing() -> str | None:
    """Why the page cannot be served, naming the build step; ``None`` when it can."""
    if built():
        return None
    return f"the console's page is not built: run `{BUILD_HINT}` in the repository first"
