"""Local runs: one conversation with a recording as the caller (``bridge try``, ``demo``).

``trial`` plays a recording through a whole call (on the loopback room, or through a real
LiveKit server) and records what the caller heard; ``wavfile`` reads and writes the WAV files.
"""
