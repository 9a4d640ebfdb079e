"""``bridge console``: a local web page for developers tuning profiles, against a real room.

The page (``index.html`` and the bundle built from ``web/`` into ``static/``) joins a fresh
LiveKit room with the browser's microphone, through LiveKit's own ``livekit-client`` and the
stock frontends' client-side helpers (``@livekit/components-core``). Its server
(:mod:`bridge.console.server`) mints a short-lived token per join from the environment's key
and secret, dispatches the agent by name with the chosen profile and overrides as dispatch
metadata (:mod:`bridge.console.joins`), and serves the page (:mod:`bridge.console.assets`).
"""
