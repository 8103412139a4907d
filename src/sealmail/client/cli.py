"""``sealmail remote …``: talk to a running Sealmail server through the typed client.

The server and key come from ``--url``/``--key`` or ``SEALMAIL_API_URL``/``SEALMAIL_API_KEY``.
Nothing here prints the key, and message content is printed only by ``get --content``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar, cast

import typer
from rich.markup import escape

from sealmail.client import OutgoingMessage, SealmailApiError, SealmailClient, SealmailTransportError
from sealmail.client.terminal import RemoteConsole
from sealmail.client.types import Stream

remote_app = typer.Typer(no_args_is_help=True, help="Use a running Sealmail server over its REST API.")
out = RemoteConsole()
err = RemoteConsole(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

Url = Annotated[str, typer.Option("--url", envvar="SEALMAIL_API_URL", help="API base URL.")]
Key = Annotated[
    str, typer.Option("--key", envvar="SEALMAIL_API_KEY", help="API key (sm_…).", show_default=False)
]


def reported(fn: F) -> F:
    """Print the server's problem (or the connection failure) and exit 2, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SealmailApiError as exc:
            err.print(f"[red]error {exc.status}:[/red] {escape(exc.detail or exc.title)}")
            for problem in exc.errors:
                err.print(f"  {problem.get('field')}: {problem.get('message')}", markup=False)
            raise typer.Exit(2) from exc
        except SealmailTransportError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))} — is the server running at --url?")
            raise typer.Exit(2) from exc

    return cast(F, wrapper)


def _print_json(value: Any) -> None:
    out.print_json(json.dumps(value))


@remote_app.command("send")
@reported
def send(
    url: Url,
    key: Key,
    to: Annotated[list[str], typer.Option(help="Recipient; repeat for more.")],
    sender: Annotated[str, typer.Option("--from", help="From address (verified domain).")],
    subject: Annotated[str, typer.Option()] = "Sealmail test message",
    text: Annotated[str, typer.Option()] = "This is a test message from Sealmail.",
    stream: Annotated[str, typer.Option(help="transactional, phi or broadcast.")] = "transactional",
    idempotency_key: Annotated[str | None, typer.Option(help="Makes a repeated send safe.")] = None,
) -> None:
    """Queue a message through the API."""
    message = OutgoingMessage(from_=sender, to=to, subject=subject, text=text, stream=cast(Stream, stream))
    with SealmailClient(url, key) as sm:
        accepted = sm.send_message(message, idempotency_key=idempotency_key)
    replay = " (replayed)" if accepted["replayed"] else ""
    out.print(f"queued {accepted['id']} for {len(accepted['recipients'])} recipient(s){replay}")


@remote_app.command("get")
@reported
def get(
    url: Url,
    key: Key,
    message_id: str,
    content: Annotated[bool, typer.Option(help="Also print the decrypted content (audited).")] = False,
) -> None:
    """A message's status, recipients and attempts."""
    with SealmailClient(url, key) as sm:
        _print_json(sm.get_message(message_id))
        if content:
            _print_json(sm.get_content(message_id))


@remote_app.command("events")
@reported
def events(
    url: Url,
    key: Key,
    message_id: Annotated[str | None, typer.Option(help="Only this message's events.")] = None,
    type_: Annotated[list[str] | None, typer.Option("--type", help="Event type; repeat for more.")] = None,
    limit: Annotated[int, typer.Option(help="Stop after this many.")] = 100,
) -> None:
    """The event feed, oldest first."""
    with SealmailClient(url, key) as sm:
        for n, event in enumerate(sm.list_events(message_id=message_id, types=type_), start=1):
            out.print(
                f"{event['created_at']} {event['type']} {event['message_id']} {event['recipient_id'] or '-'}",
                markup=False,
                highlight=False,
            )
            if n >= limit:
                break


@remote_app.command("captured")
@reported
def captured(
    url: Url,
    key: Key,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 10,
    full: Annotated[bool, typer.Option(help="Print the whole message.")] = False,
) -> None:
    """What the server's capture sink received for this tenant (development setups)."""
    with SealmailClient(url, key) as sm:
        shown = 0
        for row in sm.captured(page_size=min(limit, 500)):
            out.print(
                f"{row['received_at']} {row['message_id']} → {', '.join(row['rcpt_to'])} "
                f"({row['size']} bytes, {row['tls_version'] or 'plaintext'})",
                markup=False,
                highlight=False,
            )
            if full:
                out.print(row["data"], markup=False, highlight=False)
            shown += 1
            if shown >= limit:
                break
        if not shown:
            out.print("nothing captured yet")
