"""``bridge console`` without a browser: its checks, its routes, its command line.

The real thing (a browser joining through a real server) is ``tests/test_browser_console.py``;
here the console's server runs in-process against a LiveKit URL where nothing listens, so
every path that does not need a room is checked in milliseconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bridge.call.profiles import ProfileSet
from bridge.console.assets import BUILD_HINT, built
from bridge.console.joins import (
    JoinRefused,
    JoinRequest,
    Rooms,
    check_request,
    dispatch_metadata,
    public_profiles,
)
from bridge.console.server import console_app
from bridge.local.livekit_server import Credentials
from bridge.pod.settings import LiveKitSettings
from tests.realroom import PROFILES, REPO_ROOT, clean_env, open_rooms

SECRET = "console-test-secret-0123456789abcdef"
DEAD = "ws://127.0.0.1:9"  # the discard port: nothing answers


@pytest.fixture
def profiles() -> ProfileSet:
    return ProfileSet.parse(PROFILES, "profiles.toml")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"profile": "nope"}, "no profile named 'nope' in profiles.toml (known: browser-test,"),
        (
            {"profile": "echo-test", "overrides": {"instructions": "Be rude"}},
            "profile 'echo-test' does not allow overriding 'instructions'"
            " (its overridable fields: voice)",
        ),
        (
            {"profile": "default", "overrides": {"voice": "cedar"}},
            "profile 'default' does not allow overriding 'voice' (its overridable fields: nothing)",
        ),
        (
            {"profile": "browser-test", "overrides": {"speed": 7}},
            "override 'speed' = 7: ",
        ),
        (
            {"profile": "browser-test", "overrides": {"voice": "darth"}},
            "override 'voice' = \"darth\": 'darth' is not one of",
        ),
        ({"profile": "browser-test", "overrides": ["voice"]}, "overrides must be an object"),
        ({"profile": "browser-test", "room": "mine"}, "unknown field(s) in the join request: room"),
        (["default"], "the join request must be a JSON object"),
    ],
)
def test_a_bad_join_is_refused_saying_why(profiles: ProfileSet, body: Any, says: str) -> None:
    with pytest.raises(JoinRefused) as caught:
        check_request(profiles, body)
    assert says in str(caught.value)
    assert caught.value.status == 400


def test_a_good_join_becomes_the_worker_s_dispatch_metadata(profiles: ProfileSet) -> None:
    request = check_request(profiles, {"profile": "browser-test", "overrides": {"voice": "sage"}})
    assert request == JoinRequest("browser-test", {"voice": "sage"})
    metadata = dispatch_metadata(request, "console-abc")
    assert json.loads(metadata) == {
        "profile": "browser-test",
        "participant": "console-abc",
        "overrides": {"voice": "sage"},
    }
    resolution = profiles.resolve(metadata)  # what bridge start makes of it
    assert resolution.warnings == ()
    assert resolution.profile.session.voice == "sage"
    assert resolution.participant == "console-abc"
    assert check_request(profiles, {}) == JoinRequest("default")


def test_the_page_gets_each_profile_s_overridable_fields(profiles: ProfileSet) -> None:
    listed = {p["name"]: p for p in public_profiles(profiles)}
    assert list(listed)[0] == "default"
    assert listed["browser-test"]["overridable"] == ["speed", "voice"]
    assert listed["browser-test"]["values"] == {"speed": 1.0, "voice": "cedar"}
    assert listed["browser-test"]["captions"] is True
    assert listed["echo-test"]["captions"] is False


@pytest.fixture
async def client(profiles: ProfileSet) -> AsyncIterator[TestClient[Any, Any]]:
    settings = LiveKitSettings(url=DEAD, api_key="console-key", api_secret=SECRET)
    rooms = Rooms(settings, profiles, "bridge-test", agent_timeout_s=3)
    async with TestClient(TestServer(console_app(rooms))) as test_client:
        yield test_client


async def test_config_lists_profiles_and_never_the_secret(client: TestClient[Any, Any]) -> None:
    reply = await client.get("/api/config")
    assert reply.status == 200
    text = await reply.text()
    body = json.loads(text)
    assert body["agent_name"] == "bridge-test" and body["livekit_url"] == DEAD
    assert body["agent_timeout_s"] == 3
    assert "cedar" in body["voices"]
    assert SECRET not in text and "console-key" not in text


async def test_join_answers_400_or_502_with_a_message(client: TestClient[Any, Any]) -> None:
    reply = await client.post("/api/join", json={"profile": "nope"})
    assert reply.status == 400
    assert "no profile named 'nope'" in (await reply.json())["error"]
    reply = await client.post("/api/join", data=b"{not json", headers={"content-type": "x"})
    assert reply.status == 400
    assert (await reply.json())["error"] == "the join request is not JSON"
    reply = await client.post("/api/join", json={"profile": "browser-test"})
    assert reply.status == 502
    message = (await reply.json())["error"]
    assert message.startswith(f"LiveKit at {DEAD} is not reachable")
    assert SECRET not in message
    reply = await client.get("/api/rooms/other-room/diagnosis")
    assert reply.status == 404


async def test_a_join_too_large_for_the_worker_is_refused() -> None:
    long = "Be brief. " * 900  # a valid instructions override, but over 8 KiB of metadata
    profiles = ProfileSet.parse(
        PROFILES.replace('overridable = ["voice", "speed"]', 'overridable = ["instructions"]'),
        "profiles.toml",
    )
    settings = LiveKitSettings(url=DEAD, api_key="console-key", api_secret=SECRET)
    rooms = Rooms(settings, profiles, "bridge-test")
    with pytest.raises(JoinRefused) as caught:
        await rooms.join({"profile": "browser-test", "overrides": {"instructions": long}})
    assert "larger than 8192 bytes" in str(caught.value)


async def test_the_page_is_served_when_built(client: TestClient[Any, Any]) -> None:
    reply = await client.get("/")
    if built():
        assert reply.status == 200
        assert "/static/console.js" in await reply.text()
    else:
        assert reply.status == 503
        assert BUILD_HINT in await reply.text()


def console_command(**env: str) -> subprocess.CompletedProcess[str]:
    """``bridge console`` as a user runs it (a subprocess), with only ``env`` set."""
    return subprocess.run(
        [sys.executable, "-m", "bridge", "console", "--port", "0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(**env),
    )


def test_the_command_needs_livekit_settings_and_an_agent_name() -> None:
    missing = console_command()
    assert missing.returncode == 2
    assert "LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET are not set" in missing.stderr
    unnamed = console_command(
        LIVEKIT_URL=DEAD, LIVEKIT_API_KEY="console-key", LIVEKIT_API_SECRET=SECRET
    )
    assert unnamed.returncode == 2
    assert "set LIVEKIT_AGENT_NAME (as the worker has it) or pass --agent-name" in unnamed.stderr
    assert SECRET not in unnamed.stderr + unnamed.stdout


async def test_a_refused_key_is_named_as_such(livekit: Credentials, profiles: ProfileSet) -> None:
    """Against the real server, a secret that is not the server's: 502, saying so."""
    settings = LiveKitSettings(url=livekit.url, api_key=livekit.api_key, api_secret=SECRET)
    rooms = Rooms(settings, profiles, "bridge-test")
    with pytest.raises(JoinRefused) as caught:
        await rooms.join({"profile": "browser-test"})
    assert caught.value.status == 502
    assert str(caught.value).startswith(f"LiveKit at {livekit.url} refused the API key")
    assert SECRET not in str(caught.value) and livekit.api_secret not in str(caught.value)


