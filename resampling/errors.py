"""The resampling package's own exception tree (a leaf package: it imports nothing of ours).

::

    ResamplingError          audio or a request the resampling code cannot use
    ├── MalformedAudio       this buffer is wrong (odd bytes, dtype, channels don't divide it)
    ├── UnsupportedFormat    a sample rate or channel count the resampler does not handle
    ├── InvalidParameter     a bad argument (chunk size, quality, fade); also a ValueError
    └── InvalidState         a call at the wrong time (push after flush): a bug, not bad input

Every one is raised before anything changes: no audio already accepted is lost.
"""

from __future__ import annotations


class ResamplingError(Exception):
    """Root of every error the resampling package raises on purpose."""


class MalformedAudio(ResamplingError):
    """One buffer is wrong (odd byte count, wrong dtype, channels that don't divide it).

    The stream is unchanged: drop the buffer, count it, carry on.
    """

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem

    def __str__(self) -> str:
        return f"malformed audio: {self.problem}"


class UnsupportedFormat(ResamplingError):
    """A sample rate or channel count the resampler does not handle (for this whole stream)."""

    def __init__(self, what: str, value: object, supported: str) -> None:
        super().__init__(what, value, supported)
        self.what = what
        self.value = value
        self.supported = supported

    def __str__(self) -> str:
        return f"unsupported {self.what} {self.value!r} (supported: {self.supported})"


class InvalidParameter(ResamplingError, ValueError):
    """An argument the resampling code cannot work with (a chunk size, a quality, a fade)."""


class InvalidState(ResamplingError):
    """A call at a time it is not allowed (``push`` after ``flush``): a bug, not bad input."""
