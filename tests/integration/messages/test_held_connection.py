"""The group commit's connection: kept from one batch to the next, given back when idle,
failed or disposed, and the rows of a failed batch never land."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from sealmail.app import Services
from sealmail.messages.group_commit import HeldConnection
from sealmail.store.tables import audit_head


def _checked_out(services: Services) -> int:
    return int(services.engine.pool.checkedout())  # type: ignore[attr-defined]  # QueuePool


def test_consecutive_batches_share_one_connection_until_released(services: Services) -> None:
    held = HeldConnection(services.engine)
    with held.begin() as first:
        first.execute(sa.select(1))
    with held.begin() as second:
        assert second is first
    assert _checked_out(services) == 1
    held.release()
    assert _checked_out(services) == 0 and first.closed


def test_a_connection_idle_too_long_goes_back_and_a_fresh_one_is_used(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldConnection(services.engine)
    with held.begin() as first:
        pass
    monkeypatch.setattr(HeldConnection, "REUSE_SECONDS", -1.0)
    with held.begin() as second:
        assert second is not first
        assert first.closed
    held.release()
    assert _checked_out(services) == 0


def test_a_failed_batch_rolls_back_and_returns_its_connection(services: Services) -> None:
    held = HeldConnection(services.engine)
    with held.begin() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(audit_head)).scalar_one()
    used: list[sa.Connection] = []

    def failing_batch() -> None:
        with held.begin() as failing:
            used.append(failing)
            failing.execute(sa.insert(audit_head).values(id=99, seq=0, hash="x"))
            raise RuntimeError("the batch failed")

    with pytest.raises(RuntimeError):
        failing_batch()
    failing = used[0]
    assert failing.closed and _checked_out(services) == 0
    with held.begin() as conn:
        assert conn is not failing
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_head)).scalar_one() == before
    held.release()


def test_disposing_the_engine_gives_the_held_connection_back(services: Services) -> None:
    held = HeldConnection(services.engine)
    with held.begin() as conn:
        pass
    services.engine.dispose()
    assert conn.closed
    with held.begin() as again:  # still usable: a new connection from the new pool
        assert again is not conn
    held.release()
