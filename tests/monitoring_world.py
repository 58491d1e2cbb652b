"""A cluster with a week of metric history, recorded events and this session's
sparklines, for the Monitoring console tests and snapshots.

The real engine over the scripted prod hosts (conftest.scripted_world: kvm-01 and
kvm-02 up, kvm-03 unreachable since 125 s before FIXED), every clock at FIXED, no
stats pass of its own (the history is written here, through engine.history, as the
stats passes would: raw samples every 10 s for the last hour, every minute for the
last day, every 5 minutes before; each batch rolled up as it is written). Who the
engine's own events are put down to is fixed too ("seen by console · root@admin-1").
"""
from __future__ import annotations

import math
import time
from pathlib import Path

from conftest import FIXED, build_inventory, scripted_world, until, uuid_of
from mvmtui.engine import Engine

CLUSTER = "prod"
DAY, HOUR = 86400.0, 3600.0
WEEK = 7 * DAY
KVM03_LOST = FIXED - 125        # kvm-03 stopped answering (conftest: seen 125 s ago)
KVM02_DOWN = (FIXED - 2 * DAY - 9 * HOUR, FIXED - 2 * DAY - HOUR)   # a gap in its week
# VMs with samples: (number, host); mon-01 ran on kvm-03 until it was lost.
SAMPLED_VMS = ((1, "kvm-01"), (2, "kvm-02"), (3, "kvm-01"), (7, "kvm-03"))


def host_figures(name: str, t: float) -> dict[str, float]:
    day = math.sin(2 * math.pi * (t % DAY) / DAY)
    hour = math.sin(2 * math.pi * (t % HOUR) / HOUR)
    k = {"kvm-01": 0, "kvm-02": 1, "kvm-03": 2}[name]
    return {"cpu_pct": 20 + 15 * k + 12 * day + 4 * hour,
            "mem_used_mib": (60 + 40 * k) * 1024 + 8192 * day,
            "load1": 2 + 3 * k + 1.5 * day,
            "net_rx_bps": (20 + 10 * k + 8 * day) * 2 ** 20,
            "net_tx_bps": (5 + 4 * k + 3 * hour) * 2 ** 20,
            "disk_rd_bps": (8 + 2 * k + 4 * day) * 2 ** 20,
            "disk_wr_bps": (12 + 3 * k + 6 * hour) * 2 ** 20}


def vm_figures(n: int, t: float) -> dict[str, float]:
    day = math.sin(2 * math.pi * (t % DAY) / DAY + n)
    cpu = 5 + 6 * n + 4 * day
    if n == 3 and t > FIXED - 600:      # db-01: a burst in the last ten minutes
        cpu = 55 + 30 * (t - (FIXED - 600)) / 600
    return {"cpu_pct": cpu, "mem_used_mib": 800 * n + 200 * day,
            "disk_rd_bps": (1 + n) * 2 ** 19, "disk_wr_bps": (2 + n + day) * 2 ** 20,
            "net_rx_bps": (3 * n + day + 1) * 2 ** 18, "net_tx_bps": n * 2 ** 17}


def sample_times(week: bool = True):
    """Raw sample times, oldest first: every 5 min, then every minute for the last
    day, every 10 s for the last hour."""
    t = FIXED - (WEEK if week else HOUR)
    while t <= FIXED:
        yield t
        t += 300 if t < FIXED - DAY else 60 if t < FIXED - HOUR else 10


def fill_history(eng: Engine, week: bool = True) -> None:
    batch: list = []
    last_flush = None
    for t in sample_times(week):
        for name in ("kvm-01", "kvm-02", "kvm-03"):
            if name == "kvm-03" and t > KVM03_LOST:
                continue
            if name == "kvm-02" and KVM02_DOWN[0] <= t < KVM02_DOWN[1]:
                continue
            batch.append((CLUSTER, "host", name, name, t, host_figures(name, t)))
        for n, host in SAMPLED_VMS:
            if host == "kvm-03" and t > KVM03_LOST:
                continue
            vm = eng.vm(uuid_of(n))
            batch.append((CLUSTER, "vm", vm.uuid, vm.name, t, vm_figures(n, t)))
        # A batch an hour (the windows of the hour roll up as the next is written),
        # one every minute for the last hour.
        if last_flush is None or t - last_flush >= (HOUR if t < FIXED - HOUR else 60):
            eng.history.write(batch, now=t)
            batch, last_flush = [], t
    eng.history.write(batch, now=FIXED)


