"""Tracking is opt-in, and the phi stream is tracked only when named."""

from __future__ import annotations

from sealmail.engagement.policy import Plan, plan


def test_nothing_is_tracked_by_default_and_broadcast_gets_unsubscribe() -> None:
    assert plan({}, "transactional") == Plan()
    assert plan({}, "phi") == Plan()
    assert plan({}, "broadcast") == Plan(unsubscribe=True)


def test_opt_in_covers_transactional_and_broadcast_but_not_phi() -> None:
    s = {"tracking": {"opens": True, "clicks": True}}
    assert plan(s, "transactional") == Plan(opens=True, clicks=True)
    assert plan(s, "broadcast") == Plan(opens=True, clicks=True, unsubscribe=True)
    assert plan(s, "phi") == Plan()


def test_phi_is_tracked_only_when_listed() -> None:
    s = {"tracking": {"opens": True, "clicks": False, "streams": ["phi"]}}
    assert plan(s, "phi") == Plan(opens=True)
    assert plan(s, "transactional") == Plan()


def test_malformed_setting_tracks_nothing() -> None:
    assert plan({"tracking": "yes"}, "transactional") == Plan()
    assert plan({"tracking": {"opens": "true"}}, "transactional") == Plan()
