"""Arguments the simulated model calls a function with: fitted to its declared JSON Schema.

A client that validates a call's arguments against the tool it declared (as the bridge and
other agent frameworks do) must be able to rely on the simulator's calls, so the ``tool``
behaviour never sends arguments its schema rejects: :func:`arguments_for` builds a small,
deterministic value for the schema — the caller's transcript in the first top-level string
parameter that allows it, the least value that fits everywhere else (required properties
only, the fewest array items, the lowest numbers in range) — and checks the result with
``jsonschema`` (Draft 2020-12, asserting the formats it knows) before using it. When nothing it
tries fits (a ``pattern`` it cannot meet, a contradictory schema), it returns ``None`` and the
model answers with speech instead of calling.

Covered, as the Realtime API's function calling uses JSON Schema: ``type`` (one or a list),
``properties``, ``required``, ``additionalProperties``, ``minProperties``, ``items``,
``prefixItems``, ``minItems``/``maxItems``, ``uniqueItems``, ``enum``, ``const``, ``anyOf``,
``oneOf``, ``allOf``, ``$ref`` to ``$defs``/``definitions``, string ``minLength``/
``maxLength``/``format``/``pattern`` (tried, not solved), number ``minimum``/``maximum``/
``exclusiveMinimum``/``exclusiveMaximum``/``multipleOf``.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

MAX_DEPTH = 8
MAX_TRIES = 24  # candidate values tried per schema before giving up
_TYPES = ("object", "string", "integer", "number", "boolean", "array", "null")
_FORMAT_SAMPLES = {
    "date-time": "2026-01-01T12:00:00Z",
    "date": "2026-01-01",
    "time": "12:00:00Z",
    "duration": "P1D",
    "email": "caller@example.com",
    "idn-email": "caller@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "https://example.com/",
    "iri-reference": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "regex": "a",
    "json-pointer": "/a",
    "relative-json-pointer": "0",
    "uri-template": "https://example.com/{id}",
}
_WORDS = ("alpha", "", "0", "a", "A1", "0000", "bravo charlie")


def arguments_for(parameters: Any, heard: str) -> dict[str, Any] | None:
    """Arguments that fit ``parameters`` (an object schema), ``heard`` where a string may go.

    ``None`` when the schema is not a valid object schema or nothing tried fits it.
    """
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    if not isinstance(parameters, dict):
        return None
    try:
        Draft202012Validator.check_schema(parameters)
    except SchemaError:
        return None
    validator = Draft202012Validator(parameters, format_checker=Draft202012Validator.FORMAT_CHECKER)
    maker = _Maker(validator, parameters)
    for value in itertools.islice(maker.values(parameters, heard, 0), MAX_TRIES):
        if isinstance(value, dict) and validator.is_valid(value):
            return value
    return None


class _Maker:
    """Candidate values for (sub)schemas of one root schema, most plausible first."""

    def __init__(self, validator: Draft202012Validator, root: Mapping[str, Any]) -> None:
        self.validator = validator
        self.root = root

    def fits(self, value: Any, schema: Any) -> bool:
        return bool(self.validator.evolve(schema=schema).is_valid(value))

    def first(self, schema: Any, hint: str | None, depth: int) -> tuple[bool, Any]:
        """The first candidate that fits ``schema`` on its own, as ``(found, value)``."""
        for value in itertools.islice(self.values(schema, hint, depth), MAX_TRIES):
            if self.fits(value, schema):
                return True, value
        return False, None

    def values(self, schema: Any, hint: str | None, depth: int) -> Iterator[Any]:
        if depth > MAX_DEPTH or schema is False:
            return
        if schema is True or not isinstance(schema, dict):
            yield hint if hint else "alpha"
            return
        schema = self._resolved(schema)
        if schema is None:
            return
        if "const" in schema:
            yield schema["const"]
            return
        if isinstance(schema.get("enum"), list):
            yield from schema["enum"]
            return
        for keyword in ("anyOf", "oneOf"):
            branches = schema.get(keyword)
            if isinstance(branches, list):
                base = {k: v for k, v in schema.items() if k != keyword}
                for branch in branches:
                    yield from self.values(_merge(base, self._resolved(branch)), hint, depth + 1)
                return
        if isinstance(schema.get("allOf"), list):
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                merged = _merge(merged, self._resolved(part))
            yield from self.values(merged, hint, depth + 1)
            return
        kinds = schema.get("type", _implied_type(schema))
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        for kind in sorted(kinds, key=lambda k: k == "null"):  # null last
            yield from self._typed(kind, schema, hint, depth)

    def _resolved(self, schema: Any) -> Any:
        """``schema`` with a local ``$ref`` replaced by its target (siblings kept)."""
        for _ in range(MAX_DEPTH):
            if not isinstance(schema, dict) or "$ref" not in schema:
                return schema
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                return None
            target: Any = self.root
            for part in filter(None, ref[1:].split("/")):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    return None
                target = target[part]
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = _merge(target, siblings) if isinstance(target, dict) else target
        return None

    def _typed(
        self, kind: str, schema: dict[str, Any], hint: str | None, depth: int
    ) -> Iterator[Any]:
        if kind == "string":
            return _strings(schema, hint)
        if kind == "integer":
            return _numbers(schema, integer=True)
        if kind == "number":
            return _numbers(schema, integer=False)
        if kind == "boolean":
            return iter((True, False))
        if kind == "null":
            return iter((None,))
        if kind == "array":
            return self._arrays(schema, depth)
        if kind == "object":
            return self._objects(schema, hint, depth)
        return iter(())

    def _arrays(self, schema: dict[str, Any], depth: int) -> Iterator[list[Any]]:
        low = int(schema.get("minItems", 0))
        high = schema.get("maxItems")
        size = low if high is None else min(low, int(high))
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", True)
        value: list[Any] = []
        for index in range(size):
            sub = prefix[index] if index < len(prefix) else items
            options = [
                v
                for v in itertools.islice(self.values(sub, None, depth + 1), MAX_TRIES)
                if self.fits(v, sub)
            ]
            if schema.get("uniqueItems"):
                options = [v for v in options if v not in value]
            if not options:
                return
            value.append(options[0])
        yield value

    def _objects(
        self, schema: dict[str, Any], hint: str | None, depth: int
    ) -> Iterator[dict[str, Any]]:
        for text in (hint, None) if hint else (None,):  # with the transcript, then without
            value = self._object(schema, text, depth)
            if value is not None:
                yield value

    def _object(
        self, schema: dict[str, Any], hint: str | None, depth: int
    ) -> dict[str, Any] | None:
        properties = schema.get("properties") or {}
        required = [r for r in schema.get("required") or [] if isinstance(r, str)]
        extra = schema.get("additionalProperties", True)
        value: dict[str, Any] = {}
        if hint:  # the transcript goes into the first string parameter that takes it
            slots = required + [p for p in properties if p not in required]
            for name in slots:
                sub = properties.get(name, extra)
                text = _fitted(hint, self._resolved(sub) if isinstance(sub, dict) else {})
                if text is not None and self.fits(text, sub):
                    value[name] = text
                    break
        for name in required:
            if name in value:
                continue
            found, item = self.first(properties.get(name, extra), None, depth + 1)
            if not found:
                return None
            value[name] = item
        wanted = int(schema.get("minProperties", 0))
        for name in properties:
            if len(value) >= wanted:
                break
            if name not in value:
                found, item = self.first(properties[name], None, depth + 1)
                if found:
                    value[name] = item
        return value


def _merge(base: Any, more: Any) -> Any:
    """Two schemas' constraints in one (properties merged, required joined)."""
    if not isinstance(base, dict) or not isinstance(more, dict):
        return more if isinstance(base, dict) else base
    merged = {**base, **more}
    if isinstance(base.get("properties"), dict) and isinstance(more.get("properties"), dict):
        merged["properties"] = {**base["properties"], **more["properties"]}
    if isinstance(base.get("required"), list) and isinstance(more.get("required"), list):
        merged["required"] = list(dict.fromkeys(base["required"] + more["required"]))
    return merged


