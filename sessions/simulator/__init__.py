"""A local server that speaks the OpenAI Realtime API (GA, and beta on the Azure preview path).

Used by the tests, by ``bridge try``/``bridge demo`` (in process) and by ``bridge bench`` and
``bridge sim`` (as a process)::

    from sessions.simulator import Simulator, SimulatorConfig, parse_fault

    config = SimulatorConfig(behavior="echo", faults=(parse_fault("drop@agent_speaking"),))
    async with Simulator(config, host="127.0.0.1", port=0) as sim:
        sim.url    # "ws://127.0.0.1:PORT/v1"; clients append /realtime?model=...
        sim.stats  # connections, faults fired, responses, cancellations, errors by code ...

Modules, from the wire inwards:

- ``server``: handshake, per-connection reader/pacer/writer, timers, fault execution;
- ``model``: one connection's model as a sans-I/O state machine (JSON in, events out);
- ``settings``: the session object, ``session.update`` validation and merging;
- ``conversation``: items and client-created items; ``behaviors``: what the model says;
- ``vad``: the energy VAD in audio time; ``audio``: formats, G.711, synthetic speech;
- ``dialect``: the beta names and shapes; ``wire``: ids and error events;
- ``faults``: fault specs, their grammar and their counts; ``journal``: observers and the
  JSON-lines journal; ``stats``: counters; ``config``: ``SimulatorConfig``.
"""

from .config import Behavior, SimulatorConfig
from .faults import FaultKind, FaultSpec, Phase, parse_fault
from .journal import add_observer, remove_observer
from .server import Simulator
from .stats import SimulatorStats

__all__ = [
    "Behavior",
    "FaultKind",
    "FaultSpec",
    "Phase",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "add_observer",
    "parse_fault",
    "remove_observer",
]
