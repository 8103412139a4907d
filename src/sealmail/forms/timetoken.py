"""The signed time-token every served form carries: the no-CAPTCHA bot check.

``<issued unix seconds>.<nonce>.<HMAC-SHA256(key, form id | issued | nonce)>``.  A post
is accepted only with a token this server issued for this form, at least the form's
minimum fill time and at most its lifetime ago; the nonce is stored with the submission
under a unique constraint, so a token works once.  Nothing is stored when a page is
served, so serving the form costs no write.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sealmail.domain.numerals import whole_number


class TokenProblem(enum.StrEnum):
    MALFORMED = "malformed"
    FORGED = "forged"
    TOO_FAST = "too_fast"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class TokenCheck:
    nonce: str
    issued: int
    problem: TokenProblem | None = None


def _mac(key: bytes, form_id: str, issued: int, nonce: str) -> str:
    msg = f"{form_id}|{issued}|{nonce}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()[:32]


def issue(key: bytes, form_id: str, now: float) -> str:
    issued = int(now)
    nonce = secrets.token_urlsafe(16)
    return f"{issued}.{nonce}.{_mac(key, form_id, issued, nonce)}"


def check(key: bytes, form_id: str, token: str, now: float, min_fill: int, ttl: int) -> TokenCheck:
    parts = token.split(".") if len(token) <= 128 else []
    issued = whole_number(parts[0]) if len(parts) == 3 else None
    if issued is None or not parts[1]:
        return TokenCheck("", 0, TokenProblem.MALFORMED)
    nonce, mac = parts[1], parts[2]
    if not hmac.compare_digest(_mac(key, form_id, issued, nonce), mac):
        return TokenCheck(nonce, issued, TokenProblem.FORGED)
    age = now - issued
    if age < min_fill:
        return TokenCheck(nonce, issued, TokenProblem.TOO_FAST)
    if age > ttl:
        return TokenCheck(nonce, issued, TokenProblem.EXPIRED)
    return TokenCheck(nonce, issued)
