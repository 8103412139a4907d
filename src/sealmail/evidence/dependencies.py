"""The dependency audit: the lock file's pins checked against the OSV advisory database, the
answer kept with the time it was fetched.

``refresh()`` asks OSV (``osv.py``) about every ``name==version`` of the lock file and writes
the answer to a cache file (``<home>/evidence/osv-advisories.json``) with its fetch time.
Every evidence pack — CLI, API or console — then reads that cache, offline, and says
"advisories as of <time>, source OSV": a pack never fetches, and never presents old advisories
as fresh or an unchecked pin as clean.  No cache at all is said too (``performed: false``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from sealmail.errors import ServiceUnavailable
from sealmail.evidence.osv import Finding, OsvClient, Pinned, Severity

CACHE_FORMAT = "sealmail-osv-advisories/1"
SOURCE = "OSV"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)")


def norm(name: str) -> str:
    """A distribution name normalized as PEP 503 says."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(lock_text: str) -> list[Pinned]:
    """Each ``name==version`` line of a lock file, name normalized."""
    found = []
    for line in lock_text.splitlines():
        m = _PIN.match(line.strip())
        if m is not None:
            found.append(Pinned(norm(m.group(1)), m.group(2)))
    return found


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What OSV answered for a set of pins, and when."""

    source: str
    url: str
    fetched_at: str
    pins: tuple[Pinned, ...]
    findings: tuple[Finding, ...]


@dataclass(frozen=True, slots=True)
class AuditView:
    """A snapshot applied to the pins of a lock file: what the pack and ``evidence deps`` show."""

    snapshot: Snapshot
    checked: int
    not_checked: tuple[Pinned, ...]  # pins of the lock the snapshot did not ask about
    findings: tuple[Finding, ...]

    def at_or_above(self, threshold: Severity) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity.rank >= threshold.rank)

    @property
    def note(self) -> str:
        s = self.snapshot
        return f"advisories as of {s.fetched_at}, source {s.source} ({s.url}); not fetched for this report"


def view(snapshot: Snapshot, pins: list[Pinned]) -> AuditView:
    asked = set(snapshot.pins)
    wanted = set(pins)
    return AuditView(
        snapshot,
        checked=len(wanted & asked),
        not_checked=tuple(p for p in pins if p not in asked),
        findings=tuple(f for f in snapshot.findings if Pinned(f.package, f.version) in wanted),
    )


def _load(data: bytes) -> Snapshot:
    doc = json.loads(data)
    if not isinstance(doc, dict) or doc.get("format") != CACHE_FORMAT:
        raise ValueError("not an advisory cache")
    findings = tuple(
        Finding(
            str(f["id"]),
            str(f["package"]),
            str(f["version"]),
            tuple(str(x) for x in f["fixed_in"]),
            Severity(f["severity"]),
            str(f["summary"]),
            tuple(str(x) for x in f["aliases"]),
        )
        for f in doc["findings"]
    )
    pins = tuple(Pinned(str(n), str(v)) for n, v in doc["pins"])
    return Snapshot(str(doc["source"]), str(doc["url"]), str(doc["fetched_at"]), pins, findings)


class DependencyAudit:
    """The cache of OSV answers; ``osv`` is absent where no fetch may be made."""

    def __init__(self, cache_file: Path | None, lock_file: Path | None, osv: OsvClient | None) -> None:
        self.cache_file = cache_file
        self.lock_file = lock_file
        self.osv = osv

    def lock_text(self) -> str | None:
        """The configured lock file's text, or None when there is none to read."""
        if self.lock_file is None or not self.lock_file.is_file():
            return None
        try:
            return self.lock_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def snapshot(self) -> Snapshot | None:
        """The last stored answer, or None (never fetched, or the file is not one we wrote)."""
        if self.cache_file is None:
            return None
        try:
            return _load(self.cache_file.read_bytes())
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def audit_view(self, lock_text: str | None) -> AuditView | None:
        """The stored advisories applied to ``lock_text``'s pins (the stored pins without one)."""
        snap = self.snapshot()
        if snap is None:
            return None
        return view(snap, locked(lock_text) if lock_text is not None else list(snap.pins))

    def refresh(self, lock_text: str) -> Snapshot:
        """Ask OSV about every pin of ``lock_text`` now and store the answer."""
        return asyncio.run(self.refresh_async(lock_text))

    async def refresh_async(self, lock_text: str) -> Snapshot:
        """``refresh`` in a running event loop (the workers' scheduled refresh). A failed fetch
        raises and stores nothing: the previous answer stays, with its own time."""
        if self.osv is None:
            raise ServiceUnavailable("no OSV client is configured (osv_url)")
        pins = locked(lock_text)
        findings = await self.osv.scan(pins)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        snap = Snapshot(SOURCE, self.osv.source, now, tuple(pins), tuple(findings))
        self._store(snap)
        return snap

    def _store(self, snap: Snapshot) -> None:
        if self.cache_file is None:
            return
        doc = {
            "format": CACHE_FORMAT,
            "source": snap.source,
            "url": snap.url,
            "fetched_at": snap.fetched_at,
            "pins": [[p.name, p.version] for p in snap.pins],
            "findings": [asdict(f) for f in snap.findings],
        }
        self.cache_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Written beside, under a name of its own, and renamed: a reader never sees half an
        # answer, and a refresh by hand racing the workers' scheduled one never writes into the
        # other's file (the last rename wins, whole).
        fd, partial = tempfile.mkstemp(dir=self.cache_file.parent, prefix=".osv-", suffix=".partial")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
            os.replace(partial, self.cache_file)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
