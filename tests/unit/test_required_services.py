"""VIGIL_REQUIRE_SERVICES=1 (set by .ci/run) turns "service not available" skips into failures."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).parents[1] / "conftest.py"


@pytest.mark.parametrize(("value", "outcome"), [("1", "failed"), ("0", "skipped"), ("", "skipped")])
def test_a_missing_service_fails_only_when_services_are_required(pytester, monkeypatch, value, outcome) -> None:
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile("def test_needs_a_broker(service_missing):\n    service_missing('no MQTT broker')\n")
    monkeypatch.setenv("VIGIL_REQUIRE_SERVICES", value)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(**{outcome: 1})
    if outcome == "failed":
        result.stdout.fnmatch_lines(["*no MQTT broker, and VIGIL_REQUIRE_SERVICES is set*"])
