"""Streaming sample-rate conversion to and from 24 kHz mono PCM16 (numpy + soxr, no asyncio)."""
