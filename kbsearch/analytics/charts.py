"""Line charts as inline SVG, drawn on the server for the relevance dashboard.

No JavaScript and nothing fetched from elsewhere: the admin runs on-prem, often without internet,
and a chart that is markup prints, zooms and works with a screen reader. Each chart is an
``<svg role="img">`` named by its ``<title>`` and summarised by its ``<desc>`` (first and last
value, highest and lowest of each line); the page puts the exact numbers in a table beside it.
Lines differ by dash pattern as well as colour, so they can be told apart without colour.
A missing value (a rate on a day without searches) breaks the line instead of drawing a zero.
"""
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 44
_STYLES = (("#1f6fb2", ""), ("#c0392b", "6 4"), ("#2e8b57", "2 3"))
_ids = itertools.count(1)


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]


def percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def count(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def ratio(value: float) -> str:
    return f"{value:.3f}"


def _nice_ceiling(value: float) -> float:
    """The axis top for counts: 1, 2, 2.5 or 5 times a power of ten, at least ``value``."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 2.5, 5, 10) if value <= step * magnitude)


def _summary(series: Series, labels: Sequence[str], shown: Callable[[float], str]) -> str:
    points = [(label, value) for label, value in zip(labels, series.values) if value is not None]
    if not points:
        return f"{series.name}: no data."
    high = max(points, key=lambda point: point[1])
    low = min(points, key=lambda point: point[1])
    return (
        f"{series.name}: {shown(points[0][1])} on {points[0][0]}, {shown(points[-1][1])} on {points[-1][0]}; "
        f"highest {shown(high[1])} on {high[0]}, lowest {shown(low[1])} on {low[0]}."
    )


def _runs(xs: Sequence[float], ys: Sequence[float | None]) -> list[list[tuple[float, float]]]:
    """Unbroken stretches of points (a None ends one)."""
    runs, current = [], []
    for x, y in zip(xs, ys):
        if y is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((x, y))
    if current:
        runs.append(current)
    return runs


def line_chart(
    *, title: str, labels: Sequence[str], series: Sequence[Series], shown: Callable[[float], str] = count,
    ceiling: float | None = None,
) -> SafeString:
    """An SVG line chart of ``series`` over ``labels`` (the x axis, in order).

    ``ceiling`` fixes the top of the y axis (1.0 for rates); otherwise it is the largest value
    rounded up to a round number.
    """
    chart_id = f"chart-{next(_ids)}"
    values = [value for line in series for value in line.values if value is not None]
    top = ceiling if ceiling is not None else _nice_ceiling(max(values, default=0.0))
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_width / max(len(labels) - 1, 1)
    xs = [LEFT + index * step for index in range(len(labels))]

    def y_of(value: float) -> float:
        return TOP + plot_height * (1 - value / top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="kb-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" preserveAspectRatio="xMidYMid meet">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(" ".join(_summary(line, labels, shown) for line in series))}</desc>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = y_of(top * fraction)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="kb-grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(shown(top * fraction))}</text>')
    if labels:
        for index in sorted({0, len(labels) // 2, len(labels) - 1}):
            anchor = "start" if index == 0 else "end" if index == len(labels) - 1 else "middle"
            parts.append(
                f'<text x="{xs[index]:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="{anchor}">{escape(labels[index])}</text>'
            )
    for line, (colour, dash) in zip(series, itertools.cycle(_STYLES)):
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        for run in _runs(xs, line.values):
            points = " ".join(f"{x:.1f},{y_of(value):.1f}" for x, value in run)
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"{dashes}/>')
            if len(run) == 1:  # a lone point draws no line
                x, value = run[0]
                parts.append(f'<circle cx="{x:.1f}" cy="{y_of(value):.1f}" r="3" fill="{colour}"/>')
    legend_x = LEFT
    for line, (colour, dash) in zip(series, itertools.cycle(_STYLES)):
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        y = HEIGHT - 10
        parts.append(f'<line x1="{legend_x}" x2="{legend_x + 24}" y1="{y - 4}" y2="{y - 4}" stroke="{colour}" stroke-width="2"{dashes}/>')
        parts.append(f'<text x="{legend_x + 30}" y="{y}">{escape(line.name)}</text>')
        legend_x += 40 + 8 * len(line.name)
    parts.append("</svg>")
    # Every piece of text above went through escape(); numbers are formatted by us.
    return mark_safe("".join(parts))  # noqa: S308
