"""Monitoring in the console, driven by keys (pilot): the range keys switch every
chart's range; a chart is read again on MetricsChanged for its cluster or host, and
not without it (nor for another cluster's), coalesced; the Events view filters,
follows changes and opens what an event is about; at 80×24 nothing is cut off; and
the pieces (sparklines, axes, downsampling, the cap on lines) on their own.

tests/monitoring_world.py gives the engine: a week of history, fixed events."""
from __future__ import annotations

import math
import time

import pytest

from conftest import FIXED, make_app, run_app, uuid_of
from monitoring_world import CLUSTER, drawn, host_figures, monitoring_engine, until
from mvmtui.engine.model import Chart, MetricSeries, MetricsChanged, VmChanged
from mvmtui.screens.events import EventsScreen
from mvmtui.screens.host import HostScreen
from mvmtui.screens.monitoring import (DetailChart, MonitoringPanel, RangeBar, range_text,
                                       step_range)
from mvmtui.screens.vm import VmScreen
from mvmtui.widgets.chart import (ChartColors, ChartView, downsample, legend_text, nice_top,
                                  plot_text, shown_series, x_axis)
from mvmtui.widgets.listing import Listing
from mvmtui.widgets.spark import spark, spark_cell

SIZE, SMALL = (120, 40), (80, 24)


@pytest.fixture(autouse=True)
def quick_reread(monkeypatch):
    """The Monitoring tab reads again at most once a second here (10 s at 1 hour in
    the console); the cadence test sets its own."""
    import mvmtui.screens.monitoring as monitoring
    monkeypatch.setattr(monitoring, "REREAD", {name: 1.0 for name in monitoring.REREAD})
    return monitoring


@pytest.fixture
def eng(tmp_path):
    engine = monitoring_engine(tmp_path / "inv.db")
    yield engine
    engine.stop()


def panel(app) -> MonitoringPanel:
    return app.screen.query_one(MonitoringPanel)


def views(app) -> list[ChartView]:
    return list(app.screen.query(ChartView))


def screen_text(app) -> list[str]:
    from conftest import svg_text
    return svg_text(app.export_screenshot())


# ---- ranges ----------------------------------------------------------------------------
def test_range_keys_switch_every_chart_and_the_choice_follows_to_the_host(eng):
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        await pilot.press("7")
        await drawn(pilot)
        assert app.chart_range == "1h"
        assert {v.chart.range for v in views(app)} == {"1h"}
        assert app.screen.query_one(RangeBar).current == "1h"
        await pilot.press("right_square_bracket")
        await drawn(pilot)
        assert app.chart_range == "1d"
        assert {v.chart.range for v in views(app)} == {"1d"}
        assert {v.chart.tier for v in views(app)} == {"1-minute averages"}
        await pilot.press("right_square_bracket", "right_square_bracket")   # stays at 1w
        await drawn(pilot)
        assert app.chart_range == "1w"
        assert {v.chart.tier for v in views(app)} == {"15-minute averages"}
        await pilot.press(*["left_square_bracket"] * 4)                     # down to 15m
        await drawn(pilot)
        assert app.chart_range == "15m"
        assert {v.chart.range for v in views(app)} == {"15m"}
        # The host screen opens at the range chosen; M steps through its metrics.
        await pilot.press("2")
        app.screen.query_one("#hosts", Listing).table.move_cursor_to_key("kvm-01")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, HostScreen))
        await drawn(pilot)
        chart = app.screen.query_one(DetailChart)
        assert chart.view.chart.range == "15m" and chart.view.chart.metric == "cpu_pct"
        await pilot.press("M", "right_square_bracket")
        await drawn(pilot)
        assert chart.view.chart.metric == "mem_used_mib" and chart.view.chart.range == "1h"
        assert chart.view.chart.series[0].points

    run_app(app, check, size=SIZE)


def test_range_keys_are_only_offered_where_there_is_a_chart(eng):
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        await pilot.press("2", "right_square_bracket")
        assert app.chart_range == "1h"          # the Hosts tab has no chart
        keys = {b.binding.id for b in app.screen.active_bindings.values() if b.enabled}
        assert "monitoring.range_longer" not in keys
        await pilot.press("7")
        keys = {b.binding.id for b in app.screen.active_bindings.values() if b.enabled}
        assert {"monitoring.range_longer", "monitoring.range_shorter"} <= keys

    run_app(app, check, size=SIZE)


def test_step_range_stays_at_the_ends():
    assert step_range("1h", 1) == "1d" and step_range("1w", 1) == "1w"
    assert step_range("15m", -1) == "15m" and step_range("nonsense", 1) == "1d"


