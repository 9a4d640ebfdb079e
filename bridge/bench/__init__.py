"""``bridge bench``: capacity and latency, side by side with LiveKit Agents' OpenAI plugin.

N concurrent calls run in one bridge process (or, with ``--executor process``, one process
per call, as livekit-agents' own job executor does it) against the simulator running in a
separate process, so its CPU is not counted. Each call is a caller loopback playing a seeded,
reactive pattern (utterances, pauses, barge-ins at random moments of the agent's reply), an
engine, and a listener loopback recording the agent. Both engines get the same audio, the
same simulator and the same measurements.

Modules, from the outside in:

- ``runner``: the orchestration in the ``bridge bench`` process: the simulator process, one
  worker process per measured phase (the loopback-only floor, then the engine), the progress
  display, the summary, the capacity search;
- ``phase``: one measured phase in its own process: ``livekit-agents``' ``AgentServer``
  (unregistered, fake jobs) with the chosen executor, CPU and memory sampling;
- ``job``: one call inside a job: loopbacks, engine, probes; writes its figures to a file;
- ``engines``: the engines (``bridge``, ``livekit-plugin``) and the loopback-only floors;
  ``plugin_room``: the small stand-in ``rtc.Room`` LiveKit's ``RoomIO`` runs on;
- ``pattern``: what the caller says and when; ``meter``: the probes (engine-agnostic where
  the truth is in the room: the listener's audio); ``stalls``: event-loop and GC pauses;
- ``summary``: pooled figures per phase, the JSON fields; ``report``: table and SVG chart.

The smaller benchmarks live here too: ``pipeline`` (the bridge's own latencies at one
session), ``protocol`` (the protocol core's hot path), ``resampling_report`` with
``resampling_measure`` (every resampling mode against the SDK's).
"""
