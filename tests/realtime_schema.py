"""Validation of server events against the official ``openai`` SDK's pydantic models.

``check_event(dialect, event)`` returns a list of problems (empty when the event is fine):
an unknown ``type`` for the dialect, a ``pydantic.ValidationError`` from ``model_validate``,
or a field the SDK model does not know (the SDK allows extras, so a misspelt field would
otherwise pass). Fields the real server is known to send beyond the models are allowed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import pydantic
from openai.types.beta.realtime import RealtimeServerEvent as BetaServerEvent
from openai.types.realtime import RealtimeServerEvent

# Fields the real server sends that the SDK models lack (GA capture; session.created shows
# the response-shaped session although the SDK types it as the request model).
ALLOWED_EXTRAS = frozenset(
    {
        "$.obfuscation",
        "$.session.id",
        "$.session.object",
        "$.session.expires_at",
    }
)


def _by_type(union_alias: Any) -> dict[str, type[pydantic.BaseModel]]:
    members = get_args(get_args(union_alias)[0])  # strip Annotated[Union[...], PropertyInfo]
    table: dict[str, type[pydantic.BaseModel]] = {}
    for cls in members:
        for literal in get_args(cls.model_fields["type"].annotation):
            table[literal] = cls
    return table


TABLES: dict[str, dict[str, type[pydantic.BaseModel]]] = {
    "ga": _by_type(RealtimeServerEvent),
    "beta": _by_type(BetaServerEvent),
}


def _extras(model: Any, path: str = "$") -> list[str]:
    found: list[str] = []
    if isinstance(model, pydantic.BaseModel):
        found += [f"{path}.{key}" for key in (model.model_extra or {})]
        for name in type(model).model_fields:
            found += _extras(getattr(model, name), f"{path}.{name}")
    elif isinstance(model, list):
        for index, entry in enumerate(model):
            found += _extras(entry, f"{path}[{index}]")
    return found


def check_event(dialect: str, event: Any) -> list[str]:
    """Problems with one server event in ``dialect`` (``ga`` or ``beta``); empty if valid."""
    if not isinstance(event, dict):
        return [f"not a JSON object: {event!r:.80}"]
    table = TABLES[dialect]
    kind = event.get("type")
    model = table.get(kind) if isinstance(kind, str) else None
    if model is None:
        return [f"{dialect}: unknown event type {kind!r}"]
    try:
        parsed = model.model_validate(event)
    except pydantic.ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        return [f"{dialect} {kind}: {errors}"]
    extras = [e for e in _extras(parsed) if e not in ALLOWED_EXTRAS]
    return [f"{dialect} {kind}: field not in the SDK model: {e}" for e in extras]


def check_journal(path: Path) -> tuple[int, list[str]]:
    """Validate every genuine ``out`` frame of a simulator journal: (frames checked, problems)."""
    if not path.exists():
        return 0, []
    checked = 0
    problems: list[str] = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        record = json.loads(line)
        if record.get("dir") != "out" or "fault" in record or "frame" not in record:
            continue
        checked += 1
        for problem in check_event(record.get("dialect", "ga"), record["frame"]):
            problems.append(f"{path.name}:{number}: {problem}")
    return checked, problems