# ---- redrawn on new samples only ----------------------------------------------------------
def write_sample(eng, host: str, cpu: float) -> None:
    """The host's sample at the engine's (fixed) time written again, its CPU changed,
    as a stats pass writes it (the other figures as they were)."""
    figures = {**host_figures(host, FIXED), "cpu_pct": cpu}
    eng.history.write([(CLUSTER, "host", host, host, FIXED, figures)], now=FIXED)


def test_the_monitoring_tab_reads_again_on_metrics_changed_and_not_without(eng):
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        await pilot.press("7")
        await drawn(pilot)
        p = panel(app)
        fetches, builds = p.fetches, [v.builds for v in views(app)]
        assert fetches == 1 and all(builds)
        # Ticks (the ages move on) and another cluster's samples: nothing read or drawn.
        app._tick()
        app._on_engine_event(MetricsChanged("lab", "lab-01"))
        await pilot.pause(1.3)
        assert p.fetches == fetches and [v.builds for v in views(app)] == builds
        # New samples for prod: read again; only the charts whose data changed draw.
        write_sample(eng, "kvm-01", 99.0)
        app._on_engine_event(MetricsChanged(CLUSTER, "kvm-01"))
        await until(pilot, lambda: p.fetches == fetches + 1)
        await drawn(pilot)
        after = [v.builds for v in views(app)]
        cpu = app.screen.query_one("#m-hosts-cpu", ChartView)
        assert cpu.builds == builds[0] + 1
        assert after[1:] == builds[1:]          # memory, top VMs: same data, no redraw
        # The same samples announced again: read, but the same chart draws nothing.
        app._on_engine_event(MetricsChanged(CLUSTER, "kvm-02"))
        await until(pilot, lambda: p.fetches == fetches + 2)
        await drawn(pilot)
        assert [v.builds for v in views(app)] == after

    run_app(app, check, size=SIZE)


async def burst(app, pilot, seconds: float) -> None:
    """New samples announced every 50 ms for `seconds` (at 200 hosts: 40 stats passes
    a second)."""
    end, i = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        app._on_engine_event(MetricsChanged(CLUSTER, f"kvm-0{i % 3 + 1}"))
        i += 1
        await pilot.pause(0.05)


def test_a_burst_of_metrics_changed_is_read_about_once_a_second(eng):
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        await pilot.press("7")
        await drawn(pilot)
        p = panel(app)
        start, began = p.fetches, time.monotonic()
        await burst(app, pilot, 2.0)
        await pilot.pause(1.2)
        # Bounded by the burst's real length: a loaded machine stretches the pauses.
        seconds = time.monotonic() - began
        assert 1 <= p.fetches - start <= math.ceil(seconds) + 1, (p.fetches - start, seconds)
        assert p.fetches - start < 20           # far fewer reads than announcements

    run_app(app, check, size=SIZE)


def test_the_monitoring_tab_reads_again_at_its_ranges_pace(eng, quick_reread):
    quick_reread.REREAD.update({"1h": 2.0, "1d": 30.0})
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        await pilot.press("7")
        await drawn(pilot)
        p = panel(app)
        await pilot.pause(2.1)          # the read on opening the tab is a read too
        start = p.fetches
        began = time.monotonic()
        await burst(app, pilot, 1.0)         # 1 hour: one read now, the next 2 s later
        assert p.fetches - start <= 1
        await until(pilot, lambda: p.fetches - start == 1)
        await burst(app, pilot, 1.5)
        seconds = time.monotonic() - began
        assert 2 <= p.fetches - start <= math.floor(seconds / 2.0) + 1, (p.fetches, seconds)
        # A key that changes the range reads at once; at 1 day, samples wait 30 s.
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: p.fetches - start >= 3
                    and all(v.chart and v.chart.range == "1d" for v in views(app)))
        after = p.fetches
        await pilot.pause(2.1)
        await burst(app, pilot, 2.0)
        assert p.fetches - after <= 1, p.fetches - after

    run_app(app, check, size=SIZE)


def test_a_range_key_during_a_read_is_read_right_after_it(eng, quick_reread, monkeypatch):
    quick_reread.REREAD.update({"1h": 30.0, "1d": 30.0})
    slow = eng.top_vms_charts

    def top_vms_charts(*args, **kw):        # a 10,000-VM ranking takes a while
        time.sleep(0.6)
        return slow(*args, **kw)
    monkeypatch.setattr(eng, "top_vms_charts", top_vms_charts)
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        await pilot.press("7")
        await until(pilot, lambda: all(v.chart for v in views(app)))
        p = panel(app)
        app._on_engine_event(MetricsChanged(CLUSTER, "kvm-01"))   # a read starts
        await until(pilot, lambda: p._fetching)
        await pilot.press("right_square_bracket")                  # 1 day, meanwhile
        began = time.monotonic()
        await until(pilot, lambda: all(v.chart and v.chart.range == "1d"
                                       for v in views(app)))
        assert time.monotonic() - began < 10, "waited for the samples' pause"

    run_app(app, check, size=SIZE)


