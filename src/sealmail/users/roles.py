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
    COMPOSE = "messages.compose"  # write and send; a sender then sees only their own messages
    # Recall any message of the tenant or change its portal expiry (a sender does it to
    # their own with COMPOSE alone).
    RECALL_ANY = "messages.recall_any"
    READ_CONTENT = "content.read"  # subjects and bodies: always audited
    MANAGE_SETTINGS = "settings.manage"  # SecureLine/DLP policy, reply mailboxes, domains
    MANAGE_QUARANTINE = "quarantine.manage"  # review held messages (metadata) and release them
    VIEW_EVIDENCE = "evidence.view"  # reports, registers, the evidence pack (issue 15)
    MANAGE_EVIDENCE = "evidence.manage"  # retention, legal holds, plain-mail requests
    # Secure marketing (issue 16): the pages, and the PHI classes of contact attributes a
    # role may see or segment on beyond demographics (45 CFR 164.502(b), minimum necessary).
    VIEW_MARKETING = "marketing.view"
    SEE_CLINICAL = "phi.clinical"
    SEE_SENSITIVE = "phi.sensitive"
    # Secure forms (issue 17): definitions and submission facts; answers need content.read too.
    MANAGE_FORMS = "forms.manage"


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
    Role.ADMINISTRATOR: frozenset(
        {
            P.VIEW_DASHBOARD,
            P.VIEW_TRAIL,
            P.MANAGE_USERS,
            P.MANAGE_API_KEYS,
            P.COMPOSE,
            P.RECALL_ANY,
            P.MANAGE_SETTINGS,
            P.MANAGE_QUARANTINE,
            P.VIEW_MARKETING,
            P.MANAGE_FORMS,
            OWN,
        }
    ),
    # A sender composes and reads back only their own messages (content reads audited).
    Role.SENDER: frozenset({P.VIEW_DASHBOARD, P.COMPOSE, P.READ_CONTENT, P.VIEW_MARKETING, OWN}),
    Role.SUPPORT: frozenset({P.VIEW_DASHBOARD, P.VIEW_TRAIL, OWN}),
    Role.COMPLIANCE: frozenset(
        {P.VIEW_DASHBOARD, P.VIEW_AUDIT, P.VIEW_EVIDENCE, P.MANAGE_EVIDENCE}
        | {P.VIEW_MARKETING, P.SEE_CLINICAL, P.SEE_SENSITIVE, OWN}
    ),
    # Read-only and time-boxed: the account carries an expiry (``Users.invite``).
    Role.AUDITOR: frozenset({P.VIEW_AUDIT, P.VIEW_EVIDENCE, OWN}),
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


# What each API key scope reaches through the REST API, as console permissions.  A person
# puts on a key only what their own role could do by hand: an administrator (no content
# reads, no evidence) makes ``send`` keys, not a ``read`` key that would read message bodies
# for them.  ``admin`` implies every scope (``Principal.has``), so it needs every permission.
SCOPE_NEEDS: dict[str, frozenset[Permission]] = {
    "send": frozenset({P.COMPOSE}),
    "read": frozenset({P.VIEW_TRAIL, P.READ_CONTENT, P.VIEW_EVIDENCE}),
    "admin": frozenset(P),
}


def may_grant_scope(role: str, scope: str) -> bool:
    """Whether ``role`` may put ``scope`` on an API key it makes (an unknown scope: no)."""
    needs = SCOPE_NEEDS.get(scope)
    return needs is not None and all(allows(role, p) for p in needs)


def may_assign(actor_role: str, role: str) -> bool:
    """Only an owner makes (or unmakes) owners; administrators manage everyone else."""
    if not allows(actor_role, Permission.MANAGE_USERS):
        return False
    return role != Role.OWNER or allows(actor_role, Permission.MANAGE_OWNERS)
