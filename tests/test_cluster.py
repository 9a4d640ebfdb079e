"""The operating story on a real cluster: two LiveKit nodes sharing Redis, three pinned
``bridge start`` workers (``bridge.local.cluster``), callers as real rtc participants.

- Metrics: known label sets at zero before any call; audio seconds, tokens and cost grow after
  each response while the call runs; ``call.ended`` carries every id.
- Dispatch under load: a burst of rooms never gives a worker more than ``BRIDGE_MAX_SESSIONS``
  calls; jobs one worker refuses land on another; a job nobody can take leaves its room
  without an agent and is logged by the server.
- Rolling restart: SIGTERM with live calls; readiness drops, new rooms go to the others, the
  calls go on and end on their own, the worker exits; a second signal exits at once.
- Failures: a worker SIGKILLed mid-call (its call is picked up by another worker, with the
  conversation so far), a LiveKit node stopped (its rooms go on until they end).

The figures each test measures are printed (``-s``) and written to the cluster's work
directory (``figures.json``); the acceptance bounds are the issue's (no call lost).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from livekit import api

from bridge.local.cluster import ClusterConfig, ClusterWorker, LocalCluster
from bridge.local.livekit_server import Credentials
from bridge.room.caller import RoomCaller
from tests.realroom import PROFILES, require_livekit, room_name
from tests.test_real_room import join, listening
from tests.test_real_room_policies import CORRECTION, QUESTION

MAX_SESSIONS = 2
WORKERS = 3
FIGURES: dict[str, Any] = {}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    require_livekit()
    from tests import conftest

    assert conftest.NETNS is not None
    work = tmp_path_factory.mktemp("cluster")
    profiles = work / "profiles.toml"
    profiles.write_text(PROFILES)
    config = ClusterConfig(
        nodes=2, workers=WORKERS, max_sessions=MAX_SESSIONS, drain_timeout=120, profiles=profiles
    )
    with LocalCluster(work, conftest.NETNS.host, config) as running:
        yield running
    (work / "figures.json").write_text(json.dumps(FIGURES, indent=2))
    print(f"\ncluster figures: {json.dumps(FIGURES)}")


def figure(name: str, value: Any) -> None:
    FIGURES[name] = value
    print(f"{name}: {value}")


async def dispatch(cluster: LocalCluster, room: str, metadata: dict[str, Any]) -> None:
    creds = cluster.credentials
    async with api.LiveKitAPI(creds.http_url, creds.api_key, cluster.secret) as lk:
        await lk.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(
                agent_name=cluster.config.agent_name, room=room, metadata=json.dumps(metadata)
            )
        )


async def agents_in(cluster: LocalCluster, room: str) -> list[str]:
    creds = cluster.credentials
    async with api.LiveKitAPI(creds.http_url, creds.api_key, cluster.secret) as lk:
        try:
            found = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
        except api.TwirpError:
            return []
    return [p.identity for p in found.participants if p.kind == api.ParticipantInfo.Kind.AGENT]


async def delete_rooms(cluster: LocalCluster, rooms: list[str]) -> None:
    creds = cluster.credentials
    async with api.LiveKitAPI(creds.http_url, creds.api_key, cluster.secret) as lk:
        for room in rooms:
            try:
                await lk.room.delete_room(api.DeleteRoomRequest(room=room))
            except api.TwirpError:
                pass


async def until(condition: Any, timeout: float, what: str) -> None:
    """Wait for ``condition()`` (checked every 50 ms; ``timeout`` is a safety net)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def creds_of(cluster: LocalCluster, node: int) -> Credentials:
    c = cluster.nodes[node].credentials
    return Credentials(c.url, c.api_key, cluster.secret)


def calls_of(worker: ClusterWorker, room: str, event: str) -> list[dict[str, Any]]:
    return [r for r in worker.records(event) if r.get("room") == room]


def holder(cluster: LocalCluster, room: str) -> ClusterWorker:
    """The worker whose call in ``room`` started last."""
    found = [
        (r["timestamp"], w.index, w)
        for w in cluster.workers
        for r in calls_of(w, room, "call.started")
    ]
    assert found, f"no worker started a call in {room}"
    return max(found, key=lambda x: (x[0], x[1]))[2]


