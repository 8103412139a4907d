"""The audit chain's append-time hash is the one ``verify`` recomputes (``digest_of``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sealmail.audit import _appended_digest, at_text, canonical_details, digest_of

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


@given(
    actor=_text,
    action=_text,
    target=st.none() | _text,
    tenant_id=st.none() | _text,
    details=st.dictionaries(_text, _json, max_size=4),
    seq=st.integers(min_value=1, max_value=2**62),
)
def test_the_append_digest_is_digest_of(
    actor: str, action: str, target: str | None, tenant_id: str | None, details: dict[str, Any], seq: int
) -> None:
    at = datetime(2026, 12, 4, 17, 5, 1, 20, tzinfo=UTC)
    row = {
        "seq": seq,
        "id": "aud_01",
        "tenant_id": tenant_id,
        "at": at,
        "actor": actor,
        "action": action,
        "target": target,
        "details": details,
        "prev_hash": "0" * 64,
    }
    expected = digest_of("0" * 64, {**row, "at": at_text(at)})
    assert _appended_digest("0" * 64, row, at_text(at), canonical_details(details)) == expected
