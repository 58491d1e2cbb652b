"""Charts on screens: the cluster's Monitoring tab (7), and the chart of the host and
VM screens, with the range keys that every chart screen shares.

Ranges: 15 min, 1 hour, 1 day, 1 week (`[` shorter, `]` longer; one choice for the
whole console, so a host opened from the Monitoring tab shows the same range). A
chart is read again only when the engine says new samples were written for it
(MetricsChanged: at 200 hosts it comes 40 times a second), at most once a second for
a host's or VM's chart and every REREAD seconds of its range for the Monitoring tab,
or at once when its range, metric or size changes; the "as of" age in its header
moves on with the screen's tick without drawing the plot again.

The Monitoring tab reads its six charts in a thread (the top VMs of a 10,000-VM
cluster take about half a second to rank); the host and VM charts, a few ms, inline.
"""
from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Static

from ..engine.errors import EngineError
from ..engine.model import KIND_METRICS, METRICS, RANGE_NAMES, Chart
from ..widgets.chart import ChartView

DEFAULT_RANGE = "1h"
RANGE_LABELS = {"15m": "15 min", "1h": "1 hour", "1d": "1 day", "1w": "1 week"}
HOST_LINES = 8          # lines on a per-host chart: the busiest by mean beyond that
TOP_VMS = 5
# Seconds at least between reads of the Monitoring tab's charts while samples arrive,
# per range (under a column of a 100-column plot: 36 s at 1 hour, 100 min at 1 week;
# never under a stats pass, 5 s): the "as of" ages in between, and a key that changes
# the range reads at once.
REREAD = {"15m": 5.0, "1h": 10.0, "1d": 60.0, "1w": 300.0}
WIDE = 110              # columns from which the Monitoring tab sets charts side by side

# The Monitoring tab's charts: (view id, title, kind, metric).
MONITORING_CHARTS = (
    ("m-hosts-cpu", "CPU per host", "hosts", "cpu_pct"),
    ("m-hosts-mem", "Memory used per host", "hosts", "mem_used_mib"),
    ("m-top-cpu", "Top VMs by CPU", "top", "cpu_pct"),
    ("m-top-mem", "Top VMs by memory", "top", "mem_used_mib"),
    ("m-top-disk", "Top VMs by disk writes", "top", "disk_wr_bps"),
    ("m-top-net", "Top VMs by network in", "top", "net_rx_bps"),
)


class MetricsUpdate(Message):
    """Posted by the app when hosts' stats passes wrote samples (MetricsChanged,
    coalesced): {(cluster, host)}."""

    def __init__(self, hosts: set[tuple[str, str]]) -> None:
        super().__init__()
        self.hosts = hosts

    @property
    def clusters(self) -> set[str]:
        return {c for c, _ in self.hosts}


def range_bindings(show: bool = True) -> list[Binding]:
    return [
        Binding("left_square_bracket", "chart_range(-1)", "Shorter range", key_display="[",
                show=show, id="monitoring.range_shorter"),
        Binding("right_square_bracket", "chart_range(1)", "Longer range", key_display="]",
                show=show, id="monitoring.range_longer"),
    ]


def metric_binding() -> Binding:
    """Shown in the range bar ("M next"), not the footer."""
    return Binding("M", "chart_metric", "Next metric", show=False, id="monitoring.metric")


def events_binding() -> Binding:
    return Binding("E", "open_events", "Events", id="monitoring.events")


def step_range(current: str, step: int) -> str:
    """The next shorter (-1) or longer (+1) range; the ends stay where they are."""
    names = RANGE_NAMES
    i = names.index(current) if current in names else names.index(DEFAULT_RANGE)
    return names[max(0, min(len(names) - 1, i + step))]


def range_text(current: str, metric: str = "", metrics: tuple[str, ...] = (),
               width: int = 200) -> Text:
    """"Range  15 min  [1 hour]  1 day  1 week   [ ] shorter/longer", the current
    range in reverse; with `metric`: "·  Metric  CPU  M next (1 of 7)". Narrower than
    that: "15m [1h] 1d 1w  [ ]  ·  CPU  M 1/7"."""
    for compact in (False, True):
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("Range " if not compact else "", style="bold")
        for name in RANGE_NAMES:
            label = f" {name if compact else RANGE_LABELS.get(name, name)} "
            text.append(label, style="bold reverse" if name == current else "dim")
            text.append(" " if not compact else "")
        text.append(" [ ] shorter/longer" if not compact else "  [ ]", style="dim")
        if metric:
            text.append("   ·   " if not compact else "  ·  ")
            text.append("Metric " if not compact else "", style="bold")
            text.append(f" {METRICS[metric][0]} ", style="bold reverse")
            if metrics:
                n = f"{metrics.index(metric) + 1} of {len(metrics)}"
                text.append(f"  M next ({n})" if not compact else
                            f" M {n.replace(' of ', '/')}", style="dim")
        if text.cell_len <= width:
            break
    return text