async def dispatch_served(cluster: LocalCluster, room: str, attempts: int = 6) -> int:
    """Dispatch as a careful backend does: again when no agent has started in the room
    within 10 s (a job goes to the first node that answers, which tries only its own
    workers; the server logs the failure, the dispatch API has said 200). Returns the
    attempts it took."""
    for attempt in range(1, attempts + 1):
        await dispatch(cluster, room, {"profile": "echo-test"})
        try:
            await until(
                lambda: any(calls_of(w, room, "call.started") for w in cluster.workers),
                10,
                f"an agent in {room}",
            )
            return attempt
        except AssertionError:
            continue
    raise AssertionError(f"{room}: no worker after {attempts} dispatches")


def replace_gone(cluster: LocalCluster) -> None:
    """Keep WORKERS workers running (a test that stopped or killed one starts another)."""
    while len(cluster.live_workers()) < WORKERS:
        cluster.add_worker()


async def idle(cluster: LocalCluster) -> None:
    """Until no live worker holds a call."""

    def none() -> bool:
        return all(w.metric("bridge_sessions_active") == 0 for w in cluster.live_workers())

    await until(none, 120, "every call to end")


async def say(caller: RoomCaller, words: np.ndarray, *, agent: str | None = None) -> None:
    """``caller`` says ``words``; until the agent (``agent``: that identity only) has spoken
    its reply and listens again."""

    def replies() -> int:
        return sum(
            1
            for s in caller.states
            if s.state == "speaking" and (agent is None or s.identity == agent)
        )

    before = replies()
    await caller.play(words)
    quiet = asyncio.ensure_future(caller.silence(30))
    try:
        await caller.until(
            lambda: (
                replies() > before
                and caller.states[-1].state == "listening"
                and (agent is None or caller.states[-1].identity == agent)
            ),
            30,
        )
    finally:
        quiet.cancel()


def metric_sum(cluster: LocalCluster, name: str, labels: dict[str, str] | None = None) -> float:
    return sum(w.metric(name, labels) or 0.0 for w in cluster.live_workers())


# ------------------------------------------------------------------------------- metrics


def test_known_label_sets_are_exported_at_zero_before_any_call(cluster: LocalCluster) -> None:
    worker = cluster.workers[0]
    expected = {
        ("bridge_sessions_total", "outcome", "ok"),
        ("bridge_sessions_total", "outcome", "failed"),
        ("bridge_sessions_total", "outcome", "drained"),
        ("bridge_audio_seconds_total", "direction", "in"),
        ("bridge_audio_seconds_total", "direction", "out"),
        ("bridge_frames_dropped_total", "direction", "in"),
        ("bridge_frames_dropped_total", "direction", "out"),
        ("bridge_tokens_total", "kind", "audio_in"),
        ("bridge_tokens_total", "kind", "text_out"),
        ("bridge_realtime_reconnects_total", "reason", "dropped"),
        ("bridge_realtime_reconnects_total", "reason", "rollover"),
        ("bridge_realtime_errors_total", "code", "rate_limit_exceeded"),
        ("bridge_cost_usd_total", "model", "gpt-realtime"),
        ("bridge_rescues_total", "action", "redispatched"),
    }
    for name, label, value in expected:
        assert worker.metric(name, {label: value}) == 0.0, f'{name}{{{label}="{value}"}}'
    assert worker.metric("bridge_cpu_pinned") == 1.0, "the harness pins each worker"
    assert worker.metric("bridge_max_sessions") == MAX_SESSIONS
    assert worker.metric("bridge_draining") == 0.0


