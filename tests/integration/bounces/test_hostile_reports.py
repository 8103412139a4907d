"""Reports built to break the parser, sent to the real inbound listener over STARTTLS.

A report is remote input with no header limits: whatever it holds, the sending MTA gets
250 (a 451 makes it retry the same bytes for days), the report is counted unrecognized,
nothing changes, and the listener answers at once and keeps serving.
"""

from __future__ import annotations

import time

from tests.integration.bounces.conftest import Bounces
from tests.unit.bounces.hostile import PATIENT, nested_comment_dsn, semicolon_dsn
from tests.unit.bounces.samples import postfix_dsn


def test_reports_the_parser_chokes_on_are_accepted_as_unrecognized_at_once(bounces: Bounces) -> None:
    mid, return_path = bounces.deliver()
    for hostile in (nested_comment_dsn(return_path), semicolon_dsn(return_path)):
        started = time.perf_counter()
        sent = bounces.report(hostile, [return_path])
        # Generous: the quadratic parse took ~50 s of the listener's thread for this one.
        assert time.perf_counter() - started < 5.0
        assert sent.data == (250, "2.0.0 Report received")
    assert bounces.listener.reports["unrecognized"] == 2
    assert bounces.listener.rejections["internal_error"] == 0
    assert bounces.recipient(mid)["status"] == "delivered"
    # The next, well-formed report is read and applied.
    assert bounces.report(postfix_dsn(PATIENT, return_path=return_path), [return_path]).data == (
        250,
        "2.0.0 Report received",
    )
    assert bounces.recipient(mid)["status"] == "bounced"
