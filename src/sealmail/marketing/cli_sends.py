"""``sealmail marketing campaigns|caps|conversions …``: the campaign life cycle from a JSON
definition to its audience snapshot and figures, frequency caps, and reported conversions.

``campaigns send`` (alias ``start``) runs the same pre-send compliance checks as the API and
refuses with each failure named; the worker (or ``sealmail marketing expand``) then expands
the audience.  Stats and the audience snapshot come as tables, JSON, or CSV to a file
(created 0600: an audience names patients) or stdout, the audience with a progress bar.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sealmail.cli_support import write_lines
from sealmail.errors import SealmailError
from sealmail.marketing.analytics import METRICS
from sealmail.marketing.attributes import ALL_CLASSES
from sealmail.marketing.campaign_runs import Transition
from sealmail.marketing.cli_common import (
    ACTOR,
    JsonOpt,
    OutputOpt,
    TenantOpt,
    checked,
    counted,
    fail,
    figures_table,
    id_table,
    opened,
    operator,
    out,
    print_json,
    progress,
    read_json,
    session,
)
from sealmail.marketing.schemas import CampaignIn, CapIn, ConversionIn
from sealmail.marketing.service import Marketing
from sealmail.suppressions.export import csv_line

campaigns_app = typer.Typer(no_args_is_help=True, help="Campaigns: create, check, send, audience, stats.")
caps_app = typer.Typer(no_args_is_help=True, help="Frequency caps per purpose.")
conversions_app = typer.Typer(no_args_is_help=True, help="Conversions reported for sent messages.")

CampaignArg = Annotated[str, typer.Argument(help="The campaign id (cmp_…).")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="CSV (to --output or stdout) instead of a table.")]
CAMPAIGN_HINT = "list the campaigns with `sealmail marketing campaigns list`"
AUDIENCE_PAGE = 1000


# -- campaigns ---------------------------------------------------------------------------------
@campaigns_app.command("create")
def campaign_create_cmd(
    file: Annotated[
        Path,
        typer.Option(
            "--file",
            "-f",
            help="The campaign as JSON: name, purpose, segment, from, variants, send_at, quiet hours.",
        ),
    ],
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
) -> None:
    """Create a draft campaign (the segment's and templates' newest versions are pinned)."""
    body = checked(CampaignIn, read_json(file, "campaign"), "campaign")
    with opened(tenant, "list the segments with `sealmail marketing segments list`") as (mk, tenant_id):
        made = mk.campaigns.create(tenant_id, body.as_body(), actor=ACTOR, allowed=ALL_CLASSES)
    if as_json:
        print_json(made)
        return
    out.print(
        f"campaign {made['id']} created ({made['status']}); check it with `campaigns checks {made['id']}`"
    )


@campaigns_app.command("list")
def campaign_list_cmd(
    limit: Annotated[int, typer.Option(min=1, max=500, help="The newest N.")] = 50,
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
) -> None:
    """The newest campaigns with their status and what happened to their sends."""
    with opened(tenant) as (mk, tenant_id):
        rows = mk.campaigns.recent(tenant_id, limit)
    if as_json:
        print_json(rows)
        return
    table = id_table("name", "purpose", "status", "audience", "sent", "skipped")
    for r in rows:
        skipped = ", ".join(f"{k} {v}" for k, v in r["skipped"].items()) or "0"
        table.add_row(
            r["id"], r["name"], r["purpose"], r["status"], str(r["audience"] or 0), str(r["sent"]), skipped
        )
    out.print(table)


@campaigns_app.command("show")
def campaign_show_cmd(campaign_id: CampaignArg, as_json: JsonOpt = False, tenant: TenantOpt = None) -> None:
    """One campaign: purpose, segment, variants, schedule, status and sends by state."""
    with opened(tenant, CAMPAIGN_HINT) as (mk, tenant_id):
        got = mk.campaigns.get(tenant_id, campaign_id)
    if as_json:
        print_json(got)
        return
    _show(got)


def _show(c: dict[str, Any]) -> None:
    table = Table("field", "value", show_header=False)
    for key in (
        "id",
        "name",
        "purpose",
        "remunerated",
        "segment_id",
        "status",
        "send_at",
        "audience",
        "queued",
    ):
        table.add_row(key, "" if c[key] is None else str(c[key]))
    table.add_row("quiet hours", f"{c['quiet_hours'][0]}:00–{c['quiet_hours'][1]}:00 (contact's zone)")
    for v in c["variants"]:
        table.add_row(f"variant {v['name']}", f"{v['template']} v{v['version']} weight {v['weight']}")
    for s in c["sends"]:
        table.add_row(f"sends {s['state']}", f"{s['count']}" + (f" ({s['reason']})" if s["reason"] else ""))
    out.print(table)


@campaigns_app.command("checks")
def campaign_checks_cmd(campaign_id: CampaignArg, as_json: JsonOpt = False, tenant: TenantOpt = None) -> None:
    """The pre-send compliance checks the campaign fails now (exit 1 when any fails).

    DKIM-aligned sender domain, postal address and unsubscribe in marketing and
    fundraising bodies, no tracking on the phi stream."""
    with opened(tenant, CAMPAIGN_HINT) as (mk, tenant_id):
        failed = mk.campaigns.checks(tenant_id, campaign_id)
    if as_json:
        print_json({"failed": failed})
    elif failed:
        table = Table("check", "what to fix", title=f"{len(failed)} check(s) fail")
        for f in failed:
            table.add_row(f["check"], f["message"])
        out.print(table)
    else:
        out.print("every pre-send check passes")
    if failed:
        raise typer.Exit(1)


def campaign_send_cmd(campaign_id: CampaignArg, as_json: JsonOpt = False, tenant: TenantOpt = None) -> None:
    """Start a draft (alias: start); the pre-send checks run now.

    A failed check exits 2 naming each failure.  A worker (or `expand`) then queues one
    message per member, each re-checked (consent, caps, quiet hours) at its claim."""
    with opened(tenant, CAMPAIGN_HINT) as (mk, tenant_id):
        got = mk.campaigns.send(operator(tenant_id), campaign_id, allowed=ALL_CLASSES)
    if as_json:
        print_json(got)
        return
    out.print(f"campaign {got['id']} is {got['status']}; the worker expands its audience")


campaigns_app.command("send")(campaign_send_cmd)
campaigns_app.command("start", hidden=True)(campaign_send_cmd)


def _transition(tenant: str | None, change: str, campaign_id: str) -> None:
    with session(tenant) as (mk, tenant_id):
        act = {"pause": mk.runs.pause, "resume": mk.runs.resume, "cancel": mk.runs.cancel}[change]
        try:
            t: Transition = act(tenant_id, campaign_id, ACTOR)
        except SealmailError as exc:
            out.print(f"[red]error:[/red] {exc.detail}")
            raise typer.Exit(1) from exc
        out.print(f"campaign {t.campaign_id}: {t.before} -> {t.after}")


# Also ``sealmail marketing pause|resume|cancel`` (where they were first).
@campaigns_app.command("pause")
def pause_cmd(campaign_id: CampaignArg, tenant: TenantOpt = None) -> None:
    """Pause a starting or sending campaign (its queued messages wait)."""
    _transition(tenant, "pause", campaign_id)


@campaigns_app.command("resume")
def resume_cmd(campaign_id: CampaignArg, tenant: TenantOpt = None) -> None:
    """Resume a paused campaign where it stopped."""
    _transition(tenant, "resume", campaign_id)


@campaigns_app.command("cancel")
def cancel_cmd(campaign_id: CampaignArg, tenant: TenantOpt = None) -> None:
    """Cancel a campaign: nothing more is queued, nothing still queued is sent."""
    _transition(tenant, "cancel", campaign_id)


@campaigns_app.command("stats")
def campaign_stats_cmd(
    campaign_id: CampaignArg,
    csv: CsvOpt = False,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
) -> None:
    """Per variant figures as a table, JSON or CSV.

    Sends by state, deliveries, bounces, complaints, unsubscribes, conversions and human
    opens and clicks (machine events excluded)."""
    if output is not None and not csv:
        fail("--output writes CSV: add --csv")
    with opened(tenant, CAMPAIGN_HINT) as (mk, tenant_id):
        if csv:
            if write_lines(mk.campaigns.stats_csv(tenant_id, campaign_id), output):
                out.print(f"written to {output}")
            return
        got = mk.campaigns.stats(tenant_id, campaign_id)
    if as_json:
        print_json(got)
        return
    table = figures_table("variant", METRICS, title=f"campaign {campaign_id} (opens and clicks: humans)")
    for name, v in got["variants"].items():
        table.add_row(name, *(str(v[m]) for m in METRICS))
    out.print(table)


AUDIENCE_COLUMNS = ("message_id", "contact_id", "variant", "matched", "state", "reason")


@campaigns_app.command("audience")
def campaign_audience_cmd(
    campaign_id: CampaignArg,
    csv: CsvOpt = False,
    output: OutputOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Rows in a table or JSON page.")] = 100,
    cursor: Annotated[str, typer.Option(help="Continue a JSON page from its next_cursor.")] = "",
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
) -> None:
    """The audience snapshot: each send's contact, variant, why it matched, its state.

    --csv writes all of it (with a progress bar); a table or JSON shows one page."""
    if output is not None and not csv:
        fail("--output writes CSV: add --csv")
    with opened(tenant, CAMPAIGN_HINT) as (mk, tenant_id):
        campaign = mk.campaigns.get(tenant_id, campaign_id)  # not found before any output
        if csv:
            total = sum(s["count"] for s in campaign["sends"])
            with progress("audience") as bar:
                task = bar.add_task("rows", total=total)
                lines = counted(_audience_csv(mk, tenant_id, campaign_id), lambda n: bar.advance(task, n))
                written = write_lines(lines, output)
            if written:
                out.print(f"{total} rows written to {output}")
            return
        page = mk.campaigns.audience(tenant_id, campaign_id, limit, cursor)
    if as_json:
        print_json(page)
        return
    table = Table(*AUDIENCE_COLUMNS, title=f"campaign {campaign_id}: {len(page['data'])} shown")
    for r in page["data"]:
        table.add_row(*_audience_cells(r))
    out.print(table)
    if page["next_cursor"]:
        out.print(f"more: --cursor {page['next_cursor']} (or --csv for everything)")


def _audience_cells(r: dict[str, Any]) -> list[str]:
    matched = r["matched"] if isinstance(r["matched"], list) else [str(r["matched"] or "")]
    return [
        r["message_id"],
        r["contact_id"],
        r["variant"] or "",
        "; ".join(matched),
        r["state"],
        r["reason"] or "",
    ]


def _audience_csv(mk: Marketing, tenant_id: str, campaign_id: str) -> Iterator[str]:
    yield csv_line(AUDIENCE_COLUMNS)
    cursor = ""
    while True:
        page = mk.campaigns.audience(tenant_id, campaign_id, AUDIENCE_PAGE, cursor)
        for r in page["data"]:
            yield csv_line(_audience_cells(r))
        if not page["next_cursor"]:
            return
        cursor = page["next_cursor"]


# -- caps --------------------------------------------------------------------------------------
@caps_app.command("show")
def caps_show_cmd(as_json: JsonOpt = False, tenant: TenantOpt = None) -> None:
    """The frequency cap of each purpose ("no cap" where none is set)."""
    with opened(tenant) as (mk, tenant_id):
        rows = mk.campaigns.caps(tenant_id)
    if as_json:
        print_json(rows)
        return
    table = Table("purpose", "max sends", "window (hours)")
    for r in rows:
        capped = r["max_sends"] is not None
        table.add_row(r["purpose"], str(r["max_sends"]) if capped else "no cap", str(r["window_hours"] or ""))
    out.print(table)


@caps_app.command("set")
def caps_set_cmd(
    purpose: Annotated[str, typer.Argument(help="treatment, operations, marketing or fundraising.")],
    max_sends: Annotated[int, typer.Option(help="At most this many messages per contact…")],
    window_hours: Annotated[int, typer.Option(help="…in this many hours.")],
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
) -> None:
    """Cap the messages of a purpose per contact in a window (checked at every claim)."""
    body = checked(CapIn, {"max_sends": max_sends, "window_hours": window_hours}, "cap")
    with opened(tenant) as (mk, tenant_id):
        cap = mk.campaigns.set_cap(tenant_id, purpose, body.max_sends, body.window_hours, ACTOR)
    if as_json:
        print_json(cap)
        return
    out.print(f"{cap['purpose']}: at most {cap['max_sends']} per contact in {cap['window_hours']} h")


# -- conversions -------------------------------------------------------------------------------
@conversions_app.command("record")
def conversion_record_cmd(
    message_id: Annotated[str, typer.Argument(help="The campaign or journey message (msg_…).")],
    name: Annotated[str, typer.Option(help="What converted: booked, donated…")],
    value: Annotated[float | None, typer.Option(help="An amount, if any.")] = None,
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
) -> None:
    """Report a conversion for a message a campaign or journey sent (counted in its stats)."""
    body = checked(ConversionIn, {"message_id": message_id, "name": name, "value": value}, "conversion")
    hint = "give the id of a message a campaign or journey sent (see `campaigns audience`)"
    with opened(tenant, hint) as (mk, tenant_id):
        got = mk.analytics.record_conversion(tenant_id, body.message_id, body.name, body.value, actor=ACTOR)
    if as_json:
        print_json(
            {
                "message_id": got.message_id,
                "name": got.name,
                "campaign_id": got.campaign_id,
                "journey_id": got.journey_id,
                "step": got.step,
            }
        )
        return
    source = f"campaign {got.campaign_id}" if got.campaign_id else f"journey {got.journey_id} step {got.step}"
    out.print(f"conversion {got.name} recorded for {got.message_id} ({source})")
