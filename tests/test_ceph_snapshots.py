"""Snapshots of Ceph in the console: the cluster's Ceph tab and the Ceph screen healthy
and degraded (an OSD down, a backfill), the flag warning (an expired noout, a flag set
by hand), each step of the decommission wizard (its start, the dialog with step 4's
commands, the wait while data moves, resumed at the service stop, the monitor's
removal, finished), its refusals (not HEALTH_OK; too few hosts for a pool), and the
maintenance preview of a host with OSDs (ok-to-stop, noout).

tests/ceph_world.py: the real engine over scripted hosts and the scripted Ceph (the
documents captured from the lab's Ceph 16), every clock at FIXED, who ran each step
fixed too. Steps before the one shown run through the engine before the console
starts (History has them); keys and waits run in `run_before`, so the screen is
taken once the plan is read, never while "Reading Ceph…". Synchronous, as
tests/test_snapshots.py explains."""
from __future__ import annotations


import pytest

from ceph_world import CLUSTER, ceph_engine, run_steps_until, wait_for
from conftest import FIXED, make_app, until
from mvmtui.engine.model import CEPH_SERIES
from mvmtui.screens.ceph import CephScreen
from mvmtui.screens.decommission import DecommissionScreen
from mvmtui.screens.maintenance import MaintenanceScreen
from mvmtui.widgets.listing import Listing

SIZE = (120, 36)
TALL = (120, 44)        # the Ceph screen, from its flags to its pools
SMALL = (80, 24)        # an SSH session


@pytest.fixture(autouse=True)
def quick_wait(monkeypatch):
    import mvmtui.engine.ceph.wizard as wizard
    monkeypatch.setattr(wizard, "WAIT_POLL", 0.05)


@pytest.fixture
def world(tmp_path):
    engines = []

    def make(state: str = "healthy", **kw):
        eng = ceph_engine(tmp_path / f"inv-{len(engines)}.db", state, **kw)
        engines.append(eng)
        return eng
    yield make
    for eng in engines:
        eng.stop()


def ceph_tab(pilot_keys=("6",)):
    async def run(pilot):
        await pilot.press(*pilot_keys)
        await until(pilot, lambda: pilot.app.engine.ceph_summary(CLUSTER) is not None)
        await pilot.pause(0.1)
    return run


def ceph_screen():
    async def run(pilot):
        await pilot.press("6", "c")
        await until(pilot, lambda: isinstance(pilot.app.screen, CephScreen))
        pilot.app.screen.reload()
        await pilot.pause(0.1)
    return run


def wizard(host: str = "kvm-03", then=(), ready=None):
    """Hosts tab, the host's row, D; then `then` keys once the plan is read."""
    async def run(pilot):
        app = pilot.app
        await pilot.press("2")
        app.screen.query_one("#hosts", Listing).table.move_cursor_to_key(host)
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, DecommissionScreen)
                    and app.screen.plan is not None and not app.screen._fetching)
        if ready is not None:
            await until(pilot, lambda: ready(app))
        await pilot.press(*then)
        await pilot.pause(0.1)
    return run


# ---- the summary ---------------------------------------------------------------------------
def test_ceph_tab_healthy(snap_compare, world):
    assert snap_compare(make_app(world(), CLUSTER), terminal_size=SIZE, run_before=ceph_tab())


def test_ceph_tab_osd_down_80x24(snap_compare, world):
    # HEALTH_WARN and its checks (no detail), 3 of 4 OSDs up, PGs degraded, not recovering.
    assert snap_compare(make_app(world("osd_down"), CLUSTER), terminal_size=SMALL,
                        run_before=ceph_tab())


def test_ceph_screen_healthy(snap_compare, world):
    assert snap_compare(make_app(world(), CLUSTER), terminal_size=TALL,
                        run_before=ceph_screen())


def test_ceph_screen_osd_down(snap_compare, world):
    # osd.3 down on kvm-04 (still in): OSD_DOWN, OSD_HOST_DOWN, PG_DEGRADED with detail.
    assert snap_compare(make_app(world("osd_down"), CLUSTER), terminal_size=TALL,
                        run_before=ceph_screen())


def test_ceph_screen_backfilling(snap_compare, world):
    # osd.3 weighted 0: data moving, with its speed and ETA; osd.3's weight 0 in the tree.
    # The hour before it sampled as the console would have (a reading every 5 s, raw
    # used creeping up as the backfill writes its copies): the chart under the gauge.
    eng = world("backfilling")
    raw = eng.ceph_summary(CLUSTER).raw_used_pct
    eng.history.write([(CLUSTER, "ceph", CEPH_SERIES, CLUSTER, FIXED - 3600 + 5 * k,
                        {"raw_used_pct": raw - 6 + 6 * min(1.0, k / 600),
                         "client_wr_bps": 7e5}) for k in range(720)], now=FIXED)
    assert snap_compare(make_app(eng, CLUSTER), terminal_size=TALL,
                        run_before=ceph_screen())


def test_ceph_flags_warning(snap_compare, world):
    # noout on kvm-04, set by mvmtui for a maintenance, EXPIRED 1m 40s ago; norebalance
    # set by hand: "set outside mvmtui". The FLAGS panel first, in the warning colour.
    assert snap_compare(make_app(world("flags"), CLUSTER), terminal_size=TALL,
                        run_before=ceph_screen())


