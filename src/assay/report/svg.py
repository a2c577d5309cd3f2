"""Small inline-SVG charts for the HTML report: interval, line and grouped-bar plots.

Each chart function returns one ``<svg>`` element as a string. Every piece of text is
escaped, the size comes from the ``viewBox`` (so CSS can scale the chart), and there is
no script and no external resource: the element can be pasted into any HTML page.

>>> chart = bar_plot(["a", "b"], [Bars("reference", [0.4, 0.6], REFERENCE)], title="t")
>>> chart.startswith("<svg") and chart.endswith("</svg>")
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

CURRENT = "#1f6fb2"
REFERENCE = "#e08a1e"
MUTED = "#7b8794"
INK = "#1f2933"
GRID = "#e4e7eb"
FONT_SIZE = 11
CHAR_WIDTH = 6.4  # average width of one character at FONT_SIZE, for layout only


@dataclass(frozen=True)
class Estimate:
    """One row of an interval plot: a value (``None`` when undefined) and its interval."""

    label: str
    value: float | None
    interval: Sequence[float] | None = None
    color: str = CURRENT


@dataclass(frozen=True)
class Line:
    """One curve of a line plot; points where x or y is ``None`` are left out."""

    name: str
    x: Sequence[float | None]
    y: Sequence[float | None]
    color: str = CURRENT
    markers: bool = False


@dataclass(frozen=True)
class Bars:
    """One series of a grouped bar plot (one value per slot)."""

    name: str
    values: Sequence[float | None]
    color: str = CURRENT


class _Scale:
    """Linear map from a data interval to a pixel interval."""

    def __init__(self, lo: float, hi: float, start: float, end: float) -> None:
        self.lo, self.hi, self.start, self.end = lo, hi, start, end

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo or 1.0
        return round(self.start + (value - self.lo) / span * (self.end - self.start), 2)


def finite(value: object) -> bool:
    """True for a real, finite number.

    >>> finite(0.5), finite(None), finite(float("nan"))
    (True, False, False)
    """
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering [lo, hi].

    >>> nice_ticks(0.0, 1.0)
    [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    >>> nice_ticks(0.831, 0.842, 4)
    [0.83, 0.835, 0.84, 0.845]
    """
    if not (finite(lo) and finite(hi)):
        lo, hi = 0.0, 1.0
    lo, hi = min(lo, hi), max(lo, hi)
    if hi - lo < 1e-12:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 12) + 0.0 for i in range(first, last + 1)]


def tick_formatter(ticks: Sequence[float], percent: bool = False) -> Callable[[float], str]:
    """A formatter showing just enough decimals to tell the ticks apart.

    >>> fmt = tick_formatter([0.0, 0.025, 0.05], percent=True)
    >>> fmt(0.025)
    '2.5%'
    """
    scale = 100.0 if percent else 1.0
    step = abs(ticks[1] - ticks[0]) * scale if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    if not math.isclose(round(step, decimals), step, rel_tol=1e-9):
        decimals += 1
    suffix = "%" if percent else ""
    return lambda v: f"{round(v * scale, decimals) + 0.0:.{decimals}f}{suffix}"


def _text(
    x: float,
    y: float,
    text: str,
    *,
    anchor: str = "start",
    color: str = INK,
    size: int = FONT_SIZE,
    bold: bool = False,
    rotate: float | None = None,
) -> str:
    extra = ' font-weight="600"' if bold else ""
    if rotate is not None:
        extra += f' transform="rotate({rotate} {x} {y})"'
    return (
        f'<text x="{x}" y="{y}" text-anchor="{anchor}" fill="{color}" '
        f'font-size="{size}"{extra}>{escape(text)}</text>'
    )


def _line(x1: float, y1: float, x2: float, y2: float, color: str, **attrs: str | float) -> str:
    more = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{color}"{more}/>'


def _svg(width: float, height: float, label: str, body: Sequence[str]) -> str:
    return (
        f'<svg class="plot" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(label)}" font-family="inherit">'
        f"<title>{escape(label)}</title>{''.join(body)}</svg>"
    )


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"


def _legend_width(entries: Sequence[tuple[str, str, bool]], horizontal: bool = False) -> float:
    sizes = [30 + len(name) * CHAR_WIDTH for name, _, _ in entries]
    return (sum(sizes) + 8 * len(sizes)) if horizontal else max(sizes, default=0.0)


def _legend(
    x: float, y: float, entries: Sequence[tuple[str, str, bool]], horizontal: bool = False
) -> list[str]:
    """Legend entries (name, color, dashed) from (x, y), stacked or side by side."""
    if not entries:
        return []
    width = _legend_width(entries, horizontal)
    rows = 1 if horizontal else len(entries)
    out = [
        f'<rect x="{x - 6}" y="{y - 12}" width="{width:.0f}" height="{rows * 16 + 4}" '
        f'fill="white" fill-opacity="0.9" stroke="{GRID}"/>'
    ]
    cx, cy = x, y
    for name, color, dashed in entries:
        dash = {"stroke_dasharray": "4 3"} if dashed else {}
        out.append(_line(cx, cy - 4, cx + 16, cy - 4, color, stroke_width=2.5, **dash))
        out.append(_text(cx + 22, cy, name))
        if horizontal:
            cx += 38 + len(name) * CHAR_WIDTH
        else:
            cy += 16
    return out


