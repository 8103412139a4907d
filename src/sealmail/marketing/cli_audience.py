"""``sealmail marketing contacts|segments|lists …``, ``consent-history``, ``authorize``
and ``authorizations``.

``contacts show`` prints the ``none`` and ``demographic`` attributes (what a non-admin API
key sees) and names the clinical and sensitive ones it withholds; ``--reveal`` prints them
too, sealed values opened, and writes an ``mkt_contact:revealed`` audit entry naming the
classes and attributes shown (never a value).  A terminal's scrollback and logs outlive the
command, so health data is shown only when asked for and on the record (164.502(b)).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from sealmail.marketing.attributes import ALL_CLASSES, BASIC_CLASSES
from sealmail.marketing.cli_common import (
    ACTOR,
    JsonOpt,
    TenantOpt,
    checked,
    contact_id,
    err,
    fail,
    id_table,
    opened,
    out,
    print_json,
    progress,
    read_json,
    rule_input,
)
from sealmail.marketing.lists import MAX_ADD
from sealmail.marketing.schemas import AuthorizationIn, ListIn, RulePreviewIn, SegmentIn
from sealmail.marketing.service import Marketing

contacts_app = typer.Typer(no_args_is_help=True, help="Look at one contact.")
segments_app = typer.Typer(no_args_is_help=True, help="Typed segment rules: save, list, count, preview.")
lists_app = typer.Typer(no_args_is_help=True, help="Static lists of contacts.")

ContactArg = Annotated[str, typer.Argument(help="The contact's email or id (ctc_…).")]
RuleOpt = Annotated[str | None, typer.Option("--rule", help="The rule as JSON text.")]
RuleFileOpt = Annotated[
    Path | None, typer.Option("--file", "-f", help="A JSON file with the rule ('-': stdin).")
]
SEGMENT_HINT = "list the segments with `sealmail marketing segments list`"
LIST_HINT = "list the lists with `sealmail marketing lists list`"


# -- contacts ----------------------------------------------------------------------------------
@contacts_app.command("show")
def contact_show_cmd(
    contact: ContactArg,
    reveal: Annotated[
        bool, typer.Option(help="Also show clinical and sensitive attributes (audited).")
    ] = False,
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
) -> None:
    """A contact with its consent state; clinical and sensitive attributes only with --reveal."""
    with opened(tenant) as (mk, tenant_id):
        cid = contact_id(mk, tenant_id, contact)
        if reveal:
            shown = mk.contacts.reveal(tenant_id, cid, actor=ACTOR)
            withheld: list[dict[str, str]] = []
        else:
            shown = mk.contacts.get(tenant_id, cid, BASIC_CLASSES)
            withheld = [
                {"name": d["name"], "phi_class": d["phi_class"]}
                for d in mk.attributes.list(tenant_id)
                if d["phi_class"] not in {str(c) for c in BASIC_CLASSES}
            ]
        consents = mk.consent.current(tenant_id, cid)["consents"]
    if as_json:
        print_json({**shown, "withheld": withheld, "consents": consents})
        return
    table = Table("field", "value", show_header=False)
    for key in ("id", "email", "phone", "tz", "status", "created_at", "updated_at"):
        table.add_row(key, str(shown[key] or ""))
    for name, value in shown["attributes"].items():
        table.add_row(name, str(value))
    for c in consents:
        table.add_row(f"consent {c['purpose']}/{c['channel']}", c["state"])
    out.print(table)
    if withheld:
        names = ", ".join(f"{w['name']} ({w['phi_class']})" for w in withheld)
        out.print(f"withheld: {names}; pass --reveal to show them (audited)", soft_wrap=True)


# -- consent -----------------------------------------------------------------------------------
def consent_history_cmd(contact: ContactArg, as_json: JsonOpt = False, tenant: TenantOpt = None) -> None:
    """A contact's consent state by purpose and its whole append-only ledger, oldest first."""
    with opened(tenant) as (mk, tenant_id):
        cid = contact_id(mk, tenant_id, contact)
        state = mk.consent.current(tenant_id, cid)
        state["history"] = mk.consent.ledger(tenant_id, cid)
    if as_json:
        print_json(state)
        return
    now = Table("purpose", "channel", "state", "authorization", "expires", title="current")
    for c in state["consents"]:
        now.add_row(
            c["purpose"], c["channel"], c["state"], c["authorization_id"] or "", c["expires_at"] or ""
        )
    out.print(now)
    ledger = Table("at", "purpose", "channel", "action", "source", "actor", "evidence", title="ledger")
    for e in state["history"]:
        ledger.add_row(
            e["at"],
            e["purpose"],
            e["channel"],
            e["action"],
            e["source"],
            e["actor"] or "",
            e["evidence"] or "",
        )
    out.print(ledger)


