"""Console users: invitations, enrolment (password + TOTP), sign-in, sessions, roles.

Every state change writes its row and its audit entry in one transaction; every query is
tenant-scoped.  Tokens that reach a browser (one-time links, session cookies) are stored
as their SHA-256 only.  HIPAA anchors: unique user identification (164.312(a)(2)(i)),
automatic logoff (164.312(a)(2)(iii)), log-in monitoring (164.308(a)(5)(ii)(C)), person
authentication (164.312(d)).

``Users`` is assembled from one mixin per group of use cases, each in its own module.
"""

from __future__ import annotations

from sealmail.users.emergency import Emergency
from sealmail.users.enrolment import Enrolment
from sealmail.users.passkeys import PasskeySteps
from sealmail.users.people import People
from sealmail.users.sessions import Sessions
from sealmail.users.sso_accounts import SsoAccounts

__all__ = ["Users"]


class Users(People, Enrolment, PasskeySteps, Sessions, SsoAccounts, Emergency):
    """The console users' service (``UsersBase`` holds the constructor)."""
