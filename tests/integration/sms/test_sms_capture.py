"""The development provider: texts are kept, reported delivered and shown by the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import TenantFixture
from tests.integration.sms.conftest import noon_zone
from tests.integration.sms.test_sms_providers import message_for
from tests.support.loop_thread import LoopThread

from sealmail.app import Services, build_texting_sender
from sealmail.sms.providers import ReceiptIn

LINK = "http://127.0.0.1:8000/p/" + "Zx9_-" * 9


def queue_portal_notice(services: Services, tenant: TenantFixture, loop: LoopThread, address: str) -> None:
    """A texting sender, a consenting contact and the portal notice texted to them, queued."""
    services.texting.add_sender(tenant.id, "+14155550100", "test")
    services.texting.put_contact(
        tenant.id,
        "+14155550177",
        time_zone=noon_zone(),
        address="pat@example.net",
        notice="both",
        consents={"notice": True},
        actor="test",
    )
    texts = services.portal_texts
    assert texts is not None
    loop.run(
        texts.portal_notice(
            tenant_id=tenant.id,
            message_id=message_for(services, tenant),
            recipient_id="rcp_none",
            address=address,
            organization="Clinic",
            link=LINK,
        )
    )


def test_captured_sms_lists_the_notice_a_portal_message_would_text(
    services: Services, tenant: TenantFixture, loop: LoopThread, tmp_path: Path
) -> None:
    assert services.settings.sms_provider == "capture"  # the development default, like mail capture
    queue_portal_notice(services, tenant, loop, "PAT@example.net")
    sender = build_texting_sender(services)
    assert loop.run(sender.send_due()) == 1
    loop.run(sender.provider.close())  # type: ignore[union-attr]
    [got] = services.texting.captured()
    assert got["text"] == f"You have a secure message from Clinic: {LINK}"
    assert got["status"] == "delivered"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALMAIL_")}
    env.update(
        SEALMAIL_HOME=str(services.settings.home), SEALMAIL_DATABASE_URL=services.settings.database_url
    )
    proc = subprocess.run(
        [sys.executable, "-m", "sealmail.cli", "captured", "--sms"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert LINK in proc.stdout and "+14155550177" in proc.stdout


def test_a_receipt_that_looked_before_the_reply_was_recorded_is_still_applied(
    services: Services, tenant: TenantFixture, loop: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A receipt whose lookup ran just before the provider's reply was committed (so the reply's
    pop of early receipts found nothing) is applied once it is kept: it looks again."""
    queue_portal_notice(services, tenant, loop, "pat@example.net")
    sender = build_texting_sender(services)
    real = sender._apply_receipt
    missed: list[bool] = []

    def first_lookup_misses(r: ReceiptIn) -> bool:
        if not missed:
            missed.append(True)
            return False  # as if it had looked before the reply's commit
        return real(r)

    monkeypatch.setattr(sender, "_apply_receipt", first_lookup_misses)
    assert loop.run(sender.send_due()) == 1
    loop.run(sender.provider.close())  # type: ignore[union-attr]
    [got] = services.texting.captured()
    assert missed == [True]
    assert got["status"] == "delivered"
    assert sender._early == {}
