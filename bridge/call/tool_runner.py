"""Running the model's function calls for one call: off the audio path, cancellable, never silent.

The call hands every ``FunctionCall`` to :meth:`ToolRunner.start` and returns at once; the
runner answers each call with exactly one ``function_call_output``:

1. **Checked first.** A function no profile declared, or arguments that are not a JSON object
   fitting the tool's schema, are answered at once with an error text naming the problem; the
   tool never runs (outcome ``invalid_arguments``), and the model is asked to go on.
2. **Run as a task** of the call's loop (HTTP on the call's session, Python tools on the tool
   loop or a thread: ``bridge.call.python_tool``), within the tool's ``timeout_s``. Audio,
   captions and other calls keep running meanwhile. On timeout, failure or an oversized output
   the model gets the profile's ``on_timeout`` / ``on_error`` / ``on_oversize`` text.
3. **Answered**: ``function_call_output``, then ``response.create`` so the model speaks about
   it — unless another call of the same response is still running (one reply for all of them),
   or the caller is talking (the reply to their turn will see the output). A create that meets
   an active response is held by the protocol until that one is done.
4. **Cancelled** by :meth:`cancel` (the call invokes it on a barge-in or a typed message: the
   caller moved on) — each running call is answered with :data:`~bridge.call.tools.ON_CANCELLED`
   and no response is asked for (the caller's turn gets one) — and by :meth:`aclose` (the call
   is ending: nothing is answered).

**The slow-tool policy: a holding line, spoken by the model, after a threshold.** When a tool
has run ``hold_after_s`` (per tool; 1.5 s by default for ``http`` and ``python`` tools), the
caller is not talking and the call is still waiting, the runner asks for one response with
``tool_choice: "none"`` and instructions to say, briefly, that it is still working on it (or
the tool's ``hold_line``). The Realtime API has no way of its own to fill that silence: its
asynchronous function calling lets the conversation go on while a call is pending, but only
the caller speaking starts a response, and a model's spoken preamble ("let me check") happens
once, before the call, whatever the tool then takes. A response that merely *may* talk while
the call is pending is exactly that GA mechanism, so the holding line uses it rather than
working around it; the threshold keeps fast tools free of filler, and the line is the model's
voice, not a recording spliced in. When the output arrives while the holding line is playing,
the answer follows it (the create is held until the line's response is done).

Figures: ``bridge_tool_calls_total{tool,outcome}``, ``bridge_tool_call_seconds{tool}`` and
``bridge_tool_errors_total{tool,reason}``, labelled with the declared name (``(undeclared)``
otherwise); one :class:`~bridge.call.records.ToolCallRecord` per call in the call's record.
Logs never carry argument values or outputs above debug level.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from bridge.call.records import CallRecord, ToolCallRecord
from bridge.call.tools import ON_CANCELLED, Tool, ToolContext
from bridge.errors import InvalidArguments, OutputTooLarge, ToolCallError
from bridge.metrics import UNDECLARED_TOOL, BridgeMetrics
from sessions.events import FunctionCall

log = structlog.get_logger("bridge.call.tool_runner")

HOLD_PROMPT = (
    "A tool you called is still running. In one short sentence, tell the caller you are still"
    " working on it. Do not guess its result and do not call any tool."
)
MAX_SEEN_CALLS = 1024


class ToolSession(Protocol):
    """What the runner needs of the call's Realtime conversation (``Call.realtime``)."""

    def send_function_output(self, call_id: str, output: str) -> None: ...

    def create_response(self, response: Mapping[str, Any] | None = None) -> None: ...


@dataclass(slots=True, eq=False)
class ToolRun:
    """One function call while it runs."""

    call: FunctionCall
    tool: Tool
    started: float
    task: asyncio.Task[None] | None = None
    hold: asyncio.TimerHandle | None = field(default=None, repr=False)
    held: bool = False


