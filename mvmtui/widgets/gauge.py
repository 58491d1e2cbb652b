"""A capacity bar: label, bar, percent and a detail such as "62.1 / 128.0 GiB".

An unknown value (no live host to ask) draws an empty bar and "—", never 0 %.
When the width runs short the numbers stay: the bar goes first, then the detail
moves to a second line (the widget's height is auto).
"""
from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.geometry import Size
from textual.reactive import reactive
from textual.widget import Widget

from .format import DASH, percent as fmt_percent

MIN_BAR = 3       # a shorter bar tells nothing
PERCENT = 7       # "  100%": a space, then the figure right-aligned in 6


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
        self._wrapped = False              # the detail was drawn on a line of its own

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

    def _plan(self, width: int) -> tuple[int, int, bool]:
        """(label cells, bar cells, detail on a second line) that fit `width`.

        Gauges stacked with the same label_width and detail_width choose alike, so
        their bars stay aligned: one line if the bar fits beside the padded detail,
        else the detail goes under the bar; the bar is dropped only when even that
        leaves it no room."""
        detail = cell_len(self.detail)
        padded = max(detail, self.detail_width) + 2 if (detail or self.detail_width) else 0
        label = self.label_width
        one_line = width - label - PERCENT - padded
        if one_line >= MIN_BAR:
            return label, one_line, False
        bar = width - label - PERCENT
        if bar < MIN_BAR:
            label, bar = min(label, cell_len(self.label) + 1), 0
        return label, bar, bool(detail)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return 2 if self._plan(width)[2] else 1

    def watch_detail(self) -> None:
        width = self.content_size.width
        if width and self._plan(width)[2] != self._wrapped:
            self.refresh(layout=True)   # from one line to two, or back

    def render(self) -> Text:
        width = self.content_size.width
        style = self.get_component_rich_style
        label_w, bar_width, wrap = self._plan(width)
        self._wrapped = wrap
        pct = None if self.fraction is None else self.fraction * 100
        label = self.label[: label_w - 1].ljust(label_w)
        pct_text = (DASH if pct is None else fmt_percent(pct)).rjust(PERCENT - 1)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(label, style("gauge--label"))
        if bar_width:
            filled = 0 if pct is None else round(min(pct, 100.0) / 100 * bar_width)
            if filled:
                text.append("━" * filled, style(self._bar_class(pct)))
            text.append("━" * (bar_width - filled), style("gauge--track"))
        text.append(" " + pct_text)
        if wrap:   # under the bar, where the numbers are read
            indent = max(0, min(label_w, width - cell_len(self.detail)))
            text.append("\n" + " " * indent + self.detail, style("gauge--detail"))
        elif self.detail:
            text.append(f"  {self.detail}", style("gauge--detail"))
        return text
