"""Phone tools: ``transfer`` tools declared in a profile, and what they ask of the room's server.

The room's server is the seam (``RoomControl``): here a recording stand-in for LiveKit's API
(the pod's own, ``bridge.pod.room_control``, is run against a real server in
``tests/test_phone_call.py``, as is ``end_call`` hanging a phone up).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from livekit import rtc

from bridge.call.profiles import ProfileSet
from bridge.call.tools import TOOLS, ToolContext
from bridge.call.transfer_tool import TRANSFERRED, TransferTool
from bridge.errors import ProfileError, ToolFailed
from bridge.room.participant import Human

SIP = rtc.ParticipantKind.PARTICIPANT_KIND_SIP
PHONE = Human("sip_+15551234567", SIP)
PROFILE = """
[profiles.default]
instructions = "Front desk."

[[profiles.default.tools]]
kind = "builtin"
name = "end_call"

[[profiles.default.tools]]
kind = "transfer"
name = "desk"
to = "tel:+15550199"
"""


@dataclass
class FakeRoom:
    """Stands in for LiveKit's server API: records requests, refuses when told to."""

    refuse: Exception | None = None
    transfers: list[tuple[str, str, bool]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    async def remove_participant(self, identity: str) -> None:
        self.removed.append(identity)

    async def transfer_sip_participant(
        self, identity: str, to: str, *, play_dialtone: bool
    ) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.transfers.append((identity, to, play_dialtone))


def desk() -> TransferTool:
    tool = ProfileSet.parse(PROFILE, "p.toml").default.toolbox()["desk"]
    assert isinstance(tool, TransferTool)
    return tool


def test_a_transfer_tool_is_declared_with_a_fixed_destination_and_no_arguments() -> None:
    profile = ProfileSet.parse(PROFILE, "p.toml").default
    tool = desk()
    assert (tool.to, tool.play_dialtone, tool.limits.timeout_s) == ("tel:+15550199", False, 40.0)
    assert tool.limits.hold_after_s is None  # no holding line over a ringing transfer
    [declared] = [t for t in profile.session.tools if t.name == "desk"]
    assert declared.parameters == {"type": "object", "properties": {}}
    assert "Transfer the caller to a person" in declared.description
    assert profile.toolbox()["end_call"] is TOOLS["end_call"]


@pytest.mark.parametrize(
    ("to", "ok"),
    [
        ("tel:+15550199", True),
        ("sip:desk@pbx.example.com", True),
        ("sips:desk@pbx.example.com:5061", True),
        ("+15550199", False),  # a URI, so the server never guesses
        ("tel:call-me", False),
        ("http://example.com", False),
    ],
)
def test_the_destination_must_be_a_tel_or_sip_uri(to: str, ok: bool) -> None:
    text = PROFILE.replace("tel:+15550199", to)
    if ok:
        tool = ProfileSet.parse(text, "p.toml").default.toolbox()["desk"]
        assert isinstance(tool, TransferTool) and tool.to == to
        return
    with pytest.raises(ProfileError) as caught:
        ProfileSet.parse(text, "p.toml")
    assert (caught.value.tool, caught.value.field) == ("desk", "to")


async def test_the_transfer_waits_for_the_agent_to_finish_speaking() -> None:
    room = FakeRoom()
    quiet = asyncio.Event()

    async def until_quiet() -> None:
        await quiet.wait()

    ctx = ToolContext(room=room, caller=lambda: PHONE, until_quiet=until_quiet)
    task = asyncio.ensure_future(desk().run({}, ctx))
    for _ in range(5):
        await asyncio.sleep(0)
    assert room.transfers == [] and not task.done()  # still saying "putting you through"
    quiet.set()
    assert await task == TRANSFERRED
    assert room.transfers == [(PHONE.identity, "tel:+15550199", False)]


@pytest.mark.parametrize(
    ("caller", "has_room", "words"),
    [
        (Human("browser-1"), True, "not on a phone line"),
        (None, True, "not on a phone line"),
        (PHONE, False, "no room server"),
    ],
)
async def test_a_transfer_that_cannot_happen_is_an_error_for_the_model(
    caller: Human | None, has_room: bool, words: str
) -> None:
    room = FakeRoom()
    ctx = ToolContext(room=room if has_room else None, caller=lambda: caller)
    with pytest.raises(ToolFailed, match=words):
        await desk().run({}, ctx)
    assert room.transfers == []


async def test_a_refused_transfer_names_only_the_error_type() -> None:
    room = FakeRoom(refuse=RuntimeError("carrier said no to +15550199"))
    ctx = ToolContext(room=room, caller=lambda: PHONE)
    with pytest.raises(ToolFailed) as caught:
        await desk().run({}, ctx)
    assert caught.value.detail == "the transfer failed (RuntimeError)"