def _implied_type(schema: Mapping[str, Any]) -> list[str]:
    if any(k in schema for k in ("properties", "required", "additionalProperties")):
        return ["object"]
    if any(k in schema for k in ("items", "prefixItems", "minItems", "maxItems")):
        return ["array"]
    if any(k in schema for k in ("minimum", "maximum", "multipleOf", "exclusiveMinimum")):
        return ["number"]
    return ["string", *[t for t in _TYPES if t != "string"]]


def _fitted(text: str, schema: Any) -> str | None:
    """``text`` cut or padded to the schema's lengths; ``None`` if the schema takes no text."""
    if not isinstance(schema, dict):
        return text
    kinds = schema.get("type", "string")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if "string" not in kinds or "format" in schema or "enum" in schema or "const" in schema:
        return None
    high = schema.get("maxLength")
    if isinstance(high, int):
        text = text[:high]
    low = schema.get("minLength", 0)
    if isinstance(low, int) and len(text) < low:
        text += "x" * (low - len(text))
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and not _search(pattern, text):
        return None
    return text


def _strings(schema: dict[str, Any], hint: str | None) -> Iterator[str]:
    seen: set[str] = set()
    fmt = schema.get("format")
    candidates = [_FORMAT_SAMPLES[fmt]] if isinstance(fmt, str) and fmt in _FORMAT_SAMPLES else []
    candidates += [hint] if hint else []
    candidates += list(_WORDS)
    for text in candidates:
        high = schema.get("maxLength")
        if isinstance(high, int):
            text = text[:high]
        low = schema.get("minLength", 0)
        if isinstance(low, int) and len(text) < low:
            text += "x" * (low - len(text))
        if text not in seen:
            seen.add(text)
            yield text


