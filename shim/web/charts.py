"""Charts drawn on the server as inline SVG: a sparkline per bug, bars over hours or days, bars
stacked by level. No script and no chart library; each chart carries a text summary for screen
readers and a ``<title>`` per bar for the exact number on hover. Pure: values in, markup out (every
label escaped).
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

LEVEL_COLOURS = {"critical": "#b3261e", "error": "#e8710a", "warning": "#d9a400",
                 "info": "#2f6fb0", "debug": "#8a8f98"}


def _svg(width: int, height: int, label: str, body: str, css: str = "chart") -> Markup:
    return Markup(
        f'<svg class="{css}" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' role="img" aria-label="{escape(label)}">{body}</svg>')


def sparkline(values: Sequence[int], label: str, width: int = 96, height: int = 22) -> Markup:
    """Small bars, one per value (an hour), scaled to the largest."""
    top = max(values, default=0) or 1
    step = width / max(len(values), 1)
    bars = []
    for index, value in enumerate(values):
        if value:
            h = max(1.5, value / top * (height - 2))
            bars.append(f'<rect x="{index * step:.1f}" y="{height - h:.1f}"'
                        f' width="{max(step - 1, 1):.1f}" height="{h:.1f}"/>')
    baseline = f'<line x1="0" y1="{height - 0.5}" x2="{width}" y2="{height - 0.5}" class="base"/>'
    return _svg(width, height, label, baseline + "".join(bars), "spark")


def bars(points: Sequence[tuple[str, int]], label: str, width: int = 560, height: int = 150,
         tick_every: int = 6) -> Markup:
    """Bars with a label under every ``tick_every``-th and the largest value on the axis."""
    stacked = [(name, {"count": n}) for name, n in points]
    return stacked_bars(stacked, ("count",), label, width, height, tick_every,
                        colours={"count": "#2f6fb0"})


def stacked_bars(points: Sequence[tuple[str, dict[str, int]]], keys: Sequence[str], label: str,
                 width: int = 560, height: int = 150, tick_every: int = 6,
                 colours: dict[str, str] | None = None) -> Markup:
    """Bars stacked by ``keys`` (bottom first), one per point."""
    colours = colours or LEVEL_COLOURS
    left, bottom, top_pad = 34, 18, 6
    plot_w, plot_h = width - left - 4, height - bottom - top_pad
    totals = [sum(parts.get(k, 0) for k in keys) for _, parts in points]
    top = max(totals, default=0) or 1
    step = plot_w / max(len(points), 1)
    body = [f'<text x="{left - 4}" y="{top_pad + 8}" class="axis" text-anchor="end">{top}</text>',
            f'<text x="{left - 4}" y="{top_pad + plot_h}" class="axis" text-anchor="end">0</text>',
            f'<line x1="{left}" y1="{top_pad + plot_h + 0.5}" x2="{width - 4}"'
            f' y2="{top_pad + plot_h + 0.5}" class="base"/>']
    for index, (name, parts) in enumerate(points):
        x = left + index * step
        y = float(top_pad + plot_h)
        detail = ", ".join(f"{k} {parts[k]}" for k in keys if parts.get(k))
        pieces = [f"<title>{escape(name)}: {escape(detail or '0')}</title>"]
        for key in keys:
            value = parts.get(key, 0)
            if not value:
                continue
            h = value / top * plot_h
            y -= h
            pieces.append(f'<rect x="{x + 0.5:.1f}" y="{y:.1f}" width="{max(step - 1.5, 1):.1f}"'
                          f' height="{h:.1f}" fill="{colours.get(key, "#888")}"/>')
        body.append(f"<g>{''.join(pieces)}</g>")
        if index % tick_every == 0:
            body.append(f'<text x="{x + step / 2:.1f}" y="{height - 4}" class="axis"'
                        f' text-anchor="middle">{escape(name[-5:])}</text>')
    summary = f"{label}: {sum(totals)} in all, at most {max(totals, default=0)} in one bar"
    return _svg(width, height, summary, "".join(body))
