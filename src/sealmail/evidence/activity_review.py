"""The monthly information-system activity review (45 CFR 164.308(a)(1)(ii)(D)).

Each month's queue is read from the audit log, the record that cannot be quietly edited:
failed sign-ins and lock-outs, staff sign-ins outside the tenant's working hours (its own
time zone, hours and weekdays: ``working_hours.py``), content reads, and once more as a large
read each person-day reaching the tenant's threshold (50 by default), exports, break-glass
grants and uses, DLP quarantine releases (overrides), and protective settings weakened (the
decisions register).  A compliance officer signs the month off with a note; the sign-off
stores the SHA-256 of the items it covered, is itself audited, and goes into the evidence
pack.  A month is signed once: a second sign-off is a 409.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealmail import audit
from sealmail.audit import AuditAction as A
from sealmail.errors import Conflict, InvalidRequest
from sealmail.evidence import working_hours
from sealmail.evidence.tables import activity_reviews
from sealmail.evidence.working_hours import ReviewSettings, SettingsWriter, WorkingHours
from sealmail.store import db
from sealmail.store.tables import audit_log

CATEGORIES: dict[str, tuple[A, ...]] = {
    "failed_sign_in": (
        A.USER_SIGNIN_FAILED,
        A.USER_LOCKED,
        A.PORTAL_SIGN_IN_FAILED,
        A.PORTAL_LOCKED_OUT,
        A.API_KEY_REJECTED,
        A.SMTP_AUTH_FAILED,
    ),
    # Workforce reads of PHI-bearing content: a message, a form submission, a contact's
    # clinical or sensitive values, a patient's signed marketing authorizations.
    "content_read": (
        A.MESSAGE_CONTENT_READ,
        A.FORM_SUBMISSION_READ,
        A.ARCHIVE_KEY_EXPORTED,
        A.MKT_CONTACT_REVEALED,
        A.MKT_AUTHORIZATIONS_READ,
    ),
    "export": (A.AUDIT_EXPORTED, A.REPORT_EXPORTED, A.MKT_CONTACTS_EXPORTED, A.EVIDENCE_PACK_BUILT),
    "break_glass": (A.EMERGENCY_ACCESS_GRANTED, A.EMERGENCY_ACCESS_USED, A.USER_BREAK_GLASS_CHANGED),
    "dlp_override": (A.MESSAGE_RELEASED,),
    "weakened_setting": (A.DECISION_RECORDED,),
}
CATEGORY_OF = {str(action): name for name, actions in CATEGORIES.items() for action in actions}
# Staff sign-ins are queued outside the tenant's working hours (``working_hours.py``);
# ``off_hours`` is the UTC default those hours start from.
WORK_HOURS = (7, 19)
MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
MAX_ITEMS = 10_000  # one month's queue, bounded


def month_bounds(month: str) -> tuple[datetime, datetime]:
    m = MONTH_RE.match(month)
    if m is None:
        raise InvalidRequest("month must be YYYY-MM")
    year, mon = int(m.group(1)), int(m.group(2))
    since = datetime(year, mon, 1, tzinfo=UTC)
    until = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=UTC)
    return since, until


def off_hours(at: datetime, hours: tuple[int, int] = WORK_HOURS) -> bool:
    at = at.astimezone(UTC)
    return at.weekday() >= 5 or not hours[0] <= at.hour < hours[1]


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """One audit entry the month's review must look at."""

    audit_seq: int
    at: datetime  # UTC, to the second
    category: str  # a key of CATEGORIES, or off_hours_sign_in
    actor: str
    action: str
    target: str | None


@dataclass(frozen=True, slots=True)
class SignOff:
    """A month signed off: by whom, when, the note, and the digest of the items it covered."""

    month: str
    signed_at: datetime  # UTC, to the second
    signed_by: str
    note: str
    item_count: int
    items_sha256: str


@dataclass(frozen=True, slots=True)
class ReviewQueue:
    """A month's items (oldest first), how many per category, and its sign-off if any."""

    month: str
    items: tuple[ReviewItem, ...]
    counts: dict[str, int]
    items_sha256: str
    working_hours: str  # the tenant's working hours, as the queue applied them
    sign_off: SignOff | None


