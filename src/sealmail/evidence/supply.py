"""The software side of the evidence pack: what is installed, whether it is what was pinned,
and what the tests proved.

- ``sbom()``: a CycloneDX 1.5 JSON bill of materials read from the installed distributions'
  metadata (``importlib.metadata``) — no network, exactly what this process runs.
- ``dependency_audit()``: every pin of ``requirements.lock`` against the installed version,
  and the OSV advisories last fetched for those pins (``dependencies.py``) with the time they
  were fetched.  Where none were ever fetched the artifact **says so** (``performed: false``
  with the reason) instead of reporting a clean result nobody checked.
- ``results_table()``: the HIPAA section → tests table with each test's result from the file
  the test run wrote (``pytest --hipaa-results``), or, without one, an explicit "not run".
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from sealmail.evidence import controls, dependencies
from sealmail.evidence.dependencies import AuditView, norm
from sealmail.evidence.osv import Severity

SBOM_SPEC = "1.5"
AUDIT_FORMAT = "sealmail-dependency-audit/1"
RESULTS_FORMAT = "sealmail-hipaa-results/1"
NO_VULN_DB = (
    "not performed: no OSV advisories were ever fetched on this installation (a pack never "
    "fetches). Run `sealmail evidence deps --refresh` where the OSV API is reachable, then build "
    "the pack again."
)
_PARAMS = re.compile(r"\[.*\]$")


def installed() -> dict[str, str]:
    """Normalized distribution name → version, of this environment."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[norm(name)] = dist.version
    return found


def _component(dist: metadata.Distribution) -> dict[str, Any]:
    name = dist.metadata["Name"]
    purl = f"pkg:pypi/{norm(name)}@{dist.version}"
    comp: dict[str, Any] = {
        "type": "library",
        "bom-ref": purl,
        "name": name,
        "version": dist.version,
        "purl": purl,
    }
    meta: Any = dist.metadata  # an email.message.Message: .get answers None when absent
    licence = meta.get("License-Expression") or meta.get("License")
    if licence and len(licence) <= 100:
        comp["licenses"] = [{"license": {"name": licence.strip()}}]
    return comp


def _sbom() -> dict[str, Any]:
    """CycloneDX JSON of every installed distribution (the application first, in metadata)."""
    dists = {norm(d.metadata["Name"]): d for d in metadata.distributions() if d.metadata["Name"]}
    own = dists.pop("sealmail", None)
    app: dict[str, Any] = {"type": "application", "name": "sealmail"}
    if own is not None:
        app |= {"version": own.version, "bom-ref": f"pkg:pypi/sealmail@{own.version}"}
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SBOM_SPEC,
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "tools": {"components": [{"type": "application", "name": "sealmail evidence pack"}]},
            "component": app,
        },
        "components": [_component(dists[name]) for name in sorted(dists)],
    }


@dataclass(frozen=True, slots=True)
class Pin:
    name: str
    pinned: str
    installed: str | None
    status: str  # match | differs | missing


def pins(lock_text: str) -> list[Pin]:
    """Each ``name==version`` line of a lock file against what is installed."""
    have = installed()
    out = []
    for pin in dependencies.locked(lock_text):
        got = have.get(pin.name)
        status = "missing" if got is None else ("match" if got == pin.version else "differs")
        out.append(Pin(pin.name, pin.version, got, status))
    return out


def _dependency_audit(lock_text: str | None, advisories: AuditView | None) -> dict[str, Any]:
    """Pins vs installed, and the advisories as last fetched, or an honest "not performed"."""
    checked = pins(lock_text) if lock_text is not None else []
    vulnerabilities: dict[str, Any] = {"performed": False, "reason": NO_VULN_DB}
    if advisories is not None:
        vulnerabilities = _advisories(advisories)
    return {
        "format": AUDIT_FORMAT,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "lock_file": "requirements.lock" if lock_text is not None else None,
        "pins_compared": lock_text is not None,
        "pins_note": "" if lock_text is not None else "no lock file was given: pins not compared",
        "pins": [asdict(p) for p in checked],
        "summary": {s: sum(p.status == s for p in checked) for s in ("match", "differs", "missing")},
        "vulnerability_check": vulnerabilities,
    }