def authorize_cmd(
    contact: ContactArg,
    file: Annotated[
        Path,
        typer.Option("--file", "-f", help="The authorization as JSON: the 164.508(c) elements ('-': stdin)."),
    ],
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
) -> None:
    """Record a signed HIPAA marketing or fundraising authorization (164.508(c)).

    The file has purpose, information, disclosed_by, disclosed_to, purpose_statement,
    expires_at and signed_at (with offsets), signed_by, statements (right_to_revoke,
    conditioning, redisclosure), remuneration and its statement, document_sha256."""
    body = checked(AuthorizationIn, read_json(file, "authorization"), "authorization")
    with opened(tenant) as (mk, tenant_id):
        cid = contact_id(mk, tenant_id, contact)
        got = mk.consent.authorize(tenant_id, cid, body.as_body(), actor=ACTOR)
    if as_json:
        print_json(got)
        return
    out.print(f"authorization {got['id']} recorded: {got['purpose']} until {got['expires_at']}")


# 164.508(c) elements in the order the regulation lists them, then the record's own fields.
AUTHORIZATION_FIELDS = (
    "state",
    "purpose",
    "information",
    "disclosed_by",
    "disclosed_to",
    "purpose_statement",
    "expires_at",
    "signed_by",
    "signed_at",
    "statements",
    "remuneration",
    "remuneration_statement",
    "document_sha256",
    "revoked_at",
    "created_by",
    "created_at",
)


def authorizations_cmd(contact: ContactArg, as_json: JsonOpt = False, tenant: TenantOpt = None) -> None:
    """Every authorization stored for a contact, newest first, with all its elements and
    its state now (active, expired or revoked).  Audited: ``mkt_authorization:read``."""
    with opened(tenant) as (mk, tenant_id):
        cid = contact_id(mk, tenant_id, contact)
        stored = mk.consent.authorizations(tenant_id, cid, actor=ACTOR)
    if as_json:
        print_json(stored)
        return
    if not stored:
        out.print(f"no authorizations stored for {cid}")
    for a in stored:
        table = Table("element", "value", title=f"authorization {a['id']}", show_header=False)
        for name in AUTHORIZATION_FIELDS:
            value = a[name]
            shown = ", ".join(value) if isinstance(value, list) else "" if value is None else str(value)
            # Text, not markup: these are free text signed by a patient ("[b]" stays "[b]").
            table.add_row(name, Text(shown))
        out.print(table)


# -- segments ----------------------------------------------------------------------------------
@segments_app.command("save")
def segment_save_cmd(
    name: str,
    rule: RuleOpt = None,
    file: RuleFileOpt = None,
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
) -> None:
    """Save a new version of a segment (the rule is checked against the declared attributes)."""
    body = checked(SegmentIn, {"name": name, "rule": rule_input(rule, file)}, "segment")
    with opened(tenant) as (mk, tenant_id):
        saved = mk.segments.save(tenant_id, body.name, body.rule, actor=ACTOR, allowed=ALL_CLASSES)
    if as_json:
        print_json(saved)
        return
    classes = ", ".join(saved["phi_classes"]) or "none"
    out.print(f"segment {saved['name']} v{saved['version']} saved ({saved['id']}; PHI classes: {classes})")


@segments_app.command("list")
def segment_list_cmd(as_json: JsonOpt = False, tenant: TenantOpt = None) -> None:
    """Every segment version with the PHI classes it touches."""
    with opened(tenant) as (mk, tenant_id):
        rows = mk.segments.list(tenant_id)
    if as_json:
        print_json(rows)
        return
    table = id_table("name", "version", "PHI classes")
    for r in rows:
        table.add_row(r["id"], r["name"], str(r["version"]), ", ".join(r["phi_classes"]) or "none")
    out.print(table)


def _evaluate(tenant: str | None, ref: str | None, rule: str | None, file: Path | None, sample: int) -> Any:
    if ref is not None and (rule is not None or file is not None):
        fail("give a saved segment or a rule (--rule / --file), not both")
    body = (
        None
        if ref is not None
        else checked(RulePreviewIn, {"rule": rule_input(rule, file), "sample": sample}, "rule")
    )
    with opened(tenant, SEGMENT_HINT) as (mk, tenant_id):
        return mk.segments.evaluate(
            tenant_id,
            ref=ref,
            rule=body.rule if body else None,
            actor=ACTOR,
            allowed=ALL_CLASSES,
            sample=sample,
        )


SegmentRef = Annotated[str | None, typer.Argument(help="A saved segment's id or name (newest version).")]


