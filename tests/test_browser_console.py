"""A real browser talks to the agent: ``bridge console`` in headless Chromium, through the server.

One Chromium for the module (``tests/browser.py``: Debian's, driven by Playwright), its fake
microphone playing the bundled caller recording at 48 kHz (a question, then a correction over
the agent's answer). The console (``bridge console``, a subprocess) mints the browser's token
and dispatches the ``bridge start`` worker of ``tests/realroom`` by name; the echo simulator
is the model. The page is the console itself: LiveKit's ``livekit-client`` from npm, with the
agent, its state, the captions and the chat from ``@livekit/components-core`` (what the
stock frontends' hooks are built on). Everything checked is read from what the page shows
(the DOM) or what it recorded: the microphone as sent and the agent's track as played, on
one clock (``?record=1``). Screenshots of the console mid-call are kept in the module's
temporary folder (``console-mid-call.png``, ``console-chat.png``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soxr

from bridge.local import processes
from bridge.local.heard import Heard, analyse
from bridge.local.livekit_server import Credentials
from bridge.local.wavfile import write_wav
from tests.browser import Chromium, Page, require_browser
from tests.realroom import (
    AGENT_NAME,
    PROFILES,
    REPO_ROOT,
    SimProcess,
    Worker,
    clean_env,
    journal_frames,
    open_rooms,
    require_livekit,
)
from tests.test_real_room import demo_at, echoes

HEAR = 24_000
RATE = 48_000
VOICE = "sage"  # the override: browser-test's own voice is cedar


@dataclass
class Console:
    """A ``bridge console`` process."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        processes.stop(self.process)


def start_console(
    work: Path, livekit: Credentials, *, name: str, url: str | None = None, **options: str
) -> Console:
    """``bridge console --port 0`` with the worker's profiles, LiveKit from the environment."""
    work.mkdir(parents=True, exist_ok=True)
    profiles = work / "profiles.toml"
    profiles.write_text(PROFILES)
    log = work / f"console-{name}.log"
    argv = [sys.executable, "-m", "bridge", "console", "--port", "0", "--profiles", str(profiles)]
    for option, value in options.items():
        argv += [f"--{option.replace('_', '-')}", value]
    env = clean_env(
        LIVEKIT_URL=url or livekit.url,
        LIVEKIT_API_KEY=livekit.api_key,
        LIVEKIT_API_SECRET=livekit.api_secret,
        LIVEKIT_AGENT_NAME=AGENT_NAME,
    )
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=stderr, env=env
        )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 30)
    line = process.stdout.readline().decode().strip() if ready else ""
    prefix = "bridge console on "
    assert line.startswith(prefix), f"bridge console did not start: {line!r}\n{log.read_text()}"
    return Console(process, line.removeprefix(prefix), log)


@pytest.fixture(scope="module", autouse=True)
def browser_available() -> None:
    """Before anything starts: skip (locally) or fail (CI) without the server or the browser."""
    require_livekit()
    require_browser()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="module")
def chromium(work: Path) -> Iterator[Chromium]:
    mic = work / "caller-48k.wav"  # Chromium's fake capture takes 16-bit PCM
    write_wav(mic, demo_at(RATE), RATE)
    browser = Chromium(work / "chromium", fake_audio=mic)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def console(work: Path, livekit: Credentials, bridge_worker: Worker) -> Iterator[Console]:
    server = start_console(work, livekit, name="main")
    yield server
    server.stop()


def open_console(browser: Chromium, url: str) -> Page:
    page = browser.new_page()
    page.goto(url)
    page.wait_for("document.body.dataset.ready === 'true'", timeout=20)
    return page


def dom(page: Page, expression: str) -> Any:
    return page.evaluate(expression)


def until(page: Page, condition: str, *, timeout: float) -> Any:
    """Wait for ``condition`` in the page; on a timeout, fail with what the page showed."""
    try:
        return page.wait_for(condition, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\nstates {dom(page, STATES)}\nentries {dom(page, ENTRIES)}\n"
            f"error {page.text('#error')!r}\nconsole {page.console()[-10:]}"
        ) from None


