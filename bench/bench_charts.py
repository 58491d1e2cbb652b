"""Render time of the console's charts: a host chart with a week of data, and the
cluster's Monitoring tab with 200 hosts.

An offline engine over an inventory of 200 hosts and 500 VMs; its history is written
through engine.history as the stats passes would (every host and VM every 10 s for
the last hour; one host every 5 minutes for a week, rolled up as it goes). Measured:
the engine's reads (the charts' data), plotext's plot of each (widgets/chart.py:
averaged to a point per column, at most 8 lines), and in the console (headless,
120×40) the time from a key to every chart on screen drawn: the Monitoring tab (7),
its redraw on new samples (MetricsChanged), and the host screen at 1 week.

    .venv/bin/python bench/bench_charts.py
"""
from __future__ import annotations

import asyncio
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mvmtui.app import MvmApp  # noqa: E402
from mvmtui.engine import Engine, Inventory  # noqa: E402
from mvmtui.engine.model import Cluster, Host, HostStatus, MetricsChanged, Vm, VmState  # noqa: E402
from mvmtui.screens.monitoring import MonitoringPanel  # noqa: E402
from mvmtui.widgets.chart import ChartColors, ChartView, plot_text, shown_series, tier_step  # noqa: E402

N_HOSTS, N_VMS = 200, 500
NOW = 1_750_000_000.0
WEEK = 7 * 86400


def build(path: Path) -> None:
    inv = Inventory(path)
    inv.save_cluster(Cluster(name="big"))
    for h in range(N_HOSTS):
        inv.save_host(Host(cluster="big", name=f"hv-{h:03d}", address=f"10.1.{h // 250}.{h % 250}",
                           status=HostStatus.UP, cpus=64, memory_mib=512 * 1024, seen_at=NOW))
    inv.save_vms(Vm(cluster="big", host=f"hv-{i % N_HOSTS:03d}", uuid=f"uuid-{i:05d}",
                    name=f"vm-{i:05d}", state=VmState.RUNNING, vcpus=2, memory_mib=4096,
                    seen_at=NOW) for i in range(N_VMS))
    inv.close()


def fill(eng: Engine) -> float:
    start = time.perf_counter()
    # One host, a week at 5-minute samples (hourly batches: every window rolls up).
    batch = []
    t = NOW - WEEK
    while t < NOW - 3600:
        batch.append(("big", "host", "hv-000", "hv-000", t,
                      {"cpu_pct": 40 + 30 * math.sin(t / 20000), "mem_used_mib": 300000.0}))
        t += 300
        if len(batch) == 12:
            eng.history.write(batch, now=t)
            batch = []
    # Every host and VM, the last hour at 10 s (a batch a minute).
    t = NOW - 3600
    while t <= NOW:
        for h in range(N_HOSTS):
            batch.append(("big", "host", f"hv-{h:03d}", f"hv-{h:03d}", t,
                          {"cpu_pct": 20 + h / 4 + 10 * math.sin(t / 600 + h),
                           "mem_used_mib": 200000.0 + 500 * h}))
        for i in range(N_VMS):
            batch.append(("big", "vm", f"uuid-{i:05d}", f"vm-{i:05d}", t,
                          {"cpu_pct": (i % 97) * 1.0, "mem_used_mib": 1000.0 + i,
                           "disk_wr_bps": 1e5 * (i % 13), "net_rx_bps": 1e4 * (i % 17)}))
        t += 10
        if len(batch) >= 6 * (N_HOSTS + N_VMS):
            eng.history.write(batch, now=t)
            batch = []
    eng.history.write(batch, now=NOW)
    return time.perf_counter() - start


