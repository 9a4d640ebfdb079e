"""``transfer`` tools: hand a phone caller over to a person (a cold SIP transfer).

The destination is fixed in the profile (``to = "tel:+15550123"`` or ``"sip:desk@pbx.example"``):
the model decides *when* to transfer, never *where* (a model that could dial any number
is a toll-fraud risk). The tool takes no arguments.

When the model calls it, the tool waits until the agent has finished speaking (its "I'm
putting you through" has played out: :attr:`ToolContext.until_quiet`), then asks the room's
server to transfer the caller heard (``TransferSIPParticipant`` through LiveKit's API: the SIP
service sends a REFER to the caller's carrier, which connects the caller to ``to`` and ends
this leg; the caller then leaves the room and the call ends). If the caller is not on a phone
line, the call has no room server (the loopback), or the server refuses (no SIP service, the
carrier does not allow transfers, the person does not answer within the tool's timeout), the
model gets the tool's ``on_error`` text and the call goes on. A barge-in while the tool waits
cancels it: the caller changed their mind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from livekit import rtc

from bridge.call.tools import Tool, ToolContext, ToolLimits
from bridge.errors import ToolCallError, ToolFailed
from sessions.session_config import FunctionTool

#: What the model gets once the transfer is accepted (the caller is gone by then).
TRANSFERRED = "The caller has been transferred to a person; the call is over for you."
SIP_KIND = rtc.ParticipantKind.PARTICIPANT_KIND_SIP


class TransferTool(Tool):
    """Transfer the SIP caller heard to ``to`` once the agent stops speaking."""

    kind = "transfer"

    def __init__(
        self,
        declaration: FunctionTool,
        limits: ToolLimits,
        *,
        to: str,
        play_dialtone: bool = False,
    ) -> None:
        super().__init__(declaration, limits)
        self.to = to
        self.play_dialtone = play_dialtone

    def __repr__(self) -> str:
        return f"<TransferTool {self.name!r} -> {self.to}>"

    async def run(self, args: Mapping[str, Any], ctx: ToolContext) -> str:
        caller = ctx.caller()
        if caller is None or caller.kind != SIP_KIND:
            raise ToolFailed(self.name, "the caller is not on a phone line")
        if ctx.room is None:
            raise ToolFailed(self.name, "this call has no room server to transfer through")
        await ctx.until_quiet()
        try:
            await ctx.room.transfer_sip_participant(
                caller.identity, self.to, play_dialtone=self.play_dialtone
            )
        except ToolCallError:
            raise
        except Exception as exc:  # the server's refusal: its type only (it may quote numbers)
            raise ToolFailed(self.name, f"the transfer failed ({type(exc).__name__})") from exc
        return TRANSFERRED
