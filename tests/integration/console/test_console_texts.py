"""The console's texts page over real HTTP on SQLite and PostgreSQL: the SMS trail per
portal message, numbers partly hidden, bodies never shown, for support and administrators."""

from collections.abc import Iterator

import pytest
from tests.conftest import TenantFixture
from tests.integration.console.console_harness import Console, console_server, enrol

from sealmail.app import Services
from sealmail.sms.rules import Template
from sealmail.sms.service import TextRequest
from sealmail.users.roles import Role

OURS, PAT, SAM = "+14155550100", "+14155550123", "+14155550177"
LINK = "http://127.0.0.1:8000/p/" + "Zq9_-" * 9


@pytest.fixture
def console(services: Services) -> Iterator[Console]:
    with console_server(services) as c:
        yield c


def test_texts_show_the_trail_per_message_with_numbers_partly_hidden(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    texting = services.texting
    texting.add_sender(tenant.id, OURS, "test")
    for number in (PAT, SAM):
        texting.put_contact(
            tenant.id, number, time_zone="Etc/GMT", address=None, notice="both",
            consents={"notice": True, "code": True, "reminder": True}, actor="test",
        )  # fmt: skip
    texting.queue(
        TextRequest(tenant.id, PAT, Template.NOTICE, "Riverside Clinic", link=LINK, message_id="msg_a")
    )
    texting.queue(
        TextRequest(tenant.id, SAM, Template.NOTICE, "Riverside Clinic", link=LINK, message_id="msg_b")
    )
    _, token = console.users.invite(tenant.id, "help@clinic.example", "", Role.SUPPORT, actor="test")
    support = enrol(console, token, "help@clinic.example")
    page = support.http.get("/console/texts")
    assert page.status_code == 200 and 'href="/console/texts"' in page.text
    assert page.text.count("<code>sms_") == 2
    assert "+14…23" in page.text and "+14…77" in page.text
    for secret in (PAT, SAM, "5550123", LINK, "Zq9_-"):
        assert secret not in page.text
    one = support.http.get("/console/texts?message=msg_a")
    assert one.text.count("<code>sms_") == 1 and "+14…23" in one.text and "+14…77" not in one.text
    assert "No texts for this message" in support.http.get("/console/texts?message=msg_none").text
    _, token = console.users.invite(tenant.id, "co@clinic.example", "", Role.COMPLIANCE, actor="test")
    assert enrol(console, token, "co@clinic.example").http.get("/console/texts").status_code == 403
