"""Errors only the bridge raises, and how the bridge groups its packages' errors.

Each package keeps its own tree: ``resampling.errors`` (a leaf), ``sessions.errors`` (which
may use resampling), and this one for what only the bridge knows about: settings from the
environment, profiles, dispatch metadata, audio files, benchmarks, the tools a profile offers::

    BridgeError
    ├── ConfigError              a setting, profile, metadata value or input file is unacceptable
    │   ├── MissingSetting       a required environment variable is not set
    │   ├── ProfileError         a profiles file is wrong (names file, profile, tool, field)
    │   └── MetadataError        dispatch metadata is unacceptable
    ├── ToolCallError            one call of a tool could not give the model an answer
    │   ├── InvalidArguments     the model's arguments do not fit the tool's schema (not run)
    │   ├── ToolFailed           the tool ran and failed (an exception, an HTTP error status)
    │   └── OutputTooLarge       the tool's output (an HTTP body) is over its cap
    ├── LiveKitUnreachable       the worker gave up reaching its LiveKit server
    └── BenchmarkError           a ``bridge bench`` phase could not be run or measured

A :class:`ToolCallError` never leaves the call: the tool runner turns it into the text the
model gets back (``bridge.call.tool_runner``).

:data:`BAD_CONFIGURATION` is every package's "the configuration is wrong" (the command line
exits 2 on them); :data:`EXPECTED` is every error any package raises on purpose (a message,
never a traceback).
"""

from __future__ import annotations

from resampling.errors import InvalidParameter, ResamplingError
from sessions.errors import ConfigError as SessionConfigError, RealtimeError


class BridgeError(Exception):
    """Root of every error the bridge itself raises on purpose."""


class ConfigError(BridgeError):
    """A setting, profile, metadata value or input file is unacceptable."""


class MissingSetting(ConfigError):
    """A required environment variable is not set."""

    def __init__(self, variable: str, purpose: str = "") -> None:
        super().__init__(variable, purpose)
        self.variable = variable
        self.purpose = purpose

    def __str__(self) -> str:
        why = f" ({self.purpose})" if self.purpose else ""
        verb = "are" if "," in self.variable else "is"
        return f"{self.variable} {verb} not set{why}"


class ProfileError(ConfigError):
    """A profiles file is wrong; names the file, the profile, the tool (if any) and the field.

    ``field`` is relative to the tool when ``tool`` is set (``url``, ``headers.Authorization``).
    """

    def __init__(
        self, message: str, *, file: str, profile: str = "", field: str = "", tool: str = ""
    ) -> None:
        super().__init__(message, file, profile, field, tool)
        self.message = message
        self.file = file
        self.profile = profile
        self.field = field
        self.tool = tool

    def __str__(self) -> str:
        parts = [f"profile {self.profile!r}"] if self.profile else []
        if self.tool:
            parts.append(f"tool {self.tool!r}")
        if self.field:
            parts.append(f"field {self.field!r}")
        where = f"{self.file}: {', '.join(parts)}" if parts else self.file
        return f"{where}: {self.message}"


class MetadataError(ConfigError):
    """Dispatch metadata is unacceptable (invalid JSON, unknown profile, a field not allowed)."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message, field)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        if self.field:
            return f"dispatch metadata, field {self.field!r}: {self.message}"
        return f"dispatch metadata: {self.message}"


class ToolCallError(BridgeError):
    """One call of a tool could not give the model an answer; ``reason`` is a metric label."""

    reason = "error"

    def __init__(self, tool: str, detail: str) -> None:
        super().__init__(tool, detail)
        self.tool = tool
        self.detail = detail

    def __str__(self) -> str:
        return f"tool {self.tool!r}: {self.detail}"


class InvalidArguments(ToolCallError):
    """The model's arguments are not JSON, not an object, or do not fit the tool's schema.

    ``detail`` is for the model (it may quote the values); ``where`` (a JSON path in the
    arguments) and ``rule`` (the schema keyword that failed) are for logs. The tool never ran.
    """

    reason = "invalid_arguments"

    def __init__(self, tool: str, detail: str, *, where: str = "", rule: str = "") -> None:
        super().__init__(tool, detail)
        self.where = where
        self.rule = rule


class ToolFailed(ToolCallError):
    """The tool ran and failed: it raised, or its HTTP endpoint answered with an error status."""

    reason = "error"


class OutputTooLarge(ToolCallError):
    """The tool's output is larger than its ``max_output_bytes``."""

    reason = "oversize"


class LiveKitUnreachable(BridgeError):
    """``bridge start`` gave up reaching its LiveKit server (names the URL, the attempts made
    and the cause of the last failure; never a key)."""

    def __init__(self, url: str, attempts: int, cause: str) -> None:
        super().__init__(url, attempts, cause)
        self.url = url
        self.attempts = attempts
        self.cause = cause

    def __str__(self) -> str:
        tries = f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}"
        return f"cannot reach LiveKit at {self.url}: {self.cause} (gave up after {tries})"


class BenchmarkError(BridgeError):
    """A benchmark phase could not be run or measured (its worker failed or timed out)."""


BAD_CONFIGURATION: tuple[type[Exception], ...] = (
    ConfigError,
    SessionConfigError,
    InvalidParameter,
)
EXPECTED: tuple[type[Exception], ...] = (BridgeError, RealtimeError, ResamplingError)
