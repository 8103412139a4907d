"""The OSV advisory database (https://osv.dev), asked about each pinned package.

Two calls of the OSV API v1: ``POST /v1/querybatch`` with one query per pin (PyPI name and
exact version) answers the advisory ids that affect each pin, then ``GET /v1/vulns/{id}``
answers each advisory's details: the versions that fix it and its severity.

Every request goes through the SSRF-safe client (``net/http_client.py``) built with the
configured OSV host as its only reachable host, and everything that comes back is treated as
hostile: bodies are capped, the whole fetch has one deadline, JSON of the wrong shape is
refused (never half-read), advisory ids are checked before they become a URL path, and the
number of advisories fetched is bounded.  A failed fetch raises ``ServiceUnavailable``; the
caller keeps the advisories it had, with their own (older) time.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sealmail.errors import ServiceUnavailable
from sealmail.evidence import cvss
from sealmail.net.http_client import FetchError, SafeHttpClient, redact_url

ECOSYSTEM = "PyPI"
BATCH_MAX_BYTES = 4 * 1024 * 1024  # a querybatch answer is ids and dates only
VULN_MAX_BYTES = 1024 * 1024  # one advisory: its text, ranges and references
MAX_QUERIES = 1000  # OSV's own limit for one querybatch
MAX_ADVISORIES = 500  # advisories fetched in one scan; more is an answer we refuse
MAX_PAGES = 10  # querybatch rounds following next_page_token; a server paging forever is refused
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")


class Severity(enum.StrEnum):
    """GitHub's advisory scale (OSV's ``database_specific.severity``); ``unknown`` when the
    advisory gives none (PYSEC advisories often do not)."""

    LOW = "low"
    MODERATE = "moderate"
    HIGH = "high"
    CRITICAL = "critical"
    UNKNOWN = "unknown"

    @property
    def rank(self) -> int:
        # An advisory without a severity ranks as high: failing closed, an unrated hole in a
        # dependency is not waved through a "high and above" gate.
        return {"low": 1, "moderate": 2, "high": 3, "critical": 4, "unknown": 3}[self.value]


_SEVERITY_WORDS = {
    "low": "low",
    "moderate": "moderate",
    "medium": "moderate",
    "high": "high",
    "critical": "critical",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One advisory affecting one pinned package version."""

    id: str
    package: str
    version: str
    fixed_in: tuple[str, ...]
    severity: Severity
    summary: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Pinned:
    name: str  # normalized (PEP 503)
    version: str


def _bad(what: str) -> ServiceUnavailable:
    return ServiceUnavailable(f"the OSV advisory database answered {what}; advisories not refreshed")


def _json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _bad(f"{what} that is not JSON") from exc


def batch_ids(doc: Any, queries: int) -> list[tuple[list[str], str]]:
    """Each query's advisory ids and its next-page token, from a querybatch answer."""
    results = doc.get("results") if isinstance(doc, dict) else None
    if not isinstance(results, list) or len(results) != queries:
        raise _bad("a querybatch result list that does not match the queries")
    out: list[tuple[list[str], str]] = []
    for result in results:
        if not isinstance(result, dict):
            raise _bad("a querybatch result that is not an object")
        vulns = result.get("vulns", [])
        token = result.get("next_page_token", "")
        if not isinstance(vulns, list) or not isinstance(token, str):
            raise _bad("a querybatch result of the wrong shape")
        ids = []
        for vuln in vulns:
            vid = vuln.get("id") if isinstance(vuln, dict) else None
            if not isinstance(vid, str) or not _ID.match(vid):
                raise _bad("an advisory id that is not one")
            ids.append(vid)
        out.append((ids, token[:1000]))
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _severity(doc: dict[str, Any], affected: list[dict[str, Any]]) -> Severity:
    found = [doc.get("database_specific"), *(a.get("ecosystem_specific") for a in affected)]
    for place in found:
        word = place.get("severity") if isinstance(place, dict) else None
        if isinstance(word, str) and word.strip().lower() in _SEVERITY_WORDS:
            return Severity(_SEVERITY_WORDS[word.strip().lower()])
    # No word: the highest CVSS v3 base score among the advisory's vectors, rated.
    scores = [
        cvss.base_score(entry["score"])
        for entry in (doc.get("severity") or [])[:10]
        if isinstance(entry, dict) and isinstance(entry.get("score"), str) and len(entry["score"]) < 200
    ]
    rated = [s for s in scores if s is not None and s > 0]
    return Severity(cvss.rating(max(rated))) if rated else Severity.UNKNOWN


