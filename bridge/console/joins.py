"""What the console's server does for each join: check it, make the room, send the agent, sign.

A join asks for a profile and overrides (``{"profile": "default", "overrides": {"voice":
"cedar"}}``). The console is stricter than the worker: where ``bridge start`` ignores a bad
field of dispatch metadata and carries on (``ProfileSet.resolve``), the console refuses the
join and says why, because the developer in front of it wants to know. Then, on the LiveKit
server of the environment (``LIVEKIT_URL``/``LIVEKIT_API_KEY``/``LIVEKIT_API_SECRET``, read by
``bridge.pod.settings``):

1. a fresh room ``console-<hex>`` is created (which is also how an unreachable server or a
   refused key shows up, before the browser tries anything);
2. the agent is dispatched to it by name, with the dispatch metadata of README "Profiles":
   ``{"profile": …, "participant": <the browser's identity>, "overrides": {…}}``;
3. a token for that one room and that one identity is signed, valid for ten minutes (enough
   to join; an ongoing call outlives it), and handed to the browser with the server's URL.

Hanging up ends the room (:meth:`Rooms.end`: deleted on the server, so the agent's call ends
at once and its worker is free for the next join); so does leaving the page mid-call (the
page sends a beacon as it goes).

The API secret signs tokens and API requests here and goes nowhere else: not to the browser,
not into a response, not into a log record (``bridge.logs`` scrubs it everywhere).

When no agent joins (the page waits ``agent_timeout`` seconds, like the stock frontends'
"Agent did not join the room"), :meth:`Rooms.diagnose` asks the server what became of the
dispatch: LiveKit keeps a dispatch's jobs, and a dispatch without any means no worker is
registered under that agent name.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog
from livekit import api

from bridge.call.profiles import (
    DEFAULT_PROFILE,
    MAX_METADATA_BYTES,
    ProfileSet,
    override_problem,
)
from bridge.errors import BridgeError
from bridge.pod.settings import LiveKitSettings

log = structlog.get_logger("bridge.console.joins")

TOKEN_TTL = datetime.timedelta(minutes=10)
API_TIMEOUT_S = 5.0
ROOM_EMPTY_TIMEOUT_S = 60  # a room nobody joined goes away after a minute


class JoinRefused(BridgeError):
    """A join the console will not make; ``status`` is the HTTP status the page gets.

    400: the request is wrong (an unknown profile, an override the profile does not allow, an
    invalid value); 404: a room this console did not make (or has ended); 502: the LiveKit
    server is unreachable or refused the console's key.
    """

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message, status)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """A checked join: a profile that exists and overrides it allows."""

    profile: str
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Join:
    """What the browser gets: where to connect, as whom, with which token."""

    url: str
    room: str
    identity: str
    token: str = field(repr=False)
    agent_name: str = ""
    agent_timeout_s: float = 15.0

    def public(self) -> dict[str, Any]:
        """The JSON the page receives (a token for one room; never the key or secret)."""
        return {
            "url": self.url,
            "room": self.room,
            "identity": self.identity,
            "token": self.token,
            "agent_name": self.agent_name,
            "agent_timeout_s": self.agent_timeout_s,
        }


def check_request(profiles: ProfileSet, body: Any) -> JoinRequest:
    """``body`` (the page's JSON) as a :class:`JoinRequest`, or :class:`JoinRefused` saying why."""
    if not isinstance(body, dict):
        raise JoinRefused("the join request must be a JSON object")
    unknown = sorted(set(body) - {"profile", "overrides"})
    if unknown:
        raise JoinRefused(f"unknown field(s) in the join request: {', '.join(unknown)}")
    name = body.get("profile") or DEFAULT_PROFILE
    if not isinstance(name, str) or name not in profiles:
        known = ", ".join(sorted(profiles.profiles))
        raise JoinRefused(f"no profile named {name!r} in {profiles.source} (known: {known})")
    profile = profiles[name]
    overrides = body.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise JoinRefused("overrides must be an object of field: value")
    for key, value in overrides.items():
        if key not in profile.overridable:
            allowed = ", ".join(sorted(profile.overridable)) or "nothing"
            raise JoinRefused(
                f"profile {name!r} does not allow overriding {key!r}"
                f" (its overridable fields: {allowed})"
            )
        problem = override_problem(profile, key, value)
        if problem is not None:
            shown = json.dumps(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise JoinRefused(f"override {key!r} = {shown}: {problem}")
    return JoinRequest(name, dict(overrides))


def dispatch_metadata(request: JoinRequest, identity: str) -> str:
    """The dispatch metadata of README "Profiles", linking the agent to the browser."""
    metadata: dict[str, Any] = {"profile": request.profile, "participant": identity}
    if request.overrides:
        metadata["overrides"] = request.overrides
    return json.dumps(metadata, separators=(",", ":"))


class Rooms:
    """Rooms, dispatches and tokens on one LiveKit server, for one agent name."""

    def __init__(
        self,
        settings: LiveKitSettings,
        profiles: ProfileSet,
        agent_name: str,
        *,
        agent_timeout_s: float = 15.0,
    ) -> None:
        self._settings = settings
        self.profiles = profiles
        self.agent_name = agent_name
        self.agent_timeout_s = agent_timeout_s
        self._made: set[str] = set()  # rooms this console made and has not ended

    @property
    def url(self) -> str:
        return self._settings.url

    def _api(self) -> api.LiveKitAPI:
        http = "http" + self.url.removeprefix("ws") if self.url.startswith("ws") else self.url
        return api.LiveKitAPI(
            http,
            self._settings.api_key,
            self._settings.api_secret,
            timeout=aiohttp.ClientTimeout(total=API_TIMEOUT_S),
        )

    async def join(self, body: Any) -> Join:
        """Check ``body``, make a room, dispatch the agent, sign a token (see the module doc)."""
        request = check_request(self.profiles, body)
        room = f"console-{secrets.token_hex(4)}"
        identity = f"console-{secrets.token_hex(3)}"
        metadata = dispatch_metadata(request, identity)
        if len(metadata.encode("utf-8")) > MAX_METADATA_BYTES:  # the worker would ignore it all
            raise JoinRefused(
                f"the overrides make the dispatch metadata larger than {MAX_METADATA_BYTES}"
                " bytes, more than the worker accepts"
            )
        async with _reaching(self.url):
            async with self._api() as lk:
                await lk.room.create_room(
                    api.CreateRoomRequest(name=room, empty_timeout=ROOM_EMPTY_TIMEOUT_S)
                )
                await lk.agent_dispatch.create_dispatch(
                    api.CreateAgentDispatchRequest(
                        agent_name=self.agent_name, room=room, metadata=metadata
                    )
                )
        token = (
            api.AccessToken(self._settings.api_key, self._settings.api_secret)
            .with_identity(identity)
            .with_name("console")
            .with_ttl(TOKEN_TTL)
            .with_grants(
                api.VideoGrants(
                    room_join=True,
                    room=room,
                    can_publish=True,
                    can_subscribe=True,
                    can_publish_data=True,
                )
            )
            .to_jwt()
        )
        self._made.add(room)
        log.info(
            "console.join",
            room=room,
            participant=identity,
            profile=request.profile,
            overrides=sorted(request.overrides),
            agent_name=self.agent_name,
        )
        return Join(self.url, room, identity, token, self.agent_name, self.agent_timeout_s)

    async def end(self, room: str) -> None:
        """Hang up ``room`` for everyone: delete it on the server, so the agent's call ends now
        rather than after its empty-room grace and the server's departure timeout. Only a room
        this console made and has not ended (404 otherwise); one already gone is ended."""
        if room not in self._made:
            raise JoinRefused(
                f"{room} is not a room this console made and has not ended", status=404
            )
        async with _reaching(self.url):
            async with self._api() as lk:
                try:
                    await lk.room.delete_room(api.DeleteRoomRequest(room=room))
                except api.TwirpError as exc:
                    if exc.status != 404:  # not found: it closed already (everyone left)
                        raise
        self._made.discard(room)
        log.info("console.room_ended", room=room)

    async def diagnose(self, room: str) -> str:
        """Why no agent joined ``room``, as the LiveKit server sees its dispatch."""
        async with _reaching(self.url):
            async with self._api() as lk:
                dispatches = await lk.agent_dispatch.list_dispatch(room)
                listed = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
        ours = [d for d in dispatches if d.agent_name == self.agent_name]
        agents = [p.identity for p in listed.participants if p.kind == api.ParticipantInfo.AGENT]
        if agents:
            message = (
                f"the agent {agents[0]} is in the room but was not seen by the page;"
                " reload and join again"
            )
        elif not ours:
            message = f"the room {room} has no dispatch for {self.agent_name!r} (it may have ended)"
        elif not ours[0].state.jobs:
            message = (
                f"no worker registered as {self.agent_name!r} took the job: start one"
                f" (bridge dev, with LIVEKIT_AGENT_NAME={self.agent_name}) on {self.url}"
            )
        else:
            job = ours[0].state.jobs[0]
            error = f": {job.state.error}" if job.state.error else ""
            message = (
                f"a worker took the job ({job.id}) but its agent did not join within"
                f" {self.agent_timeout_s:g} s{error}; see the worker's log"
            )
        log.warning("console.no_agent", room=room, reason=message)
        return message


@contextlib.asynccontextmanager
async def _reaching(url: str) -> AsyncIterator[None]:
    """What can go wrong talking to the LiveKit server at ``url``, as a :class:`JoinRefused`
    (502) naming the server and the reason (never the key or secret)."""
    try:
        yield
    except api.TwirpError as exc:
        if exc.status in (401, 403):
            reason = f"LiveKit at {url} refused the API key ({exc.message})"
        else:
            reason = f"LiveKit at {url} answered {exc.status}: {exc.message}"
        raise JoinRefused(reason, status=502) from None
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        detail = str(exc) or type(exc).__name__
        raise JoinRefused(
            f"LiveKit at {url} is not reachable ({detail}); is the server running?", status=502
        ) from None


def public_profiles(profiles: ProfileSet) -> list[dict[str, Any]]:
    """The profiles as the page shows them: each one's overridable fields and their values."""
    listed = []
    for name in sorted(profiles.profiles, key=lambda n: (n != DEFAULT_PROFILE, n)):
        profile = profiles[name]
        session = profile.session
        values: Mapping[str, Any] = {
            "voice": session.voice,
            "speed": session.speed,
            "instructions": session.instructions,
            "model": session.model,
        }
        listed.append(
            {
                "name": name,
                "overridable": sorted(profile.overridable),
                "values": {
                    key: profile.raw.get(key, values.get(key))
                    for key in sorted(profile.overridable)
                },
                "captions": session.input_transcription is not None,
            }
        )
    return listed
