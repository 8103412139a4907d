"""``sealmail marketing journeys …``: save a definition from JSON, list and show versions,
send an event, and the per-node figures as a table, JSON or CSV.

Saving a definition makes a new version that enrols, and the previous version stops enrolling
(its enrollments go on), as over the API; ``activate`` / ``deactivate`` switch a version by hand.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sealmail.cli_support import write_lines
from sealmail.marketing.analytics import METRICS
from sealmail.marketing.attributes import ALL_CLASSES
from sealmail.marketing.cli_common import (
    ACTOR,
    JsonOpt,
    OutputOpt,
    TenantOpt,
    checked,
    fail,
    figures_table,
    id_table,
    opened,
    out,
    print_json,
    read_json,
)
from sealmail.marketing.schemas import JourneyEventIn, JourneyIn

journeys_app = typer.Typer(no_args_is_help=True, help="Journeys: versioned step lists run per contact.")
JOURNEY_HINT = "list the journeys with `sealmail marketing journeys list`"


@journeys_app.command("save")
def journey_save_cmd(
    name: str,
    file: Annotated[
        Path, typer.Option("--file", "-f", help="The definition as JSON: trigger and steps ('-': stdin).")
    ],
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
) -> None:
    """Save a new version of a journey; the previous version stops enrolling."""
    body = checked(JourneyIn, {"name": name, "definition": read_json(file, "journey")}, "journey")
    with opened(tenant) as (mk, tenant_id):
        saved = mk.journeys.save(tenant_id, body.name, body.definition, actor=ACTOR, allowed=ALL_CLASSES)
    if as_json:
        print_json(saved)
        return
    out.print(f"journey {saved['name']} v{saved['version']} saved ({saved['id']}), enrolling")


@journeys_app.command("list")
def journey_list_cmd(as_json: JsonOpt = False, tenant: TenantOpt = None) -> None:
    """Every journey version: whether it enrols, and how many it has enrolled."""
    with opened(tenant) as (mk, tenant_id):
        rows = mk.journeys.all(tenant_id)
    if as_json:
        print_json(rows)
        return
    table = id_table("name", "version", "enrolling", "enrolled", "trigger", "steps")
    for r in rows:
        trig = r["definition"].get("trigger", {})
        table.add_row(
            r["id"],
            r["name"],
            str(r["version"]),
            "yes" if r["active"] else "no",
            str(r["enrolled"]),
            str(trig.get("type", "")),
            str(len(r["definition"].get("steps", []))),
        )
    out.print(table)


def _find(rows: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    """By id, or by name (the newest version)."""
    mine = [r for r in rows if ref in (r["id"], r["name"])]
    if not mine:
        fail(f"no journey {ref!r}", JOURNEY_HINT)
    return max(mine, key=lambda r: int(r["version"]))


def _switch(tenant: str | None, journey_id: str, active: bool) -> None:
    with opened(tenant, JOURNEY_HINT) as (mk, tenant_id):
        j = mk.journeys.set_active(tenant_id, journey_id[:40], active, actor=ACTOR)
    out.print(
        f"journey {j['name']} version {j['version']}: {'enrolling' if j['active'] else 'not enrolling'}"
    )


@journeys_app.command("activate")
def journey_activate_cmd(journey_id: str, tenant: TenantOpt = None) -> None:
    """Enrol on this journey version (the name's other versions stop enrolling)."""
    _switch(tenant, journey_id, True)


@journeys_app.command("deactivate")
def journey_deactivate_cmd(journey_id: str, tenant: TenantOpt = None) -> None:
    """Stop enrolling on this version (enrollments already made go on)."""
    _switch(tenant, journey_id, False)


@journeys_app.command("pause")
def journey_pause_cmd(journey_id: str, tenant: TenantOpt = None) -> None:
    """Hold a journey's sends: enrollments wait at their send steps, queued messages are deferred."""
    with opened(tenant, JOURNEY_HINT) as (mk, tenant_id):
        j = mk.journeys.pause(tenant_id, journey_id[:40], ACTOR)
    out.print(f"journey {j['name']} version {j['version']}: sends paused")


@journeys_app.command("resume")
def journey_resume_cmd(journey_id: str, tenant: TenantOpt = None) -> None:
    """Let a paused journey send again (its send steps must pass the pre-send checks)."""
    with opened(tenant, JOURNEY_HINT) as (mk, tenant_id):
        j = mk.journeys.resume(tenant_id, journey_id[:40], ACTOR)
    out.print(f"journey {j['name']} version {j['version']}: sending")


@journeys_app.command("show")
def journey_show_cmd(
    journey: Annotated[str, typer.Argument(help="A journey id, or a name (newest version).")],
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
) -> None:
    """A journey version's definition and its first 100 enrollments."""
    with opened(tenant, JOURNEY_HINT) as (mk, tenant_id):
        found = _find(mk.journeys.all(tenant_id), journey)
        found["enrollments"] = mk.journeys.enrollments(tenant_id, found["id"], limit=100)
    if as_json:
        print_json(found)
        return
    state = "enrolling" if found["active"] else "not enrolling (a newer version is)"
    out.print(
        f"journey {found['name']} v{found['version']} ({found['id']}): {state}, {found['enrolled']} enrolled"
    )
    out.print(json.dumps(found["definition"], indent=2), markup=False, soft_wrap=True)
    if found["enrollments"]:
        table = Table("enrollment", "contact", "step", "state", "due", "last reason")
        for e in found["enrollments"]:
            table.add_row(
                e["id"], e["contact_id"], str(e["step"]), e["state"], e["due_at"], e["last_reason"] or ""
            )
        out.print(table)


@journeys_app.command("event")
def journey_event_cmd(
    event: Annotated[str, typer.Argument(help="The event name, e.g. appointment_booked.")],
    email: Annotated[str, typer.Argument(help="The contact's email.")],
    key: Annotated[str | None, typer.Option(help="Makes the event distinct (an appointment id).")] = None,
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
) -> None:
    """Send an event for a contact (enrols it; wakes its wait-until steps).

    The contact enters the journeys the event triggers (once per key), and its wait-until
    steps waiting for this event end."""
    body = checked(JourneyEventIn, {"event": event, "email": email, "key": key}, "event")
    with opened(tenant, "import or save the contact first") as (mk, tenant_id):
        got = mk.journeys.event(tenant_id, body.event, body.email, body.key, actor=ACTOR)
    if as_json:
        print_json({"enrolled": got.enrolled, "woken": got.woken})
        return
    out.print(f"{got.enrolled} enrolled, {got.woken} waiting step(s) woken")


@journeys_app.command("stats")
def journey_stats_cmd(
    journey_id: Annotated[str, typer.Argument(help="The journey version id (jny_…).")],
    csv: Annotated[
        bool, typer.Option("--csv", help="CSV (to --output or stdout) instead of a table.")
    ] = False,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
) -> None:
    """Per node figures as tables, JSON or CSV.

    Enrollments at each node now, sends by state, deliveries, bounces, complaints,
    unsubscribes, conversions, and human opens and clicks (machine events excluded)."""
    if output is not None and not csv:
        fail("--output writes CSV: add --csv")
    with opened(tenant, JOURNEY_HINT) as (mk, tenant_id):
        if csv:
            lines = list(mk.analytics.journey_csv(tenant_id, journey_id))  # not found before output
            if write_lines(lines, output):
                out.print(f"written to {output}")
            return
        stats = mk.analytics.journey(tenant_id, journey_id)
    if as_json:
        print_json(dataclasses.asdict(stats))
        return
    # Two tables: what each node is, then its figures (fourteen columns do not fit 80).
    nodes = Table("step", "kind", "detail", "at node", title=f"journey {stats.name} v{stats.version}")
    figures = figures_table("step", METRICS, title="figures (opens and clicks: humans)")
    for node in stats.nodes:
        values = dataclasses.asdict(node)
        nodes.add_row(str(node.step), node.kind, node.detail, str(node.at_node))
        figures.add_row(str(node.step), *(str(values[m]) for m in METRICS))
    out.print(nodes)
    out.print(figures)
