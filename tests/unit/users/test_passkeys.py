"""The relying party a console URL gives: a host name, never an address (WebAuthn §5.1.4.1)."""

from sealmail.users.passkeys import RelyingParty


def test_passkeys_need_a_host_name_not_an_address() -> None:
    assert RelyingParty.for_url("http://127.0.0.1:8000/console") is None
    assert RelyingParty.for_url("https://[::1]/console") is None
    rp = RelyingParty.for_url("https://mail.clinic.example:8443/console")
    assert rp is not None and (rp.id, rp.origin) == (
        "mail.clinic.example",
        "https://mail.clinic.example:8443",
    )
