"""Text shown to a reader, made unable to mislead: names, subjects, file names, senders.

Three tricks this module defeats (issue 11 §6):

* **Bidi overrides.**  U+202E RIGHT-TO-LEFT OVERRIDE makes ``invoice<RLO>fdp.exe`` display as
  ``invoiceexe.pdf`` (the file-name cousin of "Trojan Source", CVE-2021-42574).  Every bidi
  control (embeddings, overrides, isolates, marks) and every C0/C1 control is removed; the
  templates then wrap each shown value in ``<bdi>`` so the surviving right-to-left letters of
  one value cannot reorder the text beside it (TR 9 §2.7, HTML "bdi" element).
* **Download names.**  ``../../etc/passwd``, NUL, hidden dot-files and 10 000-character
  names become one short visible base name with its extension kept at the end, for the
  RFC 6266 ``filename`` (ASCII) and ``filename*`` (RFC 8187 UTF-8) parameters.
* **Spoofed senders.**  A display name that is itself an address (``"ceo@hospital.test"
  <attacker@evil.test>``) or a look-alike of the organisation's own name (Cyrillic "а" for
  Latin "a", UTS #39 §4 "confusable") is shown with the real address and a warning.

Pure functions, no I/O; the portal and the HTTP download helpers call them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final

__all__ = [
    "SenderView",
    "control_problem",
    "safe_display",
    "safe_download_name",
    "sender_display",
    "skeleton",
    "terminal_text",
]

# Unicode TR 9 §2 explicit directional formatting characters plus the implicit marks:
# LRE/RLE/PDF/LRO/RLO, LRI/RLI/FSI/PDI, LRM/RLM and ALM.
BIDI_CONTROLS: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
# Invisible characters that let two different strings look the same (UTS #39 §3.1
# "default ignorable"): zero-width space, word joiner, BOM, soft hyphen, invisible operators.
_INVISIBLE: Final = frozenset("\u200b\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e")
# What stored text may not hold, whoever reads it later: C0 controls but tab, newline and
# carriage return (NUL has its own message, PostgreSQL's), DEL and the C1 controls.  ESC
# and CSI sequences retitle, clear or write to the clipboard of the operator's terminal that
# prints the value (rich passes them through).  Bidi controls are shown safely where text is
# displayed (``safe_display``) and stay storable: right-to-left names use them.
_UNSAFE_TEXT: Final = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_ELLIPSIS: Final = "…"
DEFAULT_MAX_LEN: Final = 200
MAX_DOWNLOAD_NAME: Final = 120


def _shown_char(ch: str) -> str | None:
    """``ch`` itself, a space for whitespace-like controls, or None to drop it."""
    if ch in BIDI_CONTROLS or ch in _INVISIBLE:
        return None
    if ch in "\t\n\r\x0b\x0c\x85\u2028\u2029":
        return " "
    category = unicodedata.category(ch)
    # Cc: C0 and C1 controls (NUL, ESC, ...); Cs/Co/Cn: surrogates, private use and
    # unassigned code points have no agreed glyph, so a reader cannot know what they see.
    if category in ("Cc", "Cs", "Co", "Cn"):
        return None
    return ch


def control_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored as typed (a control character), or None."""
    if _UNSAFE_TEXT.search(text):
        return "must not contain control characters (escape sequences); tab and newline are fine"
    return None


def safe_display(text: str | None, max_len: int = DEFAULT_MAX_LEN) -> str:
    """``text`` without controls or bidi overrides, whitespace collapsed, at most ``max_len``."""
    if not text:
        return ""
    # Work on a bounded prefix: a 10 MB header must not cost 10 MB of per-character work.
    head = text[: max_len * 4 + 16]
    kept = "".join(c for c in map(_shown_char, head) if c is not None)
    collapsed = " ".join(kept.split())
    if len(collapsed) > max_len or len(text) > len(head):
        return collapsed[: max(max_len - 1, 0)].rstrip() + _ELLIPSIS
    return collapsed


# What a terminal would obey rather than show: C0 controls but tab and newline, DEL, the C1
# controls (U+009B is an 8-bit CSI) and the bidi controls.  ESC starts OSC 52 (write the
# operator's clipboard), OSC 0 (retitle) and CSI (clear, move the cursor over earlier lines).
# A carriage return ends a CSV line harmlessly before a newline; alone it overwrites the line.
_TERMINAL_UNSAFE: Final = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f" + "".join(sorted(BIDI_CONTROLS)) + "]|\r(?!\n)"
)


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def terminal_text(text: str) -> str:
    """``text`` with every terminal control shown as a visible escape (``\\x1b``, ``\\u202e``).

    Unlike ``safe_display`` nothing is dropped or shortened: the operator still recognises
    the value (and sees that it carried an escape sequence), the terminal just cannot act on it.
    """
    return _TERMINAL_UNSAFE.sub(_escape_char, text)


