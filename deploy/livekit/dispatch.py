"""Send the bridge to a room: in a participant token, or with AgentDispatchService.

The bridge registers with an agent name (LIVEKIT_AGENT_NAME; "realtime-bridge" in the
production overlay), so LiveKit never dispatches it on its own: each room asks for it, with
the dispatch metadata the bridge reads (``bridge/call/profiles.py``)::

    {"profile": "support", "participant": "caller-7", "overrides": {"voice": "marin"}}

``profile`` picks a profile of the ConfigMap (missing or unknown: "default"), ``participant``
is the identity the bridge listens to (default: the first human to join), ``overrides``
changes only the fields that profile lists in ``overridable``. Refused values are logged and
counted (``bridge_metadata_rejected_total``); the call goes on with the profile's values.

Run from your backend, with the LiveKit credentials in the environment (``livekit-api``)::

    # a token whose join creates the room with the bridge in it (the room must not exist yet)
    python deploy/livekit/dispatch.py token --room support-42 --identity caller-7 --profile support
    # the bridge into a room that already exists
    python deploy/livekit/dispatch.py create --room support-42 --profile support

The same with the LiveKit CLI::

    lk dispatch create --room support-42 --agent-name realtime-bridge \\
        --metadata '{"profile": "support", "participant": "caller-7"}'
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
from typing import Any

from livekit import api

AGENT_NAME = os.environ.get("LIVEKIT_AGENT_NAME") or "realtime-bridge"


def dispatch_metadata(
    profile: str, participant: str | None = None, overrides: dict[str, Any] | None = None
) -> str:
    """The bridge's dispatch metadata: a JSON object, at most 8 KiB."""
    request: dict[str, Any] = {"profile": profile}
    if participant:
        request["participant"] = participant
    if overrides:
        request["overrides"] = overrides
    return json.dumps(request, separators=(",", ":"))


def participant_token(
    room: str,
    identity: str,
    metadata: str,
    *,
    agent_name: str = AGENT_NAME,
    ttl: dt.timedelta = dt.timedelta(minutes=15),
    api_key: str | None = None,
    api_secret: str | None = None,
) -> str:
    """A join token for ``identity`` whose join creates ``room`` with the bridge dispatched.

    ``RoomConfiguration.agents`` only applies when this join creates the room; for a room
    that already exists, use :func:`create_dispatch`.
    """
    return (
        api.AccessToken(api_key, api_secret)  # LIVEKIT_API_KEY / LIVEKIT_API_SECRET by default
        .with_identity(identity)
        .with_ttl(ttl)
        .with_grants(
            api.VideoGrants(
                room_join=True,
                room=room,
                can_publish=True,
                can_subscribe=True,
                can_publish_data=True,
            )
        )
        .with_room_config(
            api.RoomConfiguration(
                agents=[api.RoomAgentDispatch(agent_name=agent_name, metadata=metadata)]
            )
        )
        .to_jwt()
    )


def dispatch_request(
    room: str, metadata: str, *, agent_name: str = AGENT_NAME
) -> api.CreateAgentDispatchRequest:
    return api.CreateAgentDispatchRequest(agent_name=agent_name, room=room, metadata=metadata)


async def create_dispatch(
    room: str, metadata: str, *, agent_name: str = AGENT_NAME
) -> api.AgentDispatch:
    """Dispatch the bridge into ``room`` now (AgentDispatchService.CreateDispatch)."""
    async with api.LiveKitAPI() as lkapi:  # LIVEKIT_URL / LIVEKIT_API_KEY / LIVEKIT_API_SECRET
        return await lkapi.agent_dispatch.create_dispatch(
            dispatch_request(room, metadata, agent_name=agent_name)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["token", "create"])
    parser.add_argument("--room", required=True)
    parser.add_argument("--identity", help="the caller's identity (token: required)")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--overrides", type=json.loads, help='JSON, e.g. {"voice": "cedar"}')
    args = parser.parse_args()
    metadata = dispatch_metadata(args.profile, args.identity, args.overrides)
    if args.action == "token":
        if not args.identity:
            parser.error("token needs --identity")
        print(participant_token(args.room, args.identity, metadata))
    else:
        dispatch = asyncio.run(create_dispatch(args.room, metadata))
        print(f"dispatched {dispatch.agent_name} to {dispatch.room} ({dispatch.id})")


if __name__ == "__main__":
    main()
