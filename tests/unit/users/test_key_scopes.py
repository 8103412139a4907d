from sealmail.tenancy.credentials import SCOPES
from sealmail.users.roles import SCOPE_NEEDS, Role, may_grant_scope


def test_every_api_scope_names_what_it_needs() -> None:
    assert set(SCOPE_NEEDS) == set(SCOPES)


def test_only_an_owner_grants_admin_and_only_content_readers_grant_read() -> None:
    grantable = {role: {s for s in SCOPES if may_grant_scope(role, s)} for role in Role}
    assert grantable[Role.OWNER] == {"send", "read", "admin"}
    assert grantable[Role.ADMINISTRATOR] == {"send"}
    assert grantable[Role.AUDITOR] == set()
    assert not may_grant_scope("owner", "superuser")
    assert not may_grant_scope("nobody", "send")
