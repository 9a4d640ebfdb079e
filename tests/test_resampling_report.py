"""``python -m bridge.bench.resampling_report`` runs end to end (briefly) and prints its tables."""

from __future__ import annotations

import json

import pytest

from bridge.bench import resampling_report


@pytest.fixture(scope="module")
def report() -> dict[str, object]:
    return resampling_report.measure(seconds=1.0, frames=20, rounds=1)


def test_the_report_measures_every_mode_and_every_sdk_quality(report: dict[str, object]) -> None:
    costs = report["us_per_frame"]
    assert isinstance(costs, dict)
    assert list(costs) == [
        "soxr QQ", "soxr LQ", "soxr MQ", "soxr HQ", "soxr VHQ", "soxr VR",
        "rtc QUICK", "rtc LOW", "rtc MEDIUM", "rtc HIGH", "rtc VERY_HIGH",
    ]  # fmt: skip
    assert all(cost > 0 for cost in costs.values())
    assert report["vr_ignores_quality"] is True


def test_the_sdk_resampler_blocks_like_fixed_rate_soxr(report: dict[str, object]) -> None:
    withheld = report["withheld_ms"]
    assert isinstance(withheld, dict)
    assert withheld["soxr VR"]["48000/10"]["max_ms"] == pytest.approx(5.0)
    assert withheld["rtc MEDIUM"]["48000/10"]["max_ms"] > 30.0
    assert withheld["rtc MEDIUM"]["48000/10"] == withheld["soxr MQ"]["48000/10"]


def test_the_rule_agrees_with_the_default_at_every_pair(report: dict[str, object]) -> None:
    rule = report["rule"]
    assert isinstance(rule, dict) and len(rule) == 15
    assert {"11025->24000", "96000->24000", "192000->24000"} <= set(rule)
    assert all(entry["chosen"] == entry["default_mode"] == "soxr VR" for entry in rule.values())


def test_the_tables_render(report: dict[str, object]) -> None:
    text = resampling_report.render(report)
    for title in ("1. 48 kHz -> 24 kHz", "2. Output withheld", "3. Other input rates", "4. Choice"):
        assert title in text
    assert "soxr VR *" in text and "MISMATCH" not in text


def test_the_scan_renders_a_worst_case_per_band(report: dict[str, object]) -> None:
    scan = resampling_report.vr_scan(seconds=0.2, step=23_000)
    assert list(scan)[:3] == ["8000", "31000", "54000"] and list(scan)[-1] == "192000"
    assert scan["8000"] == pytest.approx(30.0)  # 240 input samples
    text = resampling_report.render({**report, "vr_scan": scan})
    assert "5. VR towards 24 kHz" in text and "8-24 kHz" in text and "48-192 kHz" in text


def test_main_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        resampling_report.main(["--seconds", "1", "--frames", "10", "--rounds", "1", "--json"]) == 0
    )
    parsed = json.loads(capsys.readouterr().out)
    assert set(parsed) >= {"us_per_frame", "withheld_ms", "gain_db", "spurious_db", "rule"}
