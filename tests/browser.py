"""Debian's Chromium for the browser tests, driven by Playwright (``tests/browser_driver.mjs``).

:class:`Chromium` starts the driver (Node, ``playwright-core`` from ``web/node_modules``) as a
subprocess: it inherits the run's network namespace, so the browser reaches the LiveKit server
on the veth address like any other caller. One browser per test module (launching costs a few
seconds); a fake microphone plays one WAV file (16-bit PCM), from its start, each time a page
opens the microphone. :class:`Page` is a page of it: each call is one command to the driver,
answered before the call returns; waits are conditions polled in the page, their timeouts
only safety nets.

What the tests need installed, and :func:`require_browser` checks: ``/usr/bin/chromium``
(Debian's ``chromium``), ``web/node_modules`` (``npm ci`` in ``web/``) and the console's built
page (``npm run build``). ``.ci/run`` installs all three. Locally, without them, the browser
tests skip naming the missing step; with ``BRIDGE_REQUIRE_BROWSER=1`` (CI) they fail instead.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bridge.console.assets import built
from tests.realroom import skip_or_fail

REPO_ROOT = Path(__file__).resolve().parent.parent
DRIVER = REPO_ROOT / "tests" / "browser_driver.mjs"
WEB = REPO_ROOT / "web"
CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_ENV = "BRIDGE_REQUIRE_BROWSER"


def _unavailable() -> str | None:
    if not CHROMIUM.exists():
        return "Debian's chromium is not installed (apt-get install chromium)"
    if shutil.which("node") is None:
        return "node is not installed"
    if not (WEB / "node_modules" / "playwright-core").is_dir():
        return "the web dependencies are not installed (cd web && npm ci)"
    if not built():
        return "the console's page is not built (cd web && npm run build)"
    return None


def require_browser() -> None:
    """Skip (locally) or fail (CI) when the browser tests cannot run here."""
    skip_or_fail(_unavailable(), REQUIRE_ENV)


class DriverError(AssertionError):
    """The driver answered a command with an error (Playwright's message)."""


class Chromium:
    """A headless Chromium with a fake microphone playing ``fake_audio``."""

    def __init__(self, workdir: Path, *, fake_audio: Path | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "driver.stderr"
        options = {
            "userDataDir": str(workdir / "profile"),
            "fakeAudio": str(fake_audio) if fake_audio else None,
            "executablePath": str(CHROMIUM),
        }
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        with self.log.open("wb") as stderr:
            self._process = subprocess.Popen(
                ["node", str(DRIVER), json.dumps(options)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                cwd=REPO_ROOT,
            )
        self._next = 0
        hello = self._read(60)
        if not hello.get("ready"):
            raise DriverError(f"the browser did not start: {hello}")
        self.version = str(hello.get("version"))

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], timeout)
        line = self._process.stdout.readline() if ready else b""
        if not line:
            self._process.kill()
            raise DriverError(f"the driver stopped answering:\n{self.log.read_text()[-3000:]}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def command(self, op: str, *, timeout: float = 60, **fields: Any) -> Any:
        """Send one command and return its result (raise :class:`DriverError` on failure)."""
        assert self._process.stdin is not None
        self._next += 1
        message = {"id": self._next, "op": op, **fields}
        self._process.stdin.write(json.dumps(message).encode() + b"\n")
        self._process.stdin.flush()
        answer = self._read(timeout + 30)
        if not answer.get("ok"):
            raise DriverError(f"{op}: {answer.get('error')}")
        return answer.get("result")

    def new_page(self) -> Page:
        return Page(self, str(self.command("newPage")))

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                self.command("close", timeout=10)
            except DriverError:
                pass
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


class Page:
    """One page of a :class:`Chromium`."""

    def __init__(self, browser: Chromium, page_id: str) -> None:
        self.browser = browser
        self.id = page_id

    def _do(self, op: str, *, timeout: float = 60, **fields: Any) -> Any:
        return self.browser.command(op, page=self.id, timeout=timeout, **fields)

    def goto(self, url: str) -> None:
        self._do("goto", url=url)

    def evaluate(self, expression: str, *, timeout: float = 60) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        return self._do("evaluate", expression=expression, timeout=timeout)

    def wait_for(self, expression: str, *, timeout: float = 60) -> Any:
        """Until ``expression`` is truthy in the page; its value then."""
        return self._do("waitFor", expression=expression, timeout_ms=int(timeout * 1000))

    def click(self, selector: str) -> None:
        self._do("click", selector=selector)

    def fill(self, selector: str, value: str) -> None:
        self._do("fill", selector=selector, value=value)

    def select(self, selector: str, value: str) -> None:
        self._do("select", selector=selector, value=value)

    def set_checked(self, selector: str, value: bool) -> None:
        self._do("setChecked", selector=selector, value=value)

    def press(self, selector: str, key: str) -> None:
        self._do("press", selector=selector, key=key)

    def text(self, selector: str) -> str:
        return str(self._do("text", selector=selector))

    def content(self) -> str:
        return str(self._do("content"))

    def screenshot(self, path: Path) -> Path:
        self._do("screenshot", path=str(path))
        return path

    def requests(self) -> list[dict[str, Any]]:
        """Every request the page made: method, url, headers, body, response (text bodies)."""
        found: list[dict[str, Any]] = self._do("requests")
        return found

    def console(self) -> list[str]:
        found: list[str] = self._do("console")
        return found

    def close(self) -> None:
        self._do("closePage")
