"""Errors only the bridge raises, and how the bridge groups its packages' errors.

Each package keeps its own tree: ``resampling.errors`` (a leaf), ``sessions.errors`` (which
may use resampling), and this one for what only the bridge knows about: settings from the
environment, profiles, dispatch metadata, audio files, benchmarks::

    BridgeError
    ├── ConfigError              a setting, profile, metadata value or input file is unacceptable
    │   ├── MissingSetting       a required environment variable is not set
    │   ├── ProfileError         a profiles file is wrong (names file, profile, field)
    │   └── MetadataError        dispatch metadata is unacceptable
    ├── LiveKitUnreachable       the worker gave up reaching its LiveKit server
    └── BenchmarkError           a ``bridge bench`` phase could not be run or measured

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
    """A profiles file is wrong; names the file, the profile and the field."""

    def __init__(self, message: str, *, file: str, profile: str = "", field: str = "") -> None:
        super().__init__(message, file, profile, field)
        self.message = message
        self.file = file
        self.profile = profile
        self.field = field

    def __str__(self) -> str:
        where = self.file
        if self.profile:
            where += f": profile {self.profile!r}"
        if self.field:
            where += f", field {self.field!r}"
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