async def test_counters_grow_after_each_response_and_call_ended_has_every_id(
    cluster: LocalCluster,
) -> None:
    room = room_name("metered")
    caller = await join(creds_of(cluster, 0), room, "metered-caller")
    try:
        await dispatch_served(cluster, room)
        await listening(caller)
        worker = holder(cluster, room)
        labels = (
            ("bridge_audio_seconds_total", {"direction": "in"}),
            ("bridge_audio_seconds_total", {"direction": "out"}),
            ("bridge_tokens_total", {"kind": "audio_in"}),
            ("bridge_tokens_total", {"kind": "audio_out"}),
            ("bridge_cost_usd_total", {"model": "gpt-realtime"}),
        )

        def sample() -> list[float]:
            return [worker.metric(name, lab) or 0.0 for name, lab in labels]

        seen = [sample()]
        for words in (QUESTION, CORRECTION):
            await say(caller, words)
            seen.append(sample())  # the call is still running: nothing has ended yet
        assert worker.metric("bridge_sessions_active") == 1.0
        for before, after in zip(seen, seen[1:], strict=False):
            grew = [b < a for b, a in zip(before, after, strict=True)]
            assert all(grew), f"counters after a response: {before} -> {after}"
        figure("metrics_after_each_response", seen)
    finally:
        await caller.aclose()
    await until(lambda: calls_of(worker, room, "call.ended"), 30, "call.ended")
    (ended,) = calls_of(worker, room, "call.ended")
    ids = {k: ended.get(k) for k in ("room", "job", "agent", "call", "session", "participant")}
    assert all(ids.values()), f"call.ended lacks ids: {ids}"
    assert ids["participant"] == "metered-caller" and ids["call"].startswith("call_")
    assert ended["outcome"] == "ok"


# ---------------------------------------------------------------------- dispatch under load


async def test_a_burst_never_overfills_a_worker(cluster: LocalCluster) -> None:
    """More rooms at once than the cluster holds: no worker ever takes more than its maximum;
    what LiveKit does not place (a job no node claims in time: "failed to send job request:
    no response from servers" in the server's log, while the dispatch API said 200) leaves
    its room without an agent; dispatched again one at a time, those rooms fill the free
    slots, and once the cluster is full a dispatch fails the same visible way."""
    await idle(cluster)
    workers = cluster.live_workers()
    capacity = MAX_SESSIONS * len(workers)
    rooms = [room_name("burst") for _ in range(capacity + 2)]
    since = {w.index: len(w.records()) for w in cluster.workers}
    creds = cluster.credentials
    async with api.LiveKitAPI(creds.http_url, creds.api_key, cluster.secret) as lk:
        for room in rooms:  # rooms that outlive the test's steps (an agent is not a human)
            await lk.room.create_room(api.CreateRoomRequest(name=room, empty_timeout=300))

    def started() -> dict[int, list[str]]:
        return {
            w.index: [r["room"] for r in w.records("call.started") if r.get("room") in rooms]
            for w in workers
        }

    def placed() -> int:
        return sum(len(v) for v in started().values())

    failures_before = failed_requests(cluster)

    def failed() -> int:
        return failed_requests(cluster) - failures_before

    try:
        await asyncio.gather(*(dispatch(cluster, r, {"profile": "echo-test"}) for r in rooms))
        # Settled: every room with an agent has its call started, and every other room's job
        # is in the server's log as not placed.
        deadline = time.monotonic() + 90
        while True:
            with_agent = {r for r in rooms if await agents_in(cluster, r)}
            started_in = {r for v in started().values() for r in v}
            if with_agent == started_in and failed() >= len(rooms) - len(with_agent):
                break
            assert time.monotonic() < deadline, (
                f"the burst never settled: {with_agent} {started_in}"
            )
            await asyncio.sleep(0.2)
        in_burst = placed()
        per_worker = started()
        assert all(len(v) <= MAX_SESSIONS for v in per_worker.values()), per_worker
        for worker in workers:
            assert (worker.metric("bridge_sessions_active") or 0) <= MAX_SESSIONS
        served = {r for v in per_worker.values() for r in v}
        unserved = [r for r in rooms if r not in served]
        assert len(served) <= capacity and len(unserved) >= len(rooms) - capacity
        assert failed() >= len(unserved), "every job not placed is in the server's log"
        for room in unserved:
            assert not await agents_in(cluster, room), f"{room} has an agent the logs missed"
        refused = {
            r["job"] for w in workers for r in w.records("job.refused")[since.get(w.index, 0) :]
        }
        figure(
            "burst",
            {
                "rooms": len(rooms),
                "capacity": capacity,
                "placed_by_the_burst": in_burst,
                "per_worker": {k: len(v) for k, v in per_worker.items()},
                "jobs_refused_by_a_full_worker": len(refused),
            },
        )
    finally:
        await delete_rooms(cluster, rooms)
    await idle(cluster)