def _numbers(schema: dict[str, Any], *, integer: bool) -> Iterator[int | float]:
    low, high = _bounds(schema, integer)
    step = schema.get("multipleOf")
    if integer:
        picks: list[float] = [1, 0, 2, 10]
    else:
        picks = [1.5, 0.5, 1, 0, 2.5]
    if low is not None:
        picks += [low, low + 1 if integer else low + 0.5]
    if high is not None:
        picks += [high, high - 1 if integer else high - 0.5]
    if low is not None and high is not None:
        picks.append((low + high) / 2)
    seen: set[float] = set()
    for pick in picks:
        value: float = pick
        if low is not None and value < low:
            value = low
        if high is not None and value > high:
            value = high
        if isinstance(step, int | float) and step > 0:
            value = math.ceil(value / step) * step
            if isinstance(step, int) and not isinstance(step, bool):
                value = int(value)
        if integer:
            if value != int(value):
                value = math.ceil(value)
            value = int(value)
        if value not in seen:
            seen.add(value)
            yield value


def _bounds(schema: dict[str, Any], integer: bool) -> tuple[float | None, float | None]:
    """The least and greatest values allowed (inclusive; whole for integers)."""
    gap = 1 if integer else 0.001
    low: float | None = None
    high: float | None = None
    if isinstance(schema.get("minimum"), int | float):
        low = schema["minimum"]
    if isinstance(schema.get("exclusiveMinimum"), int | float):
        low = max(low if low is not None else -math.inf, schema["exclusiveMinimum"] + gap)
    if isinstance(schema.get("maximum"), int | float):
        high = schema["maximum"]
    if isinstance(schema.get("exclusiveMaximum"), int | float):
        high = min(high if high is not None else math.inf, schema["exclusiveMaximum"] - gap)
    if integer:
        low = math.ceil(low) if low is not None else None
        high = math.floor(high) if high is not None else None
    return low, high


def _search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False
