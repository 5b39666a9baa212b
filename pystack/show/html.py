"""The page ``pystack show`` writes: one self-contained HTML file, hand-written SVG, no script.

Top to bottom: what was shown (the recording's command and seed, or the capture), a legend,
the ladder (one column per host, one arrow per packet, rows in time order, state names down
the sides), the plots of each connection's TCP variables (a recording only), and the counters.
Everything is inline: no network access, no external CSS or JavaScript.

Elements a test can count: ``<g class="arrow" data-kind="segment|retransmit|lost">`` (one per
packet drawn, ``data-dropped`` when the receiver dropped it), ``<text class="state">``,
``<svg class="plot" data-series="cwnd ssthresh flight">``, ``data-series="snd_wnd rcv_wnd"`` and
``data-series="srtt rto"`` with a ``<polyline class="series" data-series="...">`` per variable, ``<table
class="counters">``, ``<p class="note">``.

Entry points: ``render_html``.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from pystack.show.ladder import Arrow, Ladder, Series, StateLabel

SIDE = 300  # room left and right of the outer columns (state labels, times)
GAP_TWO = 560  # between two columns
GAP_MANY = 400  # between columns when there are more than two
ARROW_ROW = 34
SLANT = 16
STATE_ROW = 24
TOP = 86

KIND_COLOURS = {"segment": "#1c4e80", "retransmit": "#d9480f", "lost": "#c92a2a"}
CONGESTION_SERIES = (
    ("cwnd", "cwnd", "#1c7ed6", ""),
    ("ssthresh", "ssthresh", "#e8590c", "6 4"),
    ("flight", "in flight", "#2b8a3e", ""),
)
WINDOW_SERIES = (
    ("snd_wnd", "peer's window (snd_wnd)", "#862e9c", ""),
    ("rcv_wnd", "our window (rcv_wnd)", "#868e96", "6 3"),
)
TIME_SERIES = (("srtt", "SRTT", "#1c7ed6", ""), ("rto", "RTO", "#c92a2a", "6 4"))
INFINITE = 1 << 30  # ssthresh at or above this is "not set yet" and not drawn

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 24px 32px;
  color: #212529; background: #fff; }
h1 { font-size: 22px; margin: 0 0 8px; } h2 { font-size: 18px; margin: 28px 0 8px; }
h3 { font-size: 15px; margin: 18px 0 4px; font-family: ui-monospace, monospace; }
table.facts td { padding: 1px 12px 1px 0; font-size: 13px; vertical-align: top; }
table.facts td:first-child { color: #868e96; }
p.note { background: #fff3bf; padding: 6px 10px; border-radius: 4px; font-size: 14px; }
.legend span { display: inline-block; margin-right: 18px; font-size: 13px; }
.legend i { display: inline-block; width: 28px; height: 3px; vertical-align: middle;
  margin-right: 6px; }
svg text { font-family: ui-monospace, 'DejaVu Sans Mono', monospace; }
svg.ladder text.label { font-size: 12px; paint-order: stroke; stroke: #fff; stroke-width: 4px; }
svg.ladder text.time { font-size: 11px; fill: #868e96; }
svg.ladder text.host { font-size: 15px; font-weight: bold; fill: #fff; }
svg.ladder text.state { font-size: 12px; font-weight: bold; fill: #5c3c00; }
svg.ladder text.cause { font-size: 10px; fill: #8d6e00; }
svg.ladder text.why { font-size: 11px; font-style: italic; paint-order: stroke; stroke: #fff;
  stroke-width: 4px; }
svg.plot { border: 1px solid #dee2e6; margin: 4px 12px 4px 0; background: #fcfcfd; }
svg.plot text { font-size: 11px; fill: #495057; }
.plots { display: flex; flex-wrap: wrap; }
table.counters { border-collapse: collapse; font-size: 13px; }
table.counters td, table.counters th { border: 1px solid #dee2e6; padding: 2px 10px; }
table.counters td.n { text-align: right; font-family: ui-monospace, monospace; }
"""