def failed_requests(cluster: LocalCluster) -> int:
    """Job requests no LiveKit node claimed (each node logs the ones it sent)."""
    return sum(
        node.log_path.read_text(errors="replace").count('"failed to send job request"')
        for node in cluster.nodes
    )


# ----------------------------------------------------------------------- rolling restart


async def test_a_rolling_restart_loses_no_call(cluster: LocalCluster) -> None:
    await idle(cluster)
    rooms = [room_name("rolling") for _ in range(2)]
    callers = [await join(creds_of(cluster, k % 2), r, f"roller-{k}") for k, r in enumerate(rooms)]
    try:
        for room in rooms:
            await dispatch_served(cluster, room)
        await asyncio.gather(*(listening(c) for c in callers))
        by_worker: dict[int, list[int]] = {}
        for k, room in enumerate(rooms):
            by_worker.setdefault(holder(cluster, room).index, []).append(k)
        index, held = max(by_worker.items(), key=lambda kv: len(kv[1]))
        draining = next(w for w in cluster.workers if w.index == index)
        others = [w for w in cluster.live_workers() if w is not draining]

        signalled = time.monotonic()
        draining.signal(signal.SIGTERM)
        await until(lambda: not draining.ready(), 10, "readiness to drop")
        assert draining.metric("bridge_draining") == 1.0
        # A room created during the drain is served by another worker.
        fresh = room_name("rolling-new")
        newcomer = await join(creds_of(cluster, 1), fresh, "newcomer")
        try:
            attempts = await dispatch_served(cluster, fresh)
            await listening(newcomer)
            assert holder(cluster, fresh) in others
        finally:
            await newcomer.aclose()
        # The draining worker's callers go on talking and hear their replies.
        heard_replies = 0
        for k in held:
            await say(callers[k], CORRECTION)
            heard_replies += 1
        assert draining.running, "the worker exited with calls still running"
        for k in held:
            await callers[k].aclose()
        code = await asyncio.to_thread(draining.wait, 120)
        exited = time.monotonic() - signalled
        ended = [r for room in rooms for r in calls_of(draining, room, "call.ended")]
        lost = [r for r in ended if r["outcome"] != "ok"]
        assert code == 0 and not lost and len(ended) == len(held)
        figure(
            "rolling_restart",
            {
                "calls_on_the_worker": len(held),
                "calls_lost": len(lost),
                "callers_who_heard_silence": len(held) - heard_replies,
                "seconds_until_exit": round(exited, 1),
                "dispatches_for_the_room_created_meanwhile": attempts,
            },
        )
    finally:
        for c in callers:
            await c.aclose()
    replace_gone(cluster)


async def test_a_second_signal_exits_at_once(cluster: LocalCluster) -> None:
    await idle(cluster)
    room = room_name("second-signal")
    caller = await join(creds_of(cluster, 0), room, "impatient")
    try:
        await dispatch_served(cluster, room)
        await listening(caller)
        target = holder(cluster, room)
        target.signal(signal.SIGTERM)
        await until(lambda: not target.ready(), 10, "readiness to drop")
        second = time.monotonic()
        target.signal(signal.SIGTERM)
        code = await asyncio.to_thread(target.wait, 30)
        figure("second_signal_exit_s", round(time.monotonic() - second, 2))
        assert code == 1 and target.records("worker.forced_exit")
    finally:
        await caller.aclose()
    replace_gone(cluster)


# ------------------------------------------------------------------------------ failures


