"""Settings from the environment: the only place the bridge reads (or sets) environment
variables.

Secrets (API keys, secrets, tokens) are registered with ``bridge.logs`` as they are read, so
they are scrubbed from every log record, and they are kept out of ``repr``.

LiveKit (for ``bridge start`` / ``bridge dev``):
  ``LIVEKIT_URL``, ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET`` (required),
  ``LIVEKIT_AGENT_NAME`` (explicit dispatch; empty = automatic dispatch).
Realtime API (first match wins):
  ``BRIDGE_REALTIME_URL`` — any compatible server (e.g. ``bridge sim``), with
  ``OPENAI_API_KEY`` as its key when set;
  ``AZURE_OPENAI_ENDPOINT`` + ``AZURE_OPENAI_API_KEY`` (or ``AZURE_OPENAI_ENTRA_TOKEN``),
  deployment ``AZURE_OPENAI_DEPLOYMENT`` (default: the profile's model); with
  ``OPENAI_API_VERSION`` set, the Azure preview protocol;
  ``OPENAI_API_KEY`` (+ optional ``OPENAI_BASE_URL``, ``OPENAI_ORG_ID``, ``OPENAI_PROJECT_ID``).
The bridge itself:
  ``BRIDGE_PROFILES`` (profiles file; default: the built-in profiles), and the variables its
  ``http`` tools name for header values (``headers = { X-Key = { env = "NAME" } }``: read by
  :func:`load_profiles`, registered as secrets),
  ``BRIDGE_PRICES`` (TOML price overrides), ``BRIDGE_LOG_FORMAT`` (``json``|``console``),
  ``BRIDGE_LOG_LEVEL``, ``BRIDGE_METRICS_PORT`` (default 9102, 0 = off),
  ``BRIDGE_MAX_SESSIONS`` (per pod), ``BRIDGE_MAX_SESSIONS_UNPINNED`` (the maximum when the
  worker's CPU is not its own; default half of ``BRIDGE_MAX_SESSIONS``),
  ``BRIDGE_DRAIN_TIMEOUT`` (s), ``BRIDGE_EXECUTOR``
  (``thread``|``process``), ``BRIDGE_IDLE_PROCESSES``, ``BRIDGE_EMPTY_ROOM_GRACE`` (s a call
  waits for a caller to come back after the last one left), ``BRIDGE_LIVEKIT_RETRIES`` (how
  often to retry reaching LiveKit before giving up), ``BRIDGE_LIVEKIT_HEALTH_PORT``
  (livekit-agents' own health server, default 8081, 0 = any free port),
  ``BRIDGE_REDIS_URL`` (``redis://[:password@]host:port/db``: the store where running calls
  beat and keep their conversation, so that a call whose worker vanished is redispatched
  and picked up; unset = none), with ``BRIDGE_REDIS_PASSWORD`` (a secret) when the URL has
  none.

Every value is checked as it is read: a bad one raises :class:`~bridge.errors.ConfigError`
naming the variable and what it must be (``bridge start`` exits 2 on it, before doing
anything). ``LIVEKIT_URL`` must be a ``ws``, ``wss``, ``http`` or ``https`` URL with a host.

Process plumbing, not settings: ``BRIDGE_SIM_JOURNAL`` (the test suite asks every simulator to
journal its frames), ``BRIDGE_BENCH_JOB`` (``bridge bench`` hands a phase's settings to its
jobs), ``LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE`` (set for livekit-agents, which reads it), and
the environment handed to child processes (:func:`child_environment`: no proxies,
``PYTHONUNBUFFERED`` for a part whose output is read as it comes).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from bridge.errors import ConfigError, MissingSetting
from bridge.logs import level_name, register_secret
from sessions.endpoint import Endpoint
from sessions.usage import PriceTable

if TYPE_CHECKING:
    from bridge.call.profiles import ProfileSet


def _get(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def _secret(env: Mapping[str, str], name: str) -> str:
    value = _get(env, name)
    register_secret(value)
    return value


def _int(
    env: Mapping[str, str],
    name: str,
    default: int,
    *,
    low: int | None = None,
    high: int | None = None,
) -> int:
    """A whole number from ``env`` (``default`` when unset), within ``low``..``high``."""
    raw = _get(env, name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"from {low} to {high}"
        raise ConfigError(f"{name}={value} must be {bounds}")
    return value


def check_livekit_url(url: str, name: str = "LIVEKIT_URL") -> str:
    """``url`` if livekit-agents can connect to it (``ws``/``wss``/``http``/``https`` and a
    host, a valid port if any), else a :class:`ConfigError` naming it (without credentials)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
        raise ConfigError(
            f"{name}={redacted_url(url)!r} is not a LiveKit server URL"
            " (ws://, wss://, http:// or https:// and a host, e.g. wss://example.livekit.cloud)"
        )
    return url


