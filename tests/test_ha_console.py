"""Host loss in the console, driven by keys (Textual pilot) over tests/ha_world.py's
scripted cluster with the real engine and the real clock: who watches, a lost host
that no fence could power off confirmed by the operator's typed word, N−1 on the HA
tab, a DRS rebalance previewed and applied, a VM's restart priority, [ha] watch."""
from __future__ import annotations

import asyncio
import os

import pytest
from textual.widgets import Input, RadioSet, Static

from ha_world import ha_engine, ha_inventory, ha_world, uuid, wait_for
from mvmtui.app import MvmApp, Preferences
from mvmtui.engine.model import HaStatus, HostHa, TaskStatus, WatcherInfo
from mvmtui.screens.cluster import ClusterScreen
from mvmtui.screens.confirm import ConfirmScreen
from mvmtui.screens.fence import FencedScreen
from mvmtui.screens.ha import WatchBanner, watch_text
from mvmtui.screens.host import HostScreen
from mvmtui.screens.placement import PlacementScreen
from mvmtui.screens.rebalance import RebalanceScreen
from mvmtui.screens.rows import Palette
from mvmtui.screens.task import TaskScreen
from mvmtui.widgets.listing import Listing

from conftest import make_app, run_app, until
from test_console import cell_text, footer_text, messages


@pytest.fixture
def world():
    return ha_world()


def console(tmp_path, world, *, fence: str = "command", watch: bool = False,
            name: str = "console.db"):
    """A console's engine on the scripted cluster "ha"; `watch`: it is the watcher too."""
    return ha_engine(ha_inventory(tmp_path / name, fence=fence), world, watch=watch,
                     actor="console")


def keys(table) -> list[str]:
    return [table._view[i].key for i in range(table.row_count)]


def banner(app) -> str:
    return str(app.screen.query_one(WatchBanner).render())


