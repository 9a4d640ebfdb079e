"""``python`` tools: a ``module:function`` of the deployment's own code, imported at start-up.

The function is called with the validated arguments as keyword arguments and returns the
output: a string as it is, anything else as JSON. Neither kind may block the calls of the
process, which share one event loop (the media loop):

- an ``async def`` runs on the *tool loop*, one event loop in a daemon thread shared by every
  Python tool of the process; cancelling the call (barge-in, timeout, the call ending) cancels
  it there. A coroutine that blocks holds up other tools, never audio.
- a plain ``def`` runs in a daemon thread of its own (at most :data:`MAX_THREADS` at once;
  beyond that a call waits, within its timeout). A thread cannot be interrupted: when the call
  is cancelled or times out, the function goes on in the background and its result is dropped.

What a declaration is checked for at start-up (:func:`load_function`): the module imports, the
attribute exists and is callable, and its signature accepts every declared parameter.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, cast

from bridge.call.tools import Tool, ToolContext, ToolLimits
from bridge.errors import ToolFailed
from sessions.session_config import FunctionTool

MAX_THREADS = 32


class PythonTool(Tool):
    """Call ``function(**arguments)``; sync functions in a thread, async ones on the tool loop."""

    kind = "python"

    def __init__(
        self,
        declaration: FunctionTool,
        limits: ToolLimits,
        *,
        target: str,
        function: Callable[..., Any],
    ) -> None:
        super().__init__(declaration, limits)
        self.target = target
        self.function = function
        self.is_async = inspect.iscoroutinefunction(function)

    def __repr__(self) -> str:
        return f"<PythonTool {self.name!r} {self.target}>"

    async def run(self, args: Mapping[str, Any], ctx: ToolContext) -> str:
        try:
            if self.is_async:
                value = await tool_loop().run(self.function(**args))
            else:
                value = await run_in_thread(functools.partial(self.function, **args))
        except Exception as exc:  # the function's own failure: the model gets on_error
            raise ToolFailed(self.name, f"{self.target} raised {type(exc).__name__}") from exc
        return self.output(value)


def load_function(
    target: str, properties: Iterable[str], required: Iterable[str]
) -> Callable[..., Any]:
    """Import ``module:function`` and check it fits the declared parameters.

    It must accept every declared property as a keyword, and each parameter it cannot do
    without must be a ``required`` property (the model may leave the others out). Raises
    ``ValueError`` with a message fit for a :class:`~bridge.errors.ProfileError`.
    """
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{target!r} must be 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # anything the module raises while importing
        raise ValueError(
            f"module {module_name!r} does not import ({type(exc).__name__}: {exc})"
        ) from None
    function: Any = module
    for part in attribute.split("."):
        function = getattr(function, part, None)
        if function is None:
            raise ValueError(f"module {module_name!r} has no {attribute!r}")
    if not callable(function):
        raise ValueError(f"{target!r} is not callable")
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return cast(Callable[..., Any], function)  # a builtin without a signature: trusted
    names = list(properties)
    try:
        signature.bind_partial(**dict.fromkeys(names))
    except TypeError as exc:
        raise ValueError(f"{target} cannot take the declared parameters {names}: {exc}") from None
    needed = set(required)
    missing = [
        p.name
        for p in signature.parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and p.name not in needed
    ]
    if missing:
        raise ValueError(
            f"{target} cannot do without {missing}, which the parameters do not require"
        )
    return cast(Callable[..., Any], function)


class ToolLoop:
    """An event loop in a daemon thread, where the async Python tools of the process run."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="bridge-tool-loop", daemon=True
        )
        self._thread.start()

    async def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Await ``coro`` on the tool loop; cancelling this await cancels it there."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return await asyncio.wrap_future(future)


_tool_loop: ToolLoop | None = None
_tool_loop_lock = threading.Lock()
_threads = threading.BoundedSemaphore(MAX_THREADS)


def tool_loop() -> ToolLoop:
    """The process's tool loop (started on first use)."""
    global _tool_loop
    with _tool_loop_lock:
        if _tool_loop is None:
            _tool_loop = ToolLoop()
        return _tool_loop


async def run_in_thread(function: Callable[[], Any]) -> Any:
    """``function()`` in a daemon thread (never joined: a hung tool cannot hold up exit)."""
    loop = asyncio.get_running_loop()
    while not _threads.acquire(blocking=False):
        await asyncio.sleep(0.05)  # all threads busy with hung tools: wait, within the timeout
    future: asyncio.Future[Any] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.done():
            return  # cancelled or timed out meanwhile: the result is dropped
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def work() -> None:
        try:
            value = function()
        except BaseException as exc:  # handed back to the awaiting call as it is
            outcome: tuple[bool, Any] = (False, exc)
        else:
            outcome = (True, value)
        finally:
            _threads.release()
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:
            pass  # the call's loop is closed: nobody is waiting

    threading.Thread(target=work, name="bridge-tool", daemon=True).start()
    return await future
