"""Snapshots of host loss in the console: who watches, a lost host that no fence
powered off and its typed confirmation, the failover plan and N−1, a failover's
timeline in History, the DRS preview. tests/ha_world.py's cluster on a fixed clock
(FIXED), the real engine over scripted hosts. What the watcher says is set on the
engine's own view (Engine._set_ha, see pin_ha), so no real watcher's timing shows.
Synchronous, as tests/test_snapshots.py explains."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXED, make_app
from ha_world import ha_inventory, ha_world, uuid, wait_for
from mvmtui.engine import Engine
from mvmtui.engine.model import (HaStatus, HostHa, HostStatus, Task, TaskStatus, TaskStep,
                                 WatcherInfo)

SIZE = (120, 36)
TALL = (120, 40)        # a host screen: its facts, its VMs and its whole failover plan
WATCHER = "watcher · root@admin-2"


def fixed_engine(path: Path) -> Engine:
    """"ha" (kvm-01..03, tests/ha_world.py) with no fence (fence-method none), its hosts
    and every clock at FIXED; no stats pass, no reconnect during a test."""
    world = ha_world()
    world.clock = lambda: FIXED
    eng = Engine(ha_inventory(path, fence="none"), clock=lambda: FIXED,
                 connect=world.connect, stats_interval=3600, reconcile_interval=3600,
                 reconnect_interval=3600)
    eng.world = world
    eng.start(clusters=["ha"])
    eng.call(eng.wait_ready(timeout=10, complete=True))
    # The engine's own first read of who watches (nobody): from here on it only
    # repeats itself, or pin_ha stops it.
    wait_for(lambda: eng.ha_status("ha").watcher.read_at is not None, 10)
    return eng


def pin_ha(eng: Engine, hosts: tuple[HostHa, ...] = ()) -> None:
    """A watcher on another admin box (pid 4242), its lease renewed 1 s before it was
    read 2 s ago: "3 s ago". Set directly on the engine's view (eng._set_ha), after its
    poller is told to read no more, so that nothing real overwrites it."""
    async def no_read(cluster: str) -> None:
        return None
    eng._read_ha = no_read          # type: ignore[method-assign]
    eng._set_ha(HaStatus("ha", WatcherInfo("ha", holder=WATCHER, pid=4242,
                                           machine="admin-2", age=1.0, hosts_held=2,
                                           hosts_total=3, read_at=FIXED - 2), hosts))


def lose(eng: Engine, host: str = "kvm-01") -> None:
    """The host's management link drops (its guests may still run): unreachable."""
    eng.world.power_cut("ha", host)
    wait_for(lambda: eng.host("ha", host).status is not HostStatus.UP, 10)


UNFENCED = HostHa("kvm-01", "unfenced", FIXED - 34,
                  "not restarted: host not fenced (fence-method none)")


@pytest.fixture
def eng(tmp_path):
    e = fixed_engine(tmp_path / "inv.db")
    yield e
    e.stop()


@pytest.fixture
def unfenced(eng):
    """kvm-01 lost; the watcher (elsewhere) could not fence it and waits for a word."""
    lose(eng)
    pin_ha(eng, (UNFENCED,))
    return eng