def test_the_host_chart_follows_its_own_host_only(eng):
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        await pilot.press("2")
        app.screen.query_one("#hosts", Listing).table.move_cursor_to_key("kvm-01")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, HostScreen))
        await drawn(pilot)
        chart = app.screen.query_one(DetailChart)
        fetches, builds = chart.fetches, chart.view.builds
        app._on_engine_event(MetricsChanged(CLUSTER, "kvm-02"))
        app._tick()
        await pilot.pause(1.2)
        assert (chart.fetches, chart.view.builds) == (fetches, builds)
        write_sample(eng, "kvm-01", 97.0)
        app._on_engine_event(MetricsChanged(CLUSTER, "kvm-01"))
        await until(pilot, lambda: chart.fetches == fetches + 1)
        await drawn(pilot)
        assert chart.view.builds == builds + 1
        assert chart.view.chart.series[0].points[-1] == (FIXED, 97.0)

    run_app(app, check, size=SIZE)


def test_samples_written_while_covered_are_read_on_return(eng):
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        await pilot.press("7")
        await drawn(pilot)
        p = panel(app)
        fetches = p.fetches
        app.open_host(CLUSTER, "kvm-01")                # covers the cluster screen
        await until(pilot, lambda: isinstance(app.screen, HostScreen))
        app._on_engine_event(MetricsChanged(CLUSTER, "kvm-02"))
        await pilot.pause(1.2)
        assert p.fetches == fetches
        await pilot.press("escape")
        await until(pilot, lambda: p.fetches == fetches + 1)

    run_app(app, check, size=SIZE)


def test_the_vm_chart_follows_its_host(eng):
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        await pilot.press("3")
        app.screen.query_one("#vms", Listing).table.move_cursor_to_key(uuid_of(3))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, VmScreen))
        await drawn(pilot)
        chart = app.screen.query_one(DetailChart)
        assert chart.view.chart.series[0].label == "db-01"
        fetches = chart.fetches
        app._on_engine_event(MetricsChanged(CLUSTER, "kvm-02"))
        await pilot.pause(1.2)
        assert chart.fetches == fetches
        app._on_engine_event(MetricsChanged(CLUSTER, "kvm-01"))     # db-01's host
        await until(pilot, lambda: chart.fetches == fetches + 1)
        await pilot.press("M")
        await drawn(pilot)
        assert chart.view.chart.metric == "mem_used_mib"

    run_app(app, check, size=SIZE)


# ---- events -------------------------------------------------------------------------------
def test_events_filter_follows_changes_and_opens_the_vm(eng):
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        await pilot.press("8")
        listing = app.screen.query_one("#events", Listing)
        assert listing.table.total_count == 6
        await pilot.press("slash", *"outside")
        assert listing.table.row_count == 2
        await pilot.press("enter")                      # keep the filter, back to the table
        # A change behind the console's back: recorded, then shown (once a second).
        vm = eng.vm(uuid_of(1))
        eng.inv.add_event(FIXED, CLUSTER, "kvm-01", vm.uuid, "vm.state",
                          "web-01: running → paused", source=
                          "outside the console (virsh, the guest, another tool)")
        reads = app.screen.event_reads
        app._on_engine_event(VmChanged(vm))
        await until(pilot, lambda: app.screen.event_reads > reads)
        assert listing.table.row_count == 3 and listing.table.total_count == 7
        assert app.screen._events[listing.table.cursor_key].target == vm.uuid  # newest first
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, VmScreen))
        assert app.screen.uuid == vm.uuid

    run_app(app, check, size=SIZE)


def test_r_reads_the_events_again_and_e_opens_a_hosts_events(eng):
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        await pilot.press("8")
        listing = app.screen.query_one("#events", Listing)
        eng.inv.add_event(FIXED, CLUSTER, "kvm-02", "kvm-02", "host.status", "up → stale",
                          source="seen by console · root@admin-1")
        assert listing.table.total_count == 6
        await pilot.press("r")
        assert listing.table.total_count == 7
        await pilot.press("2")
        app.screen.query_one("#hosts", Listing).table.move_cursor_to_key("kvm-02")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, HostScreen))
        await pilot.press("E")
        await until(pilot, lambda: isinstance(app.screen, EventsScreen))
        rows = app.screen.query_one("#events", Listing).table
        # kvm-02's own: the state change just recorded, its two from two days ago, and
        # db-02 (on kvm-02) paused outside the console.
        assert rows.total_count == 4
        await pilot.press("slash", *"paused", "enter")
        assert rows.row_count == 1

    run_app(app, check, size=SIZE)