ENTRIES = """[...document.querySelectorAll('#transcript li')].map(li => ({
    kind: li.dataset.kind, speaker: li.dataset.speaker, final: li.dataset.final === 'true',
    segment: li.dataset.segment, text: li.querySelector('.text').textContent}))"""
STATES = "[...document.querySelectorAll('#state-history li')].map(li => li.dataset.state)"
FIGURES = """[...document.querySelectorAll('#figures tbody tr')].map(tr => ({
    turn: Number(tr.dataset.turn),
    v2v: tr.querySelector('.voice-to-voice').textContent,
    stop: tr.querySelector('.barge-in-stop').textContent}))"""


@dataclass
class BrowserCall:
    """The recording with a barge-in, through the console, as the page showed and heard it."""

    page: Page
    started: float
    states: list[str] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)
    said: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    heard: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    heard_figures: Heard | None = None
    screenshot: Path | None = None
    received: dict[str, float] = field(default_factory=dict)

    def receiving(self) -> str:
        """How the browser received the agent's track (its WebRTC stats), for messages."""
        r = self.received
        return (
            f"the browser's jitter buffer held {r['jitterBufferMs']:.0f} ms on average and"
            f" concealed {r['concealedMs']:.0f} ms of late or lost audio"
            f" ({r['packetsLost']:.0f} packets lost)"
        )


TWO_REPLIES = """(() => {
  const states = window.bridgeConsole.states();
  const finals = document.querySelectorAll(
    '#transcript li[data-kind=caption][data-speaker=agent][data-final=true]').length;
  const turns = window.bridgeConsole.turns();
  return states.filter(s => s === 'speaking').length >= 2 && states.at(-1) === 'listening'
    && finals >= 2 && turns.length >= 2 && turns[0].bargeInStopMs !== null;
})()"""


@pytest.fixture(scope="module")
def browser_call(
    chromium: Chromium, console: Console, work: Path, realtime_sim: SimProcess
) -> BrowserCall:
    started = time.monotonic()
    page = open_console(
        chromium, f"{console.url}?profile=browser-test&override.voice={VOICE}&record=1"
    )
    call = BrowserCall(page, started)
    page.set_checked("#processing", False)  # the recording as it is, no echo cancellation
    page.click("#join")
    until(page, TWO_REPLIES, timeout=90)
    call.screenshot = page.screenshot(work / "console-mid-call.png")
    call.states = dom(page, STATES)
    call.entries = dom(page, ENTRIES)
    call.figures = dom(page, FIGURES)
    recording = page.evaluate("window.bridgeConsole.recording()")
    call.said = np.frombuffer(base64.b64decode(recording["mic"]), "<i2").astype(np.int16)
    call.heard = np.frombuffer(base64.b64decode(recording["agent"]), "<i2").astype(np.int16)
    call.heard_figures = analyse(call.said, RATE, call.heard, RATE)
    call.received = page.evaluate("window.bridgeConsole.receiveStats()")
    print(
        "\nas heard in the browser:",
        call.heard_figures.summary(),
        f"page: {call.figures}, {call.receiving()}",
    )
    return call


def at_24k(samples: np.ndarray) -> np.ndarray:
    x = soxr.resample(samples.astype(np.float32), RATE, HEAR, "VHQ")
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def test_the_echo_is_heard_in_the_browser_and_cut_within_300_ms(browser_call: BrowserCall) -> None:
    figures = browser_call.heard_figures
    assert figures is not None
    assert len(figures.utterances) == 2 and len(figures.replies) == 2, (
        f"{figures.summary()}; {browser_call.receiving()}"
    )
    (q_start, q_end), _ = figures.utterances
    (r_start, r_end), _ = figures.replies
    assert q_end < r_start
    said, heard = at_24k(browser_call.said), at_24k(browser_call.heard)
    reply = heard[int(r_start * HEAR) : int(r_end * HEAR)]
    question = said[int(q_start * HEAR) : int(q_end * HEAR)]
    assert echoes(reply, question) >= 0.7, "the echo does not resemble the question"
    [stop] = figures.barge_in_stop_ms
    assert 0 < stop <= 300, (
        f"the agent was still heard {stop:.0f} ms after the caller spoke"
        f" ({browser_call.receiving()})"
    )


