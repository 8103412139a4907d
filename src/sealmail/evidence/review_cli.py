"""``sealmail evidence review settings``: the activity review's working hours and large-read
threshold from the command line, through the same check (``working_hours.review_settings``)
and the same audited service call as the console and the API."""

from __future__ import annotations

from typing import Annotated

import typer

from sealmail.cli_support import SessionOpener, console
from sealmail.evidence.service import Evidence
from sealmail.evidence.working_hours import ReviewSettings, review_settings

review_app = typer.Typer(no_args_is_help=True, help="The monthly activity review (164.308(a)(1)(ii)(D)).")
out = console()
session: SessionOpener[Evidence] = SessionOpener("evidence review")


def _show(s: ReviewSettings) -> None:
    out.print_json(
        data={
            "time_zone": s.hours.time_zone,
            "start": s.hours.start,
            "end": s.hours.end,
            "weekdays": list(s.hours.weekdays),
            "large_reads": s.large_reads,
            "described": s.hours.describe(),
        }
    )


@review_app.command("settings")
def settings_cmd(
    time_zone: Annotated[str | None, typer.Option(help="IANA time zone, e.g. America/New_York.")] = None,
    start: Annotated[str | None, typer.Option(help="First working hour, local time (0-23).")] = None,
    end: Annotated[str | None, typer.Option(help="The hour the working day ends, exclusive (1-24).")] = None,
    weekday: Annotated[
        list[str] | None, typer.Option(help="A working day, Monday = 0 to Sunday = 6 (repeat it).")
    ] = None,
    large_reads: Annotated[
        str | None, typer.Option(help="Content reads by one person in one day that queue a large read.")
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant name or id (needed when several exist).")] = None,
) -> None:
    """Show the review settings; with any option, change those (the rest kept; audited)."""
    with session(tenant) as (evidence, tenant_id):
        review = evidence.activity_review
        now = review.review_settings(tenant_id)
        if (time_zone, start, end, weekday, large_reads) == (None, None, None, None, None):
            _show(now)
            return
        wanted = review_settings(
            now.hours.time_zone if time_zone is None else time_zone,
            now.hours.start if start is None else start,
            now.hours.end if end is None else end,
            now.hours.weekdays if weekday is None else weekday,
            now.large_reads if large_reads is None else large_reads,
        )
        _show(review.set_review_settings(tenant_id, wanted, "cli"))