def redacted_url(url: str) -> str:
    """``url`` without any user or password part (safe to log)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = _get(env, name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise ConfigError(f"{name}={raw!r} must be a finite number of seconds, at least 0")
    return value


@dataclass(frozen=True, slots=True)
class LiveKitSettings:
    url: str
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    agent_name: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LiveKitSettings:
        """Read the LiveKit settings; each missing variable is named in the error."""
        env = os.environ if env is None else env
        missing = [
            n for n in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET") if not _get(env, n)
        ]
        if missing:
            raise MissingSetting(", ".join(missing), "needed to join LiveKit rooms")
        return cls(
            url=check_livekit_url(_get(env, "LIVEKIT_URL")),
            api_key=_secret(env, "LIVEKIT_API_KEY"),
            api_secret=_secret(env, "LIVEKIT_API_SECRET"),
            agent_name=_get(env, "LIVEKIT_AGENT_NAME"),
        )


def livekit_credentials(url: str, env: Mapping[str, str] | None = None) -> tuple[str, str, str]:
    """``url`` with the key and secret from the environment (each missing one named)."""
    env = os.environ if env is None else env
    missing = [n for n in ("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET") if not _get(env, n)]
    if missing:
        raise MissingSetting(", ".join(missing), f"needed to use the LiveKit server at {url}")
    if not url.startswith(("ws://", "wss://", "http://", "https://")):
        raise ConfigError(f"{url!r} is not a LiveKit URL (ws://, wss://, http:// or https://)")
    ws = "ws" + url.removeprefix("http") if url.startswith("http") else url
    return ws, _secret(env, "LIVEKIT_API_KEY"), _secret(env, "LIVEKIT_API_SECRET")


def realtime_endpoint(
    model: str, env: Mapping[str, str] | None = None, *, url: str | None = None
) -> Endpoint:
    """Where sessions connect, from ``url`` (a flag) or the environment."""
    env = os.environ if env is None else env
    api_key = _secret(env, "OPENAI_API_KEY")
    url = url or _get(env, "BRIDGE_REALTIME_URL")
    if url:
        return Endpoint.compatible(url, model, api_key=api_key)
    azure = _get(env, "AZURE_OPENAI_ENDPOINT")
    if azure:
        key = _secret(env, "AZURE_OPENAI_API_KEY")
        token = _secret(env, "AZURE_OPENAI_ENTRA_TOKEN")
        if not (key or token):
            raise MissingSetting("AZURE_OPENAI_API_KEY", "or AZURE_OPENAI_ENTRA_TOKEN, for Azure")
        deployment = _get(env, "AZURE_OPENAI_DEPLOYMENT") or model
        version = _get(env, "OPENAI_API_VERSION")
        if version:
            return Endpoint.azure_preview(
                azure, deployment, version, api_key=key or None, entra_token=token or None
            )
        return Endpoint.azure(azure, deployment, api_key=key or None, entra_token=token or None)
    if not api_key:
        raise MissingSetting(
            "OPENAI_API_KEY", "or AZURE_OPENAI_ENDPOINT, or BRIDGE_REALTIME_URL for a local server"
        )
    base = _get(env, "OPENAI_BASE_URL") or "wss://api.openai.com/v1"
    return Endpoint.openai(
        api_key,
        model,
        base_url=base,
        organization=_get(env, "OPENAI_ORG_ID") or None,
        project=_get(env, "OPENAI_PROJECT_ID") or None,
    )


def tool_secrets(env: Mapping[str, str] | None = None) -> Callable[[str], str | None]:
    """How profiles read the variables their tools' headers name (``None`` when unset).

    Every value read is registered as a secret: no log record ever shows it.
    """
    env = os.environ if env is None else env

    def lookup(name: str) -> str | None:
        return _secret(env, name) or None

    return lookup


def profiles_path(path: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """The profiles file: ``path`` (a flag), else ``BRIDGE_PROFILES``; None: the built-in."""
    env = os.environ if env is None else env
    return str(path) if path else (_get(env, "BRIDGE_PROFILES") or None)


def load_profiles(path: str | None = None, env: Mapping[str, str] | None = None) -> ProfileSet:
    """The profiles: ``path``, else ``BRIDGE_PROFILES``, else the built-in ones.

    Tools' header values named by ``env = "NAME"`` are read from the environment here, at
    start-up; a bad file, a tool that does not import or a variable that is not set raises
    :class:`~bridge.errors.ProfileError`.
    """
    from bridge.call.profiles import ProfileSet

    env = os.environ if env is None else env
    path = profiles_path(path, env)
    secrets = tool_secrets(env)
    return ProfileSet.load(path, secrets=secrets) if path else ProfileSet.builtin(secrets=secrets)


def has_realtime_credentials(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return any(
        _get(env, n) for n in ("BRIDGE_REALTIME_URL", "AZURE_OPENAI_ENDPOINT", "OPENAI_API_KEY")
    )


def price_table(env: Mapping[str, str] | None = None) -> PriceTable:
    """The default prices, with ``BRIDGE_PRICES`` (a TOML file of per-model tables) applied."""
    env = os.environ if env is None else env
    path = _get(env, "BRIDGE_PRICES")
    if not path:
        return PriceTable()
    try:
        overrides = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"BRIDGE_PRICES={path}: {exc}") from None
    return PriceTable().with_overrides(overrides)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How a bridge pod runs (defaults from ``bridge bench`` measurements; see README)."""

    profiles_path: str | None = None
    metrics_port: int = 9102
    max_sessions: int = 12  # one unpinned process held 15-16 calls: README, Capacity
    # Not pinned, a process pays about twice the CPU per call (README, Capacity): 0 = half.
    max_sessions_unpinned: int = 0
    drain_timeout: int = 3600  # the longest call a rollout lets finish (deploy/README.md)
    empty_room_grace: float = 10.0
    executor: str = "thread"
    idle_processes: int = 1
    log_format: str = "json"
    log_level: str = "info"
    # livekit-agents' default: 16 retries, 0, 2, 4, ... 10 s apart: it gives up after ~2 min.
    livekit_retries: int = 16
    health_port: int = 8081  # livekit-agents' own health server (0: any free port)
    redis_url: str | None = field(default=None, repr=False)  # may hold a password

    def session_cap(self, pinned: bool) -> int:
        """The per-pod maximum for a worker whose CPU is (not) its own."""
        if pinned:
            return self.max_sessions
        unpinned = self.max_sessions_unpinned or max(1, self.max_sessions // 2)
        return min(self.max_sessions, unpinned)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, dev: bool = False) -> WorkerSettings:
        env = os.environ if env is None else env
        d: dict[str, Any] = {f.name: f.default for f in fields(cls)}
        executor = _get(env, "BRIDGE_EXECUTOR") or str(d["executor"])
        if executor not in ("thread", "process"):
            raise ConfigError(f"BRIDGE_EXECUTOR={executor!r} must be 'thread' or 'process'")
        log_format = _get(env, "BRIDGE_LOG_FORMAT") or ("console" if dev else "json")
        if log_format not in ("json", "console"):
            raise ConfigError(f"BRIDGE_LOG_FORMAT={log_format!r} must be 'json' or 'console'")
        level = _get(env, "BRIDGE_LOG_LEVEL") or ("debug" if dev else "info")
        try:
            level = level_name(level)
        except ConfigError as exc:
            raise ConfigError(f"BRIDGE_LOG_LEVEL: {exc}") from None
        return cls(
            profiles_path=_get(env, "BRIDGE_PROFILES") or None,
            metrics_port=_int(env, "BRIDGE_METRICS_PORT", d["metrics_port"], low=0, high=65535),
            max_sessions=_int(env, "BRIDGE_MAX_SESSIONS", d["max_sessions"], low=1),
            max_sessions_unpinned=_int(env, "BRIDGE_MAX_SESSIONS_UNPINNED", 0, low=0),
            drain_timeout=_int(env, "BRIDGE_DRAIN_TIMEOUT", d["drain_timeout"], low=0),
            empty_room_grace=_seconds(env, "BRIDGE_EMPTY_ROOM_GRACE", d["empty_room_grace"]),
            executor=executor,
            idle_processes=_int(env, "BRIDGE_IDLE_PROCESSES", d["idle_processes"], low=0),
            log_format=log_format,
            log_level=level,
            livekit_retries=_int(env, "BRIDGE_LIVEKIT_RETRIES", d["livekit_retries"], low=0),
            health_port=_int(
                env, "BRIDGE_LIVEKIT_HEALTH_PORT", d["health_port"], low=0, high=65535
            ),
            redis_url=redis_url(env),
        )