def test_the_correction_is_answered_in_the_browser(browser_call: BrowserCall) -> None:
    figures = browser_call.heard_figures
    assert figures is not None
    _, (c_start, c_end) = figures.utterances
    _, (r_start, r_end) = figures.replies
    assert c_end < r_start
    said, heard = at_24k(browser_call.said), at_24k(browser_call.heard)
    reply = heard[int(r_start * HEAR) : int(r_end * HEAR)]
    correction = said[int(c_start * HEAR) : int(c_end * HEAR)]
    assert echoes(reply, correction) >= 0.7


def test_the_page_shows_the_agent_state_change(browser_call: BrowserCall) -> None:
    states = browser_call.states
    assert states[0] == "connecting"
    assert states[states.index("listening") :] == [
        "listening",
        "thinking",
        "speaking",
        "listening",  # the question; its echo cut by the caller
        "thinking",
        "speaking",
        "listening",  # the correction and its answer
    ]
    assert browser_call.page.text("#agent-state") == "listening"


def simulator_transcripts(sim: SimProcess, since: float) -> tuple[list[str], list[str]]:
    """What the simulator said (each response's full transcript) and heard (each user turn's
    input transcription), in order."""
    frames = journal_frames(sim, since, "out")
    said = [
        part.get("transcript", "")
        for f in frames
        if f["type"] == "response.done"
        for item in f["response"]["output"]
        for part in item.get("content", [])
    ]
    heard = [
        f["transcript"]
        for f in frames
        if f["type"] == "conversation.item.input_audio_transcription.completed"
    ]
    return said, heard


def test_the_page_shows_both_captions_with_only_the_heard_text(
    browser_call: BrowserCall, realtime_sim: SimProcess
) -> None:
    said, heard = simulator_transcripts(realtime_sim, browser_call.started)
    captions = [e for e in browser_call.entries if e["kind"] == "caption"]
    agent = [e for e in captions if e["speaker"] == "agent"]
    user = [e for e in captions if e["speaker"] == "user"]
    assert all(e["final"] for e in captions), captions
    assert [e["text"] for e in user] == heard[:2]
    first, second = (e["text"].strip() for e in agent)
    full_first, full_second = said[:2]
    assert first and full_first.startswith(first) and first != full_first.strip()
    assert second == full_second.strip()
    # in the order they were said: question, cut echo, correction, its echo
    assert [e["speaker"] for e in captions] == ["user", "agent", "user", "agent"]


def test_the_page_figures_are_those_of_its_recording(browser_call: BrowserCall) -> None:
    """The page's own figures (from audio levels, live) agree with the recording's analysis."""
    figures = browser_call.heard_figures
    assert figures is not None
    first, second = browser_call.figures
    assert abs(float(first["v2v"]) - figures.mouth_to_ear_ms[0]) <= 20
    assert abs(float(second["v2v"]) - figures.mouth_to_ear_ms[1]) <= 20
    assert abs(float(first["stop"]) - figures.barge_in_stop_ms[0]) <= 20
    assert second["stop"] == "–"  # the second reply was not cut


def test_the_voice_override_reaches_the_session(
    browser_call: BrowserCall, realtime_sim: SimProcess, bridge_worker: Worker
) -> None:
    updates = [
        f
        for f in journal_frames(realtime_sim, browser_call.started)
        if f["type"] == "session.update"
    ]
    assert updates, "no session was configured"
    session = updates[0]["session"]
    assert session["audio"]["output"]["voice"] == VOICE
    assert session["audio"]["input"]["transcription"]["model"] == "gpt-4o-mini-transcribe"
    assert not bridge_worker.records("dispatch.metadata_refused")