class ToolRunner:
    """The function calls of one call: validated, run as tasks, answered once each."""

    def __init__(
        self,
        tools: Mapping[str, Tool],
        realtime: ToolSession,
        *,
        record: CallRecord,
        context: ToolContext | None = None,
        instructions: str = "",
        caller_speaking: Callable[[], bool] = lambda: False,
        metrics: BridgeMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tools = dict(tools)
        self.realtime = realtime
        self.record = record
        self.context = context if context is not None else ToolContext()
        self.instructions = instructions
        self.caller_speaking = caller_speaking
        self.metrics = metrics
        self.clock = clock
        self._running: dict[str, ToolRun] = {}
        self._seen: dict[str, None] = {}  # call ids already handled (insertion-ordered)
        self._closed = False
        if metrics is not None:
            metrics.declare_tools(self.tools)

    @property
    def running(self) -> int:
        """Calls started and not yet answered."""
        return len(self._running)

    def start(self, call: FunctionCall) -> None:
        """Take one function call of the model; returns at once (the tool runs as a task)."""
        if self._closed or call.call_id in self._seen:
            return
        self._seen[call.call_id] = None
        if len(self._seen) > MAX_SEEN_CALLS:
            del self._seen[next(iter(self._seen))]
        now = self.clock()
        tool = self.tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            detail = f"no tool named {call.name!r} (tools: {known})"
            self._refuse(call, now, UNDECLARED_TOOL, detail)
            return
        try:
            args = tool.parse_arguments(call.arguments)
        except InvalidArguments as exc:
            log.info(
                "tool.refused",
                tool=tool.name,
                call_id=call.call_id,
                where=exc.where or None,
                rule=exc.rule or None,
            )
            self._refuse(call, now, tool.name, exc.detail)
            return
        run = ToolRun(call, tool, now)
        self._running[call.call_id] = run
        log.info("tool.started", tool=tool.name, call_id=call.call_id, kind=tool.kind)
        log.debug("tool.arguments", tool=tool.name, call_id=call.call_id, arguments=args)
        loop = asyncio.get_running_loop()
        hold_after = tool.limits.hold_after_s
        if hold_after is not None and hold_after < tool.limits.timeout_s:
            run.hold = loop.call_later(hold_after, self._hold, run)
        run.task = loop.create_task(self._run(run, args), name=f"tool {tool.name}")

    def cancel(self) -> int:
        """The caller moved on (barge-in, a typed message): cancel every running call.

        Each is answered with :data:`ON_CANCELLED` at once, and no response is asked for (the
        caller's turn will get one). Returns how many were cancelled.
        """
        runs = list(self._running.values())
        for run in runs:
            self._stop(run)
            self._finish(run, "cancelled", ON_CANCELLED, ran=False, reply=False)
        return len(runs)

    async def aclose(self) -> None:
        """The call is ending: cancel what runs (nothing is answered), close the HTTP session."""
        self._closed = True
        runs = list(self._running.values())
        for run in runs:
            self._stop(run)
            self._finish(run, "cancelled", ON_CANCELLED, ran=False, answer=False)
        tasks = [run.task for run in runs if run.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.context.aclose()

    # ------------------------------------------------------------------ internals

    def _stop(self, run: ToolRun) -> None:
        if run.hold is not None:
            run.hold.cancel()
        if run.task is not None:
            run.task.cancel()

    async def _run(self, run: ToolRun, args: dict[str, Any]) -> None:
        tool = run.tool
        limits = tool.limits
        call_id = run.call.call_id
        try:
            async with asyncio.timeout(limits.timeout_s) as scope:
                output = await tool.run(args, self.context)
            outcome = "ok"
        except TimeoutError as exc:
            if scope.expired():
                outcome, output = "timeout", limits.on_timeout
                log.warning(
                    "tool.timeout", tool=tool.name, call_id=call_id, timeout_s=limits.timeout_s
                )
            else:  # raised by the tool itself
                outcome, output = self._crashed(run, exc)
        except ToolCallError as exc:
            outcome = exc.reason
            output = limits.on_oversize if isinstance(exc, OutputTooLarge) else limits.on_error
            # The detail names the status or exception type, never values.
            log.warning(
                "tool.failed", tool=tool.name, call_id=call_id, reason=outcome, detail=exc.detail
            )
            log.debug("tool.failure", tool=tool.name, call_id=call_id, exc_info=exc)
        except Exception as exc:  # a tool's own bug must not leave the model waiting for ever
            outcome, output = self._crashed(run, exc)
        finally:
            if run.hold is not None:
                run.hold.cancel()
        self._finish(run, outcome, output, ran=True)

    def _crashed(self, run: ToolRun, exc: BaseException) -> tuple[str, str]:
        log.error(
            "tool.crashed",
            tool=run.tool.name,
            call_id=run.call.call_id,
            error=type(exc).__name__,
        )
        log.debug("tool.crash", tool=run.tool.name, call_id=run.call.call_id, exc_info=exc)
        return "error", run.tool.limits.on_error

    def _refuse(self, call: FunctionCall, started: float, label: str, detail: str) -> None:
        output = (
            f"error: {detail}. The tool was not run; call it again only with arguments that fit"
            " its parameters."
        )
        self._report(call, started, label, "invalid_arguments", output, ran=False, held=False)
        self._answer(call, output, reply=True)

    def _finish(
        self,
        run: ToolRun,
        outcome: str,
        output: str,
        *,
        ran: bool,
        reply: bool = True,
        answer: bool = True,
    ) -> None:
        if self._running.pop(run.call.call_id, None) is None:
            return  # already answered
        self._report(run.call, run.started, run.tool.name, outcome, output, ran=ran, held=run.held)
        if answer:
            self._answer(run.call, output, reply=reply)

    def _report(
        self,
        call: FunctionCall,
        started: float,
        label: str,
        outcome: str,
        output: str,
        *,
        ran: bool,
        held: bool,
    ) -> None:
        now = self.clock()
        seconds = now - started
        self.record.tool_calls.append(ToolCallRecord(call.name, outcome, seconds * 1000, held))
        self.record.say(now, "system", f"{call.name}({call.arguments}) -> {output}")
        if self.metrics is not None:
            self.metrics.tool_call(label, outcome, seconds if ran else None)
        log.info(
            "tool.finished",
            tool=label,
            call_id=call.call_id,
            outcome=outcome,
            ms=round(seconds * 1000, 1),
        )
        log.debug("tool.output", tool=call.name[:64], call_id=call.call_id, output=output)

    def _answer(self, call: FunctionCall, output: str, *, reply: bool) -> None:
        """Send the output; ask for a response unless one reply should wait or is coming."""
        self.realtime.send_function_output(call.call_id, output)
        waiting = any(r.call.response_id == call.response_id for r in self._running.values())
        if reply and not waiting and not self.caller_speaking():
            self.realtime.create_response()

    def _hold(self, run: ToolRun) -> None:
        run.hold = None
        if run.call.call_id not in self._running or self.caller_speaking():
            return
        run.held = True
        line = run.tool.limits.hold_line
        prompt = f"{HOLD_PROMPT} Say: {line!r}" if line else HOLD_PROMPT
        instructions = f"{self.instructions}\n\n{prompt}" if self.instructions else prompt
        log.info(
            "tool.holding",
            tool=run.tool.name,
            call_id=run.call.call_id,
            after_s=run.tool.limits.hold_after_s,
        )
        self.realtime.create_response({"instructions": instructions, "tool_choice": "none"})