def journal_failover(eng: Engine) -> int:
    """kvm-01's failover, written into the journal by hand as the watcher writes it:
    the timeline in its log (clock times first), a child per restart, then its return
    with the VMs brought back."""
    inv = eng.inv
    start = FIXED - 50

    def at(offset: float) -> str:
        import time
        t = start + offset
        return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 10) % 10}"

    steps = ("Declare the host lost", "Fence", "Restart its VMs", "Confirm")
    tid = inv.create_task(Task(
        id=0, kind="host.failover", title="Failover: kvm-01", cluster="ha",
        target_kind="host", target="kvm-01", target_name="kvm-01", host="kvm-01",
        status=TaskStatus.QUEUED, created_at=start, started_by=WATCHER,
        steps=tuple(TaskStep(i, s) for i, s in enumerate(steps))))
    inv.update_task(tid, status=TaskStatus.SUCCEEDED, started_at=start,
                    finished_at=start + 40.6, progress=1.0)
    for i, (begin, end) in enumerate(((0, 0.1), (0.1, 31.2), (31.2, 33.0), (33.0, 40.6))):
        inv.update_step(tid, i, status=TaskStatus.SUCCEEDED, started_at=start + begin,
                        finished_at=start + end)
    timeline = [
        (0.0, "info", f"{at(-2.0)} suspect: lost contact (no answer to SSH keepalive)"),
        (0.0, "info", f"{at(0.0)} lost: no answer for 2.0 s (ha-lost-after 2 s)"),
        (0.2, "warning", f"{at(0.2)} not fenced: fence-method none. Nothing restarts until "
                         f"it is: power it off and confirm (\"I have powered it off\"; "
                         f"`mvmtui host fenced kvm-01`)"),
        (31.2, "info", f"{at(31.2)} fenced: confirmed powered off by console · root@admin-1 "
                       f"at {at(30.9)}"),
        (31.3, "warning", "app-local: not restarted — app-local's disks are on storage "
                          "only kvm-01 sees: it cannot restart elsewhere"),
        (31.3, "info", "db-01: not restarted — db-01 is pinned to kvm-01: unavailable "
                       "until kvm-01 returns"),
        (32.5, "info", f"{at(32.5)} web-01 runs on kvm-02 (1.2 s)"),
        (33.0, "info", f"{at(33.0)} web-02 runs on kvm-03 (1.7 s)"),
        (33.0, "info", f"{at(33.0)} 2 of 2 VMs restarted, 35.0 s after kvm-01 was "
                       f"suspect; 1 could not be"),
        (37.4, "info", f"{at(37.4)} kvm-01 answers again"),
        (40.6, "info", f"{at(40.6)} 2 of 2 VMs back on kvm-01 live (3.1 s): web-01, web-02"),
    ]
    for offset, level, message in timeline:
        inv.add_log(tid, start + offset, level, message)
    for name, target, begin, took in (("web-01", "kvm-02", 31.3, 1.2),
                                      ("web-02", "kvm-03", 31.3, 1.7)):
        child = inv.create_task(Task(
            id=0, kind="vm.restart", title=f"Restart {name} on {target}", cluster="ha",
            target_kind="vm", target=uuid(name), target_name=name, host=target,
            status=TaskStatus.QUEUED, created_at=start + begin, parent=tid,
            started_by=WATCHER))
        inv.update_task(child, status=TaskStatus.SUCCEEDED, started_at=start + begin,
                        finished_at=start + begin + took, progress=1.0)
    back = inv.create_task(Task(
        id=0, kind="host.return", title="Return: kvm-01", cluster="ha", target_kind="host",
        target="kvm-01", target_name="kvm-01", host="kvm-01", status=TaskStatus.QUEUED,
        created_at=start + 37.4, parent=tid, started_by=WATCHER))
    inv.update_task(back, status=TaskStatus.SUCCEEDED, started_at=start + 37.4,
                    finished_at=start + 40.6, progress=1.0)
    return tid


# ---- who watches ------------------------------------------------------------------------
def test_nobody_watches(snap_compare, eng):
    # The warning line on every cluster screen; the Summary's N−1 line below the gauges.
    assert snap_compare(make_app(eng, "ha"), terminal_size=SIZE)


# ---- a lost host that no fence powered off -----------------------------------------------
def test_lost_unfenced_host_in_the_hosts_tab(snap_compare, unfenced):
    # Who watches ("3 s ago"), the host the watcher waits on, its HA column, F offered.
    assert snap_compare(make_app(unfenced, "ha"), terminal_size=SIZE, press=["2"])


def test_lost_unfenced_host_confirmation(snap_compare, unfenced):
    # Its screen, then F: the warning, its VMs, the name to type (80x24, an SSH session).
    assert snap_compare(make_app(unfenced, "ha"), terminal_size=(80, 24),
                        press=["2", "enter", "F"])


def test_lost_unfenced_host_screen(snap_compare, unfenced):
    # Its HA line; its VMs not restarted (the pinned one says nothing); F, not Force off.
    assert snap_compare(make_app(unfenced, "ha"), terminal_size=TALL, press=["2", "enter"])


# ---- if it dies now ---------------------------------------------------------------------------
def test_failover_plan_on_the_host_screen(snap_compare, eng):
    pin_ha(eng)
    assert snap_compare(make_app(eng, "ha"), terminal_size=TALL, press=["2", "enter"])


def test_n_minus_one_tab(snap_compare, eng):
    pin_ha(eng)
    assert snap_compare(make_app(eng, "ha"), terminal_size=SIZE, press=["5"])


# ---- the failover in History ------------------------------------------------------------------
def test_failover_timeline(snap_compare, eng):
    # The oldest task in History: its steps, its parts (two restarts, the return) and the
    # timeline in its log.
    pin_ha(eng)
    journal_failover(eng)
    assert snap_compare(make_app(eng, "ha"), terminal_size=SIZE,
                        press=["4", "G", "enter"])


# ---- DRS ------------------------------------------------------------------------------------------
def test_rebalance_preview(snap_compare, eng):
    pin_ha(eng)
    assert snap_compare(make_app(eng, "ha"), terminal_size=SIZE, press=["R"])
