"""The invitation link the console shows is built from the console's configured URL, not from
the request's Host header (which the client chooses: a proxy passing it through, or a forged
one, put ``http://evil.example/console/welcome/<token>`` on the page for the admin to send)."""

from tests.integration.console.console_harness import Person, csrf

from sealmail.app import Services, console_url


def test_an_invitation_link_ignores_a_forged_host_header(owner: Person, services: Services) -> None:
    page = owner.http.get("/console/users")
    r = owner.http.post(
        "/console/users",
        data={"csrf": csrf(page), "email": "new@clinic.example", "name": "New", "role": "sender"},
        headers={"Host": "evil.example"},
    )
    assert r.status_code == 200, r.text
    assert "evil.example" not in r.text
    assert f"{console_url(services.settings)}/welcome/" in r.text