class RangeBar(Static):
    """The chosen range (and metric), always in view above the charts."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._state: tuple = (DEFAULT_RANGE, "", ())

    def show(self, current: str, metric: str = "", metrics: tuple[str, ...] = ()) -> None:
        if (current, metric, metrics) != self._state:
            self._state = (current, metric, metrics)
            self.refresh()

    @property
    def current(self) -> str:
        return self._state[0]

    def render(self) -> Text:
        return range_text(*self._state, width=self.content_size.width or 200)


def chart_range(app) -> str:
    return getattr(app, "chart_range", DEFAULT_RANGE)


def set_chart_range(app, name: str) -> None:
    app.chart_range = name


# ---- the Monitoring tab ----------------------------------------------------------------
class MonitoringPanel(Vertical):
    """CPU and memory per host, the top VMs by CPU, memory, disk and network: read in
    a thread, one read at a time; asked again meanwhile, once more after it."""

    class Fetched(Message):
        def __init__(self, generation: int, charts: dict[str, Chart], error: str,
                     took: float, range_name: str) -> None:
            super().__init__()
            self.generation, self.charts, self.error, self.took = (generation, charts,
                                                                   error, took)
            self.range_name = range_name

    def __init__(self, cluster: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.cluster = cluster
        self.fetches = 0            # reads of the charts done (tests count them)
        self._fetch_generation = 0
        self._fetching = False
        self._fetch_again = False
        self._last_took = 0.0

    def compose(self) -> ComposeResult:
        yield RangeBar(id="monitoring-range", classes="range-bar")
        yield Static(id="monitoring-note", classes="chart-note")
        with VerticalScroll(id="monitoring-scroll"):
            with Grid(id="monitoring-grid"):
                for view_id, title, kind, _ in MONITORING_CHARTS:
                    yield ChartView(title=title, noun="host" if kind == "hosts" else "VM",
                                    max_lines=HOST_LINES if kind == "hosts" else TOP_VMS,
                                    id=view_id)

    def on_mount(self) -> None:
        self.query_one("#monitoring-note", Static).display = False
        self.query_one(RangeBar).show(chart_range(self.app))

    def on_resize(self) -> None:
        self.query_one("#monitoring-grid").set_class(self.size.width >= WIDE, "-wide")

    @property
    def views(self) -> list[ChartView]:
        return list(self.query(ChartView))

    def load(self) -> None:
        """Read the charts again (in a thread): new samples, or another range."""
        if self._fetching:
            self._fetch_again = True
            return
        self._fetching = True
        self._fetch_generation += 1
        generation, cluster = self._fetch_generation, self.cluster
        range_name = chart_range(self.app)
        self.query_one(RangeBar).show(range_name)
        engine = self.app.engine

        def work() -> None:
            start = time.perf_counter()
            charts: dict[str, Chart] = {}
            error = ""
            try:
                top = engine.top_vms_charts(
                    cluster, tuple(m for _, _, kind, m in MONITORING_CHARTS if kind == "top"),
                    range_name, n=TOP_VMS)          # ranked by all four in one pass
                for view_id, _, kind, metric in MONITORING_CHARTS:
                    charts[view_id] = top[metric] if kind == "top" else \
                        engine.hosts_chart(cluster, metric, range_name, n=HOST_LINES)
            except EngineError as exc:
                error = str(exc)
            except Exception as exc:  # never a traceback on screen
                from ..app import unexpected
                error = unexpected(exc)
            self.post_message(self.Fetched(generation, charts, error,
                                           time.perf_counter() - start, range_name))

        self.run_worker(work, thread=True, group="monitoring-fetch", exit_on_error=False)

    def on_monitoring_panel_fetched(self, message: "MonitoringPanel.Fetched") -> None:
        message.stop()
        self._fetching = False
        if message.generation != self._fetch_generation or not self.is_attached:
            return
        self.fetches += 1
        self._last_took = message.took
        note = self.query_one("#monitoring-note", Static)
        note.display = bool(message.error)
        if message.error:
            note.update(Text(f"Charts not read: {message.error}", style="bold"))
        for view_id, chart in message.charts.items():
            self.query_one(f"#{view_id}", ChartView).show(chart)
        if self._fetch_again:
            # Asked again while reading: at once if the range changed meanwhile (a
            # key), else once more after the range's pause (new samples).
            self._fetch_again = False
            if message.range_name != chart_range(self.app):
                self.load()
            else:
                self.set_timer(self.reread_after(), self.load)

    def reread_after(self) -> float:
        """Seconds between reads as new samples arrive: the range's REREAD (a column
        of a 1-week chart is hours wide; a 5 s sample moves nothing there), and at
        least three times the last read, so reading never takes over a quarter of
        the time (bench/bench_monitoring_terminal.py: at 10,000 VMs the six charts
        took ~0.8 s to read)."""
        return max(REREAD.get(chart_range(self.app), 10.0), 3 * self._last_took)

    def tick(self) -> None:
        """The "as of" ages move on; nothing is read or plotted again."""
        for view in self.views:
            view.refresh()


# ---- a host's or a VM's chart (their screens) ----------------------------------------
class DetailChart(Vertical):
    """The range bar and one chart of a host ("host", its name), a VM ("vm", its
    uuid) or a cluster's Ceph ("ceph"); M steps through its metrics. Read inline: one
    series, a few ms."""

    def __init__(self, kind: str, cluster: str, key: str, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="detail-chart")
        self.kind, self.cluster, self.key = kind, cluster, key
        self.metric = KIND_METRICS[kind][0]
        self.fetches = 0

    def compose(self) -> ComposeResult:
        yield RangeBar(classes="range-bar")
        yield ChartView(max_lines=1, id=f"{self.kind}-chart")

    @property
    def view(self) -> ChartView:
        return self.query_one(ChartView)

    def metrics(self) -> tuple[str, ...]:
        return self.app.engine.metric_names(self.kind)

    def next_metric(self) -> None:
        names = self.metrics()
        self.metric = names[(names.index(self.metric) + 1) % len(names)] \
            if self.metric in names else names[0]
        self.load()

    def load(self) -> None:
        range_name = chart_range(self.app)
        self.query_one(RangeBar).show(range_name, self.metric, self.metrics())
        engine = self.app.engine
        try:
            if self.kind == "host":
                chart = engine.host_chart(self.cluster, self.key, self.metric, range_name)
            elif self.kind == "ceph":
                chart = engine.ceph_chart(self.cluster, self.metric, range_name)
            else:
                chart = engine.vm_chart(self.key, self.metric, range_name)
        except EngineError as exc:
            self.view.title = str(exc)
            self.view.show(None)
            self.add_class("-empty")
            return
        self.fetches += 1
        self.view.show(chart)
        # Nothing sampled (a VM shut off, a host never reached): two lines, not a frame.
        self.set_class(self.view.empty, "-empty")

    def tick(self) -> None:
        self.view.refresh()


class ChartScreen:
    """What the host and VM screens share for their DetailChart: read it on mount,
    move its age on each tick, read it again when its host's stats pass wrote samples
    (at most once a second; once on return if another screen covered this one), and
    the range and metric keys. A screen says which host its chart follows
    (`chart_host`)."""

    _metrics_behind = False        # new samples while another screen covered this

    def chart_host(self) -> tuple[str, str] | None:
        """The host whose samples move this chart; None: none does (Ceph's)."""
        raise NotImplementedError

    def on_mount(self) -> None:
        # (ConsoleScreen's on_mount runs after this one: reload, focus.)
        self.query_one(DetailChart).load()

    def tick(self) -> None:
        super().tick()
        self.query_one(DetailChart).tick()      # "as of" moves on; nothing is read again

    def on_metrics_update(self, message: MetricsUpdate) -> None:
        if self.chart_host() not in message.hosts or not self.is_attached:
            return
        if self.mvm.top_console_screen() is not self:
            self._metrics_behind = True
            return
        self.throttle("chart", self.query_one(DetailChart).load)

    def on_screen_resume(self) -> None:
        # (ConsoleScreen's runs too.)
        if self._metrics_behind and self.is_attached:
            self._metrics_behind = False
            self.query_one(DetailChart).load()

    def action_chart_range(self, step: int) -> None:
        set_chart_range(self.app, step_range(chart_range(self.app), step))
        self.query_one(DetailChart).load()

    def action_chart_metric(self) -> None:
        self.query_one(DetailChart).next_metric()
