"""Local runs: one conversation with a recording as the caller (``bridge try``, ``demo``).

``trial`` plays a recording through a whole call (on the loopback room, or through a real
LiveKit server) and records what the caller heard; ``wavfile`` reads and writes the WAV files.

An impaired network on one machine (``bridge bench --impairment``, its tests):
``impairment`` (what the network does to each packet, sans I/O), ``tun_link`` (the link: TUN
devices in two namespaces, a process between them), ``probe`` (what it really did, measured);
callers behind it: ``caller_script`` (what a caller says and when, from what it hears),
``ws_caller`` (the official SDK's WebSocket and a browser's playout), ``impaired_caller`` (a
caller process, WebRTC or WebSocket), ``impaired_call`` (one call run and measured from
outside); ``heard`` reads what callers experienced from their recordings.
"""