# ---- 80×24 ---------------------------------------------------------------------------------
def test_at_80x24_the_tabs_range_bar_charts_and_footer_fit(eng):
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        await pilot.press("7")
        await drawn(pilot)
        text = screen_text(app)
        assert "8 Events" in text[2]                          # the whole tab line
        assert "[ ] shorter/longer" in text[4]                # the range bar, whole
        assert "? Help" in text[-1]
        for view in views(app):
            header = view.render().plain.split("\n")[0]
            assert len(header) <= view.content_size.width
            assert "as of" in header or "no data yet" in header   # freshness kept
        # Scrolled to the end, the last chart's axis and legend are whole.
        scroll = app.screen.query_one("#monitoring-scroll")
        scroll.scroll_end(animate=False)
        await drawn(pilot)
        last = app.screen.query_one("#m-top-net", ChartView)
        plain = last.render().plain
        assert "now" in plain and "means over the range" in plain
        assert all(len(line) <= last.content_size.width for line in plain.split("\n"))
        # The host screen: the range bar in its short form, with the metric.
        await pilot.press("2", "enter")
        await until(pilot, lambda: isinstance(app.screen, HostScreen))
        await drawn(pilot)
        bar = app.screen.query_one(RangeBar).render().plain
        assert len(bar) <= 78 and "1h" in bar and "CPU" in bar and "1/7" in bar, bar
        assert "? Help" in screen_text(app)[-1]

    run_app(app, check, size=SMALL)


# ---- the pieces -------------------------------------------------------------------------------
def test_sparklines():
    assert spark([]) == ""
    assert spark([0, 50, 100, None, 120, -5], width=6) == "▁▅█ █▁"
    assert spark([20.0] * 30, width=12) == "▂" * 12               # the newest 12
    assert spark([99.0], width=4) == "   █"                        # right-aligned
    cell = spark_cell([20.0, None, 40.0], width=3)
    assert str(cell) == "▂ ▄" and float(cell) == 30.0             # sorts by its mean
    assert spark_cell([]) == ""


def test_range_bar_shortens_rather_than_cut():
    wide = range_text("1d", "cpu_pct", ("cpu_pct", "mem_used_mib"))
    assert "1 day" in wide.plain and "M next (1 of 2)" in wide.plain
    narrow = range_text("1d", "cpu_pct", ("cpu_pct", "mem_used_mib"), width=50)
    assert narrow.cell_len <= 50 and "1d" in narrow.plain and "M 1/2" in narrow.plain


def series(label: str, level: float, n: int = 720, step: float = 5.0,
           end: float = FIXED) -> MetricSeries:
    pts = tuple((end - (n - 1 - i) * step, level + 5 * math.sin(i / 30)) for i in range(n))
    return MetricSeries(label, "cpu_pct", pts, sum(v for _, v in pts) / n)


def chart_of(*lines: MetricSeries, range_name: str = "1h", span: float = 3600) -> Chart:
    return Chart("Hosts · CPU", "cpu_pct", "%", range_name, FIXED - span, FIXED,
                 "raw samples", lines, FIXED)


def test_two_hundred_hosts_draw_the_eight_busiest_and_say_so():
    chart = chart_of(*(series(f"hv-{i:03d}", i / 2) for i in range(200)))
    shown = shown_series(chart, 8)
    assert [s.label for s in shown] == [f"hv-{i:03d}" for i in range(192, 200)]
    legend = legend_text(chart, shown, ChartColors(), 100, "host").plain
    assert "8 of 200 hosts, busiest by mean" in legend
    text = plot_text(chart, 100, 10, ChartColors(), shown)
    assert len(text.plain.split("\n")) == 10
    assert all(len(line) <= 100 for line in text.plain.split("\n"))


def test_axes_and_downsampling():
    assert x_axis(3600, 70) == ([-3600.0, -3000.0, -2400.0, -1800.0, -1200.0, -600.0, 0.0],
                                ["-1h", "-50m", "-40m", "-30m", "-20m", "-10m", "now"])
    assert x_axis(7 * 86400, 40)[1] == ["-6d", "-4d", "-2d", "now"]
    assert nice_top(99.1) == 100 and nice_top(101) == 120 and nice_top(0) == 1
    # 720 raw points into 60 columns; a two-hour hole breaks the line in two.
    pts = [(FIXED - 3600 + 5 * i, 10.0) for i in range(720)]
    runs = downsample(pts, FIXED - 3600, FIXED, 60)
    assert len(runs) == 1 and len(runs[0]) == 60
    week = [(FIXED - 7 * 86400 + 900 * i, 1.0) for i in range(672)
            if not 300 <= i < 340]                      # ten hours without a point
    assert len(downsample(week, FIXED - 7 * 86400, FIXED, 100, 900)) == 2