def safe_download_name(name: str | None, fallback: str = "file") -> str:
    """One visible base name for a download: no path, controls, bidi or leading dots.

    The extension stays at the end even when the name is shortened, so the reader sees
    what kind of file they are about to open.
    """
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    if len(base) > 2048:
        # Bound the work on a hostile name; the tail keeps the extension.
        base = base[:1024] + base[-64:]
    cleaned = safe_display(base, max_len=len(base) + 1 if base else 1)
    # Windows and most desktops treat these as reserved or special in a file name.
    cleaned = "".join("_" if c in '<>:"|?*' else c for c in cleaned).strip()
    cleaned = cleaned.lstrip(". ").rstrip(". ")
    if not cleaned:
        return fallback
    if len(cleaned) > MAX_DOWNLOAD_NAME:
        stem, dot, ext = cleaned.rpartition(".")
        if dot and stem and 0 < len(ext) <= 16:
            keep = MAX_DOWNLOAD_NAME - len(ext) - 2
            cleaned = f"{stem[:keep].rstrip()}{_ELLIPSIS}.{ext}"
        else:
            cleaned = cleaned[: MAX_DOWNLOAD_NAME - 1] + _ELLIPSIS
    return cleaned


# UTS #39 confusables, the common Latin look-alikes from Cyrillic and Greek (lower case:
# the text is case-folded first) and the digit/letter pairs of the prototype table.
_CONFUSABLES: Final = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ё": "e", "г": "r", "һ": "h", "і": "l", "ї": "l",
        "ј": "j", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
        "у": "y", "х": "x", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ь": "b",
        "п": "n", "ɡ": "g", "ո": "n", "ս": "u",
        # Greek
        "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "l", "κ": "k", "ν": "v", "ο": "o",
        "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "γ": "y", "ϲ": "c",
        # Latin and digits that pass for one another
        "i": "l", "1": "l", "|": "l", "0": "o", "5": "s", "ı": "l", "ɩ": "l",
    }
)  # fmt: skip
_MULTI: Final = (("rn", "m"), ("vv", "w"), ("cl", "d"))
_NOT_LETTER: Final = re.compile(r"[\W_]+")


def skeleton(text: str) -> str:
    """A comparison key under which look-alike strings collide (after UTS #39 §4).

    NFKC folds compatibility forms (fullwidth, ligatures, mathematical letters); the
    decomposition drops combining marks (``é`` vs ``e``); case folding, the confusables
    map and removal of spaces and punctuation do the rest.
    """
    folded = unicodedata.normalize("NFKC", safe_display(text, 400)).casefold()
    bare = "".join(c for c in unicodedata.normalize("NFD", folded) if not unicodedata.combining(c))
    key = _NOT_LETTER.sub("", bare.translate(_CONFUSABLES))
    for pair, single in _MULTI:
        key = key.replace(pair, single)
    return key


@dataclass(frozen=True, slots=True)
class SenderView:
    """How to show a sender: ``warning`` set means show ``address`` prominently."""

    name: str
    address: str
    warning: str | None

    @property
    def show_address(self) -> bool:
        return self.warning is not None or not self.name


_ADDRESS_LIKE: Final = re.compile(r"[^\s@<>]+\s*(?:@|＠|﹫|\(at\)|\[at\])\s*[^\s@<>]+\.[^\s@<>]+", re.I)
ADDRESS_IN_NAME: Final = "The name contains an e-mail address that is not the sender's address."
LOOKS_LIKE_ORG: Final = "The name imitates {org}; check the sender's address."


def _imitates(name: str, org: str) -> bool:
    """``name`` looks like ``org`` under the skeleton but does not actually contain it."""
    org_key = skeleton(org)
    if len(org_key) < 3 or org_key not in skeleton(name):
        return False
    # NFC, not NFKC: fullwidth or mathematical letters spelling the name are themselves
    # an imitation; only the name as the organisation writes it is honest.
    plain = unicodedata.normalize("NFC", org).casefold()
    return plain not in unicodedata.normalize("NFC", name).casefold()


def sender_display(display_name: str | None, address: str, tenant_name: str | None) -> SenderView:
    """The sender as a reader should see it, warning when the name could mislead."""
    name = safe_display(display_name, 120)
    addr = safe_display(address, 254)
    warning: str | None = None
    if name and ("@" in unicodedata.normalize("NFKC", name) or _ADDRESS_LIKE.search(name)):
        warning = ADDRESS_IN_NAME
    elif name and tenant_name and _imitates(name, tenant_name):
        warning = LOOKS_LIKE_ORG.format(org=safe_display(tenant_name, 120))
    return SenderView(name, addr, warning)
