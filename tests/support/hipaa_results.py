"""A pytest plugin: the results of every ``@pytest.mark.hipaa`` test, for the evidence pack.

``--hipaa-results PATH`` writes ``{"format": "sealmail-hipaa-results/1", "tests": {nodeid:
{"outcome", "sections"}}, ...}`` at the end of the run (under xdist, the controller writes it
from the reports its workers send: the sections travel as ``user_properties``).
``sealmail evidence pack --test-results PATH`` puts it in the pack and fills the table's
Result column from it.  ``--hipaa-gate`` fails the run when a section Sealmail claims
(``controls.SECTIONS``) has no passing test — what ``make test`` (and so CI) uses.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sealmail.evidence import supply


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sealmail")
    group.addoption(
        "--hipaa-results", default=None, help="Write the hipaa-marked tests' results here (JSON)."
    )
    group.addoption(
        "--hipaa-gate",
        action="store_true",
        help="Fail the run when a claimed HIPAA section has no passing test.",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(HipaaResults(config), "sealmail-hipaa-results")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for mark in item.iter_markers("hipaa"):
            for section in mark.args:
                item.user_properties.append(("hipaa", str(section)))


class HipaaResults:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.tests: dict[str, dict[str, Any]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        sections = sorted({str(v) for k, v in report.user_properties if k == "hipaa"})
        if not sections:
            return
        entry = self.tests.setdefault(report.nodeid, {"outcome": "passed", "sections": sections})
        # The worst phase wins: a failed teardown fails the test; a skip in setup skips it.
        if report.failed:
            entry["outcome"] = "failed"
        elif report.skipped and entry["outcome"] != "failed":
            entry["outcome"] = "skipped"

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        config = self.config
        if hasattr(config, "workerinput"):  # an xdist worker: the controller writes the file
            return
        results = {
            "format": supply.RESULTS_FORMAT,
            "run": True,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "exit_status": int(exitstatus),
            "tests": dict(sorted(self.tests.items())),
            "sections": supply.section_results(self.tests),
        }
        path = config.getoption("--hipaa-results")
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        if config.getoption("--hipaa-gate"):
            missing = supply.unproven_in_results(self.tests)
            if missing:
                reporter = config.pluginmanager.get_plugin("terminalreporter")
                if reporter is not None:
                    reporter.write_line(f"HIPAA gate: no passing test proves {', '.join(missing)}", red=True)
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
