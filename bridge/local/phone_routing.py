"""Connecting a phone number to the bridge: an inbound SIP trunk and a dispatch rule.

LiveKit's SIP service answers a call on a number when an *inbound trunk* lists that number,
then asks the server's *dispatch rules* where the call goes. The rule made here is an
individual one: every call gets a room of its own (``PREFIX_<caller number>_<random>``), and
its ``room_config.agents`` sends the bridge (by agent name) into that room as the room is
created, with dispatch metadata choosing the profile (``{"profile": "phone"}``). The caller
joins as a SIP participant (kind SIP, identity ``sip_<caller number>``); the bridge hears
the first human of the room, so nothing names the caller in advance.

Both are stored by the LiveKit server in its Redis (a server without Redis refuses the SIP
API). :func:`connect_number` creates them with ``livekit-api``; as a command, for operators,
with ``LIVEKIT_URL`` / ``LIVEKIT_API_KEY`` / ``LIVEKIT_API_SECRET`` in the environment::

    python -m bridge.local.phone_routing --number +15550100 --profile phone \\
        --agent-name realtime-bridge [--allowed-address 203.0.113.0/24]...

It prints the trunk and rule ids (``lk sip inbound list`` / ``lk sip dispatch list`` show
them too). README, "Phone calls", says what else a number needs (the carrier's side).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from livekit import api

DEFAULT_PREFIX = "call"


@dataclass(frozen=True, slots=True)
class PhoneRoute:
    """A number connected to the bridge: what the server stored for it."""

    number: str
    trunk_id: str
    rule_id: str
    room_prefix: str
    agent_name: str
    metadata: str  # the dispatch metadata the bridge gets with each call

    def room_for(self, caller_number: str) -> str:
        """A fresh room name for a call from ``caller_number``, as the individual rule makes
        them (``PREFIX_<number>_<random>``)."""
        return f"{self.room_prefix}_{caller_number}_{secrets.token_urlsafe(6)}"


async def connect_number(
    lk: api.LiveKitAPI,
    number: str,
    *,
    agent_name: str,
    profile: str = "phone",
    room_prefix: str = DEFAULT_PREFIX,
    allowed_addresses: Sequence[str] = (),
    name: str = "",
) -> PhoneRoute:
    """Create the inbound trunk for ``number`` and its dispatch rule; return what was stored.

    ``allowed_addresses``: the carrier's signalling addresses (CIDR), the only ones whose
    INVITEs the trunk accepts (empty: any; set it in production, or use digest auth).
    """
    from livekit import api as lkapi

    label = name or f"bridge {number}"
    trunk = await lk.sip.create_inbound_trunk(
        lkapi.CreateSIPInboundTrunkRequest(
            trunk=lkapi.SIPInboundTrunkInfo(
                name=label, numbers=[number], allowed_addresses=list(allowed_addresses)
            )
        )
    )
    metadata = json.dumps({"profile": profile})
    rule = await lk.sip.create_dispatch_rule(
        lkapi.CreateSIPDispatchRuleRequest(
            name=label,
            trunk_ids=[trunk.sip_trunk_id],
            rule=lkapi.SIPDispatchRule(
                dispatch_rule_individual=lkapi.SIPDispatchRuleIndividual(room_prefix=room_prefix)
            ),
            room_config=lkapi.RoomConfiguration(
                agents=[lkapi.RoomAgentDispatch(agent_name=agent_name, metadata=metadata)]
            ),
        )
    )
    return PhoneRoute(
        number=number,
        trunk_id=trunk.sip_trunk_id,
        rule_id=rule.sip_dispatch_rule_id,
        room_prefix=room_prefix,
        agent_name=agent_name,
        metadata=metadata,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bridge.local.phone_routing",
        description="Connect a phone number to the bridge (inbound trunk + dispatch rule).",
    )
    parser.add_argument("--number", required=True, help="the number callers dial, E.164")
    parser.add_argument("--profile", default="phone", help="the bridge profile (default phone)")
    parser.add_argument("--agent-name", required=True, help="the bridge's LIVEKIT_AGENT_NAME")
    parser.add_argument("--room-prefix", default=DEFAULT_PREFIX)
    parser.add_argument(
        "--allowed-address",
        action="append",
        default=[],
        metavar="CIDR",
        help="a carrier signalling address the trunk accepts INVITEs from (repeatable)",
    )
    args = parser.parse_args(argv)

    from livekit import api as lkapi

    from bridge.errors import BridgeError
    from bridge.pod.settings import LiveKitSettings

    try:
        settings = LiveKitSettings.from_env()
    except BridgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def run() -> PhoneRoute:
        async with lkapi.LiveKitAPI(settings.url, settings.api_key, settings.api_secret) as lk:
            return await connect_number(
                lk,
                args.number,
                agent_name=args.agent_name,
                profile=args.profile,
                room_prefix=args.room_prefix,
                allowed_addresses=args.allowed_address,
            )

    route = asyncio.run(run())
    print(f"trunk {route.trunk_id}, dispatch rule {route.rule_id}: {route.number} ->")
    print(f"  a room {route.room_prefix}_<caller>_<random> per call, agent {route.agent_name}")
    print(f"  with metadata {route.metadata}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
