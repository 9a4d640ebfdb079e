"""One bridged call, whatever the room: the per-call hot path and what configures it.

:class:`~bridge.call.call.Call` wires who is heard (``room_input``, ``mixer``), the agent's
audio (``playout``), captions and agent state (``captions``), the figures (``records``,
``latency``), profiles (``profiles``, ``default_profiles.toml``) and tools (``tools``) to a
Realtime conversation (``sessions``). It talks to the room only through the seam in
:mod:`bridge.room` and never imports the pod, local runs or the bench.
"""
