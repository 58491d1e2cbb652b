"""A one-line capacity bar: label, bar, percent and a detail such as "62.1 / 128.0 GiB".

An unknown value (no live host to ask) draws an empty bar and "—", never 0 %.
"""
from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from .format import DASH, percent as fmt_percent


def gauge_fraction(used: float | None, total: float | None) -> float | None:
    """used / total, or None when either is unknown or the total is 0."""
    if used is None or not total:
        return None
    return max(0.0, used / total)


class Gauge(Widget):
    """`Gauge("Memory").show(used, total, detail)`; thresholds colour the bar.

    warn/bad are percentages; pass warn=None for a bar that never turns amber
    (vCPU allocation above 100 % is normal overcommit, not a fault).
    """

    COMPONENT_CLASSES = {"gauge--label", "gauge--ok", "gauge--warn", "gauge--bad",
                         "gauge--track", "gauge--detail"}

    label: reactive[str] = reactive("", layout=False)
    fraction: reactive[float | None] = reactive(None)
    detail: reactive[str] = reactive("")

    def __init__(self, label: str, *, warn: float | None = 75.0, bad: float | None = 90.0,
                 label_width: int = 18, detail_width: int = 0, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.set_reactive(Gauge.label, label)
        self.warn, self.bad = warn, bad
        self.label_width = label_width
        self.detail_width = detail_width   # pad details so stacked bars line up

    def show(self, used: float | None, total: float | None, detail: str = "") -> None:
        self.fraction = gauge_fraction(used, total)
        self.detail = detail

    def show_percent(self, pct: float | None, detail: str = "") -> None:
        self.fraction = None if pct is None else max(0.0, pct / 100)
        self.detail = detail

    def _bar_class(self, pct: float) -> str:
        if self.bad is not None and pct >= self.bad:
            return "gauge--bad"
        if self.warn is not None and pct >= self.warn:
            return "gauge--warn"
        return "gauge--ok"

    def render(self) -> Text:
        width = self.content_size.width
        style = self.get_component_rich_style
        pct = None if self.fraction is None else self.fraction * 100
        label = self.label[: self.label_width - 1].ljust(self.label_width)
        pct_text = (DASH if pct is None else fmt_percent(pct)).rjust(6)
        detail = f"  {self.detail}".ljust(self.detail_width + 2) if (
            self.detail or self.detail_width) else ""
        bar_width = max(4, width - len(label) - len(pct_text) - len(detail) - 1)
        filled = 0 if pct is None else round(min(pct, 100.0) / 100 * bar_width)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(label, style("gauge--label"))
        if filled:
            text.append("━" * filled, style(self._bar_class(pct)))
        text.append("━" * (bar_width - filled), style("gauge--track"))
        text.append(" " + pct_text)
        text.append(detail, style("gauge--detail"))
        return text
