"""A message's status is computed from its recipients: it leaves ``queued`` once they move."""

import pytest

from sealmail.domain.statuses import MessageStatus as M
from sealmail.domain.statuses import aggregate


@pytest.mark.parametrize(
    ("stored", "counts", "expected"),
    [
        ("queued", {"queued": 2}, M.QUEUED),
        ("queued", {"queued": 1, "delivering": 1}, M.SENDING),
        ("queued", {"delivered": 1, "deferred": 1}, M.SENDING),
        ("queued", {"delivered": 3}, M.DELIVERED),
        ("queued", {"delivered": 1, "bounced": 1}, M.PARTIALLY_DELIVERED),
        ("queued", {"delivered": 1, "cancelled": 1}, M.PARTIALLY_DELIVERED),
        ("queued", {"bounced": 1, "expired": 1}, M.FAILED),
        ("queued", {"rejected": 2}, M.REJECTED),
        ("rejected", {"rejected": 1}, M.REJECTED),
        ("cancelled", {"cancelled": 2}, M.CANCELLED),
        ("quarantined", {"quarantined": 2}, M.QUARANTINED),
        ("queued", {"queued": 1}, M.QUEUED),
        # One recipient suppressed at intake, the other waiting: nothing tried yet.
        ("queued", {"queued": 1, "rejected": 1}, M.QUEUED),
        ("quarantined", {}, M.QUARANTINED),
        # Released from quarantine and partly tried: in flight.
        ("queued", {"queued": 1, "bounced": 1}, M.SENDING),
    ],
)
def test_the_aggregate_follows_the_recipients(stored: str, counts: dict[str, int], expected: M) -> None:
    assert aggregate(stored, counts) is expected
