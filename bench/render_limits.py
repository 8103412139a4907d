"""Peak memory and time per page for each class of hostile stored mail (issue 11.2).

    .venv/bin/python bench/render_limits.py [--output bench/results/render-limits.md]

Each class from ``tests/support/hostile_mail.py`` (encoded-word bomb, unknown charset,
broken charset bytes, 100,000-deep HTML nest, 10,000 MIME parts, huge header) runs in a
fresh Python process, so its peak RSS (``ru_maxrss``, the kernel's high-water mark) is its
own.  In that process the code each page runs on a stored message is timed:

* inbox row — ``mailbox._inbox_summary`` (headers only);
* message view / print view — ``mailbox.parse_letter`` then ``sanitize.clean_html``;
* ``/v1/messages/{id}/content`` — ``message.parse_content`` and its JSON encoding.

Decryption, the database and template rendering are the same for any message of the same
size and are left out.  The unbounded parse is not run: on the encoded-word bomb it grows
past 20 GB and takes the machine with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.hostile_mail import CORPUS  # noqa: E402 -- after the path is set

from sealmail.domain.message import parse_content  # noqa: E402
from sealmail.portal.mailbox import _inbox_summary, parse_letter  # noqa: E402
from sealmail.portal.sanitize import clean_html  # noqa: E402

TO = "patient@plain.example"


def _rss_mib() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _view(raw: bytes) -> None:
    letter = parse_letter(raw)
    if letter.html:
        clean_html(letter.html)


def _content(raw: bytes) -> None:
    json.dumps(dataclasses.asdict(parse_content(raw)))


PAGES: dict[str, Callable[[bytes], object]] = {
    "inbox row": _inbox_summary,
    "message view": _view,
    "/content": _content,
}


def one(name: str) -> dict[str, object]:
    raw = CORPUS[name](TO)
    base = _rss_mib()
    times: dict[str, float] = {}
    for page, run in PAGES.items():
        started = time.perf_counter()
        run(raw)
        times[page] = (time.perf_counter() - started) * 1000
    letter = parse_letter(raw)
    return {
        "name": name,
        "kib": len(raw) / 1024,
        "ms": times,
        "base_mib": base,
        "peak_mib": _rss_mib(),
        "problems": letter.problems,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/render-limits.md")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return
    rows = []
    for name in CORPUS:
        out = subprocess.run(
            [sys.executable, __file__, "--one", name], capture_output=True, text=True, check=True, timeout=300
        )
        rows.append(json.loads(out.stdout))
    lines = [
        "# Render limits: hostile stored mail (issue 11.2)",
        "",
        f"`bench/render_limits.py` on {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}; one fresh process per class.  Peak RSS is the process high-water mark "
        "(baseline: after imports and building the message).",
        "",
        "Before (issue 11.2, `email.policy.default` and nh3 unbounded; not re-run here): the "
        "encoded-word bomb grew the process past 20 GB until the kernel killed it, an unknown "
        "charset answered HTTP 500, the 100,000-deep HTML nest and 10,000 parts took 26-120 s "
        f"per page.  Load average during this run: {os.getloadavg()[0]:.1f}.",
        "",
        "| class | size KiB | inbox row ms | message/print view ms | /content ms | "
        "baseline RSS MiB | peak RSS MiB | over a limit |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ms = r["ms"]
        lines.append(
            f"| {r['name']} | {r['kib']:.0f} | {ms['inbox row']:.1f} | {ms['message view']:.1f} | "
            f"{ms['/content']:.1f} | {r['base_mib']:.0f} | {r['peak_mib']:.0f} | "
            f"{', '.join(r['problems']) or '—'} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    args.output.write_text(text)


if __name__ == "__main__":
    main()
