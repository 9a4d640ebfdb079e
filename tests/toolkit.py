"""Python tools the tests declare in profiles (``function = "tests.toolkit:order_status"``), and
a local HTTP endpoint for ``http`` tools.

Python tools run on the bridge's tool loop (async) or in a thread of their own (sync), so what
they record is guarded by a lock and what tests wait for is a ``threading.Event``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Journal:
    """What the Python tools were called with, and gates for the slow ones."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, name: str, **kwargs: Any) -> int:
        with self.lock:
            self.calls.append((name, kwargs))
            return sum(1 for n, _ in self.calls if n == name)

    def names(self) -> list[str]:
        with self.lock:
            return [n for n, _ in self.calls]

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
        self.started.clear()
        self.cancelled.clear()
        self.release.clear()


JOURNAL = Journal()


def order_status(order_id: str) -> str:
    """Sync: runs in a thread."""
    JOURNAL.note("order_status", order_id=order_id)
    return f"order {order_id} shipped yesterday"


async def weather(city: str, days: int = 1) -> dict[str, Any]:
    """Async: runs on the tool loop; returns JSON."""
    JOURNAL.note("weather", city=city, days=days)
    await asyncio.sleep(0)
    return {"city": city, "days": days, "forecast": "sunny"}


async def hold_first(query: str) -> str:
    """The first call waits until it is cancelled; later calls answer at once."""
    if JOURNAL.note("hold_first", query=query) > 1:
        return "second call done"
    JOURNAL.started.set()
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        JOURNAL.cancelled.set()
        raise
    return "never"


def blocking(query: str) -> str:
    """Sync and slow: blocks its thread until released (a tool that ignores cancellation)."""
    JOURNAL.note("blocking", query=query)
    JOURNAL.started.set()
    JOURNAL.release.wait(30)
    return "released"


def failing(query: str) -> str:
    """Raises, with the argument in the message (which must not reach the logs)."""
    JOURNAL.note("failing", query=query)
    raise KeyError(f"no record for {query}")


def huge(query: str) -> str:
    JOURNAL.note("huge", query=query)
    return "x" * 100_000


def no_arguments() -> str:
    return "ok"


NOT_CALLABLE = 42


# ---------------------------------------------------------------------- HTTP endpoint


@dataclass
class Endpoint:
    """A local HTTP server: what it received, and what it answers."""

    base: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


Handler = Callable[[web.Request, Endpoint], Awaitable[web.StreamResponse]]


async def _orders(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    args = await request.json()
    return web.Response(text=f"order {args['order_id']} is on its way")


async def _slow(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    await endpoint.release.wait()
    return web.Response(text="late")


async def _broken(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    return web.Response(status=503, text="down for maintenance")


async def _redirect(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    raise web.HTTPFound(f"{endpoint.base}/orders")


async def _big(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    return web.Response(text="y" * 50_000)


async def _streamed(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    response = web.StreamResponse()  # chunked: no Content-Length to refuse it early
    await response.prepare(request)
    for _ in range(8):
        await response.write(b"z" * 8192)
    await response.write_eof()
    return response


async def _empty(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    return web.Response(status=204)


ROUTES: dict[str, Handler] = {
    "/orders": _orders,
    "/slow": _slow,
    "/broken": _broken,
    "/redirect": _redirect,
    "/big": _big,
    "/streamed": _streamed,
    "/empty": _empty,
}


@asynccontextmanager
async def http_endpoint() -> AsyncIterator[Endpoint]:
    """Serve :data:`ROUTES` (POST) on 127.0.0.1, port 0; every request is recorded."""
    endpoint = Endpoint(base="")

    def route(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            endpoint.requests.append(
                {
                    "path": request.path,
                    "headers": dict(request.headers),
                    "json": json.loads(body) if body else None,
                }
            )
            endpoint.arrived.set()
            return await handler(request, endpoint)

        return handle

    app = web.Application()
    for path, handler in ROUTES.items():
        app.router.add_post(path, route(handler))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    endpoint.base = f"http://{host}:{port}"
    site = web.SockSite(runner, sock)
    await site.start()
    try:
        yield endpoint
    finally:
        endpoint.release.set()
        await runner.cleanup()


def must_not_run(order_id: str) -> str:
    """Declared with a strict schema: the tests check invalid calls never reach it."""
    JOURNAL.note("must_not_run", order_id=order_id)
    return "it ran"