CHAT_REPLY = """(text) => [...document.querySelectorAll(
  '#transcript li[data-kind=caption][data-speaker=agent][data-final=true] .text')]
  .some(e => e.textContent.trim() === text)"""


def chat(page: Page, text: str) -> None:
    """Type ``text``, send it, and wait for the agent's answer (the echo says it back)."""
    page.fill("#chat-input", text)
    page.press("#chat-input", "Enter")
    until(
        page,
        f"document.querySelector('#transcript li[data-kind=chat][data-speaker=user]') && "
        f"({CHAT_REPLY})({json.dumps(text)})",
        timeout=30,
    )


@dataclass
class SecondJoin:
    rooms: tuple[str, str]
    ended: str
    entries: list[dict[str, Any]]
    states: list[str]
    figures: list[dict[str, Any]]
    second_ended: str = ""
    open_after: tuple[set[str], set[str]] = (set(), set())  # the server's rooms after each


@pytest.fixture(scope="module")
def second_join(browser_call: BrowserCall, work: Path, livekit: Credentials) -> SecondJoin:
    """In the same page: type to the agent, hang up, join again (microphone off), type again,
    hang up."""
    page = browser_call.page
    first_room = page.text("#room")
    chat(page, "hello console")
    page.screenshot(work / "console-chat.png")
    page.click("#hangup")
    ended = hung_up(page)
    first_open = asyncio.run(open_rooms(livekit))
    page.set_checked("#microphone", False)  # type only: the fake microphone has had its say
    page.click("#join")
    until(
        page,
        f"document.querySelector('#room').textContent !== {json.dumps(first_room)}"
        " && window.bridgeConsole.state() === 'listening'",
        timeout=30,
    )
    chat(page, "second call")
    second_room = page.text("#room")
    second = SecondJoin(
        (first_room, second_room),
        ended,
        dom(page, ENTRIES),
        dom(page, STATES),
        dom(page, FIGURES),
    )
    assert second_room in asyncio.run(open_rooms(livekit))  # the negative control
    page.click("#hangup")
    second.second_ended = hung_up(page)
    second.open_after = (first_open, asyncio.run(open_rooms(livekit)))
    return second


def hung_up(page: Page) -> str:
    """Once the page says the call ended (after asking its server to end the room): what it says."""
    until(
        page,
        "window.bridgeConsole.state() === 'disconnected'"
        " && document.querySelector('#call-status').textContent.startsWith('Call ended')",
        timeout=20,
    )
    return page.text("#call-status")


def test_chat_hang_up_and_join_again(second_join: SecondJoin) -> None:
    first, second = second_join.rooms
    assert first.startswith("console-") and second.startswith("console-") and first != second
    assert "you hung up" in second_join.ended
    assert [row["v2v"] for row in second_join.figures] == ["typed"]
    typed = [e for e in second_join.entries if e["kind"] == "chat"]
    assert [(e["speaker"], e["text"]) for e in typed] == [("user", "second call")]
    assert second_join.states[0] == "connecting" and "speaking" in second_join.states


def test_hanging_up_ends_the_room_for_everyone(second_join: SecondJoin) -> None:
    """Each room is gone from the server as soon as the page says the call ended; left alone
    it would stay open through the agent's empty-room grace and the server's departure
    timeout (the second room was open just before the hang-up: the test's control)."""
    (first, second), (after_first, after_second) = second_join.rooms, second_join.open_after
    assert second_join.ended == second_join.second_ended == "Call ended: you hung up."
    assert first not in after_first and second not in after_second


@dataclass
class LeftPage:
    room: str
    open_before: set[str]  # the server's rooms while the page was in the call
    ended_logged: bool  # the console's log said it ended the room
    open_after: set[str]


