"""The schema guard itself: it must catch bad events, in process and through the journal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import REPO_ROOT, SchemaGuard
from tests.realtime_schema import check_event, check_journal

PART_ADDED = {
    "type": "response.content_part.added",
    "event_id": "event_AAAAAAAAAAAAAAAAAAAAA",
    "response_id": "resp_1",
    "item_id": "item_1",
    "output_index": 0,
    "content_index": 0,
    "part": {"type": "audio", "transcript": ""},
}


def test_validator_rejects_a_content_part_typed_output_audio() -> None:
    assert check_event("ga", PART_ADDED) == []
    problems = check_event("ga", {**PART_ADDED, "part": {"type": "output_audio", "transcript": ""}})
    assert len(problems) == 1 and "part.type" in problems[0]


def test_validator_rejects_beta_names_on_ga_missing_fields_and_unknown_fields() -> None:
    beta_delta = {**PART_ADDED, "type": "response.audio.delta", "delta": ""}
    del beta_delta["part"]
    assert "unknown event type" in check_event("ga", beta_delta)[0]
    assert check_event("beta", beta_delta) == []
    assert check_event("ga", {"type": "response.output_audio.delta", "event_id": "e"})
    assert (
        "field not in the SDK model: $.part.transcipt"
        in check_event("ga", {**PART_ADDED, "part": {"type": "audio", "transcipt": ""}})[0]
    )
    assert check_event("ga", {**PART_ADDED, "obfuscation": "xyz"}) == []  # the real server's extra


def test_journal_check_skips_deliberate_junk_but_not_genuine_frames(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    lines = [
        {"t": 1.0, "conn": 1, "dir": "out", "dialect": "ga", "frame": PART_ADDED},
        {"t": 1.1, "conn": 1, "dir": "out", "dialect": "ga", "fault": "malformed", "raw": "{"},
        {"t": 1.2, "conn": 1, "dir": "in", "dialect": "ga", "frame": {"type": "x"}},
        {"t": 1.3, "conn": 1, "dir": "out", "dialect": "beta", "frame": PART_ADDED},
        {
            "t": 1.4,
            "conn": 2,
            "dir": "out",
            "dialect": "ga",
            "frame": {"type": "response.audio.done"},
        },
    ]
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines))
    checked, problems = check_journal(journal)
    assert checked == 3
    assert len(problems) == 1 and "j.jsonl:5" in problems[0]


def test_the_guard_is_installed_for_every_test(realtime_schema: SchemaGuard) -> None:
    assert os.environ["BRIDGE_SIM_JOURNAL"] == str(realtime_schema.journal)


INNER_TESTS = """
import json
import os

from sessions.simulator.journal import notify

BAD = {
    "type": "response.content_part.added", "event_id": "event_x", "response_id": "resp_1",
    "item_id": "item_1", "output_index": 0, "content_index": 0,
    "part": {"type": "output_audio", "transcript": ""},
}

def test_in_process_event_is_checked():
    notify("ga", BAD)

def test_subprocess_journal_is_checked():
    with open(os.environ["BRIDGE_SIM_JOURNAL"], "a") as journal:
        journal.write(json.dumps({"dir": "out", "dialect": "ga", "frame": BAD}) + "\\n")

def test_good_events_pass():
    notify("ga", {**BAD, "part": {"type": "audio", "transcript": ""}})
"""


def test_the_fixture_fails_tests_whose_simulators_emit_invalid_events(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text("from tests.conftest import realtime_schema  # noqa\n")
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_inner.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout
    assert result.returncode == 1, out
    assert "3 passed, 2 errors" in out, out  # the calls pass; the guard fails two teardowns
    assert "ERROR test_inner.py::test_in_process_event_is_checked" in out
    assert "ERROR test_inner.py::test_subprocess_journal_is_checked" in out
    assert "in-process: ga response.content_part.added: part.type" in out
    assert "sim-journal.jsonl:1: ga response.content_part.added: part.type" in out
