"""A LiveKit cluster on one machine: Redis, LiveKit nodes sharing it, and bridge workers.

For tests (``tests/test_cluster.py``) and for ops to try the operating story for real::

    python -m bridge.local.cluster --nodes 2 --workers 3 --max-sessions 2

starts, inside a network namespace of its own (created, entered and removed again; root and
iproute2 needed, as for every real-room run here):

- Redis (Debian's ``redis-server``) on the namespace's loopback, no persistence;
- ``--nodes`` ``livekit-server`` processes sharing it, each with its own ports (signalling
  7980, 7990, ...; one UDP mux port each), bound to the namespace's veth address, one key;
- a ``bridge sim`` (the Realtime simulator, echo) standing in for the Realtime API;
- ``--workers`` ``bridge start`` processes, each pinned to one CPU (``sched_setaffinity``,
  what the static CPU manager policy gives a Guaranteed pod), each registered with one node
  (worker *i* with node *i* mod nodes), all sharing the Redis call store
  (``BRIDGE_REDIS_URL``: ``bridge.pod.handover``), each with its own metrics port (9200 + i)
  and livekit-agents health port (any free one).

It prints where everything is and how to dispatch a room, then runs until Ctrl-C or SIGTERM
and stops everything (workers first, with their drain). Under ``ip netns exec NAME`` (the
name is printed) any ``bridge try --livekit-url ... --agent-name ...`` or ``lk`` command
reaches it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.errors import BridgeError
from bridge.local import processes
from bridge.local.livekit_server import Credentials, LocalLiveKit, Ports
from bridge.local.redis_server import LocalRedis
from bridge.pod.settings import child_environment

REPO_ROOT = Path(__file__).resolve().parents[2]
AGENT_NAME = "bridge-cluster"
REDIS_PORT = 6379
METRICS_BASE_PORT = 9200
NODE_PORT_STEP = 10  # node k: its ports 10k above node 0's
NODE_PORT_OFFSET = 100  # node 0: 7980 (signalling), 7981 (TCP), 7982 (UDP): clear of a 7880 one


class ClusterError(BridgeError):
    """A part of the local cluster did not start."""


def _wait(condition: Any, what: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise ClusterError(f"{what} exited at start (status {process.returncode})")
        if time.monotonic() > deadline:
            raise ClusterError(f"{what} did not start within {timeout:.0f} s")
        time.sleep(0.05)


@dataclass
class SimServer:
    """``bridge sim`` (echo) in a process of its own; ``url`` once started."""

    workdir: Path
    journal: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    url: str = ""

    def start(self) -> None:
        argv = [sys.executable, "-m", "bridge", "sim", "--port", "0"]
        if self.journal is not None:
            argv += ["--journal", str(self.journal)]
        with (self.workdir / "sim.stderr").open("ab") as stderr:
            self.process = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=child_environment(fresh=True),
            )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().strip()
        prefix = "realtime simulator listening on "
        if not line.startswith(prefix):
            raise ClusterError(f"bridge sim did not start: {line!r}")
        self.url = line.removeprefix(prefix)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()


@dataclass
class ClusterWorker:
    """One ``bridge start`` process of the cluster."""

    index: int
    node: int  # the LiveKit node it registered with
    cpu: int | None  # the CPU it is pinned to
    metrics_port: int
    log: Path
    env: dict[str, str] = field(repr=False)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cpu = self.cpu

        def pin() -> None:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})

        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bridge", "start"],
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                preexec_fn=pin,  # noqa: PLW1509 - affinity only, before exec
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _get(self, path: str, timeout: float = 2) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.metrics_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as reply:
                return int(reply.status), reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def ready(self) -> bool:
        try:
            return self._get("/readyz", 1)[0] == 200
        except OSError:
            return False

    def metrics(self) -> str:
        return self._get("/metrics")[1]

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """One sample's value from ``/metrics`` (None when absent)."""
        wanted = name
        if labels:
            wanted += "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
        for line in self.metrics().splitlines():
            if line.startswith(wanted + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def records(self, event: str | None = None) -> list[dict[str, Any]]:
        """Its JSON log records so far (those named ``event`` only, when given)."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if event is None or record.get("event") == event:
                        found.append(record)
        return found

    def signal(self, sig: int) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(sig)

    def wait(self, timeout: float | None = None) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM (drain), then SIGKILL after ``timeout``."""
        if self.process is None:
            return None
        return processes.stop(self.process, timeout)


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    nodes: int = 2
    workers: int = 3
    max_sessions: int = 2
    drain_timeout: int = 600
    agent_name: str = AGENT_NAME
    profiles: Path | None = None  # None: the built-in profiles
    pin: bool = True  # one CPU per worker (CPU i mod the CPUs this process may use)
    empty_room_grace: float = 2.0
    redis_port: int = REDIS_PORT
    metrics_base_port: int = METRICS_BASE_PORT
    node_port_offset: int = NODE_PORT_OFFSET
    extra_env: tuple[tuple[str, str], ...] = ()


class LocalCluster:
    """Redis, LiveKit nodes, a simulator and bridge workers; a context manager.

    Runs in the caller's network namespace (the test run's, or the one ``main`` makes):
    ``bind`` is that namespace's veth address.
    """

    def __init__(self, workdir: Path, bind: str, config: ClusterConfig = ClusterConfig()):
        self.workdir = workdir
        self.bind = bind
        self.config = config
        self.secret = secrets.token_urlsafe(32)
        self.redis = LocalRedis(workdir / "redis", port=config.redis_port)
        self.nodes = [
            LocalLiveKit(
                workdir / f"node{k}",
                bind=bind,
                ports=Ports().shifted(config.node_port_offset + NODE_PORT_STEP * k),
                redis=self.redis.address,
                name=f"livekit-node{k}",
                api_secret=self.secret,
            )
            for k in range(config.nodes)
        ]
        self.sim = SimServer(workdir, journal=workdir / "sim-journal.jsonl")
        self.workers: list[ClusterWorker] = []
        self._spawned = 0

    @property
    def credentials(self) -> Credentials:
        """Node 0's address and the cluster's key (every node takes it)."""
        return self.nodes[0].credentials

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.redis.start()
        for node in self.nodes:
            node.start()
        self.sim.start()
        started = [self.add_worker(wait=False) for _ in range(self.config.workers)]
        for worker in started:
            self.wait_ready(worker)

    def add_worker(self, *, wait: bool = True, **env: str) -> ClusterWorker:
        """Start one more worker (each gets the next index, node, CPU and metrics port)."""
        config, index = self.config, self._spawned
        self._spawned += 1
        node = self.nodes[index % len(self.nodes)]
        cpus = sorted(os.sched_getaffinity(0))
        worker_env = child_environment(
            fresh=True,
            LIVEKIT_URL=node.credentials.url,
            LIVEKIT_API_KEY=node.credentials.api_key,
            LIVEKIT_API_SECRET=self.secret,
            LIVEKIT_AGENT_NAME=config.agent_name,
            BRIDGE_REALTIME_URL=self.sim.url,
            BRIDGE_METRICS_PORT=str(config.metrics_base_port + index),
            BRIDGE_LIVEKIT_HEALTH_PORT="0",
            BRIDGE_MAX_SESSIONS=str(config.max_sessions),
            BRIDGE_DRAIN_TIMEOUT=str(config.drain_timeout),
            BRIDGE_EMPTY_ROOM_GRACE=str(config.empty_room_grace),
            BRIDGE_REDIS_URL=f"redis://{self.redis.address}/0",
            BRIDGE_LOG_FORMAT="json",
            **dict(config.extra_env),
            **env,
        )
        if config.profiles is not None:
            worker_env["BRIDGE_PROFILES"] = str(config.profiles)
        worker = ClusterWorker(
            index=index,
            node=index % len(self.nodes),
            cpu=cpus[index % len(cpus)] if config.pin else None,
            metrics_port=config.metrics_base_port + index,
            log=self.workdir / f"worker{index}.log",
            env=worker_env,
        )
        worker.start()
        self.workers.append(worker)
        if wait:
            self.wait_ready(worker)
        return worker

    def wait_ready(self, worker: ClusterWorker, timeout: float = 90) -> None:
        assert worker.process is not None
        try:
            _wait(worker.ready, f"bridge start (worker {worker.index})", worker.process, timeout)
        except ClusterError as exc:
            tail = "\n".join(worker.log.read_text(errors="replace").splitlines()[-20:])
            raise ClusterError(f"{exc}:\n{tail}") from None

    def live_workers(self) -> list[ClusterWorker]:
        return [w for w in self.workers if w.running]

    def stop(self) -> None:
        """Workers (SIGTERM, all at once), then the simulator, the nodes and Redis."""
        stoppers = [threading.Thread(target=w.stop, args=(30,)) for w in self.workers]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()
        self.sim.stop()
        for node in self.nodes:
            node.stop(timeout=5)
        self.redis.stop()

    def describe(self) -> str:
        creds = self.credentials
        lines = [
            f"redis      {self.redis.address}",
            *(
                f"node {k}     {n.credentials.url} (log {n.log_path})"
                for k, n in enumerate(self.nodes)
            ),
            f"api key    {creds.api_key}",
            f"api secret {self.secret}",
            f"realtime   {self.sim.url} (bridge sim, echo)",
            *(
                f"worker {w.index}   pid {w.pid}, node {w.node}, cpu {w.cpu},"
                f" http://127.0.0.1:{w.metrics_port}/metrics, log {w.log}"
                for w in self.workers
            ),
            f"agent name {self.config.agent_name} (explicit dispatch)",
        ]
        return "\n".join(lines)


@contextlib.contextmanager
def own_namespace(name: str) -> Iterator[str]:
    """A fresh network namespace entered by this thread; yields its veth address."""
    from bridge.local import netns

    namespace = netns.create(name)
    try:
        namespace.enter()
        yield namespace.host
    finally:
        namespace.delete()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.local.cluster", description=__doc__)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--max-sessions", type=int, default=2)
    parser.add_argument("--drain-timeout", type=int, default=600)
    parser.add_argument("--profiles", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(f"/tmp/bridge-cluster-{os.getpid()}")
    config = ClusterConfig(
        nodes=args.nodes,
        workers=args.workers,
        max_sessions=args.max_sessions,
        drain_timeout=args.drain_timeout,
        profiles=args.profiles,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    name = f"bridge-cluster-{os.getpid()}"
    try:
        with own_namespace(name) as host, LocalCluster(workdir, host, config) as cluster:
            print(f"local cluster up in network namespace {name} (files in {workdir})")
            print(cluster.describe())
            creds = cluster.credentials
            print(
                "\ntry a call:\n"
                f"  LIVEKIT_API_KEY={creds.api_key} LIVEKIT_API_SECRET={cluster.secret} \\\n"
                f"  ip netns exec {name} bridge try --livekit-url {creds.url}"
                f" --agent-name {config.agent_name} --input caller.wav --output agent.wav\n"
                "Ctrl-C stops everything.",
                flush=True,
            )
            stop.wait()
            print("stopping (workers drain first)", flush=True)
    except BridgeError as exc:
        print(f"bridge.local.cluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
