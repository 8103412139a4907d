"""When the worker records: a batch worth a transaction at once, a few outcomes a little later."""

from __future__ import annotations

from sealmail.delivery.pacing import FLUSH_BATCH, FLUSH_LATEST, flush_delay, flush_due


def test_nothing_pending_is_never_flushed() -> None:
    assert not flush_due(0, 10.0)


def test_a_batch_is_flushed_at_once() -> None:
    assert flush_due(FLUSH_BATCH, 0.0)
    assert flush_due(500, 0.0)


def test_a_few_outcomes_wait_for_more_but_not_past_the_latest() -> None:
    assert not flush_due(FLUSH_BATCH - 1, FLUSH_LATEST / 2)
    assert not flush_due(1, FLUSH_LATEST - 0.01)
    assert flush_due(1, FLUSH_LATEST)
    # Bounded: a lone outcome is recorded within FLUSH_LATEST plus one flush tick.
    assert FLUSH_LATEST + flush_delay(0) <= 0.5


def test_a_refused_flush_backs_off_up_to_five_seconds() -> None:
    assert [flush_delay(n) for n in (0, 1, 2, 7, 20)] == [0.05, 0.1, 0.2, 5.0, 5.0]
