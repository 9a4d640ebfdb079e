"""Everything about one conversation with a Realtime API endpoint.

The package never imports ``livekit`` and never reads environment variables. Its modules:

- ``errors``: the project's exception tree (imports nothing);
- ``events``, ``protocol``: the sans-I/O protocol core (JSON frames in, typed events out);
- ``config``: the frozen session configuration rendered to ``session.update``;
- ``endpoint``, ``connection``, ``outbound``: the WebSocket client;
- ``session``, ``usage``: one configured conversation, its audio chunking and its cost;
- ``turns``: the sans-I/O turn core (who has the floor; barge-in as actions);
- ``continuity``: the sans-I/O continuity core (rollover, reconnect, stall, keepalive, on
  an injected ``now``); ``supervisor`` pumps it over sockets, with ``replay`` and
  ``audio_log``;
- ``simulator``: a local server that speaks the same protocol.

Import from the submodules; this file stays empty so that importing ``sessions.errors``
costs nothing.
"""
