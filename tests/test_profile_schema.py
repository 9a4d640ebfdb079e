"""The profiles file's JSON Schema: generated from the models that validate it, never stale,
and it agrees with start-up validation on the files we ship and on typical mistakes."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from bridge.call.profile_file import schema_text
from bridge.call.profiles import ProfileSet
from bridge.errors import ProfileError

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = ROOT / "bridge" / "call" / "profiles.schema.json"
SHIPPED = [
    ROOT / "bridge" / "call" / "default_profiles.toml",
    ROOT / "deploy" / "k8s" / "base" / "profiles.toml",
]


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


def schema_errors(text: str) -> list[str]:
    validator = Draft202012Validator(schema())
    return [e.message for e in validator.iter_errors(tomllib.loads(text))]


def test_the_schema_file_is_generated_from_the_models() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), (
        "bridge/call/profiles.schema.json is stale: regenerate it with"
        " .venv/bin/python -m bridge.call.profile_file > bridge/call/profiles.schema.json"
    )
    Draft202012Validator.check_schema(schema())


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"```toml\n(#:schema [^\n]*\n.*?)```", text, flags=re.S)
    assert found, "README.md shows a worked example profile starting with a #:schema line"
    return found.group(1)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.parent.name)
def test_shipped_profiles_fit_the_schema(path: Path) -> None:
    assert schema_errors(path.read_text(encoding="utf-8")) == []


def test_the_readme_example_fits_the_schema_and_loads() -> None:
    example = readme_example()
    assert schema_errors(example) == []
    profiles = ProfileSet.parse(example, "README.md", secrets=lambda name: "t" * 12)
    assert any(t.kind == "http" for p in profiles.profiles.values() for t in p.declared.values())


@pytest.mark.parametrize(
    "text",
    [
        '[profiles.default]\nvoice = "darth"',
        "[profiles.default]\nspeed = 7",
        "[profiles.default]\novercidable = 1",
        '[profiles.default]\ntools = ["launch_rockets"]',
        '[[profiles.default.tools]]\nkind = "ftp"\nname = "x"',
        '[[profiles.default.tools]]\nkind = "http"\nname = "x"',  # no url
        '[[profiles.default.tools]]\nkind = "http"\nname = "x"\nurl = "https://h/"\n'
        "headers = { A = { variable = 'X' } }",
        '[[profiles.default.tools]]\nkind = "python"\nname = "x y"\nfunction = "m:f"',
        '[[profiles.default.tools]]\nkind = "python"\nname = "x"\nfunction = "m:f"\n'
        'parameters = { type = "string" }',
        '[profiles.other]\nvoice = "alloy"',  # no default profile
    ],
)
def test_what_start_up_refuses_an_editor_flags(text: str) -> None:
    assert schema_errors(text), "the schema accepts it"
    with pytest.raises(ProfileError):
        ProfileSet.parse(text, "bad.toml", secrets={}.get)