def text_of(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


# ---- who watches ---------------------------------------------------------------------
def test_the_age_of_who_watches_grows_between_reads():
    pal = Palette()
    st = HaStatus("ha", WatcherInfo("ha", holder="watcher · root@admin-2", pid=4242,
                                    age=1.0, read_at=100.0))
    assert watch_text(st, 102.4, pal).plain == \
        "HA: watched by watcher · root@admin-2 (pid 4242), 3 s ago"
    assert watch_text(st, 110.0, pal).plain.endswith(", 11 s ago")
    assert watch_text(HaStatus("ha", WatcherInfo("ha")), 0, pal).plain == \
        "HA: who watches is not known yet"
    nobody = HaStatus("ha", WatcherInfo("ha", read_at=5.0))
    assert watch_text(nobody, 9, pal).plain == "HA: nobody watches — failover is off"
    isolated = HaStatus("ha", WatcherInfo("ha", holder="w", me=True, pid=7, read_at=1.0),
                        message="isolated: 2 of 3 hosts stopped answering at once")
    assert watch_text(isolated, 1, pal).plain == (
        "HA: watched here (pid 7) · isolated: 2 of 3 hosts stopped answering at once")


def test_the_banner_says_nobody_watches_then_who_does(tmp_path, world):
    eng = console(tmp_path, world)
    app = make_app(eng, "ha")
    watchers = []

    async def check(pilot):
        assert banner(app) in ("HA: who watches is not known yet",
                               "HA: nobody watches — failover is off")
        await until(pilot, lambda: banner(app) == "HA: nobody watches — failover is off")
        # Another admin box starts a watcher on the same cluster.
        watchers.append(await asyncio.to_thread(
            ha_engine, ha_inventory(tmp_path / "watcher.db"), world))
        await until(pilot, lambda: banner(app).startswith(
            f"HA: watched by {watchers[0].journal.started_by} (pid {os.getpid()}), "))
        assert banner(app).endswith(" s ago")
        await pilot.press("q")                  # the clusters list says it too
        table = app.screen.query_one("#clusters", Listing).table
        await until(pilot, lambda: cell_text(table, "ha", "ha") == "watched")

    try:
        run_app(app, check)
    finally:
        for w in watchers:
            w.stop()
        eng.stop()


def test_ha_watch_makes_the_console_a_watcher(tmp_path, world):
    eng = console(tmp_path, world)
    app = MvmApp(eng, start_cluster="ha", preferences=Preferences(ha_watch=True))
    app.animation_level = "none"
    app.start_engine = True         # as run_console does: start (it runs already), watch

    async def check(pilot):
        await until(pilot, lambda: banner(app) == f"HA: watched here (pid {os.getpid()})")
        assert eng.ha_status("ha").watcher.me

    try:
        run_app(app, check)
    finally:
        eng.stop()


# ---- a lost host that no fence powered off ---------------------------------------------
def test_a_lost_unfenced_host_is_confirmed_powered_off_and_its_vms_restart(tmp_path, world):
    eng = console(tmp_path, world, fence="none", watch=True)
    wait_for(lambda: eng.ha_status("ha").watcher.me, 10)
    app = make_app(eng, "ha")

    async def check(pilot):
        await until(pilot, lambda: banner(app).startswith("HA: watched here"))
        world.power_cut("ha", "kvm-01")            # management lost; its guests may run
        await pilot.press("2")
        hosts = app.screen.query_one("#hosts", Listing).table
        await until(pilot, lambda: "not restarted: host not fenced"
                    in cell_text(hosts, "kvm-01", "ha"))
        assert cell_text(hosts, "kvm-01", "ha").startswith("lost — ")
        assert "kvm-01 lost — not restarted: host not fenced" in banner(app)
        assert hosts.cursor_key == "kvm-01" and "F Powered off…" in footer_text(app)
        # Its screen: the watcher's words, and its VMs wait for the fence.
        await pilot.press("enter")
        assert isinstance(app.screen, HostScreen)
        await until(pilot, lambda: "lost — not restarted" in text_of(app, "#host-ha"))
        vms = app.screen.query_one("#vms", Listing).table
        assert "not restarted: host not fenced" in cell_text(vms, uuid("web-01"), "state")
        assert "not fenced" not in cell_text(vms, uuid("db-01"), "state")     # pinned
        assert "F Powered off…" in footer_text(app) and "Force off" not in footer_text(app)
        await pilot.press("F")
        dialog = app.screen
        assert isinstance(dialog, FencedScreen)
        said = " ".join(str(s.render()) for s in dialog.query(Static))
        assert "its VMs would run twice" in said and "destroy their disks" in said
        await pilot.press(*"kvm-1", "enter")                 # not its name
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen is dialog
        assert text_of(app, "#fenced-error").startswith("Type the host's name, kvm-01")
        assert eng.ha_status("ha").of("kvm-01").state == "unfenced"   # nothing recorded
        world.crash("ha", "kvm-01")                  # the operator pulls its power, then:
        dialog.query_one("#fenced-name", Input).value = ""
        await pilot.press(*"kvm-01", "enter")
        await until(pilot, lambda: not isinstance(app.screen, FencedScreen))
        assert any(m.startswith("kvm-01: confirmed powered off (task ") for m in messages(app))
        # The watcher restarts its Auto and Failover VMs elsewhere; the tables follow.
        await until(pilot, lambda: all(eng.vm(uuid(n)).host != "kvm-01"
                                       for n in ("web-01", "web-02")), timeout=20)
        await until(pilot, lambda: uuid("web-01") not in keys(vms))
        await pilot.press("escape", "3")
        assert isinstance(app.screen, ClusterScreen)
        table = app.screen.query_one("#vms", Listing).table
        await until(pilot, lambda: cell_text(table, uuid("web-01"), "host") in
                    ("kvm-02", "kvm-03") and cell_text(table, uuid("web-02"), "host") in
                    ("kvm-02", "kvm-03"))
        await pilot.press("2")
        await until(pilot, lambda: cell_text(hosts, "kvm-01", "ha").startswith("failed over"))
        failover = next(t for t in eng.tasks("ha") if t.kind == "host.failover")
        assert failover.status is TaskStatus.SUCCEEDED

    try:
        run_app(app, check)
    finally:
        eng.stop()


# ---- N−1 --------------------------------------------------------------------------------
def test_the_ha_tab_says_what_losing_each_host_would_leave_down(tmp_path, world):
    eng = console(tmp_path, world)
    app = make_app(eng, "ha")
    worst = "Losing kvm-01 leaves 1 VM down (short 2048 MiB, 1 vCPU)"

    async def check(pilot):
        assert text_of(app, "#n-minus-one") == worst                   # the Summary
        await pilot.press("5")
        assert text_of(app, "#ha-check").startswith(worst)
        loss = app.screen.query_one("#loss", Listing).table
        assert keys(loss) == ["kvm-01", "kvm-02", "kvm-03"]
        assert cell_text(loss, "kvm-01", "cannot") == "1"
        assert cell_text(loss, "kvm-01", "short") == "2048 MiB, 1 vCPU"
        assert cell_text(loss, "kvm-02", "cannot") == "0"
        plan = app.screen.query_one("#ha-plan", Listing).table
        assert cell_text(plan, uuid("app-local"), "outcome") == "cannot restart"
        assert cell_text(plan, uuid("db-01"), "outcome") == "stays"
        assert text_of(app, "#ha-plan-title") == (
            "If kvm-01 dies now: 2 VMs restart elsewhere, 1 cannot, 1 stays")
        await pilot.press("j")                                          # kvm-02's plan
        assert text_of(app, "#ha-plan-title") == "If kvm-02 dies now: 1 VM restarts elsewhere"
        assert cell_text(plan, uuid("ci-01"), "outcome") in ("kvm-01", "kvm-03")
        await pilot.press("k", "enter")                                 # opens the host
        assert isinstance(app.screen, HostScreen) and app.screen.host_name == "kvm-01"
        host_plan = app.screen.query_one("#plan", Listing).table
        assert cell_text(host_plan, uuid("web-02"), "strategy") == "failover"
        assert cell_text(host_plan, uuid("app-local"), "reason").startswith(
            "app-local's disks are on storage only kvm-01 sees")

    try:
        run_app(app, check)
    finally:
        eng.stop()


# ---- DRS --------------------------------------------------------------------------------
def test_the_rebalance_preview_applies_and_the_moves_happen(tmp_path, world):
    eng = console(tmp_path, world)
    app = make_app(eng, "ha")

    async def check(pilot):
        await pilot.press("R")
        screen = app.screen
        assert isinstance(screen, RebalanceScreen)
        summary = lambda: text_of(app, "#drs-summary")      # noqa: E731
        assert summary().startswith("Threshold 3 of 5 (moderate)")
        p = screen.preview
        assert p.after < p.before and f"Imbalance {p.before:.3f} → {p.after:.3f}" in summary()
        moves = screen.query_one("#drs-moves", Listing).table
        (move,) = p.moves                   # web-01, to kvm-02 or kvm-03
        assert move.name == "web-01" and move.target in ("kvm-02", "kvm-03")
        assert cell_text(moves, uuid("web-01"), "target") == move.target
        assert "evens the load" in cell_text(moves, uuid("web-01"), "reason")
        loads = screen.query_one("#loads", Listing).table
        before, after = dict(p.loads_before), dict(p.loads_after)
        assert cell_text(loads, "kvm-01", "before").endswith(f"{before['kvm-01']:.0%}")
        target = move.target
        assert cell_text(loads, target, "after").endswith(f"{after[target]:.0%}")
        assert after[target] > before[target]
        await pilot.press("1")                                  # the most conservative
        assert summary().startswith("Threshold 1 of 5")
        assert "Nothing to move: ha is balanced enough at threshold 1." in summary()
        assert not screen.check_action("apply", ())
        await pilot.press("3")
        (move,) = screen.preview.moves      # as light as each other: either may be chosen
        target = move.target
        await pilot.press("a")
        assert isinstance(app.screen, ConfirmScreen)
        assert f"web-01 → {target}" in app.screen.body
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, TaskScreen))
        task = app.screen.entry
        assert task.kind == "cluster.rebalance"
        await until(pilot, lambda: eng.vm(uuid("web-01")).host == target)
        await until(pilot, lambda: eng.task(task.id).status.finished)
        assert eng.task(task.id).status is TaskStatus.SUCCEEDED
        await until(pilot, lambda: any(m.endswith("done — 1 of 1 VM moved")
                                       for m in messages(app)))

    try:
        run_app(app, check)
    finally:
        eng.stop()


