"""The states marketing stores: a campaign's ``status``, an import job's ``status``, a send's
``state`` and a journey enrollment's ``state``.

One enum each, so a state is spelled once: the services, the gate, the breaker, the runners and
the console compare against these, never against bare strings.  The values are the stored
strings and the API's, so stored rows and clients are unchanged.  (A contact's status and a
consent state are the domain's: ``domain.marketing.ContactStatus`` and ``ConsentState``.)
"""

from __future__ import annotations

import enum


class CampaignStatus(enum.StrEnum):
    DRAFT = "draft"  # editable; sent once
    STARTING = "starting"  # the audience is being expanded under a lease
    SENDING = "sending"  # expanded; its messages wait in the queue
    SENT = "sent"  # nothing of it is queued any more
    PAUSED = "paused"  # by a person or the complaint breaker: expansion stops, sends are deferred
    CANCELLED = "cancelled"  # for good: what is still queued is skipped


# The states a person may pause, resume or cancel a campaign from (the service enforces them;
# the console offers each button only where it would work).
PAUSABLE: tuple[CampaignStatus, ...] = (CampaignStatus.STARTING, CampaignStatus.SENDING)
RESUMABLE: tuple[CampaignStatus, ...] = (CampaignStatus.PAUSED,)
CANCELLABLE: tuple[CampaignStatus, ...] = (
    CampaignStatus.DRAFT,
    CampaignStatus.STARTING,
    CampaignStatus.SENDING,
    CampaignStatus.PAUSED,
)
# What the complaint breaker watches (a sent campaign's late sends may still be queued).
RUNNING: tuple[CampaignStatus, ...] = (CampaignStatus.SENDING, CampaignStatus.SENT)


class ImportStatus(enum.StrEnum):
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"  # stopped part-way (too many rows, or an error); what was written stays


class SendState(enum.StrEnum):
    QUEUED = "queued"  # its message waits for the claim gate
    SENT = "sent"  # the gate let it go
    SKIPPED = "skipped"  # the gate refused it (``reason`` says why)


class EnrollmentState(enum.StrEnum):
    ACTIVE = "active"  # due at ``due_at`` (or waiting on its ``awaiting`` key)
    DONE = "done"  # ran off the end of its journey
    EXITED = "exited"  # left early: an exit step, a condition, or a wait-until timeout
