"""The dashboard's monthly bar chart as plain geometry for a server-rendered SVG: no script, no inline
style (the CSP forbids both), one accessible <title> per bar."""

from __future__ import annotations

from dataclasses import dataclass

from apertur.commissions.selectors import MonthTotal
from apertur.core.money import format_cents

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 16, 16, 28, 30  # room for the axis labels
GAP = 0.3  # share of each slot left empty between bars


def _n(value: float) -> str:
    return f"{value:.1f}"


@dataclass(frozen=True, slots=True)
class Bar:
    month: str  # "Mar"
    title: str  # "March 2026: $250.00 CAD"
    cents: int
    x: str
    y: str
    width: str
    height: str
    label_x: str


@dataclass(frozen=True, slots=True)
class BarChart:
    width: int
    height: int
    bars: list[Bar]
    baseline_y: str
    label_y: str
    top_y: str
    max_label: str
    summary: str

    @property
    def empty(self) -> bool:
        return all(bar.cents == 0 for bar in self.bars)


def bar_chart(series: list[MonthTotal]) -> BarChart:
    high = max([0, *(m.net_cents for m in series)])
    low = min([0, *(m.net_cents for m in series)])
    span = (high - low) or 1
    plot = HEIGHT - TOP - BOTTOM
    baseline = TOP + plot * high / span
    slot = (WIDTH - LEFT - RIGHT) / max(len(series), 1)
    bars = []
    for i, m in enumerate(series):
        size = plot * abs(m.net_cents) / span
        x = LEFT + i * slot + slot * GAP / 2
        bars.append(
            Bar(
                month=m.month.strftime("%b"),
                title=f"{m.month.strftime('%B %Y')}: {format_cents(m.net_cents)}",
                cents=m.net_cents,
                x=_n(x),
                y=_n(baseline - size if m.net_cents >= 0 else baseline),
                width=_n(slot * (1 - GAP)),
                height=_n(size),
                label_x=_n(LEFT + i * slot + slot / 2),
            )
        )
    first, last = (series[0].month, series[-1].month) if series else (None, None)
    summary = (
        f"Net commission by month of payment from {first:%B %Y} to {last:%B %Y}; highest month {format_cents(high)}."
        if first and last
        else "No months to show."
    )
    return BarChart(
        width=WIDTH,
        height=HEIGHT,
        bars=bars,
        baseline_y=_n(baseline),
        label_y=_n(HEIGHT - 10),
        top_y=_n(TOP),
        max_label=format_cents(high),
        summary=summary,
    )