# ---- restart priority ---------------------------------------------------------------------
def test_manage_placement_changes_the_restart_priority(tmp_path, world):
    eng = console(tmp_path, world)
    app = make_app(eng, "ha")

    async def check(pilot):
        await pilot.press("3", "slash", *"web-01", "enter", "P")
        screen = app.screen
        assert isinstance(screen, PlacementScreen)
        radio = screen.query_one("#priority", RadioSet)
        assert radio.pressed_button.id == "priority-medium"
        radio.focus()
        await pilot.press("left", "enter")                       # High
        assert screen.priority == "high"
        assert text_of(app, "#plan") == ("Restart priority medium → high: restarts first "
                                         "when its host is lost.")
        await pilot.press("a", "y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not isinstance(app.screen, (PlacementScreen, ConfirmScreen))
        assert eng.vm(uuid("web-01")).priority == "high"
        assert messages(app)[-1] == "Placement of web-01: now auto, restart priority high."

    try:
        run_app(app, check, size=(80, 24))
    finally:
        eng.stop()


def test_read_only_offers_no_fence_confirmation(tmp_path, world):
    from mvmtui.engine import Engine
    eng = Engine(ha_inventory(tmp_path / "ro.db"), connect=world.connect, readonly=True,
                 stats_interval=3600, reconcile_interval=3600, reconnect_interval=0.2)
    eng.start(clusters=["ha"])
    eng.call(eng.wait_ready(timeout=10))
    app = make_app(eng, "ha")

    async def check(pilot):
        world.power_cut("ha", "kvm-02")
        await pilot.press("2", "j")
        table = app.screen.query_one("#hosts", Listing).table
        await until(pilot, lambda: cell_text(table, "kvm-02", "status") != "up")
        assert not app.screen.check_action("fenced", ())
        await pilot.press("F")
        assert not isinstance(app.screen, FencedScreen)

    try:
        run_app(app, check)
    finally:
        eng.stop()


def test_the_host_screen_pins_what_the_watcher_says(tmp_path, world):
    """The host's HA line, from the engine's view (set directly here)."""
    eng = console(tmp_path, world)
    app = make_app(eng, "ha")

    async def check(pilot):
        await pilot.press("2", "enter")
        assert isinstance(app.screen, HostScreen)
        assert not app.screen.query_one("#host-ha").display
        eng._set_ha(HaStatus("ha", WatcherInfo("ha", holder="watcher · root@admin-2",
                                               pid=4242, age=0.0, read_at=eng.clock()),
                             (HostHa("kvm-01", "suspect", eng.clock(), "its link dropped"),)))
        await until(pilot, lambda: app.screen.query_one("#host-ha").display)
        assert text_of(app, "#host-ha").startswith("HA: kvm-01 suspect — its link dropped")

    try:
        run_app(app, check)
    finally:
        eng.stop()


def test_on_a_big_cluster_the_planner_answers_from_a_thread(tmp_path, world, monkeypatch):
    """Beyond PLAN_INLINE_VMS VMs, N−1, a host's plan and the DRS preview are asked in a
    thread (N−1 over 10,000 VMs takes seconds); the screens fill in when it answers."""
    import mvmtui.screens.base as base
    monkeypatch.setattr(base, "PLAN_INLINE_VMS", 0)
    eng = console(tmp_path, world)
    app = make_app(eng, "ha")

    async def check(pilot):
        await until(pilot, lambda: text_of(app, "#n-minus-one").startswith("Losing kvm-01"))
        await pilot.press("5")
        await until(pilot, lambda: keys(app.screen.query_one("#loss", Listing).table)
                    == ["kvm-01", "kvm-02", "kvm-03"])
        await pilot.press("enter")
        await until(pilot, lambda: text_of(app, "#plan-title").startswith(
            "If kvm-01 dies now: 2 VMs restart elsewhere"))
        await pilot.press("escape", "R")
        await until(pilot, lambda: app.screen.preview is not None)
        assert "1 move, each a live migration" in text_of(app, "#drs-summary")

    try:
        run_app(app, check)
    finally:
        eng.stop()
