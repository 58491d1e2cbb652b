"""Snapshots of monitoring in the console: the cluster's Monitoring tab (each range,
1 week over a week of data, and at 80×24), a host's chart and a VM's (another metric
with M), the Events view of the cluster, a host and a VM, the sparklines of the
hosts and VMs tables, and a chart with no data yet.

tests/monitoring_world.py: the real engine over the scripted prod hosts, a week of
history written through engine.history, fixed events, every clock at FIXED. Keys and
waits run in `run_before`, so a screen is taken once its charts are read and plotted
(plotting runs in a thread). Synchronous, as tests/test_snapshots.py explains."""
from __future__ import annotations

import pytest

from conftest import make_app, uuid_of
from monitoring_world import CLUSTER, drawn, monitoring_engine, until
from mvmtui.widgets.listing import Listing

SIZE = (120, 36)
TALL = (120, 44)
SMALL = (80, 24)


@pytest.fixture
def world(tmp_path):
    engines = []

    def make(**kw):
        eng = monitoring_engine(tmp_path / f"inv-{len(engines)}.db", **kw)
        engines.append(eng)
        return eng
    yield make
    for eng in engines:
        eng.stop()


def keys(*pressed, then=()):
    """Press keys, wait for the charts, press `then`, wait again."""
    async def run(pilot):
        await pilot.press(*pressed)
        await drawn(pilot)
        if then:
            await pilot.press(*then)
            await drawn(pilot)
    return run


def open_row(tab: str, listing: str, key: str, then=()):
    """A tab, the row with `key`, enter; then `then` once its charts are drawn."""
    async def run(pilot):
        await pilot.press(tab)
        pilot.app.screen.query_one(f"#{listing}", Listing).table.move_cursor_to_key(key)
        await pilot.press("enter")
        await drawn(pilot)
        if then:
            await pilot.press(*then)
            await drawn(pilot)
    return run


# ---- the Monitoring tab --------------------------------------------------------------
def test_monitoring_tab(snap_compare, world):
    # 1 hour: CPU and memory per host (kvm-03's lines end when it was lost), the top
    # VMs by CPU (db-01's burst), memory, disk writes and network in.
    assert snap_compare(make_app(world(), CLUSTER), terminal_size=TALL, run_before=keys("7"))


def test_monitoring_tab_15_minutes(snap_compare, world):
    assert snap_compare(make_app(world(), CLUSTER), terminal_size=TALL,
                        run_before=keys("7", then=["left_square_bracket"]))


def test_monitoring_tab_1_day(snap_compare, world):
    assert snap_compare(make_app(world(), CLUSTER), terminal_size=TALL,
                        run_before=keys("7", then=["right_square_bracket"]))


def test_monitoring_tab_1_week(snap_compare, world):
    # A week of 15-minute averages; kvm-02's two hours without samples break its line.
    assert snap_compare(make_app(world(), CLUSTER), terminal_size=TALL,
                        run_before=keys("7", then=["right_square_bracket"] * 2))


def test_monitoring_tab_80x24(snap_compare, world):
    # One chart a row; the tab scrolls; the tab line and the range bar fit.
    assert snap_compare(make_app(world(), CLUSTER), terminal_size=SMALL, run_before=keys("7"))


def test_monitoring_tab_no_data_yet(snap_compare, world):
    # No sample recorded: every chart says so, none draws an empty frame as zero.
    assert snap_compare(make_app(world(history=False), CLUSTER), terminal_size=SIZE,
                        run_before=keys("7"))


# ---- host and VM charts --------------------------------------------------------------
def test_host_chart(snap_compare, world):
    assert snap_compare(make_app(world(), CLUSTER), terminal_size=TALL,
                        run_before=open_row("2", "hosts", "kvm-01"))


def test_host_chart_memory_1_week(snap_compare, world):
    # M: memory; ] ]: a week, with kvm-02's gap.
    assert snap_compare(make_app(world(), CLUSTER), terminal_size=TALL,
                        run_before=open_row("2", "hosts", "kvm-02",
                                            then=["M", "right_square_bracket",
                                                  "right_square_bracket"]))


def test_vm_chart_15_minutes(snap_compare, world):
    # db-01's CPU over the last 15 minutes: its burst.
    assert snap_compare(make_app(world(), CLUSTER), terminal_size=TALL,
                        run_before=open_row("3", "vms", uuid_of(3),
                                            then=["left_square_bracket"]))


def test_vm_chart_no_data_yet(snap_compare, world):
    # cache-01 is shut off: never sampled.
    assert snap_compare(make_app(world(), CLUSTER), terminal_size=TALL,
                        run_before=open_row("3", "vms", uuid_of(5)))


# ---- events -------------------------------------------------------------------------------
def test_events_tab(snap_compare, world):
    # Newest first: who made each change (a task, outside the console, the watcher).
    assert snap_compare(make_app(world(history=False), CLUSTER), terminal_size=SIZE,
                        press=["8"])


def test_events_tab_filtered(snap_compare, world):
    assert snap_compare(make_app(world(history=False), CLUSTER), terminal_size=SIZE,
                        press=["8", "slash", *"outside"])


def test_host_events(snap_compare, world):
    async def run(pilot):
        await open_row("2", "hosts", "kvm-03")(pilot)
        await pilot.press("E")
        await until(pilot, lambda: pilot.app.screen.__class__.__name__ == "EventsScreen")
        await pilot.pause(0.05)
    assert snap_compare(make_app(world(history=False), CLUSTER), terminal_size=SIZE,
                        run_before=run)


def test_vm_events(snap_compare, world):
    async def run(pilot):
        await open_row("3", "vms", uuid_of(1))(pilot)
        await pilot.press("E")
        await until(pilot, lambda: pilot.app.screen.__class__.__name__ == "EventsScreen")
        await pilot.pause(0.05)
    assert snap_compare(make_app(world(history=False), CLUSTER), terminal_size=SIZE,
                        run_before=run)


# ---- sparklines -----------------------------------------------------------------------------
def test_hosts_tab_sparklines(snap_compare, world):
    # The CPU trend of this session (kvm-02 missed two passes: a gap); kvm-03 none.
    assert snap_compare(make_app(world(history=False), CLUSTER), terminal_size=(160, 30),
                        press=["2"])


def test_vms_tab_sparklines(snap_compare, world):
    assert snap_compare(make_app(world(history=False), CLUSTER), terminal_size=SIZE,
                        press=["3"])
