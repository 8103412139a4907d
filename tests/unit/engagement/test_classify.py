"""Machine-open and bot-click heuristics: labelled, never dropped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sealmail.engagement.classify import FAST_SECONDS, classify, user_agent_class

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(hours=2)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.mark.parametrize(
    ("ua", "cls"),
    [
        (
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
            "google_proxy",
        ),
        ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", "yahoo_proxy"),
        ("Mozilla/5.0", "apple_mpp"),
        ("Mozilla/5.0 (compatible; Proofpoint URL Defense)", "security_scanner"),
        ("Mimecast Security Agent", "security_scanner"),
        ("Barracuda Sentinel (EE)", "security_scanner"),
        ("python-requests/2.32.3", "automation"),
        ("curl/8.5.0", "automation"),
        ("", "none"),
        ("Mozilla/4.0 (compatible; ms-office; MSOffice 16)", "mail_client"),
        ("Mozilla/5.0 (X11; Linux x86_64) Thunderbird/128.0", "mail_client"),
        (FIREFOX, "browser"),
    ],
)
def test_user_agent_classes(ua: str, cls: str) -> None:
    assert user_agent_class(ua) == cls


def test_a_browser_fetch_long_after_delivery_is_human() -> None:
    v = classify(user_agent=FIREFOX, method="GET", at=NOW, delivered_at=LONG_AGO)
    assert not v.machine
    assert v.signals == ()


def test_google_image_proxy_is_a_machine_open() -> None:
    v = classify(user_agent="GoogleImageProxy", method="GET", at=NOW, delivered_at=LONG_AGO)
    assert v.machine and v.signals == ("proxy",)


def test_head_request_is_a_machine() -> None:
    v = classify(user_agent=FIREFOX, method="HEAD", at=NOW, delivered_at=LONG_AGO)
    assert v.machine and "head" in v.signals


def test_fetch_within_seconds_of_delivery_is_a_machine() -> None:
    just = NOW - timedelta(seconds=FAST_SECONDS / 2)
    v = classify(user_agent=FIREFOX, method="GET", at=NOW, delivered_at=just)
    assert v.machine and v.signals == ("fast",)
    assert not classify(
        user_agent=FIREFOX, method="GET", at=NOW, delivered_at=NOW - timedelta(seconds=FAST_SECONDS + 1)
    ).machine
