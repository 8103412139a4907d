"""Jinja helpers that show sender-controlled text safely (see ``domain.display_text``).

``install(env)`` adds:

* the ``shown`` filter: controls and bidi overrides removed, length capped; templates
  still wrap the result in ``<bdi>`` so right-to-left letters stay inside their own box;
* the ``sender`` global: ``sender(from_header, organisation)`` returns a
  :class:`~sealmail.domain.display_text.SenderView` for the From line.
"""

from __future__ import annotations

import email.utils
import re

from jinja2 import Environment

from sealmail.domain.display_text import SenderView, safe_display, sender_display

# RFC 5322 §3.4 name-addr: whatever precedes the last angle-addr is the display name, even
# when it is unquoted and itself looks like an address (``a@b.test <c@d.test>``).
_NAME_ADDR = re.compile(r"^(?P<name>.*)<(?P<addr>[^<>]*)>\s*$", re.S)


def sender(from_header: str | None, organisation: str | None) -> SenderView:
    m = _NAME_ADDR.match(from_header or "")
    if m:
        name, address = m["name"].strip().strip('"').strip(), m["addr"].strip()
    else:
        name, address = email.utils.parseaddr(from_header or "")
    if not address:
        # Unparsable: show the whole value as the "address" so nothing hides behind a name.
        return sender_display(None, from_header or "", organisation)
    return sender_display(name, address, organisation)


def install(env: Environment) -> Environment:
    env.filters["shown"] = safe_display
    env.globals["sender"] = sender
    return env
