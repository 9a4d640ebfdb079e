"""The worker's link to LiveKit, made plain: one line per failed attempt naming the URL and the
cause, readiness down while the link is, liveness down once the worker gives up.

``bridge.pod.worker.LiveKitLink`` reads livekit-agents' own log records (the only report
its retry loop gives), so these tests feed it records shaped exactly like the ones
``livekit/agents/worker.py`` logs, with the real aiohttp exceptions of real failed
connections. ``tests/test_cli_inputs.py`` runs the whole ``bridge start`` against an
unreachable LiveKit.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Iterator

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from bridge.errors import ConfigError, LiveKitUnreachable
from bridge.metrics import BridgeMetrics
from bridge.pod.health import Readiness, build_app, serve_metrics
from bridge.pod.settings import check_livekit_url, redacted_url
from bridge.pod.worker import LiveKitLink, describe_cause


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port bound but not listening: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def refused(port: int) -> Exception:
    """The exception livekit-agents' worker gets from its ``ws_connect`` to this port."""
    async with aiohttp.ClientSession() as session:
        try:
            await session.ws_connect(f"ws://127.0.0.1:{port}/agent")
        except Exception as exc:  # noqa: BLE001 - whatever aiohttp raises is the subject
            return exc
    raise AssertionError("the connection succeeded")


def retry_record(error: Exception, delay: int, count: int) -> logging.LogRecord:
    """The warning livekit-agents logs after each failed attempt (worker.py)."""
    return logging.makeLogRecord(
        {
            "name": "livekit.agents",
            "levelno": logging.WARNING,
            "levelname": "WARNING",
            "msg": f"failed to connect to livekit, retrying in {delay}s",
            "retry_count": count,
            "max_retry": 2,
            "error": error,
        }
    )


async def test_each_failed_attempt_becomes_one_line_naming_url_and_cause(held_port: int) -> None:
    readiness = Readiness(ready=False, reason="registering with LiveKit")
    link = LiveKitLink(f"ws://127.0.0.1:{held_port}", 2, readiness)
    error = await refused(held_port)
    record = retry_record(error, 0, 1)
    assert link.filter(record) is True
    assert record.getMessage() == (
        f"cannot reach LiveKit at ws://127.0.0.1:{held_port}: connection refused (nothing"
        " listens there); retry 1 of 2 in 0 s"
    )
    assert not readiness.ready and readiness.live
    assert readiness.reason.startswith(f"cannot reach LiveKit at ws://127.0.0.1:{held_port}")
    second = retry_record(error, 2, 2)
    link.filter(second)
    assert second.getMessage().endswith("; retry 2 of 2 in 2 s")
    link.registered()  # the server came back: counting starts again, ready again
    assert readiness.ready and link.failures == 0


async def test_giving_up_names_the_last_cause_and_drops_the_traceback(held_port: int) -> None:
    link = LiveKitLink(f"ws://user:pw@127.0.0.1:{held_port}", 1, Readiness())
    link.filter(retry_record(await refused(held_port), 0, 1))
    try:
        try:
            raise await refused(held_port)
        except Exception:
            raise RuntimeError("failed to connect to livekit after 1 attempts") from None
    except RuntimeError as exc:
        failure = exc
        traceback_record = logging.makeLogRecord(
            {"msg": "Error in _connection_task", "exc_info": (type(exc), exc, None)}
        )
    assert link.filter(traceback_record) is False  # reported once, by gave_up, in one line
    error = link.gave_up(failure)
    assert isinstance(error, LiveKitUnreachable)
    assert str(error) == (
        f"cannot reach LiveKit at ws://***@127.0.0.1:{held_port}: connection refused (nothing"
        " listens there) (gave up after 2 attempts)"
    )
    other = logging.makeLogRecord({"msg": "Error in _connection_task", "exc_info": None})
    assert link.filter(other) is True  # any other failure keeps its traceback


def test_causes_in_words() -> None:
    refused_handshake = aiohttp.WSServerHandshakeError(None, (), status=401)  # type: ignore[arg-type]
    assert describe_cause(refused_handshake) == "the API key or secret was refused (HTTP 401)"
    missing = aiohttp.WSServerHandshakeError(None, (), status=404)  # type: ignore[arg-type]
    assert describe_cause(missing) == "no LiveKit server at this URL (HTTP 404)"
    gone = aiohttp.ServerDisconnectedError()
    assert describe_cause(gone) == "the server closed the connection without answering"
    reset = aiohttp.ClientOSError(errno.ECONNRESET, "Connection reset by peer")
    assert describe_cause(reset) == "the server closed the connection without answering"
    assert describe_cause(TimeoutError()) == "no answer in time"
    assert describe_cause(ValueError("odd")) == "ValueError: odd"


async def test_liveness_fails_once_the_worker_gave_up() -> None:
    readiness = Readiness(ready=False, reason="registering with LiveKit")
    metrics = BridgeMetrics(CollectorRegistry())
    async with serve_metrics(0, metrics, readiness, host="127.0.0.1") as port:
        async with aiohttp.ClientSession() as session:

            async def get(path: str) -> tuple[int, str]:
                async with session.get(f"http://127.0.0.1:{port}{path}") as response:
                    return response.status, await response.text()

            assert await get("/healthz") == (200, "ok\n")
            readiness.lost("cannot reach LiveKit at ws://x: connection refused")
            assert await get("/healthz") == (200, "ok\n")  # retrying: alive, not ready
            assert await get("/readyz") == (
                503,
                "not ready: cannot reach LiveKit at ws://x: connection refused\n",
            )
            readiness.fail("cannot reach LiveKit at ws://x: refused (gave up after 3 attempts)")
            status, text = await get("/healthz")
            assert status == 503 and text.startswith("not live: cannot reach LiveKit")
            readiness.mark_ready()  # a late registration does not revive a worker that gave up
            assert (await get("/readyz"))[0] == 503
    assert build_app(metrics, readiness) is not None


@pytest.mark.parametrize(
    "url",
    ["garbage", "wss://", "ws://:80", "ftp://host", "ws://host:99999", "ws://host:port", ""],
)
def test_livekit_urls_that_cannot_work_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="is not a LiveKit server URL"):
        check_livekit_url(url)


@pytest.mark.parametrize(
    "url",
    ["ws://127.0.0.1:7880", "wss://x.livekit.cloud", "https://lk.example.com/base", "http://h"],
)
def test_livekit_urls_that_work_pass(url: str) -> None:
    assert check_livekit_url(url) == url


def test_credentials_in_a_url_are_never_shown() -> None:
    assert redacted_url("wss://key:secret@lk.example.com/x") == "wss://***@lk.example.com/x"
    with pytest.raises(ConfigError) as caught:
        check_livekit_url("ftp://key:secret@lk.example.com")
    assert "secret" not in str(caught.value)