@pytest.fixture(scope="module")
def left_page(chromium: Chromium, console: Console, livekit: Credentials) -> LeftPage:
    """A page that joins (typing only) and is navigated away mid-call, never hanging up."""
    page = open_console(chromium, f"{console.url}?profile=browser-test")
    page.set_checked("#microphone", False)
    page.click("#join")
    until(page, "window.bridgeConsole.state() === 'listening'", timeout=30)
    room = page.text("#room")
    before = asyncio.run(open_rooms(livekit))
    page.goto("about:blank")
    deadline = time.monotonic() + 20  # a safety net: the beacon leaves with the page
    while not (logged := ended_in_log(console, room)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return LeftPage(room, before, logged, asyncio.run(open_rooms(livekit)))


def ended_in_log(console: Console, room: str) -> bool:
    """The console's log says it ended ``room``."""
    return any(
        "console.room_ended" in line and f"room={room}" in line.split()
        for line in console.log.read_text().splitlines()
    )


def test_leaving_the_page_mid_call_ends_the_room(left_page: LeftPage) -> None:
    assert left_page.room in left_page.open_before
    assert left_page.ended_logged, "the console never ended the room of the page that left"
    assert left_page.room not in left_page.open_after


def bad_join(browser: Chromium, url: str, *, timeout: float = 30) -> tuple[Page, str]:
    """Open the console at ``url`` (a preset), join, and return the message it shows."""
    page = open_console(browser, url)
    page.click("#join")
    message = until(
        page,
        "!document.querySelector('#error').hidden && document.querySelector('#error').textContent",
        timeout=timeout,
    )
    return page, str(message)


@dataclass
class BadInputs:
    messages: dict[str, str]
    pages: list[Page]
    consoles: list[Console]


@pytest.fixture(scope="module")
def bad_inputs(
    chromium: Chromium, console: Console, work: Path, livekit: Credentials
) -> Iterator[BadInputs]:
    down = start_console(work / "down", livekit, name="down", url="ws://127.0.0.1:9")
    nobody = start_console(
        work / "nobody", livekit, name="nobody", agent_name="nobody-here", agent_timeout="2"
    )
    found = BadInputs({}, [], [down, nobody])
    cases = {
        "unknown profile": f"{console.url}?profile=nope",
        "not overridable": f"{console.url}?profile=browser-test&override.instructions=Be%20rude",
        "invalid value": f"{console.url}?profile=browser-test&override.speed=7",
        "livekit down": f"{down.url}?profile=browser-test",
        "no worker": f"{nobody.url}?profile=browser-test",
    }
    try:
        for case, url in cases.items():
            page, found.messages[case] = bad_join(chromium, url)
            found.pages.append(page)
        yield found
    finally:
        for server in found.consoles:
            server.stop()


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("unknown profile", "no profile named 'nope'"),
        ("not overridable", "profile 'browser-test' does not allow overriding 'instructions'"),
        ("invalid value", "override 'speed' = 7"),
        ("livekit down", "LiveKit at ws://127.0.0.1:9 is not reachable"),
        ("no worker", "no worker registered as 'nobody-here' took the job"),
    ],
)
def test_each_bad_input_shows_its_message(bad_inputs: BadInputs, case: str, says: str) -> None:
    assert says in bad_inputs.messages[case], bad_inputs.messages[case]


def test_the_secret_appears_nowhere(
    browser_call: BrowserCall,
    second_join: SecondJoin,
    bad_inputs: BadInputs,
    console: Console,
    livekit: Credentials,
) -> None:
    """Not in any page, in any request or response the browser saw, in any log."""
    secret = livekit.api_secret
    pages = [browser_call.page, *bad_inputs.pages]
    requests = [r for page in pages for r in page.requests()]
    assert any(r["url"].endswith("/api/join") and "token" in r["response"] for r in requests)
    for page in pages:
        assert secret not in page.content()
        assert not [line for line in page.console() if secret in line]
    for request in requests:
        assert secret not in json.dumps(request), request["url"]
    for server in (console, *bad_inputs.consoles):
        log = server.log.read_text()
        assert "console.join" in log or "console.join_refused" in log
        assert secret not in log
