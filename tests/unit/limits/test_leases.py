"""Hits reserved ahead: block sizes, slots handed out in order, a spent window refused from memory."""

from __future__ import annotations

from sealmail.limits.leases import LEASE_SHARE, MAX_BLOCK, Leases, block_size


def test_blocks_are_one_hit_for_small_limits_and_near_the_limit() -> None:
    assert block_size(10, 0) == 1
    assert block_size(2 * LEASE_SHARE - 1, 0) == 1
    assert block_size(600, 0) == 600 // LEASE_SHARE
    assert block_size(600, 600 - LEASE_SHARE) == 1
    assert block_size(10_000_000, 5) == MAX_BLOCK
    assert block_size(5, 9) == 1  # past the limit: still one at a time


def test_a_window_first_claims_one_hit_then_blocks_handed_out_in_order() -> None:
    leases = Leases()
    assert leases.take("k@60:1", 10_000) is None
    assert leases.next_block("k@60:1", 10_000) == 1
    assert leases.claimed("k@60:1", 60.0, total=7, block=1) == 7  # six came from elsewhere
    assert leases.take("k@60:1", 10_000) is None
    block = leases.next_block("k@60:1", 10_000)
    assert block == min(MAX_BLOCK, (10_000 - 7) // LEASE_SHARE)
    assert leases.claimed("k@60:1", 60.0, total=7 + block, block=block) == 8
    assert [leases.take("k@60:1", 10_000) for _ in range(block - 1)] == list(range(9, 8 + block))
    assert leases.take("k@60:1", 10_000) is None


def test_a_spent_window_refuses_without_a_claim_and_a_new_one_starts_over() -> None:
    leases = Leases()
    assert leases.claimed("k@60:1", 60.0, total=3, block=1) == 3
    assert leases.take("k@60:1", 3) == 4  # past the limit: refused, no statement
    assert leases.take("k@60:1", 3) == 5
    assert leases.take("k@60:1", 5) == 6  # a raised limit reads the same count
    assert leases.take("k@60:2", 3) is None
    leases.prune(now=60.0)
    assert leases.take("k@60:1", 3) is None
