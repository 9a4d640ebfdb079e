"""The simulator's ``tool`` behaviour is faithful: its calls fit each declared schema, it never
calls a function it was not given, and it answers with speech when it cannot call.

Property tests over random schemas of the JSON-Schema subset function calling uses (Hypothesis,
derandomized); every event the simulator emits is checked against the ``openai`` SDK models.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings, strategies as st
from jsonschema import Draft202012Validator

from sessions.simulator.arguments import arguments_for
from sessions.simulator.behaviors import HOLDING_LINE
from tests.simclient import utterance
from tests.test_simulator_model import Core

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
TEXT = st.text(st.characters(codec="ascii", categories=("L", "N")), max_size=8)


def _strings() -> st.SearchStrategy[dict[str, Any]]:
    lengths = st.tuples(st.integers(0, 6), st.integers(0, 30)).map(
        lambda t: {"minLength": t[0], "maxLength": t[0] + t[1]}
    )
    return st.one_of(
        st.just({"type": "string"}),
        lengths.map(lambda c: {"type": "string", **c}),
        st.sampled_from(["date", "date-time", "email", "uuid", "time", "uri"]).map(
            lambda f: {"type": "string", "format": f}
        ),
        st.lists(TEXT, min_size=1, max_size=4, unique=True).map(
            lambda e: {"type": "string", "enum": e}
        ),
    )


def _integers() -> st.SearchStrategy[dict[str, Any]]:
    def build(low: int, span: int, step: int | None, exclusive: bool) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer"}
        high = low + span + (step or 0) + 2  # room for a multiple of step strictly inside
        if exclusive:
            schema.update(exclusiveMinimum=low, exclusiveMaximum=high)
        else:
            schema.update(minimum=low, maximum=high)
        if step:
            schema["multipleOf"] = step
        return schema

    return st.builds(
        build,
        st.integers(-50, 50),
        st.integers(0, 20),
        st.none() | st.integers(1, 7),
        st.booleans(),
    )


def _numbers() -> st.SearchStrategy[dict[str, Any]]:
    def build(low: float, span: float, step: float | None, exclusive: bool) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "number"}
        high = low + span + (step or 0) * 2 + 1
        if exclusive:
            schema.update(exclusiveMinimum=low, exclusiveMaximum=high)
        else:
            schema.update(minimum=low, maximum=high)
        if step:
            schema["multipleOf"] = step
        return schema

    return st.builds(
        build,
        st.sampled_from([-10.0, -1.5, 0.0, 0.25, 3.0, 100.0]),
        st.sampled_from([0.0, 0.5, 2.0, 10.0]),
        st.none() | st.sampled_from([0.5, 0.25, 2.0, 5.0]),
        st.booleans(),
    )


SCALARS = st.one_of(
    _strings(),
    _integers(),
    _numbers(),
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.lists(st.none() | st.booleans() | st.integers(-5, 5) | TEXT, min_size=1, max_size=3).map(
        lambda e: {"enum": e}
    ),
    (st.integers(-5, 5) | TEXT).map(lambda c: {"const": c}),
    st.sampled_from([["string", "null"], ["integer", "null"], ["boolean", "string"]]).map(
        lambda t: {"type": t}
    ),
)


def _objects(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    def build(props: dict[str, dict[str, Any]], required: list[bool], closed: bool) -> Any:
        names = list(props)
        schema: dict[str, Any] = {"type": "object", "properties": props}
        picked = [n for n, r in zip(names, required, strict=False) if r]
        if picked:
            schema["required"] = picked
        if closed:
            schema["additionalProperties"] = False
        return schema

    return st.builds(
        build,
        st.dictionaries(NAMES, children, max_size=4),
        st.lists(st.booleans(), max_size=4),
        st.booleans(),
    )


def _arrays(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    def build(items: dict[str, Any], low: int, extra: int, unique: bool) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "array", "items": items, "minItems": low}
        schema["maxItems"] = low + extra
        if unique and low <= 1:
            schema["uniqueItems"] = True
        return schema

    return st.builds(build, children, st.integers(0, 3), st.integers(0, 3), st.booleans())


SCHEMAS = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        _objects(children),
        _arrays(children),
        st.lists(children, min_size=1, max_size=3).map(lambda b: {"anyOf": b}),
    ),
    max_leaves=12,
)


@st.composite
def parameters(draw: st.DrawFn) -> dict[str, Any]:
    """A top-level object schema; sometimes with a ``$defs`` entry referenced by a property."""
    schema = draw(_objects(SCHEMAS))
    if draw(st.booleans()):
        schema["$defs"] = {"shared": draw(SCHEMAS)}
        name = draw(NAMES)
        schema["properties"][name] = {"$ref": "#/$defs/shared"}
        if draw(st.booleans()):
            schema.setdefault("required", []).append(name)
    if draw(st.booleans()):
        schema["description"] = "what the tool needs"
    return schema


def call_made(core: Core, events: list[dict[str, Any]]) -> dict[str, Any] | None:
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert len(done) <= 1
    return done[0] if done else None


def tool_core(tools: list[dict[str, Any]], tool_choice: Any = "auto") -> Core:
    core = Core(behavior="tool")
    session = {"type": "realtime", "tools": tools, "tool_choice": tool_choice}
    core.send("session.update", session=session)
    return core


SPEECH = utterance(lead=0.3, speech=1.0, tail=0.8).tobytes()


@settings(max_examples=60, deadline=None, derandomize=True)
@given(parameters())
def test_calls_fit_the_declared_schema(schema: dict[str, Any]) -> None:
    Draft202012Validator.check_schema(schema)
    core = tool_core([{"type": "function", "name": "act", "parameters": schema}])
    events = core.append(SPEECH) + core.run_response()
    done = call_made(core, events)
    assert done is not None, f"no call for a satisfiable schema {json.dumps(schema)}"
    assert done["name"] == "act"
    arguments = json.loads(done["arguments"])
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    assert list(validator.iter_errors(arguments)) == [], (schema, arguments)


TOOL_LISTS = st.lists(NAMES, max_size=3, unique=True)
CHOICES = st.one_of(
    st.sampled_from(["auto", "none", "required"]),
    NAMES.map(lambda n: {"type": "function", "name": n}),
)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(TOOL_LISTS, CHOICES, st.booleans())
def test_only_declared_functions_are_ever_called(
    names: list[str], choice: Any, name_a_declared: bool
) -> None:
    if isinstance(choice, dict) and name_a_declared and names:
        choice = {"type": "function", "name": names[-1]}
    tools = [{"type": "function", "name": n, "parameters": {"type": "object"}} for n in names]
    core = tool_core(tools, choice)
    events = core.append(SPEECH) + core.run_response()
    done = call_made(core, events)
    if done is None:  # then it spoke
        assert any(e["type"] == "response.output_audio.delta" for e in events)
        assert (
            not names
            or choice == "none"
            or (isinstance(choice, dict) and choice["name"] not in names)
        )
        return
    assert done["name"] in names
    assert choice != "none"
    if isinstance(choice, dict):
        assert done["name"] == choice["name"]


def test_the_transcript_goes_where_a_string_parameter_takes_it() -> None:
    schema = {
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date"},
            "mood": {"enum": ["calm", "rushed"]},
            "question": {"type": "string", "maxLength": 11},
        },
        "required": ["when", "mood"],
    }
    assert arguments_for(schema, "alpha bravo charlie") == {
        "question": "alpha bravo",
        "when": "2026-01-01",
        "mood": "calm",
    }


def test_a_schema_nothing_fits_gets_speech_not_a_bad_call() -> None:
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^[A-F]{6}$"}},
        "required": ["code"],
    }
    assert arguments_for(schema, "alpha") is None
    core = tool_core([{"type": "function", "name": "act", "parameters": schema}])
    events = core.append(SPEECH) + core.run_response()
    assert call_made(core, events) is None
    assert any(e["type"] == "response.output_audio.delta" for e in events)


def test_a_response_while_a_call_awaits_its_output_is_a_holding_line() -> None:
    tool = {"type": "function", "name": "act", "parameters": {"type": "object"}}
    core = tool_core([tool])
    done = call_made(core, core.append(SPEECH) + core.run_response())
    assert done is not None
    core.send("response.create", response={"instructions": "Hold on.", "tool_choice": "none"})
    held = core.run_response()
    transcript = [e for e in held if e["type"] == "response.output_audio_transcript.done"]
    assert [e["transcript"] for e in transcript] == [HOLDING_LINE]
    item = {"type": "function_call_output", "call_id": done["call_id"], "output": "all good"}
    core.send("conversation.item.create", item=item)
    core.send("response.create")
    answer = core.run_response()
    transcript = [e for e in answer if e["type"] == "response.output_audio_transcript.done"]
    assert [e["transcript"] for e in transcript] == ["all good"]


def test_tool_from_turn_echoes_the_turns_before_it_then_calls() -> None:
    tool = {"type": "function", "name": "hang_up", "parameters": {"type": "object"}}
    core = Core(behavior="tool", tool_from_turn=3)
    core.send("session.update", session={"type": "realtime", "tools": [tool]})
    for _ in range(2):  # the first two turns are echoed: speech, no call
        events = core.append(SPEECH) + core.run_response()
        assert call_made(core, events) is None
        assert any(e["type"] == "response.output_audio.delta" for e in events)
    done = call_made(core, core.append(SPEECH) + core.run_response())
    assert done is not None and done["name"] == "hang_up"
