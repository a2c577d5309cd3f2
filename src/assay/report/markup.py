"""HTML fragments and number formatting shared by the report sections.

Helpers escape the plain text they are given (header texts, reasons); the HTML
fragments they take (rows, charts, captions) must be built from escaped parts.

>>> fmt_number(0.83571), fmt_interval([0.8, 0.9])
('0.8357', '[0.8000, 0.9000]')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from assay.report.svg import finite


def fmt_number(value: Any, digits: int = 4) -> str:
    """A metric value with ``digits`` decimals, or ``n/a``.

    >>> fmt_number(0.83571), fmt_number(None), fmt_number(12345.678, 2)
    ('0.8357', 'n/a', '12,345.68')
    """
    return f"{value:,.{digits}f}" if finite(value) else "n/a"


def fmt_sig(value: Any) -> str:
    """Three significant digits (test statistics, p-values), or ``n/a``.

    >>> fmt_sig(1.0831e-32), fmt_sig(0.25)
    ('1.08e-32', '0.25')
    """
    return f"{value:.3g}" if finite(value) else "n/a"


def fmt_share(value: Any) -> str:
    """A share as a percentage with one decimal, or ``n/a``.

    >>> fmt_share(0.1049)
    '10.5%'
    """
    return f"{value:.1%}" if finite(value) else "n/a"


def fmt_interval(ci: Any) -> str:
    """``[low, high]`` with 4 decimals, or a dash when there is no interval."""
    if isinstance(ci, Sequence) and len(ci) == 2 and all(finite(v) for v in ci):
        return f"[{ci[0]:.4f}, {ci[1]:.4f}]"
    return '<span class="na">—</span>'


def value_cell(group: Mapping[str, Any] | None, name: str) -> str:
    """``<td>`` with the value, or n/a and the reason the metric is undefined."""
    if group is None or name not in group:
        return '<td class="num na">—</td>'
    value = group.get(name)
    if finite(value):
        return f'<td class="num">{fmt_number(value)}</td>'
    reason = (group.get("undefined") or {}).get(name)
    why = f'<span class="reason">{escape(str(reason))}</span>' if reason else ""
    return f'<td class="num"><span class="na">n/a</span>{why}</td>'


def table(head: Sequence[str], rows: Sequence[str], numeric: Sequence[bool] = ()) -> str:
    """A table from header texts (escaped here) and finished ``<tr>`` rows."""
    flags = list(numeric) + [False] * len(head)
    cells = "".join(
        (f'<th class="num">{escape(h)}</th>' if num else f"<th>{escape(h)}</th>")
        for h, num in zip(head, flags, strict=False)
    )
    body = "".join(rows)
    html = f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{html}</div>'


def figure(chart: str, caption: str = "") -> str:
    """A chart in a ``<figure>``; ``caption`` is HTML (escape it first)."""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f"<figure>{chart}{cap}</figure>"


def plots(figures: Sequence[str]) -> str:
    """The non-empty figures side by side (wrapping), or "" when there are none."""
    figures = [f for f in figures if f]
    return f'<div class="plots">{"".join(figures)}</div>' if figures else ""
