"""The bridge's own HTTP endpoints: Prometheus metrics, liveness and readiness.

``GET /metrics`` (Prometheus text), ``GET /healthz`` (liveness: 200 while the worker works
or drains; 503 once it has given up reaching LiveKit, so a worker that can no longer do its
job is restarted even if it does not manage to exit) and ``GET /readyz`` (readiness: 200
once the worker is registered with LiveKit and takes calls; 503 before that, while its
connection to LiveKit is down, and from the start of a drain).
LiveKit's worker keeps its own health server (``/`` and ``/worker``, port 8081); this one
adds what Kubernetes probes and Prometheus need.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bridge.metrics import BridgeMetrics


@dataclass(slots=True)
class Readiness:
    """Ready once the worker registered with LiveKit; not ready while its connection is down
    and from drain on. Live until the worker gives up (:meth:`fail`)."""

    ready: bool = True
    reason: str = ""
    draining: bool = False
    live: bool = True
    failure: str = ""

    def mark_ready(self) -> None:
        if not self.draining and self.live:
            self.ready, self.reason = True, ""

    def lost(self, reason: str) -> None:
        """The connection to LiveKit is down (the worker is retrying): no new calls come."""
        self.ready = False
        if not self.draining:
            self.reason = reason

    def drain(self, reason: str = "draining") -> None:
        self.draining = True
        self.ready = False
        self.reason = reason

    def fail(self, reason: str) -> None:
        """The worker gave up: neither ready nor live from now on."""
        self.ready, self.live = False, False
        self.reason = self.failure = reason


def build_app(metrics: BridgeMetrics, readiness: Readiness) -> web.Application:
    registry = metrics.registry

    async def metrics_page(_request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        if not readiness.live:
            return web.Response(status=503, text=f"not live: {readiness.failure}\n")
        return web.Response(text="ok\n")

    async def readyz(_request: web.Request) -> web.Response:
        if readiness.ready:
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"not ready: {readiness.reason}\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


@asynccontextmanager
async def serve_metrics(
    port: int,
    metrics: BridgeMetrics,
    readiness: Readiness | None = None,
    host: str = "0.0.0.0",
) -> AsyncIterator[int]:
    """Serve the endpoints on ``host:port`` while the context is open; yields the port."""
    runner = web.AppRunner(build_app(metrics, readiness or Readiness()), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    addresses = runner.addresses  # the real port when 0 was asked for
    bound = int(addresses[0][1]) if addresses else port
    try:
        yield bound
    finally:
        await runner.cleanup()