def render_html(ladder: Ladder) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>pystack show: {escape(ladder.title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>pystack show: {escape(ladder.title)}</h1>",
        '<table class="facts">',
    ]
    for name, value in ladder.facts:
        parts.append(f"<tr><td>{escape(name)}</td><td>{escape(value)}</td></tr>")
    parts.append("</table>")
    for note in ladder.notes:
        parts.append(f'<p class="note">{escape(note)}</p>')
    parts.append('<h2 id="ladder-title">Ladder</h2>')
    parts.append(_legend(ladder))
    parts.append(_ladder_svg(ladder))
    parts.append('<h2 id="plots-title">TCP variables over time</h2>')
    parts.append(_plots(ladder))
    parts.append('<h2 id="counters-title">Counters</h2>')
    parts.append(_counters(ladder))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _legend(ladder: Ladder) -> str:
    items = [
        (
            "#1c4e80",
            "a packet (time runs down; label: flags, relative seq and ack, length, window)",
        ),
        ("#d9480f", "sent again: a retransmission, its cause beside it"),
        (
            "#c92a2a",
            "lost on the way (stops midway with an X) or dropped on arrival (X at the end)",
        ),
        (
            "#f4d35e",
            "TCP state: "
            + ("inferred from the flags" if ladder.inferred_states else "")
            + ("" if ladder.inferred_states else "the host's own, with its cause"),
        ),
    ]
    spans = "".join(
        f'<span><i style="background:{colour}"></i>{escape(text)}</span>' for colour, text in items
    )
    return f'<p class="legend">{spans}</p>'


def _ladder_svg(ladder: Ladder) -> str:
    columns = ladder.columns or ["?"]
    gap = GAP_TWO if len(columns) <= 2 else GAP_MANY
    x_of = {name: SIDE + index * gap for index, name in enumerate(columns)}
    width = SIDE * 2 + gap * (len(columns) - 1)
    y = TOP
    body: list[str] = []
    for row in ladder.rows:
        if isinstance(row, Arrow):
            body.append(_arrow(row, x_of, y, len(columns)))
            y += ARROW_ROW
        else:
            body.append(_state(row, x_of, y, columns))
            y += STATE_ROW
    height = y + 30
    head: list[str] = [
        f'<svg class="ladder" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">',
        '<defs><marker id="head" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" '
        'markerHeight="9" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="context-stroke"/></marker></defs>',
    ]
    for name, x in x_of.items():
        box = max(120, 9 * len(name) + 24)
        head.append(
            f'<g class="column" data-host="{escape(name)}">'
            f'<line x1="{x}" y1="56" x2="{x}" y2="{height - 10}" stroke="#adb5bd" '
            'stroke-width="2"/>'
            f'<rect x="{x - box / 2}" y="18" width="{box}" height="36" rx="6" fill="#343a40"/>'
            f'<text class="host" x="{x}" y="41" text-anchor="middle">{escape(name)}</text></g>'
        )
    return "\n".join(head + body + ["</svg>"])


def _arrow(arrow: Arrow, x_of: dict[str, int], y: int, columns: int) -> str:
    x1, x2 = x_of[arrow.src], x_of[arrow.dst]
    colour = KIND_COLOURS.get(arrow.kind, "#1c4e80")
    if arrow.dropped and arrow.kind != "lost":
        colour = "#a61e4d"
    attributes = f'class="arrow" data-kind="{arrow.kind}"'
    if arrow.dropped:
        attributes += f' data-dropped="{escape(arrow.dropped)}"'
    tip = f"{arrow.time:.6f} s  {arrow.label}" + (f"  [{arrow.note}]" if arrow.note else "")
    parts = [f"<g {attributes}><title>{escape(tip)}</title>"]
    parts.append(
        f'<text class="time" x="{min(x_of.values()) - SIDE + 8}" y="{y + 12}">'
        f"{arrow.time:.6f} s</text>"
    )
    if x1 == x2:  # to itself (loopback)
        parts.append(
            f'<path d="M{x1},{y} C{x1 + 60},{y} {x1 + 60},{y + SLANT} {x1},{y + SLANT}" '
            f'fill="none" stroke="{colour}" stroke-width="2" marker-end="url(#head)"/>'
            f'<text class="label" x="{x1 + 66}" y="{y + 12}" fill="{colour}">'
            f"{escape(arrow.label)}</text></g>"
        )
        return "".join(parts)
    dash = ' stroke-dasharray="7 4"' if arrow.kind == "retransmit" else ""
    if arrow.kind == "lost":
        xm, ym = (x1 + x2) / 2, y + SLANT / 2
        parts.append(
            f'<line x1="{x1}" y1="{y}" x2="{xm}" y2="{ym}" stroke="{colour}" stroke-width="2"/>'
            + _cross(xm, ym, colour)
        )
    else:
        parts.append(
            f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y + SLANT}" stroke="{colour}" '
            f'stroke-width="2"{dash} marker-end="url(#head)"/>'
        )
        if arrow.dropped:
            parts.append(_cross(x2 + (8 if x2 > x1 else -8), y + SLANT, colour))
    angle = math.degrees(math.atan2(SLANT, x2 - x1))
    if x2 < x1:
        angle = math.degrees(math.atan2(-SLANT, x1 - x2))
    xm, ym = (x1 + x2) / 2, y + SLANT / 2 - 5
    if arrow.kind == "lost":
        xm, ym = x1 + (x2 - x1) / 4, y + SLANT / 4 - 5
    parts.append(
        f'<text class="label" x="{xm:.1f}" y="{ym:.1f}" text-anchor="middle" fill="{colour}" '
        f'transform="rotate({angle:.2f} {xm:.1f} {ym:.1f})">{escape(arrow.label)}</text>'
    )
    why = []
    if arrow.note:
        why.append(arrow.note)
    if arrow.dropped:
        why.append(("lost: " if arrow.kind == "lost" else "dropped on arrival: ") + arrow.dropped)
    if why:
        wx = (x1 + x2) / 2 if arrow.kind != "lost" else (x1 + x2) / 2 + (14 if x2 > x1 else -14)
        anchor = "middle" if arrow.kind != "lost" else ("start" if x2 > x1 else "end")
        wy = y + SLANT / 2 + 14 if arrow.kind != "lost" else y + SLANT / 2 + 4
        parts.append(
            f'<text class="why" x="{wx:.1f}" y="{wy:.1f}" text-anchor="{anchor}" '
            f'fill="{colour}">{escape("; ".join(why))}</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def _cross(x: float, y: float, colour: str) -> str:
    r = 7
    return (
        f'<g class="x-mark"><line x1="{x - r}" y1="{y - r}" x2="{x + r}" y2="{y + r}" '
        f'stroke="{colour}" stroke-width="3"/><line x1="{x - r}" y1="{y + r}" x2="{x + r}" '
        f'y2="{y - r}" stroke="{colour}" stroke-width="3"/></g>'
    )


def _state(label: StateLabel, x_of: dict[str, int], y: int, columns: list[str]) -> str:
    x = x_of.get(label.column, min(x_of.values()))
    left = label.column == columns[0] and len(columns) > 1
    anchor = "end" if left else "start"
    tx = x - 12 if left else x + 12
    width = 8 * len(label.state) + 14
    rx = tx - width + 4 if left else tx - 6
    cause = f"{label.cause}" if label.cause else ""
    return (
        f'<g class="state-label" data-host="{escape(label.column)}">'
        f"<title>{escape(label.connection)}: {escape(label.state)} ({escape(cause)})</title>"
        f'<rect x="{rx:.1f}" y="{y - 2}" width="{width}" height="18" rx="9" fill="#f4d35e"/>'
        f'<text class="state" x="{tx}" y="{y + 11}" text-anchor="{anchor}">'
        f"{escape(label.state)}</text>"
        f'<text class="cause" x="{tx + (-width - 4 if left else width + 4)}" y="{y + 11}" '
        f'text-anchor="{anchor}">{escape(cause)}</text></g>'
    )


# -- plots ------------------------------------------------------------------------------------------
PLOT_W, PLOT_H = 420, 230
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 64, 16, 40, 30


def _plots(ladder: Ladder) -> str:
    if not ladder.series:
        return (
            '<p class="note">No TCP variables to plot: a capture holds packets only '
            "(record a run with --record to see cwnd, windows and RTT).</p>"
        )
    parts: list[str] = []
    for series in ladder.series.values():
        parts.append(f'<h3 class="connection">{escape(series.name)}</h3><div class="plots">')
        parts.append(_plot(series, CONGESTION_SERIES, "bytes", 1.0))
        parts.append(_plot(series, WINDOW_SERIES, "bytes", 1.0))
        parts.append(_plot(series, TIME_SERIES, "ms", 1000.0))
        parts.append("</div>")
    return "\n".join(parts)


def _value(record: dict[str, Any], name: str, scale: float) -> float | None:
    value = record.get(name)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    if name == "ssthresh" and value >= INFINITE:
        return None
    return float(value) * scale


def _plot(
    series: Series, lines: tuple[tuple[str, str, str, str], ...], unit: str, scale: float
) -> str:
    points = series.points
    t0, t1 = points[0][0], points[-1][0]
    span = (t1 - t0) or 1.0
    top = max(
        (v for _, r in points for name, *_ in lines if (v := _value(r, name, scale)) is not None),
        default=1.0,
    )
    top = top * 1.1 or 1.0
    inner_w, inner_h = PLOT_W - MARGIN_L - MARGIN_R, PLOT_H - MARGIN_T - MARGIN_B

    def x(t: float) -> float:
        return MARGIN_L + (t - t0) / span * inner_w

    def y(v: float) -> float:
        return MARGIN_T + inner_h - min(v, top) / top * inner_h

    names = " ".join(name for name, *_ in lines)
    parts = [
        f'<svg class="plot" data-series="{names}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{PLOT_W}" height="{PLOT_H}" viewBox="0 0 {PLOT_W} {PLOT_H}">',
        f'<line x1="{MARGIN_L}" y1="{MARGIN_T + inner_h}" x2="{PLOT_W - MARGIN_R}" '
        f'y2="{MARGIN_T + inner_h}" stroke="#495057"/>',
        f'<line x1="{MARGIN_L}" y1="{MARGIN_T}" x2="{MARGIN_L}" y2="{MARGIN_T + inner_h}" '
        'stroke="#495057"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        value = top / 1.1 * fraction
        parts.append(
            f'<text x="{MARGIN_L - 6}" y="{y(value) + 4:.1f}" text-anchor="end">'
            f"{_amount(value, unit)}</text>"
            f'<line x1="{MARGIN_L}" y1="{y(value):.1f}" x2="{PLOT_W - MARGIN_R}" '
            f'y2="{y(value):.1f}" stroke="#e9ecef"/>'
        )
    parts.append(
        f'<text x="{MARGIN_L}" y="{PLOT_H - 8}">{t0:.3f} s</text>'
        f'<text x="{PLOT_W - MARGIN_R}" y="{PLOT_H - 8}" text-anchor="end">{t1:.3f} s</text>'
        f'<text x="{(MARGIN_L + PLOT_W) / 2}" y="{PLOT_H - 8}" text-anchor="middle">time</text>'
    )
    legend_x = MARGIN_L
    for index, (name, title, colour, dash) in enumerate(lines):
        steps: list[str] = []
        previous: float | None = None
        for when, record in points:
            level = _value(record, name, scale)
            if level is None:
                previous = None
                continue
            if previous is not None:
                steps.append(f"{x(when):.1f},{y(previous):.1f}")
            steps.append(f"{x(when):.1f},{y(level):.1f}")
            previous = level
        if steps and previous is not None:
            steps.append(f"{x(t1):.1f},{y(previous):.1f}")
        dashing = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<polyline class="series" data-series="{name}" fill="none" stroke="{colour}" '
            f'stroke-width="2"{dashing} points="{" ".join(steps)}"/>'
        )
        lx = legend_x + index * 120 if len(lines) > 2 else legend_x + index * 200
        ly = 16
        parts.append(
            f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 18}" y2="{ly - 4}" stroke="{colour}" '
            f'stroke-width="3"{dashing}/><text x="{lx + 22}" y="{ly}">{escape(title)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _amount(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f} MB"
    if value >= 10_000:
        return f"{value / 1000:.0f} kB"
    if value >= 1000:
        return f"{value / 1000:.1f} kB"
    return f"{value:.0f} B"


def _counters(ladder: Ladder) -> str:
    if not ladder.counters:
        return '<p class="note">No counters (a capture, or a recording cut short).</p>'
    hosts = list(ladder.counters)
    names = sorted({name for counters in ladder.counters.values() for name in counters})
    parts = ['<table class="counters"><tr><th>counter</th>']
    parts += [f"<th>{escape(host)}</th>" for host in hosts]
    parts.append("</tr>")
    for name in names:
        cells = "".join(
            f'<td class="n">{ladder.counters[host].get(name, "")}</td>' for host in hosts
        )
        parts.append(f"<tr><td>{escape(name)}</td>{cells}</tr>")
    parts.append("</table>")
    return "\n".join(parts)