def _digest(items: tuple[ReviewItem, ...]) -> str:
    """SHA-256 over the items as canonical JSON (``at`` as ISO 8601): what a sign-off keeps."""
    shaped = [{**asdict(i), "at": i.at.isoformat()} for i in items]
    return hashlib.sha256(json.dumps(shaped, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _large_reads(items: list[ReviewItem], hours: WorkingHours, threshold: int) -> list[ReviewItem]:
    """One item per person and local day whose content reads reach ``threshold``."""
    days: dict[tuple[str, str], list[ReviewItem]] = {}
    for item in items:
        if item.category == "content_read":
            day = item.at.astimezone(ZoneInfo(hours.time_zone)).date().isoformat()
            days.setdefault((item.actor, day), []).append(item)
    return [
        replace(reads[0], category="large_content_read", target=f"{len(reads)} content reads on {day}")
        for (_actor, day), reads in sorted(days.items(), key=lambda kv: kv[1][0].audit_seq)
        if len(reads) >= threshold
    ]


class ActivityReview:
    def __init__(self, engine: Engine, settings: SettingsWriter | None = None) -> None:
        self.engine = engine
        self.settings = settings

    def review_settings(self, tenant_id: str) -> ReviewSettings:
        """The tenant's working hours and large-read threshold, as the queue applies them."""
        return working_hours.read(self.engine, tenant_id)

    def working_hours(self, tenant_id: str) -> WorkingHours:
        return self.review_settings(tenant_id).hours

    def set_review_settings(self, tenant_id: str, wanted: ReviewSettings, actor: str) -> ReviewSettings:
        """Store them (checked again; audited as ``working_hours:set`` with before and after)."""
        if self.settings is None:
            raise RuntimeError(
                "review settings are saved through the tenant settings (Evidence built without them)"
            )
        return working_hours.save(self.settings, tenant_id, wanted, actor)

    def set_working_hours(self, tenant_id: str, hours: WorkingHours, actor: str) -> WorkingHours:
        """New hours, the tenant's large-read threshold kept."""
        current = self.review_settings(tenant_id)
        return self.set_review_settings(tenant_id, ReviewSettings(hours, current.large_reads), actor).hours

    def queue(self, tenant_id: str, month: str) -> ReviewQueue:
        """The month's items (oldest first), how many per category, and its sign-off if any."""
        since, until = month_bounds(month)
        actions = [*CATEGORY_OF, str(A.USER_SIGNED_IN)]
        query = (
            sa.select(
                audit_log.c.seq, audit_log.c.at, audit_log.c.actor, audit_log.c.action, audit_log.c.target
            )
            .where(
                audit_log.c.tenant_id == tenant_id,
                audit_log.c.action.in_(actions),
                audit_log.c.at >= since,
                audit_log.c.at < until,
            )
            .order_by(audit_log.c.seq)
            .limit(MAX_ITEMS)
        )
        review = self.review_settings(tenant_id)
        hours = review.hours
        items: list[ReviewItem] = []
        with db.reader(self.engine) as conn:
            for r in conn.execute(query):
                category = CATEGORY_OF.get(r.action)
                if category is None:  # a sign-in: only out of hours
                    if not hours.outside(r.at):
                        continue
                    category = "off_hours_sign_in"
                items.append(ReviewItem(int(r.seq), _second(r.at), category, r.actor, r.action, r.target))
            signed = conn.execute(
                sa.select(activity_reviews).where(
                    activity_reviews.c.tenant_id == tenant_id, activity_reviews.c.month == month
                )
            ).first()
        items = sorted(items + _large_reads(items, hours, review.large_reads), key=lambda i: i.audit_seq)
        counts: dict[str, int] = {}
        for item in items:
            counts[item.category] = counts.get(item.category, 0) + 1
        found = tuple(items)
        sign_off = _sign_off(signed) if signed else None
        return ReviewQueue(month, found, counts, _digest(found), hours.describe(), sign_off)

    def sign_off(self, tenant_id: str, month: str, note: str, actor: str) -> SignOff:
        """Sign the month off with a note; audited; once per month."""
        text = note.strip()
        if not text or len(text) > 2000:
            raise InvalidRequest("note: say what was reviewed and found (1 to 2000 characters)")
        since, _ = month_bounds(month)
        now = datetime.now(UTC)
        if since > now:
            raise InvalidRequest("a month that has not begun cannot be signed off")
        current = self.queue(tenant_id, month)
        if current.sign_off is not None:
            raise Conflict(f"{month} is already signed off")
        row = {
            "tenant_id": tenant_id,
            "month": month,
            "signed_at": now,
            "signed_by": actor[:80],
            "note": text,
            "item_count": len(current.items),
            "items_sha256": current.items_sha256,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(activity_reviews).values(**row))
                audit.append(
                    conn,
                    action=A.ACTIVITY_REVIEW_SIGNED,
                    actor=actor,
                    tenant_id=tenant_id,
                    target=month,
                    details={"items": row["item_count"], "items_sha256": row["items_sha256"], "note": text},
                )
        except sa.exc.IntegrityError as exc:
            raise Conflict(f"{month} is already signed off") from exc
        return _sign_off(row)

    def sign_offs(self, tenant_id: str, since: datetime, until: datetime) -> list[SignOff]:
        """Sign-offs of the months that start in [since, until), for the evidence pack."""
        first, last = since.strftime("%Y-%m"), until.strftime("%Y-%m")
        with db.reader(self.engine) as conn:
            rows = conn.execute(
                sa.select(activity_reviews)
                .where(
                    activity_reviews.c.tenant_id == tenant_id,
                    activity_reviews.c.month >= first,
                    activity_reviews.c.month < last,
                )
                .order_by(activity_reviews.c.month)
            ).all()
        return [_sign_off(r) for r in rows]


def _second(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(microsecond=0)


def _sign_off(row: Any) -> SignOff:
    m: dict[str, Any] = dict(row) if isinstance(row, dict) else dict(row._mapping)
    return SignOff(
        month=m["month"],
        signed_at=_second(m["signed_at"]),
        signed_by=m["signed_by"],
        note=m["note"],
        item_count=m["item_count"],
        items_sha256=m["items_sha256"],
    )
