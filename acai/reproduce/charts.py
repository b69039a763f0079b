"""Line charts as inline SVG, drawn from plain series: nothing here reads a run, a folder or a file.

`line_chart` draws lines against one x axis starting at 0 (a point per value, hollow where flagged; a
value that is not finite breaks its line), reference values as ticks on the right edge, and a legend.
Hovering needs no script: an SVG title names each line, point and tick, and `hover_css` fades the lines
of the other groups while a line or legend entry of one group is under the pointer.
Every text given is HTML-escaped here.
"""
from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
CSS = """.series polyline{fill:none;stroke-width:1.4}.series:hover polyline{stroke-width:3}circle{stroke-width:1.5}
circle.bad{fill:#fff}.legend span{margin-right:12px;white-space:nowrap;cursor:default}
.charts{display:flex;flex-wrap:wrap;gap:0 12px}svg text{font-size:11px;fill:#333}
.axis{stroke:#888}.gridline{stroke:#eee}"""
WIDTH, HEIGHT = 560, 280
# Margins: the y tick labels on the left, the reference ticks on the right, the x tick labels and the
# axis label below.
LEFT, RIGHT, TOP, BOTTOM = 58, 22, 12, 34
LOG_SPAN = 20  # positive values spanning more than this factor are drawn on a log axis (when not told)


def colour(index: int) -> str:
    """The palette's colour for the index-th line (it repeats after len(COLOURS))."""
    return COLOURS[index % len(COLOURS)]


@dataclass(frozen=True)
class Series:
    """One line."""

    name: str  # on hover over the line and each of its points
    points: Sequence[tuple[float, float]]  # (x, y), in the order they are joined
    colour: str
    group: str = ""  # a CSS class name: under hover_css's rule, hovering its lines or legend entry fades the others
    flagged: Mapping[int, str] = field(default_factory=dict)  # index of a point -> why it is drawn hollow


@dataclass(frozen=True)
class Mark:
    """A reference value, drawn as a tick on the right edge."""

    name: str
    y: float
    colour: str


@dataclass(frozen=True)
class Key:
    """One legend entry."""

    text: str
    colour: str
    group: str = ""  # as Series.group


def ticks(low: float, high: float, log: bool) -> list[float]:
    """Round values from `low` to `high` for gridlines and labels: each power of 10 on a log axis, else
    at most 6 steps of 1, 2 or 5 times a power of 10."""
    if log:
        return [10.0 ** e for e in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)]
    step = 10 ** math.floor(math.log10((high - low) / 4 or 1))
    step *= next(f for f in (1, 2, 5, 10) if (high - low) / (step * f) <= 6)
    return [k * step for k in range(math.ceil(low / step), math.floor(high / step) + 1)]


def short(x: float) -> str:
    """A tick label: 3 significant digits, thousands as k and millions as M."""
    for size, unit in ((1e6, "M"), (1e3, "k")):
        if abs(x) >= size:
            return f"{x / size:.3g}{unit}"
    return f"{x:.3g}"


def line_chart(series: Sequence[Series], x_label: str, x_unit: str, marks: Sequence[Mark] = (),
               legend: Sequence[Key] = (), log: bool | None = None) -> str:
    """A <figure>: the series and marks over x from 0 to the largest x given, y from the smallest value to
    the largest, on a log axis if `log` (None: if every value is positive and they span more than
    LOG_SPAN times). `x_unit` follows a point's x on hover ("1,024 samples"). "" when there is no
    finite value to draw."""
    marks = [mark for mark in marks if math.isfinite(mark.y)]
    ys = [y for s in series for _, y in s.points if math.isfinite(y)] + [mark.y for mark in marks]
    if not ys:
        return ""
    x_max = max((x for s in series for x, _ in s.points), default=0) or 1
    low, high = min(ys), max(ys)
    if log is None:
        log = low > 0 and high / low > LOG_SPAN
    if log:
        if low <= 0:
            raise ValueError(f"a log axis cannot show {low}")
        low, high = 10 ** math.floor(math.log10(low)), 10 ** math.ceil(math.log10(high))
    elif high - low < 1e-12:
        low, high = low - 1, high + 1

    def sx(x: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * x / x_max

    def sy(y: float) -> float:
        f = ((math.log10(y) - math.log10(low)) / (math.log10(high) - math.log10(low)) if log else
             (y - low) / (high - low))
        return TOP + (HEIGHT - TOP - BOTTOM) * (1 - f)

    out = [f'<svg width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img">']
    for y in ticks(low, high, log):
        out.append(f'<line class="gridline" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{sy(y):.1f}" y2="{sy(y):.1f}"/>'
                   f'<text x="{LEFT - 4}" y="{sy(y) + 4:.1f}" text-anchor="end">{short(y)}</text>')
    for x in ticks(0, x_max, False):
        out.append(f'<text x="{sx(x):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{short(x)}</text>')
    out.append(f'<path class="axis" fill="none" d="M{LEFT} {TOP}V{HEIGHT - BOTTOM}H{WIDTH - RIGHT}"/>'
               f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 4}" text-anchor="middle">{esc(x_label)}</text>')
    for s in series:
        if s.points:
            out += line(s, sx, sy, x_unit)
    for mark in marks:
        out.append(f'<line x1="{WIDTH - RIGHT}" x2="{WIDTH - RIGHT + 10}" y1="{sy(mark.y):.1f}" y2="{sy(mark.y):.1f}" '
                   f'stroke="{esc(mark.colour)}" stroke-width="3"><title>{esc(mark.name)}: {mark.y:g}</title></line>')
    out.append("</svg>")
    keys = []
    for key in legend:
        group = f' class="g-{esc(key.group)}"' if key.group else ""
        keys.append(f'<span{group}><b style="color:{esc(key.colour)}">■</b> {esc(key.text)}</span>')
    return f'<figure class="chart">{"".join(out)}<figcaption class="legend">{"".join(keys)}</figcaption></figure>'


def line(s: Series, sx, sy, x_unit: str) -> list[str]:
    """One series as an SVG group: a polyline per run of finite values, then its points."""
    colour, name = esc(s.colour), esc(s.name)
    out = [f'<g class="series{" g-" + esc(s.group) if s.group else ""}" stroke="{colour}"><title>{name}</title>']
    segment = []
    for x, y in [*s.points, (0, math.nan)]:  # the NaN closes the last segment
        if math.isfinite(y):
            segment.append(f"{sx(x):.1f},{sy(y):.1f}")
        elif segment:
            out.append(f'<polyline points="{" ".join(segment)}"/>')
            segment = []
    for index, (x, y) in enumerate(s.points):
        if math.isfinite(y):
            flag = s.flagged.get(index)
            hollow, said = ("", "") if flag is None else (' class="bad"', f", {esc(flag)}")
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}"{hollow}>'
                       f"<title>{name}: {x:,} {esc(x_unit)}, {y:.4g}{said}</title></circle>")
    out.append("</g>")
    return out


def hover_css(groups: Iterable[str]) -> str:
    """The rules that fade every other line while a line or legend entry of one of `groups` (CSS class
    names: they are not escaped) is hovered."""
    return "".join(f"figure.chart:has(.g-{g}:hover) .series:not(.g-{g}){{opacity:.12}}" for g in groups)


def esc(value) -> str:
    return html.escape(str(value), quote=True)
