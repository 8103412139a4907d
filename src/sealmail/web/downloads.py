"""How every download names its file: one Content-Disposition for the API and the portal."""

from __future__ import annotations

from urllib.parse import quote

from sealmail.domain.display_text import safe_download_name


def disposition(filename: str | None, fallback: str = "file") -> str:
    """``attachment`` with an ASCII ``filename`` and the UTF-8 ``filename*`` (RFC 6266 §4.3).

    Every download (API, portal attachment, portal file) names its file here, so a
    sender-chosen ``../../x``, NUL or right-to-left override never reaches a browser.
    """
    name = safe_download_name(filename, fallback)
    ascii_name = "".join(c if " " <= c <= "~" and c not in '"\\%' else "_" for c in name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