def _advisories(v: AuditView) -> dict[str, Any]:
    """The ``vulnerability_check`` object: the stored OSV answer applied to this lock's pins."""
    return {
        "performed": True,
        "source": v.snapshot.source,
        "url": v.snapshot.url,
        "as_of": v.snapshot.fetched_at,
        "note": v.note,
        "packages_checked": v.checked,
        "not_checked": [f"{p.name}=={p.version}" for p in v.not_checked],
        "findings": [asdict(f) for f in v.findings],
        "by_severity": {s.value: sum(f.severity is s for f in v.findings) for s in Severity},
    }


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True).encode() + b"\n"


def sbom_json() -> bytes:
    """The CycloneDX document, as the pack stores it."""
    return _json(_sbom())


def dependency_audit_json(lock_text: str | None, advisories: AuditView | None = None) -> bytes:
    """The dependency audit, as the pack stores it (built offline from the stored advisories)."""
    return _json(_dependency_audit(lock_text, advisories))


@dataclass(frozen=True, slots=True)
class RunResults:
    """A results file the test run wrote: node id → outcome and the sections it proves."""

    finished_at: str
    tests: dict[str, tuple[str, tuple[str, ...]]]


def section_results(tests: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Section → outcome counts, from the ``tests`` map of a results file."""
    counts: dict[str, dict[str, int]] = {}
    for test in tests.values():
        for section in test.get("sections", []):
            row = counts.setdefault(section, {"passed": 0, "failed": 0, "skipped": 0})
            row[test["outcome"]] = row.get(test["outcome"], 0) + 1
    return counts


def _counts(results: RunResults | None) -> dict[str, dict[str, int]]:
    tests = (results.tests if results else {}).items()
    return section_results({n: {"outcome": o, "sections": list(s)} for n, (o, s) in tests})


def _outcomes_by_test(results: RunResults | None) -> dict[str, list[str]]:
    by: dict[str, list[str]] = {}
    for nodeid, (outcome, _) in (results.tests if results else {}).items():
        by.setdefault(_PARAMS.sub("", nodeid), []).append(outcome)
    return by


def results_table(table: dict[str, list[str]], results: RunResults | None) -> str:
    """Section | requirement | tests with their results | verdict (Markdown)."""
    lines = ["# HIPAA sections, the tests that prove them, and their results", ""]
    if results is None:
        lines += [
            "**Test results: not run** — no results file was given to this pack, so no",
            "result is claimed.",
            "",
        ]
    else:
        lines += [f"Results of the test run finished {results.finished_at}.", ""]
    lines += ["| Section | Requirement | Tests | Result |", "|---|---|---|---|"]
    by_test = _outcomes_by_test(results)
    counts = _counts(results)
    for section in sorted(set(controls.SECTIONS) | set(table)):
        cells = []
        for test in table.get(section, []):
            got = by_test.get(test)
            cells.append(f"`{test}` {'/'.join(sorted(set(got))) if got else 'not run'}")
        c = counts.get(section, {})
        verdict = (
            "not run" if results is None else ("**no passing test**" if not c.get("passed") else "passed")
        )
        if c.get("failed"):
            verdict = f"**{c['failed']} failed**"
        tests = "<br>".join(cells) or "**none**"
        lines.append(f"| {section} | {controls.SECTIONS.get(section, '')} | {tests} | {verdict} |")
    return "\n".join(lines) + "\n"


def unproven_in_results(tests: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Mapped sections without a passing test in this run (the CI gate)."""
    counts = section_results(tests)
    return [s for s in controls.SECTIONS if not counts.get(s, {}).get("passed")]


def load_results(data: bytes) -> RunResults:
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != RESULTS_FORMAT:
            raise ValueError(f"not a results file: format is not {RESULTS_FORMAT}")
        tests = {
            str(n): (str(t["outcome"]), tuple(str(s) for s in t["sections"])) for n, t in doc["tests"].items()
        }
    except (KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a results file: {exc}") from exc
    return RunResults(str(doc.get("finished_at", "?")), tests)
