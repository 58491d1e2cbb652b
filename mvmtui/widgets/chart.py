"""The one chart widget: a metric over time, drawn by plotext, in the theme's colours.

Used by the cluster's Monitoring tab, the host and VM screens (and later the Ceph
summary). It shows an engine `Chart` (engine.model): a line per series, the title,
the unit, the range and the tier the points come from ("1-minute averages"), how
fresh the newest point is ("as of 12s ago", from the engine's clock: every figure
says how old it is), and a legend with each line's mean over the range. Empty: "no
data yet", never an empty frame that reads as zero.

plotext 6.1 draws the plot (its `figure` API: signals, rulers, build()); its ANSI
output becomes a Rich `Text`, each line in a colour of the current Textual theme
(primary, accent, warning, success, …), axes in the muted text colour. The x axis is
relative to the chart's end ("-1h … now"), so the same data draws the same chart
whenever it is drawn. textual-plotext is not used: it requires plotext < 6, which
conflicts with the project's plotext 6.

plotext is not quick: ~20 µs per point and ~2 ms per line (measured here, 2 cores).
So a series is first averaged down to one point per column of the plot (a week of
15-minute points, 672, becomes ~100), at most `max_lines` lines are drawn (the
busiest by mean; the legend says "8 of 200 hosts, busiest by mean"), the plot is
built in a thread worker (one at a time: plotext's figure is process-wide), and the
built text is kept until the data, the size or the theme changes: a refresh that
brings the same chart, or a tick that moves the "as of" age, draws no plot again.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from rich.cells import cell_len
from rich.color import Color, ColorParseError
from rich.style import Style
from rich.text import Text
from textual.message import Message
from textual.widget import Widget

from ..engine.model import Chart, MetricSeries
from . import format as fmt

# Theme variables for the lines, in order; the muted text colour for axes and labels.
SERIES_VARIABLES = ("primary", "warning", "success", "accent", "error", "secondary",
                    "foreground", "text-muted")
FALLBACK_COLORS = ("#0178d4", "#ffa62b", "#4ebf71", "#ff8800", "#ba3c5b", "#004578",
                   "#e0e0e0", "#808080")
MIN_PLOT_HEIGHT = 4         # rows of plot below which only the header and legend show
MIN_PLOT_WIDTH = 20
SHORT_TIERS = {"raw samples": "raw", "1-minute averages": "1-min avg",
               "15-minute averages": "15-min avg"}
RANGE_WORDS = {"15m": "last 15 min", "1h": "last hour", "1d": "last day", "1w": "last week"}

_PLOT_LOCK = threading.Lock()   # plotext's figure is one per process


# ---- colours ---------------------------------------------------------------------
@dataclass(frozen=True)
class ChartColors:
    """The theme's colours as a chart uses them (hex strings)."""

    series: tuple[str, ...] = FALLBACK_COLORS
    axes: str = "#808080"
    title: str = "bold"

    @classmethod
    def from_variables(cls, variables: dict[str, str]) -> "ChartColors":
        series = []
        for name, fallback in zip(SERIES_VARIABLES, FALLBACK_COLORS):
            series.append(_hex(variables.get(name), fallback))
        # Duplicates (a theme whose accent is its primary) would make two lines alike.
        unique = tuple(dict.fromkeys(series))
        extra = tuple(c for c in FALLBACK_COLORS if c not in unique)
        axes = _hex(variables.get("text-muted") or variables.get("foreground-muted"),
                    "#808080")
        return cls(series=(unique + extra)[:8], axes=axes)

    def of(self, index: int) -> str:
        return self.series[index % len(self.series)]


def _hex(value: str | None, fallback: str) -> str:
    if not value:
        return fallback
    try:
        color = Color.parse(value.split()[0])
    except ColorParseError:
        return fallback
    return color.get_truecolor().hex


def _rgb(hex_color: str) -> tuple[int, int, int]:
    c = Color.parse(hex_color).get_truecolor()
    return (c.red, c.green, c.blue)


