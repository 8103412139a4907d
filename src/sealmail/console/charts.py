"""Dashboard charts as server-rendered SVG: no script, no style attributes (the console's
CSP allows neither), only SVG presentation attributes and text.

Each chart is an ``<svg role="img">`` with a label and a ``<title>`` per bar (a tooltip for
pointer users); the page puts the same numbers in a table one click away.  Every value is
escaped here, so the charts are safe to insert as markup.
"""

from __future__ import annotations

from collections.abc import Mapping

from markupsafe import Markup, escape

# Distinguishable on white and for the common colour-vision deficiencies (Okabe–Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
WIDTH = 560
BAR_ROW = 26


def _label(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def columns(series: Mapping[str, Mapping[str, int]], label: str) -> Markup:
    """Stacked columns per day (``series``: name -> day -> count), with a legend."""
    days = list(next(iter(series.values()), {}).keys())
    if not days:
        return Markup("")
    totals = [sum(s.get(d, 0) for s in series.values()) for d in days]
    peak = max(totals) or 1
    height, top, bottom, left = 180, 10, 24, 36
    step = (WIDTH - left) / len(days)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height + 24 + 18 * ((len(series) + 3) // 4)}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="0" y="{top + 8}" font-size="11" fill="#555">{peak}</text>',
        f'<text x="0" y="{height - bottom}" font-size="11" fill="#555">0</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{WIDTH}" y2="{height - bottom}" stroke="#999"/>',
    ]
    plot = height - bottom - top
    for i, day in enumerate(days):
        x, y = left + i * step + step * 0.15, float(height - bottom)
        for j, (name, values) in enumerate(series.items()):
            n = values.get(day, 0)
            if not n:
                continue
            h = plot * n / peak
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(name)} {escape(day)}: {n}</title></rect>'
            )
        parts.append(
            f'<text x="{x + step * 0.35:.1f}" y="{height - 8}" font-size="11" text-anchor="middle" '
            f'fill="#333">{escape(day[5:])}</text>'
        )
    for j, name in enumerate(series):
        lx, ly = left + (j % 4) * 130, height + 14 + 18 * (j // 4)
        parts.append(
            f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{PALETTE[j % len(PALETTE)]}"/>'
        )
        parts.append(
            f'<text x="{lx + 16}" y="{ly}" font-size="12" fill="#222">{escape(_label(name, 16))}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  # every value above went through escape()


def bars(counts: Mapping[str, int], label: str) -> Markup:
    """Horizontal bars, one per key, longest scale = the largest count."""
    if not counts:
        return Markup("")
    peak = max(counts.values()) or 1
    left, right = 150, 60
    span = WIDTH - left - right
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {BAR_ROW * len(counts) + 4}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, (name, n) in enumerate(counts.items()):
        y = i * BAR_ROW + 4
        w = span * n / peak
        parts.append(
            f'<text x="{left - 8}" y="{y + 15}" font-size="12" text-anchor="end" fill="#222">'
            f"{escape(_label(name))}</text>"
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{BAR_ROW - 8}" '
            f'fill="{PALETTE[i % len(PALETTE)]}">'
            f"<title>{escape(name)}: {n}</title></rect>"
            f'<text x="{left + w + 6:.1f}" y="{y + 15}" font-size="12" fill="#222">{n}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  # every value above went through escape()
