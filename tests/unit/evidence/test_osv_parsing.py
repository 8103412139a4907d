"""OSV advisory parsing: severity from the advisory's word or, without one, its CVSS v3 vector
(scores checked against FIRST's published examples); fixed versions of the pinned package only."""

from __future__ import annotations

import pytest

from sealmail.evidence import cvss
from sealmail.evidence.osv import Pinned, Severity, finding


@pytest.mark.parametrize(
    ("vector", "score"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
        ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
        ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", 5.5),
        ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:L/I:N/A:N", 3.7),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
    ],
)
def test_cvss_base_scores(vector: str, score: float) -> None:
    assert cvss.base_score(vector) == score


@pytest.mark.parametrize(
    "vector", ["", "CVSS:4.0/AV:N/AC:L", "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:3.1/AV:N"]
)
def test_not_a_cvss3_vector(vector: str) -> None:
    assert cvss.base_score(vector) is None


def _doc(**extra: object) -> dict[str, object]:
    return {
        "id": "PYSEC-2026-1",
        "affected": [
            {
                "package": {"name": "Jinja2", "ecosystem": "PyPI"},
                "ranges": [{"events": [{"fixed": "3.1.5"}]}],
            },
            {"package": {"name": "other", "ecosystem": "PyPI"}, "ranges": [{"events": [{"fixed": "9.9"}]}]},
            {"package": {"name": "jinja2", "ecosystem": "npm"}, "ranges": [{"events": [{"fixed": "8.8"}]}]},
        ],
        **extra,
    }


def test_severity_word_first_then_cvss_then_unknown() -> None:
    pin = Pinned("jinja2", "3.1.4")
    worded = finding(_doc(database_specific={"severity": "MEDIUM"}), pin)
    assert worded.severity is Severity.MODERATE and worded.fixed_in == ("3.1.5",)
    scored = finding(
        _doc(severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]), pin
    )
    assert scored.severity is Severity.CRITICAL
    assert (
        finding(_doc(severity=[{"type": "CVSS_V4", "score": "CVSS:4.0/AV:N"}]), pin).severity
        is Severity.UNKNOWN
    )
    assert finding(_doc(), pin).severity is Severity.UNKNOWN
    assert Severity.UNKNOWN.rank == Severity.HIGH.rank  # fails closed at a "high" gate
