"""TOTP second factor (RFC 6238) through pyotp, and one-time recovery codes.

A code is accepted for the current 30-second step and one step either side (RFC 6238
§5.2 allows a small window for clock drift), and never twice: the last accepted step is
stored and a code at or before it is refused, so an observed code cannot be replayed.
"""

from __future__ import annotations

import secrets
from datetime import datetime

import pyotp

from sealmail.domain.numerals import ascii_digits

STEP_SECONDS = 30
DRIFT_STEPS = 1
RECOVERY_CODES = 10
ISSUER = "Sealmail"


def new_secret() -> str:
    # 160 bits, the HMAC-SHA1 key length RFC 4226 §4 recommends.
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account: str, issuer: str = ISSUER) -> str:
    """The ``otpauth://`` URI authenticator apps import (Key Uri Format)."""
    return pyotp.TOTP(secret, issuer=issuer).provisioning_uri(name=account, issuer_name=issuer)


def grouped(secret: str) -> str:
    """The secret in groups of four, for typing into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def matching_step(secret: str, code: str, now: datetime, last_step: int | None) -> int | None:
    """The time step ``code`` is valid for (within the drift window), or None.

    A step at or before ``last_step`` is refused: each code works once.
    """
    digits = "".join(code.split())
    if len(digits) != 6 or not ascii_digits(digits):
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // STEP_SECONDS
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if last_step is not None and step <= last_step:
            continue
        if secrets.compare_digest(totp.at(step * STEP_SECONDS), digits):
            return step
    return None


def new_recovery_codes() -> list[str]:
    """Ten codes of 10 base32 characters (50 bits each), shown once, stored hashed."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return [
        "-".join(["".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(2)])
        for _ in range(RECOVERY_CODES)
    ]


def normalize_recovery(code: str) -> str:
    return "".join(code.lower().split()).replace("-", "")
