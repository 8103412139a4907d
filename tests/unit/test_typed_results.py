"""Issue 13: services return typed results; the adapters shape the HTTP/JSON body.

An AST walk over every feature module that is not an adapter (``schemas``, ``api``, ``cli``,
``web``): a public function or method may not declare a return type mentioning
``dict[str, Any]``.  Two lists say where it still does:

- ``FREE_FORM``: the payload is genuinely open (a wire format, a table row, stored JSON);
  each entry names why.  Stays.
- ``NOT_YET_TYPED``: debt of issue 13, to convert.  It may only shrink: an entry that no
  longer matches anything fails the test, so whoever converts one removes it here.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "sealmail"
ADAPTERS = {"schemas.py", "api.py", "cli.py", "web.py"}
# The features layer of .importlinter, and delivery (a role that also serves a read route).
FEATURES = {
    "bounces",
    "console",
    "delivery",
    "dlp",
    "engagement",
    "evidence",
    "files",
    "messages",
    "portal",
    "secureline",
    "suppressions",
    "templates",
    "tenancy",
    "tlsrpt",
    "users",
    "webhooks",
}

FREE_FORM: dict[str, str] = {
    "messages/accept.py:Accepted.to_record": "the JSON idempotency_keys.response keeps (storage format)",
    "messages/accept.py:recipient_rows": "rows for sa.insert(recipients)",
    "messages/accept.py:message_row": "a row for sa.insert(messages)",
    "webhooks/payload.py:event_data": "a webhook event's data object: open by design, per event type",
    "webhooks/outbox.py:load_for_sending": "endpoint and event rows by id, read back for the dispatcher",
    "tlsrpt/report.py:PolicyReport.to_json": "an RFC 8460 report document (a wire format)",
    "tlsrpt/report.py:build_report": "an RFC 8460 report document (a wire format)",
    "tlsrpt/report.py:parse_received": "a received RFC 8460 report, as the sender wrote it",
    "portal/lifecycle.py:notice_facts": "a notice's facts as portal event data (free-form event JSON)",
    "tenancy/service.py:Tenancy.update_settings": "the tenant's settings JSON (open: a key per feature)",
    "users/challenges.py:take": "a pending challenge's stored JSON state, shaped per purpose (storage)",
    "users/oidc.py:OidcClient.verify": "a verified ID token's claims set (OIDC Core §2: open, per provider)",
    # Signed evidence documents (evidence/signed.py): canonical JSON whose every leaf the signed
    # manifest digests, handed out as is and checked offline by `sealmail verify`: a wire format.
    "evidence/signed.py:sign": "a signed evidence document {format, body, manifest, signature} (wire format)",
    "evidence/signed.py:leaves": "a signed document's open body, leaf by dotted path (the manifest's input)",
    "evidence/proofs.py:Proofs.issue": "a signed proof of delivery (a signed evidence document, wire format)",
    "evidence/anchors.py:Anchors.anchor": "a signed audit anchor, TSA-stamped (signed document, wire format)",
    "evidence/service.py:Evidence.anchor": "Anchors.anchor's signed anchor, passed on (wire format)",
    "evidence/timestamps.py:Timestamper.stamp": "a signed document plus its RFC 3161 timestamp (wire format)",
    "console/audit_export.py:AuditExport.signed_json": "the signed audit export (a wire format)",
    "console/segment_builder.py:leaf": "one node of a segment's JSON rule tree (the API's rule format)",
    "console/segment_builder.py:combine": "a segment's JSON rule tree (the API's rule format)",
}

NOT_YET_TYPED: set[str] = set()


def _public_defs(body: list[ast.stmt], prefix: str = "") -> list[tuple[str, ast.expr | None]]:
    found: list[tuple[str, ast.expr | None]] = []
    for node in body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            found += _public_defs(node.body, f"{prefix}{node.name}.")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_"):
            found.append((f"{prefix}{node.name}", node.returns))
    return found


def _untyped_results() -> set[str]:
    """``path:qualname`` of every public service-side def whose return names ``dict[str, Any]``."""
    found: set[str] = set()
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] not in FEATURES or path.name in ADAPTERS:
            continue
        for name, returns in _public_defs(ast.parse(path.read_text()).body):
            if returns is not None and "dict[str, Any]" in ast.unparse(returns):
                found.add(f"{rel.as_posix()}:{name}")
    return found


def test_services_return_typed_results() -> None:
    new = sorted(_untyped_results() - FREE_FORM.keys() - NOT_YET_TYPED)
    assert new == [], (
        "a service returns dict[str, Any]: return a frozen dataclass and let the adapter "
        f"(api.py/cli.py/web.py, with a model in schemas.py) shape the body: {new}"
    )


def test_the_allow_lists_hold_only_what_still_exists() -> None:
    found = _untyped_results()
    stale = sorted((FREE_FORM.keys() | NOT_YET_TYPED) - found)
    assert stale == [], f"typed now (or renamed): remove from the lists in this test: {stale}"


def test_free_form_entries_say_why() -> None:
    assert all(len(reason) > 10 for reason in FREE_FORM.values())
    assert not (FREE_FORM.keys() & NOT_YET_TYPED)


def test_the_walk_sees_a_dict_result(tmp_path: Path) -> None:
    # The check would catch one: a public method declared to return dict[str, Any].
    tree = ast.parse(
        "class S:\n    def get(self) -> dict[str, Any]: ...\n    def _x(self) -> dict[str, Any]: ...\n"
    )
    [(name, returns)] = _public_defs(tree.body)
    assert name == "S.get" and returns is not None and "dict[str, Any]" in ast.unparse(returns)
