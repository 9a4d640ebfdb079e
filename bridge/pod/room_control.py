"""The room's server, for what a call's tools ask beyond the agent's own participant.

:class:`LiveKitRoomControl` is the pod's :class:`~bridge.call.tools.RoomControl`: LiveKit's
server API (Twirp over HTTP, ``livekit-api``) for one job's room, signed with the worker's own
key and secret (``LiveKitSettings``, read in ``bridge.pod.settings``; the call never sees
them). Each request opens a client on the loop that asks (the media loop, where tools run)
and closes it after: hanging up and transferring happen at most once a call.

- :meth:`remove_participant`: ``RoomService.RemoveParticipant``. For a SIP participant,
  LiveKit's SIP service then ends the phone call (BYE).
- :meth:`transfer_sip_participant`: ``SIP.TransferSIPParticipant`` (a cold transfer: the SIP
  service sends a REFER on the caller's dialog); it returns once the transfer is accepted,
  and raises the server's error otherwise (``livekit.api`` ``TwirpError``).
"""

from __future__ import annotations

from dataclasses import dataclass

from livekit import api

from bridge.pod.settings import LiveKitSettings

#: How long a transfer may ring before the server gives up (LiveKit's default is 30 s).
RINGING_TIMEOUT_S = 30


@dataclass(frozen=True, slots=True)
class LiveKitRoomControl:
    """LiveKit's server API for ``room``, with the worker's credentials."""

    settings: LiveKitSettings
    room: str

    def _client(self) -> api.LiveKitAPI:
        s = self.settings
        return api.LiveKitAPI(s.url, s.api_key, s.api_secret)

    async def remove_participant(self, identity: str) -> None:
        async with self._client() as lk:
            await lk.room.remove_participant(
                api.RoomParticipantIdentity(room=self.room, identity=identity)
            )

    async def transfer_sip_participant(
        self, identity: str, to: str, *, play_dialtone: bool
    ) -> None:
        from google.protobuf.duration_pb2 import Duration

        async with self._client() as lk:
            await lk.sip.transfer_sip_participant(
                api.TransferSIPParticipantRequest(
                    room_name=self.room,
                    participant_identity=identity,
                    transfer_to=to,
                    play_dialtone=play_dialtone,
                    ringing_timeout=Duration(seconds=RINGING_TIMEOUT_S),
                )
            )