def interval_plot(
    estimates: Sequence[Estimate],
    *,
    title: str,
    x_label: str = "",
    marker: float | None = None,
    marker_label: str = "overall",
    limits: tuple[float | None, float | None] = (None, None),
    width: int = 340,
) -> str:
    """Dot-and-whisker plot: one row per estimate, the dot its value, the whisker its interval.

    ``marker`` draws a dashed vertical reference line (for example the overall value);
    ``limits`` bounds the axis for metrics with a known range (such as 0 to 1).

    >>> rows = [Estimate("current", 0.83, (0.82, 0.84)), Estimate("reference", None)]
    >>> chart = interval_plot(rows, title="roc_auc")
    >>> chart.count("<circle"), "n/a" in chart
    (1, True)
    """
    label_w = min(max((len(e.label) for e in estimates), default=4), 18) * CHAR_WIDTH + 14
    left, right, top, row_h = label_w, 18, 30, 24
    plot_h = row_h * max(len(estimates), 1)
    height = top + plot_h + (44 if x_label else 28) + (18 if marker is not None else 0)
    values = [v for e in estimates for v in (e.value, *(e.interval or ())) if finite(v)]
    if finite(marker):
        values.append(marker)
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    span = hi - lo
    pad = span * 0.08 if span > 1e-9 * max(1.0, abs(hi)) else (abs(hi) * 0.1 or 1.0)
    lo, hi = lo - pad, hi + pad
    if limits[0] is not None:  # never cut off data that lies outside the limits
        lo = max(lo, min(limits[0], min(values, default=lo)))
    if limits[1] is not None:
        hi = min(hi, max(limits[1], max(values, default=hi)))
    ticks = nice_ticks(lo, hi, count=4)
    x = _Scale(ticks[0], ticks[-1], left, width - right)
    fmt = tick_formatter(ticks)
    base = top + plot_h
    body = [_text(8, 18, title, bold=True, size=12)]
    for t in ticks:
        body.append(_line(x(t), top - 4, x(t), base, GRID))
        body.append(_text(x(t), base + 15, fmt(t), anchor="middle", color=MUTED))
    body.append(_line(left, base, width - right, base, MUTED))
    if x_label:
        body.append(_text((left + width - right) / 2, base + 32, x_label, anchor="middle"))
    if finite(marker):
        mx = x(marker)
        body.append(_line(mx, top - 4, mx, base, MUTED, stroke_width=1.5, stroke_dasharray="4 3"))
        body += _legend(left + 6, height - 8, [(marker_label, MUTED, True)])
    for i, e in enumerate(estimates):
        cy = top + i * row_h + row_h / 2
        body.append(_text(left - 10, cy + 4, _truncate(e.label, 18), anchor="end"))
        if not finite(e.value):
            body.append(_text(left + 6, cy + 4, "n/a", color=MUTED))
            continue
        tip = f"{e.label}: {e.value:.4f}"
        if e.interval and all(finite(v) for v in e.interval):
            lo_x, hi_x = x(e.interval[0]), x(e.interval[1])
            tip += f" [{e.interval[0]:.4f}, {e.interval[1]:.4f}]"
            body.append(_line(lo_x, cy, hi_x, cy, e.color, stroke_width=2))
            body.append(_line(lo_x, cy - 5, lo_x, cy + 5, e.color, stroke_width=2))
            body.append(_line(hi_x, cy - 5, hi_x, cy + 5, e.color, stroke_width=2))
        body.append(
            f'<circle cx="{x(e.value)}" cy="{cy}" r="4.5" fill="{e.color}" stroke="white">'
            f"<title>{escape(tip)}</title></circle>"
        )
    return _svg(width, height, title, body)