# ---- values and axes -------------------------------------------------------------
def value_text(value: float | None, unit: str) -> str:
    """A figure in its unit: "42%", "1.5 GiB", "3.2 MiB/s", "0.75"."""
    if value is None:
        return fmt.DASH
    if unit == "%":
        return fmt.percent(value)
    if unit == "MiB":
        return fmt.size_mib(value)
    if unit == "B/s":
        return f"{fmt.size_bytes(value)}/s"
    if unit:
        return f"{value:.3g} {unit}"
    return f"{value:.2f}" if value < 10 else f"{value:.3g}"


def nice_top(value: float) -> float:
    """The y axis' top: the next round figure (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 ×
    10^n) above the highest point."""
    if value <= 0:
        return 1.0
    import math
    exp = math.floor(math.log10(value))
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        top = m * 10 ** exp
        if top >= value * 1.0001:
            return float(top)
    return float(10 ** (exp + 1))


def y_axis(chart: Chart, series: list[MetricSeries], rows: int) -> tuple[float, list, list]:
    """(top, tick positions, tick labels): percentages 0–100 always; else 0 to a
    round figure over the highest point."""
    if chart.unit == "%":
        top = 100.0
    else:
        high = max((v for s in series for _, v in s.points), default=0.0)
        # Round in the unit the labels are read in (100 GiB, not 195.3 GiB).
        scale = 1.0
        if chart.unit in ("MiB", "B/s"):
            while high / scale >= 1000:
                scale *= 1024
        top = nice_top(high / scale) * scale
    parts = 4 if rows >= 9 else 2 if rows >= 5 else 1
    ticks = [top * i / parts for i in range(parts + 1)]
    return top, ticks, [value_text(t, chart.unit) if t else "0" for t in ticks]


_STEPS = (60, 300, 600, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400)


def relative(seconds: float) -> str:
    """-3600 → "-1h", -900 → "-15m", -172800 → "-2d", 0 → "now"."""
    s = int(round(-seconds))
    if s == 0:
        return "now"
    if s % 86400 == 0:
        return f"-{s // 86400}d"
    if s % 3600 == 0:
        return f"-{s // 3600}h"
    return f"-{s // 60}m"


