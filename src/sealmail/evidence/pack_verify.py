"""Checking an evidence pack offline: the signed manifest, then every file against it.

A pack is a zip whose ``manifest.json`` is a signed document (``signed.py``) listing the
SHA-256 of every other file.  A changed file, a file added or removed, a changed manifest
or a signature by another key is each named.  Needs only the zip (and, to pin the signer,
the tenant's key fingerprint): no database, no key ring.  Reading is bounded: a pack with
too many members or members too large is refused before they are read.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sealmail.evidence import signed

FORMAT = "sealmail-evidence-pack/2"
# Packs of format 1 predate the SBOM, dependency audit, test results and drill register.
FORMATS = (FORMAT, "sealmail-evidence-pack/1")
REQUIRED = (
    "audit/entries.jsonl",
    "audit/verification.json",
    "controls/hipaa-tests.md",
    "registers/activity-reviews.json",
)
REQUIRED_2 = (
    "controls/sbom.cdx.json",
    "controls/dependency-audit.json",
    "controls/test-results.json",
    "registers/backup-drills.json",
)
MANIFEST = "manifest.json"
MAX_MEMBERS = 1000
MAX_MEMBER_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PackCheck:
    """What checking a pack found: intact only when ``problems`` is empty."""

    problems: tuple[str, ...]
    files: int = 0  # files the signed manifest lists
    key_fingerprint: str = ""  # the key that signed the manifest, as the manifest names it

    @property
    def ok(self) -> bool:
        return not self.problems


def _refused(problem: str) -> PackCheck:
    return PackCheck((problem,))


def is_zip(data: bytes) -> bool:
    return data[:4] == b"PK\x03\x04"


def verify_pack(data: bytes, trusted_fingerprint: str | None = None) -> PackCheck:
    """The manifest's signature, then every file against it; no problems: the pack is intact."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return _refused("pack: not a zip archive")
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS or any(i.file_size > MAX_MEMBER_BYTES for i in infos):
            return _refused("pack: too many or too large members")
        names = {i.filename for i in infos}
        if MANIFEST not in names:
            return _refused("pack: manifest.json is missing")
        try:
            doc = json.loads(archive.read(MANIFEST))
        except (ValueError, UnicodeDecodeError):
            return _refused("manifest.json: not JSON")
        verdict = signed.verify(doc, trusted_fingerprint)
        problems = [f"manifest.json: {p}" for p in verdict.problems]
        if verdict.ok and doc.get("format") not in FORMATS:
            problems.append(f"manifest.json: format is not {FORMAT}")
        listed = doc.get("body", {}).get("files", {}) if isinstance(doc.get("body"), dict) else {}
        if not isinstance(listed, dict):
            return PackCheck((*problems, "manifest.json: files is not a map"))
        for name in sorted(names - {MANIFEST} - listed.keys()):
            problems.append(f"{name}: in the pack but not in the manifest (added)")
        for name, digest in sorted(listed.items()):
            if name not in names:
                problems.append(f"{name}: in the manifest but missing from the pack (removed)")
            elif hashlib.sha256(archive.read(name)).hexdigest() != digest:
                problems.append(f"{name}: altered (SHA-256 differs from the manifest)")
        problems += _members(archive, names, doc.get("format") == FORMAT)
    return PackCheck(tuple(problems), len(listed), verdict.key_fingerprint)


def _json_member(archive: zipfile.ZipFile, name: str) -> Any:
    try:
        return json.loads(archive.read(name))
    except (ValueError, UnicodeDecodeError):
        return None


def _members(archive: zipfile.ZipFile, names: set[str], current: bool) -> list[str]:
    """Required members present, and the software-evidence ones well formed."""
    required = REQUIRED + (REQUIRED_2 if current else ())
    problems = [f"{name}: required in an evidence pack but missing" for name in required if name not in names]
    if not current:
        return problems
    checks: dict[str, Callable[[Any], bool]] = {
        "controls/sbom.cdx.json": _is_sbom,
        "controls/dependency-audit.json": _is_audit,
        "controls/test-results.json": _is_results,
        "registers/backup-drills.json": lambda d: isinstance(d, list),
    }
    for name, check in checks.items():
        if name in names and not check(_json_member(archive, name)):
            problems.append(f"{name}: not a well-formed {name.rsplit('/', 1)[1]}")
    return problems


def _is_sbom(d: Any) -> bool:
    return isinstance(d, dict) and d.get("bomFormat") == "CycloneDX" and isinstance(d.get("components"), list)


def _is_audit(d: Any) -> bool:
    """A vulnerability check either performed (with its source, the time its advisories were
    fetched and its findings) or not performed with its reason."""
    check = d.get("vulnerability_check") if isinstance(d, dict) else None
    if not isinstance(check, dict):
        return False
    if check.get("performed") is True:
        return (
            bool(check.get("source")) and bool(check.get("as_of")) and isinstance(check.get("findings"), list)
        )
    return check.get("performed") is False and bool(check.get("reason"))


def _is_results(d: Any) -> bool:
    return (
        isinstance(d, dict)
        and d.get("format") == "sealmail-hipaa-results/1"
        and isinstance(d.get("tests"), dict)
    )
