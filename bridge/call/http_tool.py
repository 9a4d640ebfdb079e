"""``http`` tools: the model's validated arguments POSTed as JSON to a URL fixed in the profile.

The endpoint's answer is what the model gets, as text (JSON stays JSON): it is read up to the
tool's ``max_output_bytes`` (a declared ``Content-Length`` over it is refused before the body
is read), and a status that is not 2xx — redirects included: the bridge never follows one, so
the tool's headers only ever go to the URL in the profile — is a failure. Header values are
either plain text from the profile (never a credential: ``bridge.call.profile_file`` refuses
those) or, resolved once at start-up, the value of a named environment variable; the resolved
values are registered as secrets, so no log record ever shows them.

Requests go through the call's own ``aiohttp`` session (:meth:`ToolContext.http_session`), on
the call's loop: network waits never block audio. The tool's timeout is the runner's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from bridge.call.tools import Tool, ToolContext, ToolLimits
from bridge.errors import OutputTooLarge, ToolFailed
from sessions.session_config import FunctionTool


class HttpTool(Tool):
    """POST the arguments to ``url`` with ``headers``; the response body is the output."""

    kind = "http"

    def __init__(
        self,
        declaration: FunctionTool,
        limits: ToolLimits,
        *,
        url: str,
        headers: Mapping[str, str],
    ) -> None:
        super().__init__(declaration, limits)
        self.url = url
        self._headers = {**headers, "Content-Type": "application/json"}

    def __repr__(self) -> str:  # the headers may hold secrets: never shown
        return f"<HttpTool {self.name!r} {self.url}>"

    async def run(self, args: Mapping[str, Any], ctx: ToolContext) -> str:
        session = ctx.http_session()
        try:
            async with session.post(
                self.url, data=orjson.dumps(args), headers=self._headers, allow_redirects=False
            ) as response:
                body = await self._read(response)
                status = response.status
        except aiohttp.ClientError as exc:
            raise ToolFailed(self.name, f"request failed ({type(exc).__name__})") from exc
        if not 200 <= status < 300:
            raise ToolFailed(self.name, f"HTTP {status}")
        text = body.decode("utf-8", errors="replace")
        return text if text.strip() else f"HTTP {status}, no content"

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        cap = self.limits.max_output_bytes
        declared = response.content_length
        if declared is not None and declared > cap:
            raise OutputTooLarge(self.name, f"Content-Length {declared}, more than {cap}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(16_384):
            size += len(chunk)
            if size > cap:
                raise OutputTooLarge(self.name, f"more than {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