# ---- the decommission wizard ----------------------------------------------------------------
def test_wizard_start_80x24(snap_compare, world):
    # kvm-03 in maintenance: checks 1–3 ok, the method (CRUSH weight 0: 3 hosts left for
    # 3 copies), step 4 next with its exact command and why.
    assert snap_compare(make_app(world(), CLUSTER), terminal_size=SMALL, run_before=wizard())


def test_wizard_start(snap_compare, world):
    assert snap_compare(make_app(world(), CLUSTER), terminal_size=SIZE, run_before=wizard())


def test_wizard_out_next_asks_with_the_command_80x24(snap_compare, world):
    # enter on step 4: the dialog names the step and shows the command it runs, and where.
    assert snap_compare(make_app(world(), CLUSTER), terminal_size=SMALL,
                        run_before=wizard(then=("enter",)))


def test_wizard_waiting_with_progress(snap_compare, world):
    # Step 5 running, opened while it runs: PGs clean 18/33, objects degraded, speed,
    # ETA, clean for 0 s of 15 s, not yet safe to destroy; its log as it comes.
    eng = world(settle=15)
    run_steps_until(eng, "wait:2")
    eng.ceph.hold = True
    eng.ceph.start_moving()
    task = eng.call(eng._decom_step(CLUSTER, "kvm-03", "wait:2"))
    wait_for(lambda: "pgs_total" in eng.task(task.id).checkpoint, 10)
    wait_for(lambda: any(line.message.startswith("Data moving")
                         for line in eng.task(task.id).logs), 10)
    assert snap_compare(make_app(eng, CLUSTER), terminal_size=(120, 40),
                        run_before=wizard(ready=lambda app: app.screen.task_id == task.id))


def test_wizard_waiting_with_progress_80x24(snap_compare, world):
    eng = world(settle=15)
    run_steps_until(eng, "wait:2")
    eng.ceph.hold = True
    eng.ceph.start_moving()
    task = eng.call(eng._decom_step(CLUSTER, "kvm-03", "wait:2"))
    wait_for(lambda: "pgs_total" in eng.task(task.id).checkpoint, 10)
    wait_for(lambda: any(line.message.startswith("Data moving")
                         for line in eng.task(task.id).logs), 10)
    assert snap_compare(make_app(eng, CLUSTER), terminal_size=SMALL,
                        run_before=wizard(ready=lambda app: app.screen.task_id == task.id))


def test_wizard_resumed_stop_next(snap_compare, world):
    # Steps 4 and 5 done (another console, or one that died): "Resumed", step 6 next with
    # `ceph osd out` on a monitor host and the service stopped on kvm-03 itself.
    eng = world()
    run_steps_until(eng, "stop:2")
    assert snap_compare(make_app(eng, CLUSTER), terminal_size=SIZE, run_before=wizard())


def test_wizard_mon_removal(snap_compare, world):
    # Steps 4–7 done: the monitor's removal next, its command and its service's stop.
    eng = world()
    run_steps_until(eng, "mon-remove")
    assert snap_compare(make_app(eng, CLUSTER), terminal_size=SIZE, run_before=wizard())


def test_wizard_finished_80x24(snap_compare, world):
    # The last step run from the wizard: "Finished", the step's task and its log.
    eng = world()
    run_steps_until(eng, "osd-rm:2")

    async def last_step(pilot):
        await wizard()(pilot)
        await pilot.press("enter", "y")
        screen = pilot.app.screen
        await until(pilot, lambda: screen.plan is not None and screen.plan.absent
                    and not screen._fetching)
        pilot.app.clear_notifications()
        await pilot.pause(0.1)
    assert snap_compare(make_app(eng, CLUSTER), terminal_size=SMALL, run_before=last_step)


def test_wizard_refused_not_health_ok_80x24(snap_compare, world):
    # osd.3 down: refused in Ceph's words; nothing can run (no enter in the footer).
    assert snap_compare(make_app(world("osd_down"), CLUSTER), terminal_size=SMALL,
                        run_before=wizard())


def test_wizard_refused_too_few_hosts(snap_compare, world):
    # The pool vms keeps 4 copies: without kvm-03 only 3 hosts are left.
    eng = world()
    eng.ceph.set_pool_size("vms", 4)
    eng.call(eng._ceph_read(CLUSTER))
    assert snap_compare(make_app(eng, CLUSTER), terminal_size=SIZE, run_before=wizard())


# ---- maintenance of a host with OSDs -------------------------------------------------------
def test_maintenance_shows_ok_to_stop_and_noout_80x24(snap_compare, world):
    # kvm-04 (osd.3): Ceph says its OSDs may stop; n has set noout until it leaves.
    async def run(pilot):
        app = pilot.app
        await pilot.press("2")
        app.screen.query_one("#hosts", Listing).table.move_cursor_to_key("kvm-04")
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MaintenanceScreen)
                    and bool(app.screen.osds))
        await pilot.press("n")
        await pilot.pause(0.1)
    assert snap_compare(make_app(world(), CLUSTER), terminal_size=SMALL, run_before=run)
