"""A phone call in a LiveKit room, as LiveKit's SIP service places it: a stand-in for
``livekit-sip`` and the phone on the other end.

What the bridge meets when a phone calls a number routed to it (``bridge.local.phone_routing``)
is one participant, and :class:`PhoneCaller` is that participant, made the way ``livekit-sip``
makes it (read from livekit/sip, ``pkg/sip/room.go`` and ``inbound.go``):

- it joins a room of its own named by the dispatch rule, with a token of kind SIP carrying the
  rule's ``room_config`` (so the server creates the room and dispatches the bridge by agent
  name, with the rule's metadata), identity ``sip_<caller number>``, name
  ``Phone <number>``, and the ``sip.*`` attributes (``sip.callID``, ``sip.trunkID``,
  ``sip.ruleID``, ``sip.trunkPhoneNumber``, ``sip.phoneNumber``, ``sip.callStatus``);
- it publishes one 48 kHz mono Opus track with no source (``SOURCE_UNKNOWN``) carrying the
  phone's G.711 audio, decoded and resampled to 48 kHz (:func:`~bridge.local.g711.phone_to_room`);
- it hears the room at 48 kHz, and the phone gets that through 8 kHz µ-law
  (:func:`~bridge.local.g711.room_to_phone`): :meth:`heard` is what the phone's earpiece played;
- removed from the room (``RoomService.RemoveParticipant``), the service hangs the phone up
  (BYE): :attr:`hung_up` is set with the server's reason.

Why a stand-in: on these machines the Go module proxy refuses ``github.com/livekit/sip``
(``deploy/livekit/install-sip.sh``), so no SIP service and no SIP signalling run here; what the
bridge receives and what the caller hears are modelled exactly, everything from the room
inwards is real (the server, Opus both ways, dispatch by the rule's room configuration, the
worker).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from livekit import rtc
from numpy.typing import NDArray

from bridge.local.g711 import PHONE_RATE, ROOM_RATE, phone_to_room, room_to_phone
from bridge.room.caller import RoomCaller

if TYPE_CHECKING:
    from livekit import api

    from bridge.local.livekit_server import Credentials
    from bridge.local.phone_routing import PhoneRoute


@dataclass(slots=True)
class HangUp:
    """How the call ended for the phone: when, and the server's disconnect reason."""

    at: float  # time.monotonic()
    reason: str  # rtc.DisconnectReason name, e.g. PARTICIPANT_REMOVED


@dataclass(slots=True)
class PhoneCaller:
    """One phone call from ``caller_number`` to ``route.number`` (see the module docstring).

    Made on the event loop that runs the call (the SDK's room binds to it).
    """

    route: PhoneRoute
    caller_number: str
    room_config: api.RoomConfiguration | None = None
    """The dispatch rule's room configuration as the server stored it (default: built from
    ``route``: the bridge by agent name with the route's metadata)."""
    call_id: str = field(default_factory=lambda: f"SCL_{secrets.token_urlsafe(9)}")
    caller: RoomCaller = field(init=False)
    room: str = field(init=False)
    hung_up: HangUp | None = field(default=None, init=False)
    """Set when the server ended the call for the phone (not when the phone left)."""
    _ended: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _leaving: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.room = self.route.room_for(self.caller_number)
        self.caller = RoomCaller(self.identity, sample_rate=ROOM_RATE, hear_rate=ROOM_RATE)
        self.caller.room.on("disconnected", self._disconnected)

    @property
    def identity(self) -> str:
        return f"sip_{self.caller_number}"

    @property
    def attributes(self) -> dict[str, str]:
        """The ``sip.*`` attributes the SIP service gives an answered inbound call."""
        return {
            "sip.callID": self.call_id,
            "sip.trunkID": self.route.trunk_id,
            "sip.ruleID": self.route.rule_id,
            "sip.trunkPhoneNumber": self.route.number,
            "sip.phoneNumber": self.caller_number,
            "sip.callStatus": "active",
        }

    def token(self, credentials: Credentials) -> str:
        """The participant token the SIP service mints for the call (kind SIP)."""
        from livekit import api

        config = self.room_config or api.RoomConfiguration(
            agents=[
                api.RoomAgentDispatch(
                    agent_name=self.route.agent_name, metadata=self.route.metadata
                )
            ]
        )
        grants = api.VideoGrants(
            room_join=True,
            room=self.room,
            can_publish=True,
            can_subscribe=True,
            can_publish_data=True,
            can_update_own_metadata=True,
        )
        return (
            api.AccessToken(credentials.api_key, credentials.api_secret)
            .with_identity(self.identity)
            .with_name(f"Phone {self.caller_number}")
            .with_kind("sip")
            .with_attributes(self.attributes)
            .with_room_config(config)
            .with_grants(grants)
            .to_jwt()
        )

    async def dial(self, credentials: Credentials) -> None:
        """Answered: join the call's room (creating it, which dispatches the bridge) and
        publish the phone's audio track."""
        await self.caller.connect(credentials.url, self.token(credentials))
        await self.caller.publish(source=rtc.TrackSource.SOURCE_UNKNOWN)

    async def say(self, samples: NDArray[np.int16], rate: int) -> None:
        """Speak ``samples`` (mono at ``rate``) into the phone, in real time, through G.711."""
        await self.caller.play(phone_to_room(samples, rate))

    async def silence(self, seconds: float) -> None:
        """Keep the line open and quiet (RTP keeps flowing: µ-law silence)."""
        await self.caller.silence(seconds)

    async def silence_until(self, stop: asyncio.Event, limit_s: float = 120.0) -> None:
        """Keep the line open and quiet until ``stop`` is set (checked between 10 ms frames,
        so whatever is said next never overlaps a frame in flight: the SDK refuses two
        captures at once), or for ``limit_s`` at most."""
        frame = np.zeros(ROOM_RATE // 100, dtype=np.int16)
        deadline = time.monotonic() + limit_s
        while not stop.is_set() and time.monotonic() < deadline:
            await self.caller.play(frame)

    def heard(self) -> NDArray[np.int16]:
        """What the phone played, 8 kHz, aligned with what it said (sample 0: first said)."""
        return room_to_phone(self.caller.heard(), ROOM_RATE)

    @property
    def rate(self) -> int:
        """The rate of :meth:`heard`."""
        return PHONE_RATE

    def _disconnected(self, reason: rtc.DisconnectReason.ValueType) -> None:
        if self.hung_up is None and not self._leaving:
            self.hung_up = HangUp(time.monotonic(), rtc.DisconnectReason.Name(reason))
        self._ended.set()

    async def until_hung_up(self, timeout: float = 30.0) -> HangUp:
        """Until the server ends the call for the phone (the bridge hung up)."""
        async with asyncio.timeout(timeout):
            await self._ended.wait()
        assert self.hung_up is not None
        return self.hung_up

    async def aclose(self) -> None:
        """The phone hangs up (leaves the room) and stops recording."""
        self._leaving = True
        await self.caller.aclose()