# ---------------------------------------------------------------------- process plumbing

SIM_JOURNAL = "BRIDGE_SIM_JOURNAL"  # the test suite's hook: simulators journal every frame here
BENCH_JOB = "BRIDGE_BENCH_JOB"  # bridge bench hands a phase's settings to its jobs this way
# livekit-agents loads its local VAD and end-of-turn model (~270 MB resident) into every job
# process or thread-executor worker unless told not to; the bridge uses the Realtime API's
# turn detection and never needs them. An explicit setting in the environment still wins.
PRELOAD = "LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE"


def sim_journal(env: Mapping[str, str] | None = None) -> Path | None:
    """Where an in-process simulator journals its frames (``BRIDGE_SIM_JOURNAL``), if set."""
    env = os.environ if env is None else env
    value = _get(env, SIM_JOURNAL)
    return Path(value) if value else None


def skip_local_models() -> None:
    """Tell livekit-agents (which reads it) not to load models the bridge never uses."""
    os.environ.setdefault(PRELOAD, "0")


def set_bench_job(value: str) -> None:
    """Hand a benchmark phase's job settings to the jobs it starts (threads or processes)."""
    os.environ[BENCH_JOB] = value


def bench_job(env: Mapping[str, str] | None = None) -> str:
    """The benchmark phase's job settings (JSON), as :func:`set_bench_job` left them."""
    env = os.environ if env is None else env
    value = _get(env, BENCH_JOB)
    if not value:
        raise MissingSetting(BENCH_JOB, "set by bridge bench for its jobs")
    return value


