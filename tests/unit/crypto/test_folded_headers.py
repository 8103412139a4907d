"""A header folded 80,000 times (the portal corpus's encoded-word bomb) is split in linear
time by every splitter that signs or wraps a message: DKIM, S/MIME and the intake's
Content-Type reader once copied the growing value per fold (seconds of CPU per message in the
worker; a message that takes the service down, repeated).  The bound is generous — linear
work is a few milliseconds here — so only the quadratic class can trip it."""

import time

from sealmail.crypto import smime
from sealmail.crypto.dkim import split_message
from sealmail.domain import intake_limits

FOLDS = 80_000
BOUND_SECONDS = 2.0


def _bomb() -> bytes:
    folded = "\r\n ".join("=?utf-8?q?a?=" for _ in range(FOLDS))
    return (f"From: a@b.example\r\nSubject: {folded}\r\nContent-Type: text/plain\r\n\r\nbody\r\n").encode()


def _timed(work: object) -> float:
    started = time.process_time()
    assert callable(work)
    work()
    return time.process_time() - started


def test_dkim_keeps_every_fold_and_splits_in_linear_time() -> None:
    wire = _bomb()
    spent = _timed(lambda: split_message(wire))
    fields, body = split_message(wire)
    assert [name for name, _ in fields] == [b"From", b"Subject", b"Content-Type"]
    assert fields[1][1].count(b"\r\n ") == FOLDS - 1 and body == b"body\r\n"
    assert spent < BOUND_SECONDS, f"{FOLDS} folds took {spent:.2f} s of CPU"


def test_smime_keeps_every_fold_and_splits_in_linear_time() -> None:
    wire = _bomb()
    spent = _timed(lambda: smime._split(wire))
    fields, body = smime._split(wire)
    assert len(fields) == 3 and b"".join(fields) + b"\r\n" + body == wire
    assert spent < BOUND_SECONDS, f"{FOLDS} folds took {spent:.2f} s of CPU"


def test_a_content_type_folded_80000_times_is_read_in_linear_time() -> None:
    lines = [b"Content-Type: multipart/mixed;"] + [b" x-yyyyyyyy"] * FOLDS + [b' ; boundary="b1"']
    spent = _timed(lambda: intake_limits._media(lines, "text/plain"))
    assert intake_limits._media(lines, "text/plain") == ("multipart/mixed", b"--b1")
    assert spent < BOUND_SECONDS, f"{FOLDS} folds took {spent:.2f} s of CPU"
    # A fold per parameter: the email package's parameter reader is quadratic in those, so
    # the intake refuses the field before reading it (within the same linear bound).
    semicolons = [b"Content-Type: multipart/mixed;"] + [b" x=yyyyyyyy;"] * FOLDS + [b' boundary="b1"']
    roomy = intake_limits.IntakeLimits(max_header_bytes=10**7, max_header_field_bytes=10**7)
    spent = _timed(lambda: intake_limits._check_fields(semicolons, roomy, top=False))
    found = intake_limits._check_fields(semicolons, roomy, top=False)
    assert found is not None and found.rule is intake_limits.Rule.TOO_MANY_PARAMETERS
    assert spent < BOUND_SECONDS, f"{FOLDS} folds took {spent:.2f} s of CPU"