def _fixed(affected: list[dict[str, Any]]) -> tuple[str, ...]:
    fixed: list[str] = []
    for entry in affected:
        for rng in entry.get("ranges") or []:
            for event in (rng.get("events") or []) if isinstance(rng, dict) else []:
                value = event.get("fixed") if isinstance(event, dict) else None
                if isinstance(value, str) and value[:64] not in fixed:
                    fixed.append(value[:64])
    return tuple(fixed)


def finding(doc: Any, pin: Pinned) -> Finding:
    """The parts of an OSV advisory that concern ``pin``: fixed versions and severity."""
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str) or not _ID.match(doc["id"]):
        raise _bad("an advisory without a valid id")
    affected = [
        a
        for a in doc.get("affected") or []
        if isinstance(a, dict)
        and isinstance(a.get("package"), dict)
        and a["package"].get("ecosystem") == ECOSYSTEM
        and _norm(str(a["package"].get("name", ""))) == pin.name
    ]
    aliases = doc.get("aliases") or []
    return Finding(
        id=doc["id"],
        package=pin.name,
        version=pin.version,
        fixed_in=_fixed(affected),
        severity=_severity(doc, affected),
        summary=str(doc.get("summary") or "")[:300],
        aliases=tuple(str(a)[:100] for a in aliases[:20]) if isinstance(aliases, list) else (),
    )


class OsvClient:
    """Asks OSV about pins; ``base_url`` is e.g. ``https://api.osv.dev`` (a mirror speaking the
    same API works: ``osv_url``)."""

    def __init__(self, http: SafeHttpClient, base_url: str) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")

    @property
    def source(self) -> str:
        return redact_url(self.base_url)

    async def scan(self, pins: Sequence[Pinned]) -> list[Finding]:
        """Every advisory affecting any pin (ordered by package, then id)."""
        if len(pins) > MAX_QUERIES:
            raise ServiceUnavailable(f"at most {MAX_QUERIES} pins are checked in one scan")
        wanted: dict[str, list[Pinned]] = {}
        pending = [(pin, "") for pin in pins]
        for _ in range(MAX_PAGES):
            if not pending:
                break
            answers = await self._batch(pending)
            following = []
            for (pin, _), (ids, token) in zip(pending, answers, strict=True):
                for vid in ids:
                    if pin not in wanted.setdefault(vid, []):
                        wanted[vid].append(pin)
                if token:
                    following.append((pin, token))
            if len(wanted) > MAX_ADVISORIES:
                raise _bad(f"more than {MAX_ADVISORIES} advisories")
            pending = following
        if pending:
            raise _bad(f"more than {MAX_PAGES} pages of advisory ids")
        findings = []
        for vid, affected_pins in wanted.items():
            doc = await self._vuln(vid)
            findings += [finding(doc, pin) for pin in affected_pins]
        return sorted(findings, key=lambda f: (f.package, f.id))

    async def _batch(self, pending: list[tuple[Pinned, str]]) -> list[tuple[list[str], str]]:
        queries = []
        for pin, token in pending:
            query: dict[str, Any] = {"package": {"name": pin.name, "ecosystem": ECOSYSTEM}}
            query["version"] = pin.version
            if token:
                query["page_token"] = token
            queries.append(query)
        body = json.dumps({"queries": queries}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        try:
            answer = await self.http.post(
                f"{self.base_url}/v1/querybatch", body, headers, max_bytes=BATCH_MAX_BYTES
            )
        except FetchError as exc:
            raise ServiceUnavailable(f"the OSV advisory database is unreachable ({exc.reason})") from exc
        if answer.status != 200:
            raise _bad(f"HTTP {answer.status} to querybatch")
        return batch_ids(_json(answer.body, "a querybatch"), len(queries))

    async def _vuln(self, vid: str) -> Any:
        try:
            answer = await self.http.get(
                f"{self.base_url}/v1/vulns/{quote(vid, safe='')}",
                accept="application/json",
                max_bytes=VULN_MAX_BYTES,
            )
        except FetchError as exc:
            raise ServiceUnavailable(f"the OSV advisory database is unreachable ({exc.reason})") from exc
        if answer.status != 200:
            raise _bad(f"HTTP {answer.status} for advisory {vid}")
        return _json(answer.body, f"advisory {vid}")