async def test_ending_a_room_the_console_did_not_make_is_refused(
    client: TestClient[Any, Any],
) -> None:
    """No request reaches LiveKit (nothing listens at DEAD): 404 from the console itself."""
    reply = await client.post("/api/rooms/console-0000/end")
    assert reply.status == 404
    assert (await reply.json())["error"] == (
        "console-0000 is not a room this console made and has not ended"
    )


async def test_a_hang_up_ends_the_room_it_made_and_only_that(
    livekit: Credentials, profiles: ProfileSet
) -> None:
    """Against the real server: the room is deleted (the agent's call ends with it); ending it
    again, or a room someone else made, is refused and that room stays."""
    from livekit import api

    settings = LiveKitSettings(livekit.url, livekit.api_key, livekit.api_secret)
    rooms = Rooms(settings, profiles, "console-nobody")  # no worker: the rooms stay empty
    mine = await rooms.join({"profile": "browser-test"})
    theirs = f"other-{mine.room}"
    async with api.LiveKitAPI(livekit.http_url, livekit.api_key, livekit.api_secret) as lk:
        await lk.room.create_room(api.CreateRoomRequest(name=theirs, empty_timeout=30))
    assert {mine.room, theirs} <= await open_rooms(livekit)

    async with TestClient(TestServer(console_app(rooms))) as client:
        ended = await client.post(f"/api/rooms/{mine.room}/end")
        assert ended.status == 200 and await ended.json() == {"ended": mine.room}
        again = await client.post(f"/api/rooms/{mine.room}/end")
        other = await client.post(f"/api/rooms/{theirs}/end")
    assert again.status == 404 and other.status == 404
    still = await open_rooms(livekit)
    assert mine.room not in still and theirs in still
