"""Roles and the permissions each grants: least privilege (45 CFR 164.308(a)(4), 164.312(a)(1)).

A route asks for one ``Permission``; a role is only a named set of them, so adding a page
means naming its permission and deciding, here and nowhere else, who holds it.
"""

from __future__ import annotations

import enum


class Permission(enum.StrEnum):
    # Dotted, not ``object:verb``: a permission is not an audit action (audit.AuditAction).

    VIEW_DASHBOARD = "dashboard.view"
    VIEW_TRAIL = "trail.view"  # delivery facts, never content
    VIEW_AUDIT = "audit.view"
    MANAGE_USERS = "users.manage"
    MANAGE_OWNERS = "owners.manage"
    MANAGE_API_KEYS = "api_keys.manage"
    # One's own sign-in factors (passkeys): every signed-in person holds it.
    MANAGE_OWN_SIGNIN = "own_signin.manage"
    # Single sign-on and break-glass: who may change how everyone signs in.
    MANAGE_SIGNIN_POLICY = "signin_policy.manage"


class Role(enum.StrEnum):
    OWNER = "owner"
    ADMINISTRATOR = "administrator"
    SENDER = "sender"
    SUPPORT = "support"
    COMPLIANCE = "compliance"
    AUDITOR = "auditor"


P = Permission
OWN = P.MANAGE_OWN_SIGNIN
GRANTS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(P),
    Role.ADMINISTRATOR: frozenset({P.VIEW_DASHBOARD, P.VIEW_TRAIL, P.MANAGE_USERS, P.MANAGE_API_KEYS, OWN}),
    # A sender composes and sees their own messages (compose arrives with a later slice).
    Role.SENDER: frozenset({P.VIEW_DASHBOARD, OWN}),
    Role.SUPPORT: frozenset({P.VIEW_DASHBOARD, P.VIEW_TRAIL, OWN}),
    Role.COMPLIANCE: frozenset({P.VIEW_DASHBOARD, P.VIEW_AUDIT, OWN}),
    # Read-only and time-boxed: the account carries an expiry (``Users.invite``).
    Role.AUDITOR: frozenset({P.VIEW_AUDIT, OWN}),
}

# Break-glass opens every page but these: an emergency never leaves anything behind that
# outlives it: no owners, people or API keys made, no change to how people sign in or who
# may break the glass (the holder included).
NEVER_IN_EMERGENCY = frozenset({P.MANAGE_OWNERS, P.MANAGE_SIGNIN_POLICY, P.MANAGE_USERS, P.MANAGE_API_KEYS})

LABELS: dict[Role, str] = {
    Role.OWNER: "Owner",
    Role.ADMINISTRATOR: "Administrator",
    Role.SENDER: "Sender",
    Role.SUPPORT: "Support",
    Role.COMPLIANCE: "Compliance officer",
    Role.AUDITOR: "Auditor (expires)",
}


def allows(role: str, permission: Permission) -> bool:
    try:
        return permission in GRANTS[Role(role)]
    except ValueError:
        return False


def may_assign(actor_role: str, role: str) -> bool:
    """Only an owner makes (or unmakes) owners; administrators manage everyone else."""
    if not allows(actor_role, Permission.MANAGE_USERS):
        return False
    return role != Role.OWNER or allows(actor_role, Permission.MANAGE_OWNERS)
