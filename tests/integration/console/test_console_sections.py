"""A feature adds console pages through a ``ConsoleSection``: its menu entry appears for the
roles holding its permission only, its route gets the console's role check, and its template
extends the console's layout (same CSP, same sign-out form)."""

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from starlette.responses import Response
from tests.conftest import TenantFixture
from tests.integration.console.console_harness import Console, console_server, enrol

from sealmail import app as composition
from sealmail.app import Services
from sealmail.console.kit import Kit
from sealmail.console.web import ConsoleSection
from sealmail.users.roles import Permission, Role


def _section() -> ConsoleSection:
    def mount(app: FastAPI, kit: Kit) -> None:
        @app.get("/extra")
        def extra(request: Request) -> Response:
            who = kit.signed_in(request, Permission.VIEW_AUDIT)
            if isinstance(who, Response):
                return who
            return kit.render(
                request,
                "status.html",
                title="Extra page",
                detail="from a section",
                who=who,
                csrf=kit.csrf(request),
            )

    return ConsoleSection(nav=[("/extra", "Extra", Permission.VIEW_AUDIT)], mount=mount)


@pytest.fixture
def console(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    monkeypatch.setattr(composition, "build_console_sections", lambda services, users: [_section()])
    with console_server(services) as c:
        yield c


def test_a_section_page_is_listed_and_guarded_by_its_permission(
    console: Console, tenant: TenantFixture
) -> None:
    _, token = console.users.invite(tenant.id, "co@clinic.example", "Co", Role.COMPLIANCE, actor="test")
    officer = enrol(console, token, "co@clinic.example")
    _, token = console.users.invite(tenant.id, "s@clinic.example", "S", Role.SENDER, actor="test")
    sender = enrol(console, token, "s@clinic.example")

    page = officer.http.get("/console/extra")
    assert page.status_code == 200 and "from a section" in page.text
    assert 'href="/console/extra"' in page.text and "Content-Security-Policy" in page.headers
    assert 'href="/console/extra"' not in sender.http.get("/console/").text
    assert sender.http.get("/console/extra").status_code == 403
    assert console.client().get("/console/extra").headers["location"].startswith("/console/signin")