def line_plot(
    lines: Sequence[Line],
    *,
    title: str,
    x_label: str,
    y_label: str,
    diagonal: str | None = None,
    width: int = 380,
    height: int = 360,
) -> str:
    """Curves on the unit square, with an optional dashed diagonal named ``diagonal``.

    >>> roc = Line("current", [0.0, 0.2, 1.0], [0.0, 0.7, 1.0])
    >>> chart = line_plot([roc], title="ROC", x_label="fpr", y_label="tpr", diagonal="chance")
    >>> chart.count("<polyline")
    1
    """
    left, right, top, bottom = 56, 16, 30, 48
    x = _Scale(0.0, 1.0, left, width - right)
    y = _Scale(0.0, 1.0, height - bottom, top)
    ticks = nice_ticks(0.0, 1.0)
    fmt = tick_formatter(ticks)
    body = [_text(8, 18, title, bold=True, size=12)]
    for t in ticks:
        body.append(_line(x(t), top, x(t), y(0), GRID))
        body.append(_line(x(0), y(t), x(1), y(t), GRID))
        body.append(_text(x(t), y(0) + 15, fmt(t), anchor="middle", color=MUTED))
        body.append(_text(x(0) - 6, y(t) + 4, fmt(t), anchor="end", color=MUTED))
    body.append(
        f'<rect x="{x(0)}" y="{y(1)}" width="{x(1) - x(0)}" height="{y(0) - y(1)}" '
        f'fill="none" stroke="{MUTED}"/>'
    )
    body.append(_text((x(0) + x(1)) / 2, height - 10, x_label, anchor="middle"))
    mid_y = (y(0) + y(1)) / 2
    body.append(_text(16, mid_y, y_label, anchor="middle", rotate=-90))
    entries: list[tuple[str, str, bool]] = []
    if diagonal:
        body.append(_line(x(0), y(0), x(1), y(1), MUTED, stroke_dasharray="4 3"))
    for curve in lines:
        pts = [
            (x(a), y(b)) for a, b in zip(curve.x, curve.y, strict=False) if finite(a) and finite(b)
        ]
        path = " ".join(f"{px},{py}" for px, py in pts)
        body.append(
            f'<polyline points="{path}" fill="none" stroke="{curve.color}" stroke-width="2.5" '
            f'stroke-linejoin="round"/>'
        )
        if curve.markers:
            body += [
                f'<circle cx="{px}" cy="{py}" r="3.5" fill="{curve.color}"/>' for px, py in pts
            ]
        entries.append((curve.name, curve.color, False))
    if diagonal:
        entries.append((diagonal, MUTED, True))
    body += _legend(x(1) - _legend_width(entries), y(0) - 10 - 16 * (len(entries) - 1), entries)
    return _svg(width, height, title, body)


def bar_plot(
    labels: Sequence[str],
    series: Sequence[Bars],
    *,
    title: str,
    y_label: str = "share of rows",
    x_label: str = "",
    boundaries: Sequence[str] | None = None,
    width: int = 520,
    height: int = 270,
) -> str:
    """Grouped bars of shares (y axis in percent), one slot per label.

    With ``boundaries`` (one fewer than the labels) the x ticks name the edges between
    slots instead of the slots themselves, as for binned numeric values.

    >>> chart = bar_plot(["DE", "FR"], [Bars("reference", [0.5, 0.5], REFERENCE),
    ...                                 Bars("current", [0.3, 0.7])], title="country")
    >>> chart.count("<rect") - 1  # four bars and the legend box
    4
    """
    left, right, top = 58, 16, 34
    n = max(len(labels), 1)
    shown = boundaries if boundaries is not None else labels
    longest = min(max((len(s) for s in shown), default=1), 16) * CHAR_WIDTH
    rotate = longest > (width - left - right) / n - 4
    if rotate:  # slanted labels: keep them apart and inside the chart
        width = max(width, int(left + right + n * 24))
        left = max(left, int(longest * 0.82 - 4))
    slot = (width - left - right) / n
    bottom = (16 if not rotate else 14 + longest * 0.6) + (30 if x_label else 12)
    height = int(max(height, top + 140 + bottom))
    peak = max((v for s in series for v in s.values if finite(v)), default=0.0)
    ticks = nice_ticks(0.0, max(peak, 1e-9) * 1.08, count=4)
    y = _Scale(0.0, ticks[-1], height - bottom, top)
    fmt = tick_formatter(ticks, percent=True)
    body = [_text(8, 18, title, bold=True, size=12)]
    for t in ticks:
        body.append(_line(left, y(t), width - right, y(t), GRID))
        body.append(_text(left - 6, y(t) + 4, fmt(t), anchor="end", color=MUTED))
    body.append(_text(14, (y(0) + y(ticks[-1])) / 2, y_label, anchor="middle", rotate=-90))
    bar_w = (slot * 0.8) / max(len(series), 1)
    for i, label in enumerate(labels):
        for j, s in enumerate(series):
            value = s.values[i] if i < len(s.values) else None
            if not finite(value):
                continue
            bx = round(left + i * slot + slot * 0.1 + j * bar_w, 2)
            tip = f"{s.name} · {label}: {value:.2%}"
            body.append(
                f'<rect x="{bx}" y="{y(value)}" width="{bar_w - 1:.2f}" '
                f'height="{y(0) - y(value)}" fill="{s.color}"><title>{escape(tip)}</title></rect>'
            )
    body.append(_line(left, y(0), width - right, y(0), MUTED))
    offset = 1.0 if boundaries is not None else 0.5
    for i, text in enumerate(shown):
        tx, ty = round(left + (i + offset) * slot, 2), y(0) + 15
        if boundaries is not None:
            body.append(_line(tx, y(0), tx, y(0) + 5, MUTED))
        if rotate:
            body.append(_text(tx, ty, _truncate(text, 16), anchor="end", rotate=-35))
        else:
            body.append(_text(tx, ty, text, anchor="middle"))
    if x_label:
        body.append(_text((left + width - right) / 2, height - 10, x_label, anchor="middle"))
    entries = [(s.name, s.color, False) for s in series]
    body += _legend(width - right - _legend_width(entries, True), 18, entries, horizontal=True)
    return _svg(width, height, title, body)