def remember_sparklines(eng: Engine) -> None:
    """This session's last 24 CPU figures (the stats passes' ring): a gap in kvm-02's."""
    for i in range(24):
        t = FIXED - (23 - i) * 5
        wave = 18 * math.sin(i / 2.5)
        for name in ("kvm-01", "kvm-02"):
            cpu = None if name == "kvm-02" and i in (17, 18) else \
                max(0.0, host_figures(name, t)["cpu_pct"] + wave)
            eng._remember(("host", CLUSTER, name), cpu)
        for n, host in SAMPLED_VMS:
            if host != "kvm-03":
                eng._remember(("vm", CLUSTER, uuid_of(n)),
                              max(0.0, vm_figures(n, t)["cpu_pct"] + wave * n / 3))


def add_events(eng: Engine) -> None:
    """What the engine recorded: VM lifecycle changes by tasks, behind the console's
    back, and host state changes it saw."""
    inv = eng.inv
    web01, db02, mon01 = uuid_of(1), uuid_of(4), uuid_of(7)
    inv.add_event(FIXED - 3600 + 4, CLUSTER, "kvm-01", web01, "vm.state",
                  "web-01: shut off → running", source="task 1 (Start web-01) · console · "
                  "root@admin-1")
    inv.add_event(FIXED - 1800 + 40, CLUSTER, "kvm-02", db02, "vm.state",
                  "db-02: running → paused",
                  source="outside the console (virsh, the guest, another tool)")
    inv.add_event(FIXED - 600, CLUSTER, "kvm-03", mon01, "vm.state",
                  "mon-01: running → crashed",
                  source="outside the console (virsh, the guest, another tool)")
    inv.add_event(KVM03_LOST, CLUSTER, "kvm-03", "kvm-03", "host.status",
                  "up → unreachable: lost contact at 15:04:35 (no answer to SSH keepalive)",
                  source="seen by watcher · root@admin-2")
    inv.add_event(FIXED - 2 * DAY, CLUSTER, "kvm-02", "kvm-02", "host.status",
                  "unreachable → up", source="seen by watcher · root@admin-2")
    inv.add_event(FIXED - 2 * DAY - 9 * HOUR, CLUSTER, "kvm-02", "kvm-02", "host.status",
                  "up → unreachable: no answer to SSH keepalive",
                  source="seen by watcher · root@admin-2")


def wait_for(condition, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"timed out: {condition}"
        time.sleep(0.02)


def monitoring_engine(path: Path, *, history: bool = True, week: bool = True,
                      events: bool = True, sparks: bool = True) -> Engine:
    world = scripted_world()
    eng = Engine(build_inventory(path), clock=lambda: FIXED, connect=world.connect,
                 stats_interval=3600, reconcile_interval=3600, reconnect_interval=3600)
    eng.world = world
    eng.journal.started_by = "console · root@admin-1"
    eng.start(clusters=[CLUSTER])
    eng.call(eng.wait_ready(timeout=10))
    wait_for(lambda: eng.ha_status(CLUSTER).watcher.read_at is not None)
    # The hosts' own connection events all say FIXED, in the order the hosts happened
    # to answer: not what a snapshot can show. Only ours stay.
    with eng.inv.transaction():
        eng.inv.conn.execute("DELETE FROM events")
    if events:
        add_events(eng)
    if history:
        fill_history(eng, week)
    if sparks:
        remember_sparklines(eng)
    return eng


# ---- waiting in the console ------------------------------------------------------------
def charts_drawn(app) -> bool:
    """Every chart on the screen read (the Monitoring tab's at least once) and
    plotted at its size."""
    from mvmtui.screens.monitoring import MonitoringPanel
    from mvmtui.widgets.chart import ChartView
    screen = app.screen
    for panel in screen.query(MonitoringPanel):
        if panel.display and panel.is_on_screen and (panel.fetches == 0 or panel._fetching):
            return False
    visible = screen._compositor.visible_widgets     # (charts scrolled away never draw)
    return all(v.up_to_date for v in screen.query(ChartView) if v in visible)


async def drawn(pilot) -> None:
    await pilot.pause()
    await until(pilot, lambda: charts_drawn(pilot.app))
    await pilot.pause(0.05)
