"""The console's web server (aiohttp): the page, its bundle, and four JSON routes.

- ``GET /``: the page (``index.html``); ``GET /static/…``: the built bundle.
- ``GET /api/config``: the profiles (each one's overridable fields and current values), the
  voices, the agent name and the LiveKit URL the browser will connect to.
- ``POST /api/join`` with ``{"profile": …, "overrides": {…}}``: a fresh room with the agent
  dispatched to it and a token for the browser (:meth:`Rooms.join`), or ``{"error": …}`` with
  400 (the request is wrong) or 502 (LiveKit is unreachable or refused the key).
- ``GET /api/rooms/{room}/diagnosis``: why no agent joined that room (:meth:`Rooms.diagnose`).
- ``POST /api/rooms/{room}/end``: hang up, for everyone in it (:meth:`Rooms.end`); 404 for a
  room this console did not make.

It binds 127.0.0.1 unless told otherwise: whoever reaches it can start calls with this
environment's LiveKit project. Responses carry tokens for one room, never the API key's
secret.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from aiohttp import web

from bridge.console.assets import INDEX, STATIC, missing
from bridge.console.joins import JoinRefused, Rooms, public_profiles
from sessions.session_config import VOICES

log = structlog.get_logger("bridge.console.server")

ROOMS: web.AppKey[Rooms] = web.AppKey("rooms", Rooms)
NO_STORE = {"Cache-Control": "no-store"}


def _error(message: str, status: int) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=NO_STORE)


async def index(request: web.Request) -> web.StreamResponse:
    problem = missing()
    if problem is not None:
        return web.Response(text=problem, status=503, content_type="text/plain")
    return web.FileResponse(INDEX, headers=NO_STORE)


async def config(request: web.Request) -> web.Response:
    rooms = request.app[ROOMS]
    body = {
        "agent_name": rooms.agent_name,
        "livekit_url": rooms.url,
        "profiles_file": rooms.profiles.source,
        "profiles": public_profiles(rooms.profiles),
        "voices": sorted(VOICES),
        "agent_timeout_s": rooms.agent_timeout_s,
    }
    return web.json_response(body, headers=NO_STORE)


async def join(request: web.Request) -> web.Response:
    rooms = request.app[ROOMS]
    try:
        body: Any = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error("the join request is not JSON", 400)
    try:
        joined = await rooms.join(body)
    except JoinRefused as exc:
        log.warning("console.join_refused", status=exc.status, reason=exc.message)
        return _error(exc.message, exc.status)
    return web.json_response(joined.public(), headers=NO_STORE)


async def diagnosis(request: web.Request) -> web.Response:
    rooms = request.app[ROOMS]
    room = request.match_info["room"]
    if not room.startswith("console-"):
        return _error("not a console room", 404)
    try:
        message = await rooms.diagnose(room)
    except JoinRefused as exc:
        return _error(exc.message, exc.status)
    return web.json_response({"message": message}, headers=NO_STORE)


async def end(request: web.Request) -> web.Response:
    rooms = request.app[ROOMS]
    room = request.match_info["room"]
    try:
        await rooms.end(room)
    except JoinRefused as exc:
        return _error(exc.message, exc.status)
    return web.json_response({"ended": room}, headers=NO_STORE)


def console_app(rooms: Rooms) -> web.Application:
    """The console's application, for ``rooms`` (one LiveKit server, one agent name)."""
    app = web.Application()
    app[ROOMS] = rooms
    app.router.add_get("/", index)
    app.router.add_get("/api/config", config)
    app.router.add_post("/api/join", join)
    app.router.add_get("/api/rooms/{room}/diagnosis", diagnosis)
    app.router.add_post("/api/rooms/{room}/end", end)
    STATIC.mkdir(exist_ok=True)  # aiohttp wants the folder; the page says when it is empty
    app.router.add_static("/static/", STATIC)
    return app