def timed(fn, n: int = 5) -> tuple[float, object]:
    """Median seconds of n calls, and the last result."""
    times, out = [], None
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def console(eng: Engine) -> dict:
    app = MvmApp(eng, start_cluster="big")
    app.animation_level = "none"
    out = {}
    async with app.run_test(size=(120, 40)) as pilot:
        async def drawn() -> float:
            start = time.perf_counter()
            while True:
                await pilot.pause(0.005)
                screen = app.screen
                visible = screen._compositor.visible_widgets
                panels = list(screen.query(MonitoringPanel))
                busy = any(p.fetches == 0 or p._fetching for p in panels if p in visible)
                if not busy and all(v.up_to_date for v in screen.query(ChartView)
                                    if v in visible):
                    return time.perf_counter() - start

        await pilot.pause()
        t = time.perf_counter()
        await pilot.press("7")
        await drawn()
        out["tab"] = time.perf_counter() - t
        panel = app.screen.query_one(MonitoringPanel)
        out["tab_read"] = panel._last_took
        # New samples for every host: read and drawn again (the data changed: one more
        # sample at NOW for each host).
        eng.history.write([("big", "host", f"hv-{h:03d}", f"hv-{h:03d}", NOW,
                            {"cpu_pct": 90.0, "mem_used_mib": 250000.0})
                           for h in range(N_HOSTS)], now=NOW)
        t = time.perf_counter()
        app._on_engine_event(MetricsChanged("big", "hv-001"))
        fetches = panel.fetches
        while panel.fetches == fetches:
            await pilot.pause(0.005)
        await drawn()
        out["redraw"] = time.perf_counter() - t
        # The host with a week of data, at 1 week.
        app.chart_range = "1w"
        t = time.perf_counter()
        app.open_host("big", "hv-000")
        await drawn()
        out["host_week"] = time.perf_counter() - t
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inventory.db"
        build(path)
        eng = Engine(path, offline=True, clock=lambda: NOW)
        eng.start()
        try:
            took = fill(eng)
            sizes = eng.history.size()
            colors = ChartColors()
            read_week, week = timed(lambda: eng.host_chart("big", "hv-000", "cpu_pct", "1w"))
            plot_week, _ = timed(lambda: plot_text(week, 116, 7, colors, list(week.series),
                                                   tier_step(week)))
            read_cpu, cpu = timed(lambda: eng.hosts_chart("big", "cpu_pct", "1h"), 3)
            read_mem, _ = timed(lambda: eng.hosts_chart("big", "mem_used_mib", "1h"), 3)
            read_top, _ = timed(lambda: eng.top_vms_chart("big", "cpu_pct", "1h", n=5), 3)
            shown = shown_series(cpu, 8)
            plot_cpu, _ = timed(lambda: plot_text(cpu, 57, 9, colors, shown))
            plot_all, _ = timed(lambda: plot_text(cpu, 116, 9, colors, list(cpu.series)), 1)
            ui = asyncio.run(console(eng))
        finally:
            eng.stop()
    print(f"bench_charts · {platform.node()} · {os.cpu_count()} CPUs · python "
          f"{platform.python_version()}")
    print(f"history written: {N_HOSTS} hosts + {N_VMS} VMs, last hour at 10 s, one host a "
          f"week at 5 min: {took:.1f} s; points per tier {sizes}")
    print(f"host chart, 1 week ({len(week.series[0].points)} 15-minute points): "
          f"read {ms(read_week)}, plot at 118x9 {ms(plot_week)}")
    print(f"Monitoring tab data, 1 hour, {N_HOSTS} hosts ({len(cpu.series[0].points)} raw points "
          f"each): CPU per host {ms(read_cpu)}, memory per host {ms(read_mem)}, "
          f"top 5 of {N_VMS} VMs by CPU {ms(read_top)}")
    print(f"plot of CPU per host, the 8 busiest of {N_HOSTS} at 57x11: {ms(plot_cpu)}; "
          f"all {N_HOSTS} lines at 118x11 (not done by the console): {ms(plot_all)}")
    print(f"console 120x40: key 7 to the Monitoring tab drawn {ms(ui['tab'])} (its six "
          f"charts read in {ms(ui['tab_read'])}, in a thread); new samples "
          f"(MetricsChanged) to redrawn {ms(ui['redraw'])}; host screen at 1 week, open to "
          f"drawn {ms(ui['host_week'])}")


if __name__ == "__main__":
    main()
