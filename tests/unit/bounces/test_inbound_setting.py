"""The bounce listener's port: on by default (dev port), turned off from the environment."""

from __future__ import annotations

import pytest

from sealmail.config import Settings


@pytest.mark.parametrize(("raw", "expected"), [("off", None), ("", None), ("None", None), ("2626", 2626)])
def test_the_inbound_listener_can_be_turned_off_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: int | None
) -> None:
    monkeypatch.setenv("SEALMAIL_SMTP_INBOUND_PORT", raw)
    assert Settings().smtp_inbound_port == expected


def test_by_default_bounces_have_a_listener_so_return_paths_are_signed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SEALMAIL_SMTP_INBOUND_PORT", raising=False)
    settings = Settings()
    assert settings.verp_enabled and settings.smtp_inbound_port == 2526