def x_axis(span: float, columns: int) -> tuple[list, list]:
    """Ticks relative to the end ("-1h", "-45m", …, "now"), one about every 10
    columns at most, at round steps."""
    most = max(1, columns // 10)
    step = next((s for s in _STEPS if span / s <= most), _STEPS[-1])
    n = int(span // step)
    ticks = [-(n - i) * step for i in range(n)] + [0]
    if -span not in ticks:
        ticks = [t for t in ticks if t > -span]
    return [float(t) for t in ticks], [relative(t) for t in ticks]


def downsample(points, start: float, end: float, buckets: int,
               step: float = 0.0) -> list[list[tuple[float, float]]]:
    """Average the points into `buckets` windows of the range (one per plot column),
    in runs: a gap (no point for longer than ~3 steps, a host that did not answer)
    breaks the line rather than bridging it."""
    if not points:
        return []
    width = max(1e-9, (end - start) / max(1, buckets))
    sums: dict[int, list[float]] = {}
    for t, v in points:
        b = min(buckets - 1, max(0, int((t - start) / width)))
        acc = sums.get(b)
        if acc is None:
            sums[b] = [t, v, 1]
        else:
            acc[0] += t
            acc[1] += v
            acc[2] += 1
    if not step:    # raw samples: the median spacing of the points
        ts = [t for t, _ in points]
        gaps = sorted(b - a for a, b in zip(ts, ts[1:]))
        step = gaps[len(gaps) // 2] if gaps else width
    gap = max(3 * step, 2.5 * width)
    runs: list[list[tuple[float, float]]] = []
    last_t = None
    for b in sorted(sums):
        t, v, n = sums[b]
        point = (t / n, v / n)
        if last_t is None or point[0] - last_t > gap:
            runs.append([])
        runs[-1].append(point)
        last_t = point[0]
    return runs


def shown_series(chart: Chart, max_lines: int) -> list[MetricSeries]:
    """The series drawn: those with points, the busiest by mean first when there are
    more than `max_lines` (in the chart's own order otherwise)."""
    with_points = [s for s in chart.series if s.points]
    if len(with_points) <= max_lines:
        return with_points
    ranked = sorted(with_points, key=lambda s: -(s.mean or 0.0))[:max_lines]
    keep = {id(s) for s in ranked}
    return [s for s in with_points if id(s) in keep]


# ---- the plot itself -------------------------------------------------------------
def plot_text(chart: Chart, width: int, height: int, colors: ChartColors,
              series: list[MetricSeries], step: float = 0.0) -> Text:
    """The plot of `series` (lines, axes, ticks) in `width` × `height` cells."""
    import plotext as plt

    span = chart.end - chart.start
    top, yticks, ylabels = y_axis(chart, series, height - 2)
    label_w = max(cell_len(label) for label in ylabels)
    columns = max(4, width - label_w - 3)
    xticks, xlabels = x_axis(span, columns)
    with _PLOT_LOCK:
        f = plt.figure
        f.clear()
        f.theme("colorless")
        f.plot_size(width, height)
        for index, s in enumerate(series):
            pixel = plt.pixel(foreground=_rgb(colors.of(index)))
            for run in downsample(s.points, chart.start, chart.end, columns, step):
                xs = [t - chart.end for t, _ in run]
                ys = [min(v, top) for _, v in run]
                sig = f.signal(xs, ys, marker=plt.marker("hd", pixel=pixel))
                if len(run) > 1:
                    sig.lines()
                f.draw(sig)
        f.ruler("x").lim(-span, 0)
        f.ruler("x").ticks(xticks, xlabels)
        f.ruler("y").lim(0, top)
        f.ruler("y").ticks(yticks, ylabels)
        ansi = f.build().string()
    text = Text.from_ansi(ansi, style=colors.axes, no_wrap=True, overflow="crop")
    text.rstrip_end(width)
    return text


def tier_step(chart: Chart) -> float:
    return {"1-minute averages": 60.0, "15-minute averages": 900.0}.get(chart.tier, 0.0)


def header_text(chart: Chart | None, now: float, colors: ChartColors, width: int,
                title: str = "") -> Text:
    """"kvm-01 · CPU (%) · last hour        raw samples · as of 12s ago": the title
    at the left, where the points come from and how fresh they are at the right; the
    range words go first when the line is short (the range bar above says it too)."""
    if chart is None:
        return Text(title or "…", style=colors.title, no_wrap=True, overflow="ellipsis")
    unit = f" ({chart.unit})" if chart.unit else ""
    name = Text(f"{title or chart.title}{unit}", style=colors.title)
    when = Text(f"  ·  {RANGE_WORDS.get(chart.range, chart.range)}", style=colors.axes)
    age = ("no data yet" if chart.as_of is None
           else f"as of {fmt.ago(max(0.0, now - chart.as_of))}")
    tier = chart.tier
    if name.cell_len + 2 + len(tier) + 3 + len(age) > width:
        tier = SHORT_TIERS.get(tier, tier)
    right = Text(f"{tier} · ", style=colors.axes)
    right.append(age, style=f"italic {colors.axes}" if chart.as_of is None else "")
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append_text(name)
    if name.cell_len + when.cell_len + 2 + right.cell_len <= width:
        text.append_text(when)
    gap = width - text.cell_len - right.cell_len
    text.append(" " * max(2, gap))
    text.append_text(right)
    text.truncate(width, overflow="ellipsis")
    return text


# How far behind the chart's newest sample a line's last point may be before the
# legend says so: a few stats intervals for raw samples, two windows for averages.
SILENT_AFTER = {"raw samples": 15.0, "1-minute averages": 150.0, "15-minute averages": 1900.0}


def silent_for(chart: Chart, s: MetricSeries) -> float | None:
    """Seconds a line has had no sample while others had (a host lost, a VM stopped),
    or None: it is as fresh as the chart."""
    if not s.points or chart.as_of is None:
        return None
    lag = chart.as_of - s.points[-1][0]
    return lag if lag > SILENT_AFTER.get(chart.tier, 15.0) else None


def legend_text(chart: Chart, shown: list[MetricSeries], colors: ChartColors, width: int,
                noun: str = "") -> Text:
    """"━ kvm-01 23%  ━ kvm-02 41%  · means over the range", wrapped to `width`;
    "8 of 200 hosts, busiest by mean" when lines were left out."""
    text = Text(style=colors.axes)
    line = 0
    for index, s in enumerate(shown):
        item = Text.assemble(("━ ", Style(color=colors.of(index), bold=True)),
                             (s.label, ""), f" {value_text(s.mean, chart.unit)}")
        lag = silent_for(chart, s)
        if lag is not None:       # a host that went quiet: its line ends, and says so
            item.append(f" (last {fmt.ago(lag)})", style="bold")
        if line and line + 2 + item.cell_len > width:
            text.append("\n")
            line = 0
        elif line:
            text.append("  ")
            line += 2
        text.append_text(item)
        line += item.cell_len
    # The engine may have sent only the busiest (Chart.total counts them all).
    with_points = max(chart.total, sum(1 for s in chart.series if s.points))
    notes = []
    if shown:
        notes.append("means over the range")
    if len(shown) < with_points:
        what = f"{noun}s" if noun else "lines"
        notes.append(f"{len(shown)} of {with_points} {what}, busiest by mean")
    for note in notes:
        piece = f"· {note}"
        if line and line + 2 + len(piece) > width:
            text.append("\n")
            line = 0
        elif line:
            text.append("  ")
            line += 2
        text.append(piece, style=colors.axes)
        line += len(piece)
    return text


# ---- the widget --------------------------------------------------------------------
class ChartView(Widget):
    """`ChartView().show(chart)`: draws it at the widget's size, in a thread; keeps
    the drawing until the chart, the size or the theme changes. `builds` counts the
    plots drawn (tests check that nothing redraws without new data)."""

    DEFAULT_CSS = """
    ChartView {
        height: 12;
        min-height: 5;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: clip;
    }
    """

    class Built(Message):
        """A plot built in the worker thread (generation: the request it answers)."""

        def __init__(self, view: "ChartView", generation: int, key: tuple, text: Text) -> None:
            super().__init__()
            self.view, self.generation, self.key, self.text = view, generation, key, text

    def __init__(self, *, title: str = "", noun: str = "", max_lines: int = 8,
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.chart: Chart | None = None
        self.title = title              # instead of the chart's own title
        self.noun = noun                # "host": "8 of 200 hosts, busiest by mean"
        self.max_lines = max_lines
        self.builds = 0                 # plots drawn (plotext builds)
        self._plot: Text | None = None  # the last plot built
        self._plot_key: tuple | None = None
        self._wanted: tuple | None = None   # the key being built
        self._build_generation = 0
        self._chart_colors: tuple[object, ChartColors] | None = None

    # -- data ----------------------------------------------------------------------
    def show(self, chart: Chart | None) -> None:
        """A chart to draw; the same chart again (no new point) draws nothing."""
        if chart == self.chart:
            return
        self.chart = chart
        self.refresh()

    @property
    def empty(self) -> bool:
        """Nothing to draw: no chart, or no point in its range."""
        return self.chart is None or not any(s.points for s in self.chart.series)

    @property
    def up_to_date(self) -> bool:
        """The plot on screen is the current chart's, at the current size and theme."""
        key = self._key()
        return key is None or key == self._plot_key

    def colors(self) -> ChartColors:
        variables = self.app.theme_variables or self.app.get_css_variables()
        if self._chart_colors is None or self._chart_colors[0] is not variables:
            self._chart_colors = (variables, ChartColors.from_variables(variables))
        return self._chart_colors[1]

    def now(self) -> float:
        screen_now = getattr(self.screen, "now", None)
        if screen_now is not None:
            return screen_now()
        import time
        return time.time()

    # -- layout ----------------------------------------------------------------------
    def _parts(self) -> tuple[list[MetricSeries], Text, int]:
        """(series drawn, legend, plot rows) at the present size."""
        chart, colors = self.chart, self.colors()
        width, height = self.content_size.width, self.content_size.height
        if chart is None:
            return [], Text(), 0
        shown = shown_series(chart, self.max_lines)
        legend = legend_text(chart, shown, colors, width, self.noun) if shown else Text()
        legend_rows = len(legend.plain.split("\n")) if shown else 0
        rows = height - 1 - legend_rows
        return shown, legend, rows if rows >= MIN_PLOT_HEIGHT else 0

    def _key(self) -> tuple | None:
        """What the plot depends on; None when there is nothing to plot."""
        if self.chart is None or not self.is_mounted:
            return None
        shown, _, rows = self._parts()
        width = self.content_size.width
        if not shown or not rows or width < MIN_PLOT_WIDTH:
            return None
        return (self.chart.series, self.chart.start, self.chart.end, self.chart.unit,
                tuple(s.label for s in shown), width, rows, self.colors())

    def _request(self, key: tuple, shown: list[MetricSeries], rows: int) -> None:
        if key == self._wanted:
            return      # already being built
        self._wanted = key
        self._build_generation += 1
        generation, chart, colors = self._build_generation, self.chart, self.colors()
        width, step = self.content_size.width, tier_step(self.chart)

        def build() -> None:
            text = plot_text(chart, width, rows, colors, shown, step)
            self.post_message(self.Built(self, generation, key, text))

        self.run_worker(build, thread=True, group=f"chart-{id(self)}", exit_on_error=False)

    def on_chart_view_built(self, message: "ChartView.Built") -> None:
        message.stop()
        if message.generation != self._build_generation:
            return      # an older request, overtaken
        self._plot, self._plot_key = message.text, message.key
        self._wanted = None
        self.builds += 1
        self.refresh()

    def on_resize(self) -> None:
        self.refresh()

    # -- drawing ----------------------------------------------------------------------
    def render(self) -> Text:
        chart, colors = self.chart, self.colors()
        width = self.content_size.width
        out = header_text(chart, self.now(), colors, width, self.title)
        if chart is None:
            return out
        shown, legend, rows = self._parts()
        if not shown:
            lines = _empty_lines(chart)
            if self.content_size.height <= 3:      # a collapsed chart: one line
                lines = (f"{lines[0]}: {lines[1]}",)
            for n, line in enumerate(lines):
                out.append("\n" if n or len(lines) == 1 else "\n\n")
                if len(line) > width:
                    line = line.split(" of ")[0]
                out.append(line[:width].center(max(0, width)).rstrip(),
                           style=f"italic {colors.axes}" if not n else colors.axes)
            return out
        key = self._key()
        if key is not None and key != self._plot_key:
            self._request(key, shown, rows)
        if rows:
            out.append("\n")
            if self._plot is not None:
                # The last plot built (of the previous size or data, for the moment
                # the new one takes to build).
                out.append_text(self._plot)
            else:
                out.append("\n" * (rows - 1))
        out.append("\n")
        out.append_text(legend)
        return out


def _empty_lines(chart: Chart) -> tuple[str, str]:
    """What an empty chart says instead of a flat line at zero."""
    when = RANGE_WORDS.get(chart.range, chart.range)
    what = "no sample" if chart.series else "nothing sampled"
    return (f"{what} in the {when}",
            "samples come with each stats pass of a console or the watcher")
