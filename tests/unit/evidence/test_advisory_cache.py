"""The stored OSV answer: written whole or not at all, even when a refresh by hand and the
workers' scheduled one store at the same moment."""

from __future__ import annotations

import threading
from pathlib import Path

from sealmail.evidence.dependencies import SOURCE, DependencyAudit, Snapshot
from sealmail.evidence.osv import Finding, Pinned, Severity


def _snapshot(n: int) -> Snapshot:
    pins = tuple(Pinned(f"pkg-{i}", "1.0") for i in range(200))
    findings = tuple(
        Finding(f"GHSA-{n}-{i}", f"pkg-{i}", "1.0", ("1.1",), Severity.HIGH, "x" * 200) for i in range(200)
    )
    return Snapshot(SOURCE, "https://osv.example", f"2026-12-04T00:00:{n:02d}+00:00", pins, findings)


def test_concurrent_stores_leave_one_whole_answer(tmp_path: Path) -> None:
    cache = DependencyAudit(tmp_path / "evidence" / "osv-advisories.json", None, None)
    errors: list[BaseException] = []

    def store(n: int) -> None:
        try:
            for _ in range(30):
                cache._store(_snapshot(n))
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    writers = [threading.Thread(target=store, args=(n,)) for n in (1, 2)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(60)
    assert errors == []
    kept = cache.snapshot()
    assert kept is not None and kept in (_snapshot(1), _snapshot(2))
    assert sorted(p.name for p in cache.cache_file.parent.iterdir()) == ["osv-advisories.json"]  # type: ignore[union-attr]
