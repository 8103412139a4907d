"""Domain posture in the console, against a loopback DNS server: required records (DKIM,
SPF, DMARC) fail until published, MTA-STS and TLS-RPT are recommended with the record to
publish, and each turns green once it is in DNS.  ``domains check`` agrees."""

from collections.abc import Iterator

import pytest
from tests.conftest import TenantFixture, make_tenant
from tests.integration.console.console_harness import Console, Person, enrol
from tests.support.dns_server import DnsServer
from typer.testing import CliRunner

from sealmail.app import Services, build_services
from sealmail.cli import app as sealmail_cli
from sealmail.config import Settings
from sealmail.users.roles import Role

DOMAIN = "clinic.example"


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


@pytest.fixture
def services(settings: Settings, dns: DnsServer) -> Iterator[Services]:
    configured = settings.model_copy(update={"dns_nameservers": [f"{dns.address[0]}:{dns.address[1]}"]})
    svc = build_services(configured)
    yield svc
    svc.close()


def marks(html: str) -> dict[str, str]:
    out = {}
    for chunk in html.split('<li class="check-')[1:]:
        state, rest = chunk.split('"', 1)
        out[rest.split('data-purpose="', 1)[1].split('"', 1)[0]] = state
    return out


def test_posture_says_what_to_publish_and_turns_green(
    console: Console, services: Services, tenant: TenantFixture, dns: DnsServer
) -> None:
    _, token = console.users.invite(tenant.id, "admin@clinic.example", "", Role.ADMINISTRATOR, actor="test")
    admin: Person = enrol(console, token, "admin@clinic.example")
    listing = admin.http.get("/console/domains")
    assert f'href="/console/domains/{DOMAIN}"' in listing.text
    before = admin.http.get(f"/console/domains/{DOMAIN}")
    assert before.status_code == 200
    assert marks(before.text) == {
        "dkim": "fail",
        "spf": "fail",
        "dmarc": "fail",
        "mta_sts": "warn",
        "tls_rpt": "warn",
    }
    assert (
        f"_mta-sts.{DOMAIN}" in before.text
        and "v=TLSRPTv1; rua=mailto:tls-reports@clinic.example" in before.text
    )
    for record in services.sender_domains.records(tenant.id, DOMAIN):
        if record.type == "TXT":
            value = record.value
            dns.add(
                record.name, "TXT", " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
            )
    # The required records alone make the API's check ok; the recommendations still say what is missing.
    api = console.client().post(
        f"/v1/domains/{DOMAIN}/check", headers={"Authorization": f"Bearer {tenant.api_key}"}
    )
    assert api.status_code == 200 and api.json()["ok"] is True, api.text
    assert {c["purpose"]: (c["ok"], c["required"]) for c in api.json()["checks"]}["mta_sts"] == (False, False)
    dns.add(f"_mta-sts.{DOMAIN}", "TXT", '"v=STSv1; id=2026120401"')
    dns.add(f"_smtp._tls.{DOMAIN}", "TXT", '"v=TLSRPTv1; rua=mailto:tls@clinic.example"')
    after = marks(admin.http.get(f"/console/domains/{DOMAIN}").text)
    assert set(after.values()) == {"ok"} and {"mta_sts", "tls_rpt", "spf", "dmarc"} <= after.keys()
    env = {
        "SEALMAIL_HOME": str(services.settings.home),
        "SEALMAIL_DATABASE_URL": services.settings.database_url,
        "SEALMAIL_DNS_NAMESERVERS": f'["{dns.address[0]}:{dns.address[1]}"]',
    }
    checked = CliRunner().invoke(sealmail_cli, ["domains", "check", DOMAIN, "--tenant", "Clinic"], env=env)
    assert checked.exit_code == 0 and "ok   mta_sts" in checked.output and "ok   tls_rpt" in checked.output, (
        checked.output
    )
    # Another tenant's domain is not found here.
    make_tenant(services, "Other", "other.example")
    assert admin.http.get("/console/domains/other.example").status_code == 404
