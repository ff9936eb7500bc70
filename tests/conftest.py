"""Suite-wide rules.

Under CI=true nothing may skip: a skipped test there is reported as a failure,
so a missing dependency (OVS, root, tshark) can never pass silently.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

# Property tests judge results, not speed: a loaded CI machine must not fail them.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Lines tests want in the run's output even when they pass (e.g. NAT translations
# recorded by the differential tests); printed in the terminal summary.
REPORT: list[str] = []


def require(condition: bool, reason: str) -> None:
    """Skip (or, under CI=true, fail) a test whose environment is missing."""
    if not condition:
        if IN_CI:
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped under CI=true, which counts as a failure: {reason}"


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("recorded by tests")
        for line in REPORT:
            terminalreporter.write_line(line)
