"""The seam between a call and the ``livekit`` SDK.

What a call needs of its own participant (``participant``), audio in and out of the SDK
with each FFI event routed to its one consumer (``routed_audio``), the process's media loop
(``media_loop``), a room without a server for ``bridge try`` and the tests (``loopback``), a
track recorded as a participant receives it (``listener``), and a caller as a real
participant of a LiveKit room (``caller``). Imports nothing from the
call, the pod, local runs or the bench.
"""
