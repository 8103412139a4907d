"""A loopback OSV API (``POST /v1/querybatch``, ``GET /v1/vulns/{id}``) with fixed advisories.

::

    with OsvServer(ca) as osv:
        osv.add(advisory("GHSA-xxxx", "jinja2", ["2.4"], fixed="2.10.1", severity="HIGH"))
        settings = make_settings(…, osv_url=osv.url, tls_ca_file=ca.ca_file)

Speaks the real API's shapes (https://google.github.io/osv.dev/api/): one result per query in
order, each ``{"vulns": [{"id", "modified"}]}`` or ``{}``; an advisory by id, or a 404.
"""

from __future__ import annotations

import json
import re
import threading
from types import TracebackType
from typing import Any

from tests.support.ca import TestCA
from tests.support.https_server import HttpsServer, Route


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def advisory(
    vid: str,
    package: str,
    versions: list[str],
    *,
    fixed: str | None = None,
    severity: str | None = None,
    summary: str = "",
) -> dict[str, Any]:
    """An OSV advisory document for ``package`` at ``versions`` (PyPI)."""
    events: list[dict[str, str]] = [{"introduced": "0"}]
    if fixed:
        events.append({"fixed": fixed})
    doc: dict[str, Any] = {
        "id": vid,
        "modified": "2026-01-01T00:00:00Z",
        "summary": summary or f"{package} advisory",
        "aliases": [f"CVE-2026-{abs(hash(vid)) % 10000:04d}"],
        "affected": [
            {
                "package": {"name": package, "ecosystem": "PyPI"},
                "ranges": [{"type": "ECOSYSTEM", "events": events}],
                "versions": versions,
            }
        ],
    }
    if severity:
        doc["database_specific"] = {"severity": severity}
    return doc


class OsvServer:
    """HTTPS on 127.0.0.1 (a certificate for that IP from ``ca``); ``url`` is its base URL."""

    def __init__(self, ca: TestCA) -> None:
        self.web = HttpsServer(ca.issue("127.0.0.1"))
        self._lock = threading.Lock()
        self._affects: dict[tuple[str, str], list[str]] = {}
        self.queries: list[list[dict[str, Any]]] = []  # each querybatch's queries

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.web.port}"

    def add(self, doc: dict[str, Any]) -> None:
        for affected in doc["affected"]:
            for version in affected["versions"]:
                key = (_norm(affected["package"]["name"]), version)
                with self._lock:
                    self._affects.setdefault(key, []).append(doc["id"])
        self.web.set_route(
            f"/v1/vulns/{doc['id']}",
            Route(200, json.dumps(doc).encode(), {"Content-Type": "application/json"}),
        )

    def _querybatch(self, body: bytes) -> Route:
        try:
            queries = json.loads(body)["queries"]
        except (ValueError, KeyError, TypeError):
            return Route(400, b'{"code": 3, "message": "invalid"}', {"Content-Type": "application/json"})
        results = []
        with self._lock:
            self.queries.append(queries)
            for q in queries:
                ids = self._affects.get((_norm(q["package"]["name"]), q["version"]), [])
                results.append(
                    {"vulns": [{"id": i, "modified": "2026-01-01T00:00:00Z"} for i in ids]} if ids else {}
                )
        return Route(200, json.dumps({"results": results}).encode(), {"Content-Type": "application/json"})

    def start(self) -> OsvServer:
        self.web.start()
        self.web.set_handler("/v1/querybatch", self._querybatch)
        return self

    def __enter__(self) -> OsvServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.web.stop()