PROXY_SETTINGS = ("http_proxy", "https_proxy", "all_proxy")


def drop_proxy_settings() -> None:
    """Forget proxy settings in this process (a harness whose every peer is local)."""
    for name in list(os.environ):
        if name.lower() in PROXY_SETTINGS:
            del os.environ[name]


def child_environment(*, fresh: bool = False, **overrides: str) -> dict[str, str]:
    """This process's environment for a child process, without proxy settings (everything
    the bridge's children reach is local or named explicitly), with ``overrides``.

    ``fresh``: without any bridge, LiveKit or Realtime setting either, and unbuffered: a part
    (a worker, a simulator) started with exactly the settings given.
    """
    settings = ("livekit_", "bridge_", "openai_", "azure_") if fresh else ()
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in PROXY_SETTINGS and not k.lower().startswith(settings)
    }
    env.update(NO_PROXY="*", no_proxy="*")
    if fresh:
        env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


def redis_url(env: Mapping[str, str] | None = None) -> str | None:
    """``BRIDGE_REDIS_URL`` checked (``redis://`` or ``rediss://`` with a host), with
    ``BRIDGE_REDIS_PASSWORD`` put in when the URL names none; None when unset."""
    env = os.environ if env is None else env
    url = _get(env, "BRIDGE_REDIS_URL")
    if not url:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ConfigError(
            f"BRIDGE_REDIS_URL={redacted_url(url)!r} is not a Redis URL"
            " (redis:// or rediss:// and a host, e.g. redis://redis:6379/0)"
        )
    register_secret(parts.password)
    password = _secret(env, "BRIDGE_REDIS_PASSWORD")
    if password and not parts.password:
        netloc = f"{parts.username or ''}:{password}@{parts.netloc.rpartition('@')[2]}"
        url = urlunsplit(parts._replace(netloc=netloc))
    return url
