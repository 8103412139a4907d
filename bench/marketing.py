"""Marketing at scale: contact import, segment count latency, journey steps, both engines.

    .venv/bin/python bench/marketing.py                          # 20,000 contacts (CI-sized)
    .venv/bin/python bench/marketing.py --contacts 1000000       # issue 16's size
    .venv/bin/python bench/marketing.py --engines sqlite --repeat 20 --journeys 20000

For each engine, a fresh database and home:

1. **Import**: ``--contacts`` CSV lines (email, tz, city, age, plan; one in 50 with a sealed
   ``sensitive`` value) through ``csv_rows`` and the real ``Importer`` (validation, upsert by
   email, per-row error report, progress callback), then the first ``--contacts // 10`` again
   with a changed plan (the update side of the upsert).
2. **Segment count**: fundraising consent is granted to one in four contacts (in bulk, not
   through the ledger's per-event path, then analyzed as autovacuum would), then a rule
   shaped like research/marketing.md §4's (five cities IN, an age range, a plan, consent
   EXISTS, NOT on a list) is counted ``--repeat`` times through ``Segments.evaluate``
   (compile, count, audit entry).
3. **Journey steps**: ``--journeys`` contacts are enrolled in a four-step journey (condition,
   update_attribute, add_to_list, wait) and one runner claims and advances them in batches
   of 500 until none is due: steps/s for one worker.
4. **Journey steps with a send**: ``--send-journeys`` other contacts are enrolled in a
   five-step journey (condition, update_attribute, send, add_to_list, wait) whose send is a
   fundraising message rendered from a stored template for each contact and accepted into
   the real queue (``messages.submit``: sealed at rest, tagged for the claim gate, its
   ``mkt_sends`` row written): steps/s and sends/s for one worker.
5. **Opt-out at the next claim**: fundraising consent is revoked through the ledger
   (``Consent.change``, one transaction each) for ``--optouts`` of the contacts whose message
   step 4 queued, every other one; then the queue is claimed 500 at a time and each claim
   screened as the delivery worker screens it (suppressions, then ``SendGate`` in one
   transaction) until nothing is due.  Every revoked contact's message must be rejected
   (``fundraising_opt_out``) at its first claim with no attempt made, every other one let
   through; the time from each revoke's commit to its skip decision is reported.
6. **Campaign expansion**: a fundraising campaign with two A/B variants of the same stored
   template, over a segment of ``--campaign-contacts`` contacts (a list of the last ones in
   id order), is started and ``CampaignRuns.expand_due`` run once: every member's message
   rendered, sealed and accepted into the queue with its ``mkt_sends`` snapshot, a batch of
   500 at a time; queued messages/s for one expander.

Rates are wall time; the machine may be shared, so the client process CPU time (and, on
PostgreSQL, the CPU of the bench database's server backends, read from /proc) is reported
per 1,000 rows / steps / messages as well.  PostgreSQL: ``SEALMAIL_BENCH_POSTGRES_URL`` (default
postgresql://postgres@127.0.0.1:5432/test); ``sealmail_bench_mkt`` is created and dropped.

Size: one bench's steps, each a function, and the report that puts their figures side by
side; split, the steps would share their setup through a module of its own for no gain.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from sealmail.app import Services, build_services
from sealmail.config import Settings
from sealmail.crypto.vault import LocalKeyFile
from sealmail.domain.statuses import RecipientStatus
from sealmail.ids import new_ids
from sealmail.marketing.attributes import ALL_CLASSES
from sealmail.marketing.gate import SendGate
from sealmail.marketing.imports import csv_rows
from sealmail.marketing.states import SendState
from sealmail.marketing.tables import (
    mkt_consent_current,
    mkt_consent_events,
    mkt_contacts,
    mkt_enrollments,
    mkt_list_members,
    mkt_lists,
    mkt_sends,
)
from sealmail.messages import queue
from sealmail.store import db, migrate
from sealmail.store.tables import recipients
from sealmail.suppressions import service as suppressions
from sealmail.templates.render import Source
from sealmail.tenancy.service import Principal

RESULTS = Path(__file__).parent / "results"
BENCH_DB = os.environ.get("SEALMAIL_BENCH_DB", "sealmail_bench_mkt")
CITIES = [
    "Austin",
    "Boston",
    "Denver",
    "Chicago",
    "Seattle",
    "Miami",
    "Phoenix",
    "Portland",
    "Dallas",
    "Tampa",
]
PLANS = ["gold", "silver", "bronze"]
RULE = {
    "all": [
        {"attr": "city", "op": "in", "value": CITIES[:5]},
        {"attr": "age", "op": "between", "value": [40, 65]},
        {"attr": "plan", "op": "eq", "value": "gold"},
        {"consent": "fundraising", "state": "granted"},
        {"not": {"list": "do-not-mail"}},
    ]
}
JOURNEY = {
    "trigger": {"type": "api_event", "event": "bench"},
    "steps": [
        {"condition": {"rule": {"attr": "age", "op": "gte", "value": 18}, "else": "exit"}},
        {"update_attribute": {"name": "stage", "value": "welcomed"}},
        {"add_to_list": "journeyed"},
        {"wait": {"hours": 24}},
    ],
}

FROM = "Clinic <care@clinic.example>"
SEND_JOURNEY = {
    "trigger": {"type": "api_event", "event": "bench-send"},
    "steps": [
        {"condition": {"rule": {"attr": "age", "op": "gte", "value": 18}, "else": "exit"}},
        {"update_attribute": {"name": "stage", "value": "reminded"}},
        {
            "send": {
                "template": "bench",
                "purpose": "fundraising",
                "from": FROM,
                "quiet_start": 0,
                "quiet_end": 0,
            }
        },
        {"add_to_list": "journeyed"},
        {"wait": {"hours": 24}},
    ],
}
TEMPLATE = Source(
    subject="News from the clinic for {{ city }}",
    text="Dear patient in {{ city }}, on the {{ plan }} plan: our spring appeal.\n--\n"
    "{{ postal_address }}\nTo unsubscribe, use the link below.",
)


def csv_lines(n: int, start: int = 0, plan_shift: int = 0) -> Iterator[str]:
    yield "email,tz,city,age,plan,hiv_status\n"
    for i in range(start, start + n):
        hiv = "negative" if i % 50 == 0 else ""
        plan = PLANS[(i + plan_shift) % 3]
        yield f"patient{i}@example.net,America/Chicago,{CITIES[i % 10]},{18 + (i * 7) % 70},{plan},{hiv}\n"


@dataclass
class Meter:
    """Wall time, this process's CPU time and the bench database backends' CPU time."""

    backends: Callable[[], dict[int, float]]
    wall: float = 0.0
    cpu: float = 0.0
    server: float = 0.0
    _start: tuple[float, float, dict[int, float]] = field(default=(0.0, 0.0, {}))

    def __enter__(self) -> Meter:
        self._start = (time.perf_counter(), time.process_time(), self.backends())
        return self

    def __exit__(self, *exc: object) -> None:
        wall, cpu, before = self._start
        self.wall = time.perf_counter() - wall
        self.cpu = time.process_time() - cpu
        after = self.backends()
        self.server = sum(t - before.get(pid, 0.0) for pid, t in after.items())


def progress(what: str, count: int, m: Meter) -> None:
    """A phase's figures as soon as it ends (a long run on a shared machine may not finish)."""
    print(
        f"{what}: {count:,} in {m.wall:,.1f} s, client {m.cpu * 1e6 / count:,.0f} ms/1k, "
        f"server {m.server * 1e6 / count:,.0f} ms/1k, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def no_backends() -> dict[int, float]:
    return {}


def pg_backends(admin: sa.Engine) -> Callable[[], dict[int, float]]:
    tick = os.sysconf("SC_CLK_TCK")

    def read() -> dict[int, float]:
        with admin.connect() as conn:
            pids = conn.execute(
                sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": BENCH_DB}
            ).scalars()
            out = {}
            for pid in pids:
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                out[pid] = (int(fields[11]) + int(fields[12])) / tick
            return out

    return read


def setup(services: Services) -> str:
    tenant = services.tenancy.create_tenant("Bench", actor="bench")
    mk = services.marketing
    for name, type_, phi, choices in (
        ("city", "text", "demographic", None),
        ("age", "number", "demographic", None),
        ("plan", "choice", "none", PLANS),
        ("stage", "text", "none", None),
        ("hiv_status", "choice", "sensitive", ["positive", "negative"]),
    ):
        mk.attributes.define(tenant, name=name, type_=type_, phi_class=phi, choices=choices, actor="bench")
    for name in ("do-not-mail", "journeyed"):
        mk.lists.create(tenant, name, "bench")
    services.sender_domains.add(tenant, "clinic.example", actor="bench", verified=True)
    services.tenancy.update_settings(
        tenant, {"marketing": {"postal_address": "1 Main St, Springfield, IL 62701"}}, "bench"
    )
    services.template_store.create(tenant, "bench", TEMPLATE, "bench")
    return tenant


def grant_consent(services: Services, tenant: str) -> None:
    """Fundraising consent for one in four contacts, by the number in the address."""
    now = datetime.now(UTC)
    with services.engine.begin() as conn:
        ids = [
            r.id
            for r in conn.execute(sa.select(mkt_contacts.c.id, mkt_contacts.c.email))
            if int(r.email[7:].split("@")[0]) % 4 == 0
        ]
        scope = {"tenant_id": tenant, "purpose": "fundraising", "channel": "email"}
        event_ids = new_ids("cev", len(ids))
        db.bulk_insert(
            conn,
            mkt_consent_events,
            [
                {
                    **scope,
                    "id": e,
                    "contact_id": c,
                    "action": "grant",
                    "source": "import",
                    "actor": "b",
                    "at": now,
                }
                for e, c in zip(event_ids, ids, strict=True)
            ],
        )
        db.bulk_insert(
            conn,
            mkt_consent_current,
            [
                {**scope, "contact_id": c, "event_id": e, "state": "granted", "updated_at": now}
                for e, c in zip(event_ids, ids, strict=True)
            ],
        )
    # The ledger writes consent a few rows at a time, and autovacuum's ANALYZE keeps up; this
    # bulk insert of a quarter of a million rows would leave the planner a minute without
    # statistics, believing the table empty and driving the count from it (250,000 index
    # probes into contacts: 570 ms of CPU instead of 110).  The importer analyzes after a
    # bulk load for the same reason.
    db.analyze(services.engine, mkt_consent_current)


def enroll(services: Services, tenant: str, journey_id: str, n: int, offset: int = 0) -> None:
    """The ``n`` contacts after the first ``offset`` (in id order), due now."""
    now = datetime.now(UTC)
    with services.engine.begin() as conn:
        ids = (
            conn.execute(sa.select(mkt_contacts.c.id).order_by(mkt_contacts.c.id).offset(offset).limit(n))
            .scalars()
            .all()
        )
        rows = [
            {
                "id": e,
                "tenant_id": tenant,
                "journey_id": journey_id,
                "contact_id": c,
                "trigger_key": "event:bench:",
                "step": 0,
                "state": "active",
                "due_at": now,
                "steps_run": 0,
                "created_at": now,
                "updated_at": now,
            }
            for e, c in zip(new_ids("enr", len(ids)), ids, strict=True)
        ]
        db.bulk_insert(conn, mkt_enrollments, rows)


def run(
    url: str, args: argparse.Namespace, home: Path, backends: Callable[[], dict[int, float]]
) -> dict[str, Any]:
    LocalKeyFile.create(home / "master.key")
    settings = Settings(home=home, database_url=url, log_level="warning")  # type: ignore[call-arg]  # pydantic-settings fields
    services = build_services(settings)
    migrate.upgrade(services.engine)
    tenant = setup(services)
    mk = services.marketing
    n = args.contacts
    out: dict[str, Any] = {"load_start": os.getloadavg()[0]}
    with Meter(backends) as m:
        report = mk.importer.run(tenant, csv_rows(csv_lines(n)), actor="bench", progress=lambda k: None)
    assert report["created"] == n and report["failed"] == 0, report
    out["import"] = (n, m)
    progress("import", n, m)
    updates = max(1, n // 10)
    with Meter(backends) as m:
        report = mk.importer.run(tenant, csv_rows(csv_lines(updates, plan_shift=1)), actor="bench")
    assert report["updated"] == updates, report
    out["update"] = (updates, m)
    progress("upsert", updates, m)
    grant_consent(services, tenant)
    mk.segments.evaluate(tenant, rule=RULE, actor="bench", allowed=ALL_CLASSES, sample=0)  # warm-up
    walls, cpus = [], []
    for _ in range(args.repeat):
        with Meter(backends) as m:
            out["matches"] = mk.segments.evaluate(
                tenant, rule=RULE, actor="bench", allowed=ALL_CLASSES, sample=0
            )["count"]
        walls.append(m.wall)
        cpus.append(m.cpu + m.server)
    walls.sort()
    print(
        f"segment count: walls {[round(w, 2) for w in walls]}, cpu {[round(c, 2) for c in cpus]}", flush=True
    )
    out["count"] = (
        statistics.median(walls),
        walls[max(0, -(-len(walls) * 95 // 100) - 1)],
        statistics.median(cpus),
    )
    journey = mk.journeys.save(tenant, "bench", JOURNEY, actor="bench", allowed=ALL_CLASSES)
    enroll(services, tenant, journey["id"], args.journeys)
    steps = 0
    with Meter(backends) as m:
        while ran := mk.journeys.run_due("bench-w1", 500):
            steps += ran
    out["journey"] = (steps, m)
    progress("journey steps", steps, m)
    if args.send_journeys:
        out.update(send_journey(services, tenant, args, backends))
        progress("journey steps with sends", *out["send_journey"])
        if args.optouts:
            out["optout"] = o = opt_out(services, tenant, out.pop("send_journey_id"), args.optouts, backends)
            print(
                f"opt-out: {o.revoked} revoked, {o.skipped} skipped, {o.let_through} let through, "
                f"{o.wrong} wrong; delays {o.delays[:1]}..{o.delays[-1:]}",
                flush=True,
            )
    if args.campaign_contacts:
        out["campaign"] = campaign(services, tenant, args.campaign_contacts, backends)
        progress("campaign messages queued", *out["campaign"])
    out["load"] = os.getloadavg()[0]
    services.close()
    return out


def send_journey(
    services: Services, tenant: str, args: argparse.Namespace, backends: Callable[[], dict[int, float]]
) -> dict[str, Any]:
    """Step 4: the journey with a send, on contacts the first journey did not enrol."""
    mk = services.marketing
    journey = mk.journeys.save(tenant, "bench-send", SEND_JOURNEY, actor="bench", allowed=ALL_CLASSES)
    enroll(services, tenant, journey["id"], args.send_journeys, offset=args.journeys)
    steps = 0
    with Meter(backends) as m:
        while ran := mk.journeys.run_due("bench-w2", 500):
            steps += ran
    with db.reader(services.engine) as conn:
        sends = conn.execute(
            sa.select(sa.func.count()).where(mkt_sends.c.journey_id == journey["id"])
        ).scalar_one()
    assert sends == args.send_journeys, (sends, args.send_journeys)
    return {"send_journey": (steps, m), "sends": sends, "send_journey_id": journey["id"]}


def campaign(
    services: Services, tenant: str, n: int, backends: Callable[[], dict[int, float]]
) -> tuple[int, Meter]:
    """Step 6: a campaign over the last ``n`` contacts (a list segment), expanded once."""
    mk = services.marketing
    mk.lists.create(tenant, "campaign-audience", "bench")
    now = datetime.now(UTC)
    with services.engine.begin() as conn:
        lid = conn.execute(
            sa.select(mkt_lists.c.id).where(mkt_lists.c.name == "campaign-audience")
        ).scalar_one()
        ids = conn.execute(sa.select(mkt_contacts.c.id).order_by(mkt_contacts.c.id.desc()).limit(n)).scalars()
        db.bulk_insert(
            conn,
            mkt_list_members,
            [{"list_id": lid, "contact_id": c, "tenant_id": tenant, "added_at": now} for c in ids],
        )
    rule = {"list": "campaign-audience"}
    mk.segments.save(tenant, "campaign", rule, actor="bench", allowed=ALL_CLASSES)
    body = {
        "name": "Spring appeal",
        "purpose": "fundraising",
        "segment": "campaign",
        "from": FROM,
        "variants": [{"name": "a", "template": "bench"}, {"name": "b", "template": "bench"}],
    }
    cid = mk.campaigns.create(tenant, body, actor="bench", allowed=ALL_CLASSES)["id"]
    mk.campaigns.send(Principal(tenant, "bench", frozenset({"send"})), cid, allowed=ALL_CLASSES)
    with Meter(backends) as m:
        queued = mk.runs.expand_due("bench-w3")
    got = mk.campaigns.get(tenant, cid)
    assert (got["status"], got["audience"], got["queued"], got["failed"]) == ("sending", n, n, 0), got
    return queued, m


@dataclass
class OptOut:
    revoked: int
    revoke: Meter
    claimed: int
    claim: Meter
    skipped: int  # revoked contacts whose message the gate rejected at its first claim
    let_through: int  # the others, passed by the gate
    wrong: int  # anything else: a revoked one sent, an attempt made, a reason other than the opt-out
    delays: list[float]  # seconds from each revoke's commit to its skip decision


def opt_out(
    services: Services, tenant: str, journey_id: str, n: int, backends: Callable[[], dict[int, float]]
) -> OptOut:
    """Step 5: revoke, then claim through the gate as the worker does; check every message."""
    mk, engine = services.marketing, services.engine
    with db.reader(engine) as conn:
        queued = (
            conn.execute(
                sa.select(mkt_sends.c.contact_id)
                .where(mkt_sends.c.journey_id == journey_id, mkt_sends.c.state == SendState.QUEUED)
                .order_by(mkt_sends.c.contact_id)
            )
            .scalars()
            .all()
        )
    chosen = queued[::2][:n]
    revoked_at: dict[str, datetime] = {}
    with Meter(backends) as revoke:
        for cid in chosen:
            mk.consent.change(
                tenant,
                cid,
                purpose="fundraising",
                channel="email",
                action="revoke",
                source="one_click",
                actor="bench",
            )
            revoked_at[cid] = datetime.now(UTC)  # just after the commit
    gate, worker, claimed = SendGate(), "bench-gate", 0
    with Meter(backends) as claim:
        while True:
            batch, msgs = queue.claim_with_messages(engine, worker, 500, 300)
            if not batch:
                break
            claimed += len(batch)
            # What DeliveryWorker._start does before delivering: broadcast suppressions, then
            # every gate in one transaction.
            broadcast = [(c.id, c.tenant_id, c.message_id, c.address) for c in batch]
            with engine.begin() as conn:
                dropped = suppressions.reject_claimed(conn, worker, broadcast)
            with engine.begin() as conn:
                gate.screen(conn, worker, [c for c in batch if c.id not in dropped], msgs)
    with db.reader(engine) as conn:
        rows = conn.execute(
            sa.select(
                mkt_sends.c.contact_id,
                mkt_sends.c.state,
                mkt_sends.c.reason,
                recipients.c.status,
                recipients.c.attempts,
                recipients.c.updated_at,
            )
            .join(recipients, recipients.c.message_id == mkt_sends.c.message_id)
            .where(mkt_sends.c.journey_id == journey_id)
        ).all()
    skipped = let_through = wrong = 0
    delays = []
    for r in rows:
        if r.contact_id in revoked_at:
            ok = (r.state, r.reason, r.status, r.attempts) == (
                SendState.SKIPPED,
                "fundraising_opt_out",
                RecipientStatus.REJECTED,
                0,
            )
            skipped += ok
            wrong += not ok
            delays.append((r.updated_at - revoked_at[r.contact_id]).total_seconds())
        elif r.state == SendState.SENT and r.status == RecipientStatus.DELIVERING:
            let_through += 1
        else:
            wrong += 1
    return OptOut(len(chosen), revoke, claimed, claim, skipped, let_through, wrong, sorted(delays))


def run_postgresql(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    admin_url = os.environ.get("SEALMAIL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    admin = sa.create_engine(db.normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)"))
        conn.execute(sa.text(f"CREATE DATABASE {BENCH_DB}"))
    try:
        return run(admin_url.rsplit("/", 1)[0] + f"/{BENCH_DB}", args, home, pg_backends(admin))
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)"))
        admin.dispose()


def rate_row(name: str, what: str, count: int, m: Meter) -> str:
    per_k = 1000 / count
    return (
        f"| {name} | {what} | {count:,} | {count / m.wall:,.0f}/s | {m.cpu * per_k * 1000:,.0f} "
        f"| {m.server * per_k * 1000:,.0f} |"
    )


def report(args: argparse.Namespace, results: dict[str, dict[str, Any]], started: str) -> str:
    lines = [
        f"# Marketing: {args.contacts:,} contacts",
        "",
        f"`bench/marketing.py --contacts {args.contacts} --repeat {args.repeat} --journeys {args.journeys} "
        f"--send-journeys {args.send_journeys} --optouts {args.optouts} "
        f"--campaign-contacts {args.campaign_contacts}`, "
        f"{started}, {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs "
        "shared with other sessions (load average in the last table).",
        "",
        "| engine | what | rows / steps | wall rate | client CPU ms per 1k | PostgreSQL CPU ms per 1k |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(rate_row(name, "CSV import (new contacts)", *r["import"]))
        lines.append(rate_row(name, "CSV import (upsert of existing)", *r["update"]))
        lines.append(rate_row(name, "journey steps, 1 worker", *r["journey"]))
        if "send_journey" in r:
            steps, m = r["send_journey"]
            lines.append(
                rate_row(name, f"journey steps with a send ({r['sends']:,} sends), 1 worker", steps, m)
            )
            lines.append(rate_row(name, "… the same run per send", r["sends"], m))
        if "campaign" in r:
            lines.append(rate_row(name, "campaign messages queued (expansion), 1 expander", *r["campaign"]))
        if "optout" in r:
            o = r["optout"]
            lines.append(rate_row(name, "consent revokes through the ledger", o.revoked, o.revoke))
            lines.append(rate_row(name, "claims screened by the gate (worker path)", o.claimed, o.claim))
    lines += [
        "",
        "| engine | segment matches | count p50 ms | count p95 ms | CPU ms per count (client + server) "
        "| load (1 min) at start–end |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        p50, p95, cpu = r["count"]
        lines.append(
            f"| {name} | {r['matches']:,} | {p50 * 1000:,.0f} | {p95 * 1000:,.0f} | {cpu * 1000:,.0f} "
            f"| {r['load_start']:.1f}–{r['load']:.1f} |"
        )
    opt = {name: r["optout"] for name, r in results.items() if "optout" in r}
    if opt:
        lines += [
            "",
            "| engine | revoked, message queued | skipped at the first claim | others let through "
            "| sent anyway or wrong | revoke → skip p50 ms | max ms |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, o in opt.items():
            d = o.delays or [0.0]
            lines.append(
                f"| {name} | {o.revoked:,} | {o.skipped:,} | {o.let_through:,} | {o.wrong:,} "
                f"| {statistics.median(d) * 1000:,.0f} | {d[-1] * 1000:,.0f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--journeys", type=int, default=5_000, help="contacts enrolled in the journey")
    parser.add_argument(
        "--send-journeys", type=int, default=2_000, help="other contacts enrolled in the journey with a send"
    )
    parser.add_argument(
        "--optouts", type=int, default=500, help="of those, contacts whose consent is revoked"
    )
    parser.add_argument(
        "--campaign-contacts",
        type=int,
        default=5_000,
        help="members of the campaign's segment (0: no campaign)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.journeys = min(args.journeys, args.contacts)
    args.send_journeys = min(args.send_journeys, args.contacts - args.journeys)
    args.optouts = min(args.optouts, args.send_journeys // 2)
    args.campaign_contacts = min(args.campaign_contacts, args.contacts)
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results: dict[str, dict[str, Any]] = {}
    for engine_name in args.engines.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            if engine_name == "sqlite":
                results["sqlite"] = run(f"sqlite:///{home / 'bench.db'}", args, home, no_backends)
            else:
                results["postgresql"] = run_postgresql(args, home)
        print(f"{engine_name}: done", flush=True)
    text = report(args, results, started)
    out = args.out or RESULTS / f"marketing-{args.contacts // 1000}k.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
