"""Least privilege: each role holds exactly what its job needs."""

import pytest

from sealmail.users import roles
from sealmail.users.roles import Permission as P
from sealmail.users.roles import Role

OWN = P.MANAGE_OWN_SIGNIN  # every signed-in person manages their own passkeys


def test_owner_holds_every_permission() -> None:
    assert all(roles.allows(Role.OWNER, p) for p in P)


@pytest.mark.parametrize(
    ("role", "held"),
    [
        (
            Role.ADMINISTRATOR,
            {P.VIEW_DASHBOARD, P.VIEW_TRAIL, P.MANAGE_USERS, P.MANAGE_API_KEYS, P.COMPOSE, P.RECALL_ANY}
            | {P.MANAGE_SETTINGS, P.MANAGE_QUARANTINE, P.VIEW_MARKETING, P.MANAGE_FORMS, OWN},
        ),
        (Role.SENDER, {P.VIEW_DASHBOARD, P.COMPOSE, P.READ_CONTENT, P.VIEW_MARKETING, OWN}),
        (Role.SUPPORT, {P.VIEW_DASHBOARD, P.VIEW_TRAIL, OWN}),
        (
            Role.COMPLIANCE,
            {P.VIEW_DASHBOARD, P.VIEW_AUDIT, P.VIEW_EVIDENCE, P.MANAGE_EVIDENCE, OWN}
            | {P.VIEW_MARKETING, P.SEE_CLINICAL, P.SEE_SENSITIVE},
        ),
        (Role.AUDITOR, {P.VIEW_AUDIT, P.VIEW_EVIDENCE, OWN}),
    ],
)
def test_each_role_holds_only_its_permissions(role: Role, held: set[P]) -> None:
    assert {p for p in P if roles.allows(role, p)} == held


def test_reading_content_is_not_support_or_compliance_by_default() -> None:
    assert not roles.allows(Role.SUPPORT, P.READ_CONTENT) and not roles.allows(
        Role.COMPLIANCE, P.READ_CONTENT
    )


def test_support_sees_trails_but_not_the_audit_log_and_compliance_the_reverse() -> None:
    assert roles.allows(Role.SUPPORT, P.VIEW_TRAIL) and not roles.allows(Role.SUPPORT, P.VIEW_AUDIT)
    assert roles.allows(Role.COMPLIANCE, P.VIEW_AUDIT) and not roles.allows(Role.COMPLIANCE, P.VIEW_TRAIL)


def test_only_owners_make_owners_and_only_managers_assign_roles() -> None:
    assert roles.may_assign(Role.OWNER, Role.OWNER)
    assert not roles.may_assign(Role.ADMINISTRATOR, Role.OWNER)
    assert roles.may_assign(Role.ADMINISTRATOR, Role.SUPPORT)
    assert not roles.may_assign(Role.SUPPORT, Role.SENDER)
    assert not roles.allows("nonsense", P.VIEW_DASHBOARD)


def test_only_owners_change_how_everyone_signs_in() -> None:
    assert [r for r in Role if roles.allows(r, P.MANAGE_SIGNIN_POLICY)] == [Role.OWNER]


def test_a_sender_recalls_only_their_own_and_administrators_any() -> None:
    assert not roles.allows(Role.SENDER, P.RECALL_ANY) and roles.allows(Role.ADMINISTRATOR, P.RECALL_ANY)
    assert not roles.allows(Role.SUPPORT, P.RECALL_ANY) and not roles.allows(Role.SUPPORT, P.COMPOSE)