async def test_a_killed_workers_call_is_picked_up_by_another(cluster: LocalCluster) -> None:
    """SIGKILL mid-call: LiveKit forgets the job; the workers' store notices the call stopped
    beating and dispatches the agent again; the new agent knows the conversation so far."""
    await idle(cluster)
    room = room_name("killed")
    caller = await join(creds_of(cluster, 0), room, "survivor")
    try:
        await dispatch_served(cluster, room)
        await listening(caller)
        await say(caller, QUESTION)
        victim = holder(cluster, room)
        first_agent = caller.states[-1].identity
        killed = time.monotonic()
        victim.signal(signal.SIGKILL)
        victim.wait(10)

        def back() -> float | None:
            for s in caller.states:
                if s.identity != first_agent and s.state == "listening" and s.at > killed:
                    return s.at
            return None

        await until(lambda: back() is not None, 60, "a new agent to listen")
        wait_s = (back() or killed) - killed
        second_agent = caller.states[-1].identity
        await say(caller, CORRECTION, agent=second_agent)
        rescuer = [
            w
            for w in cluster.workers
            if any(r.get("room") == room for r in w.records("rescue.redispatched"))
        ]
        assert rescuer, "no worker redispatched the orphaned call"
        new_holder = holder(cluster, room)
        assert new_holder is not victim
        (resumed,) = calls_of(new_holder, room, "call.resumed")
        assert resumed["lines"] >= 1
        journal = cluster.sim.journal
        assert journal is not None
        updates = [
            json.loads(line)["frame"]
            for line in journal.read_text().splitlines()
            if '"session.update"' in line and "You were cut off" in line
        ]
        assert updates, "the replacement's session was not told the conversation so far"
        figure("sigkill_caller_wait_s", round(wait_s, 2))
    finally:
        await caller.aclose()
    replace_gone(cluster)


async def test_a_stopped_node_keeps_its_rooms_until_they_end(cluster: LocalCluster) -> None:
    """SIGTERM to a LiveKit node: it stops taking rooms but keeps its participants; its call
    goes on and ends normally, new rooms go to the other node, then the node exits."""
    await idle(cluster)
    room = room_name("node-stop")
    caller = await join(creds_of(cluster, 0), room, "node-caller")
    node = None
    try:
        await dispatch_served(cluster, room)
        await listening(caller)
        node = host_node(cluster, room)
        stopping = cluster.nodes[node]
        assert stopping._process is not None
        process = stopping._process
        stopped = time.monotonic()
        process.send_signal(signal.SIGTERM)
        await say(caller, QUESTION)  # still bridged, through the stopping node
        other = 1 - node
        fresh = room_name("node-stop-new")
        newcomer = await join(creds_of(cluster, other), fresh, "node-newcomer")
        try:
            await dispatch_served(cluster, fresh)
            await listening(newcomer)
        finally:
            await newcomer.aclose()
        assert process.poll() is None, "the node exited with a call on it"
        await caller.aclose()
        await asyncio.to_thread(process.wait, 60)
        figure("node_stop_exit_after_last_call_s", round(time.monotonic() - stopped, 1))
        (ended,) = calls_of(holder(cluster, room), room, "call.ended")
        assert ended["outcome"] == "ok"
    finally:
        await caller.aclose()
        if node is not None:
            cluster.nodes[node].stop()
            cluster.nodes[node].start()  # the same ports: its workers reconnect
    await until(
        lambda: all(w.ready() for w in cluster.live_workers()), 60, "workers to re-register"
    )


def host_node(cluster: LocalCluster, room: str) -> int:
    """The node the cluster put ``room`` on (from the nodes' logs)."""
    ids = {}
    placed = None
    for k, node in enumerate(cluster.nodes):
        for line in node.log_path.read_text(errors="replace").splitlines():
            if '"starting LiveKit server"' in line:
                ids[json.loads(line)["nodeID"]] = k
            elif '"selected node for room"' in line and f'"room":"{room}"' in line:
                placed = json.loads(line)["selectedNodeID"]
    assert placed in ids, f"no node took {room}"
    return ids[placed]