@segments_app.command("count")
def segment_count_cmd(
    segment: SegmentRef = None,
    rule: RuleOpt = None,
    file: RuleFileOpt = None,
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
) -> None:
    """The live count of a saved segment or an unsaved rule (audited)."""
    with err.status("counting", spinner="dots"):
        got = _evaluate(tenant, segment, rule, file, 0)
    if as_json:
        print_json({"count": got["count"], "phi_classes": got["phi_classes"]})
        return
    out.print(f"{got['count']} contacts match (PHI classes: {', '.join(got['phi_classes']) or 'none'})")


@segments_app.command("preview")
def segment_preview_cmd(
    segment: SegmentRef = None,
    rule: RuleOpt = None,
    file: RuleFileOpt = None,
    sample: Annotated[int, typer.Option(min=1, max=100, help="How many members to show.")] = 20,
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
) -> None:
    """The count and a sample of members, each with the conditions it matched (audited)."""
    got = _evaluate(tenant, segment, rule, file, sample)
    if as_json:
        print_json(got)
        return
    table = id_table("email", "matched", title=f"{got['count']} contacts match")
    for s in got["sample"]:
        table.add_row(s["id"], s["email"], "; ".join(s["matched"]))
    out.print(table)


# -- lists -------------------------------------------------------------------------------------
@lists_app.command("create")
def list_create_cmd(name: str, as_json: JsonOpt = False, tenant: TenantOpt = None) -> None:
    """Create an empty list."""
    body = checked(ListIn, {"name": name}, "list name")
    with opened(tenant) as (mk, tenant_id):
        made = mk.lists.create(tenant_id, body.name, ACTOR)
    if as_json:
        print_json(made)
        return
    out.print(f"list {made['name']} created ({made['id']})")


@lists_app.command("list")
def list_list_cmd(as_json: JsonOpt = False, tenant: TenantOpt = None) -> None:
    """Every list with its member count."""
    with opened(tenant) as (mk, tenant_id):
        rows = mk.lists.list(tenant_id)
    if as_json:
        print_json(rows)
        return
    table = id_table("name", "members")
    for r in rows:
        table.add_row(r["id"], r["name"], str(r["members"]))
    out.print(table)


ContactsArg = Annotated[
    list[str] | None, typer.Argument(help="Contacts by email or id (ctc_…).", show_default=False)
]
FromFileOpt = Annotated[
    Path | None, typer.Option("--from-file", help="A file with one email or id per line.")
]


def _resolve(mk: Marketing, tenant_id: str, refs: list[str]) -> list[str]:
    """Each email or id as a contact id of this tenant (exit 2 naming the first unknown)."""
    if len(refs) < 1000:
        return [contact_id(mk, tenant_id, r) for r in refs]
    ids = []
    with progress("finding contacts") as bar:
        task = bar.add_task("contacts", total=len(refs))
        for r in refs:
            ids.append(contact_id(mk, tenant_id, r))
            bar.advance(task)
    return ids


def _refs(contacts: list[str] | None, from_file: Path | None) -> list[str]:
    refs = list(contacts or [])
    if from_file is not None:
        try:
            refs += [ln.strip() for ln in from_file.read_text(encoding="utf-8").splitlines() if ln.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read {from_file}: {exc}", "give a UTF-8 text file, one email or id per line")
    if not refs:
        fail("name at least one contact (email or id), or pass --from-file")
    if len(refs) > MAX_ADD:
        fail(f"at most {MAX_ADD} contacts at a time", "split the file")
    return list(dict.fromkeys(refs))


@lists_app.command("add")
def list_add_cmd(
    name: str, contacts: ContactsArg = None, from_file: FromFileOpt = None, tenant: TenantOpt = None
) -> None:
    """Add contacts to a list; they enter the journeys triggered by joining it."""
    refs = _refs(contacts, from_file)
    with opened(tenant, LIST_HINT) as (mk, tenant_id):
        ids = _resolve(mk, tenant_id, refs)
        added = mk.lists.add(tenant_id, name, ids, ACTOR)
        enrolled = mk.journeys.list_joined(tenant_id, name, added["joined"], actor=ACTOR)
    out.print(
        f"{added['added']} added to {name} ({len(ids) - added['added']} already members), {enrolled} enrolled"
    )


@lists_app.command("remove")
def list_remove_cmd(
    name: str, contacts: ContactsArg = None, from_file: FromFileOpt = None, tenant: TenantOpt = None
) -> None:
    """Take contacts out of a list."""
    refs = _refs(contacts, from_file)
    with opened(tenant, LIST_HINT) as (mk, tenant_id):
        ids = _resolve(mk, tenant_id, refs)
        removed = mk.lists.remove(tenant_id, name, ids, ACTOR)
    out.print(f"{removed['removed']} removed from {name}")
