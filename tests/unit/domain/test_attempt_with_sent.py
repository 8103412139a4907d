"""``outcomes.with_sent`` is ``dataclasses.replace(a, sent_sha256=…)``: every field kept."""

from dataclasses import fields, replace

from sealmail.domain.outcomes import Attempt, AttemptStatus, TlsInfo, with_sent
from sealmail.domain.tls_policy import VerifiedBy


def test_every_field_is_kept_and_only_the_digest_changes() -> None:
    tls = TlsInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", True, VerifiedBy.PKIX, "ab" * 32)
    # Each field set away from its default, so a field the helper forgot would show.
    a = Attempt(
        "pat@example.net",
        AttemptStatus.DEFERRED,
        "temporary_failure",
        "mx answered 451",
        451,
        "4.3.0",
        "451 4.3.0 try later",
        "mx.example.net",
        "192.0.2.1",
        tls,
        True,
        "old",
    )
    assert all(getattr(a, f.name) != f.default for f in fields(Attempt))
    assert with_sent(a, "cd" * 32) == replace(a, sent_sha256="cd" * 32)
    assert with_sent(a, None) == replace(a, sent_sha256=None)
