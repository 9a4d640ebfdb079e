"""A bridge pod: the process ``bridge start`` runs.

The job entrypoint (``agent``), ``livekit-agents``' own worker with honest capacity and a
clean drain (``worker``), metrics and health endpoints (``health``), and settings from the
environment (``settings``: the only module of the bridge that reads environment variables).
"""
