"""Ceph in the console, driven by keys (Textual pilot) over tests/ceph_world.py: the real
engine, scripted hosts, and a scripted Ceph that serves the documents captured from the
lab's Ceph 16 and applies the wizard's commands to them. The cluster's Ceph tab and the
Ceph screen (health, flags, age and STALE), the decommission wizard walked from start
to finish, resumed mid-way, refused, and a step Ceph refuses; ok-to-stop and noout
when a host with OSDs enters maintenance."""
from __future__ import annotations

import asyncio
import io
import json
import time

import pytest
from rich.console import Console
from rich.text import Text
from textual.widgets import Input, Static

from ceph_world import CLUSTER, ceph_engine, run_steps_until, wait_for
from conftest import FIXED, make_app, run_app, until
from mvmtui.cli import main
from mvmtui.engine.model import IN_MAINTENANCE, TaskStatus
from mvmtui.screens.ceph import (CephScreen, age_text, flag_text, is_stale,
                                 recovery_text)
from mvmtui.screens.cluster import ClusterScreen
from mvmtui.screens.confirm import ConfirmScreen
from mvmtui.screens.decommission import DecommissionScreen, progress_text
from mvmtui.screens.help import HelpScreen
from mvmtui.screens.maintenance import MaintenanceScreen, TypeNameScreen
from mvmtui.screens.monitoring import DetailChart, RangeBar
from mvmtui.screens.rows import Palette
from mvmtui.widgets.listing import Listing
from test_console import cell_text, footer_text, messages


@pytest.fixture(autouse=True)
def quick_wait(monkeypatch):
    """Step 5 reads Ceph every 2 s; here every 50 ms (the scripted Ceph answers at once)."""
    import mvmtui.engine.ceph.wizard as wizard
    monkeypatch.setattr(wizard, "WAIT_POLL", 0.05)


@pytest.fixture
def eng(tmp_path):
    e = ceph_engine(tmp_path / "inv.db")
    yield e
    e.stop()


def text_of(app, selector: str) -> str:
    """What a Static says: its Text, or its table or group drawn 200 columns wide."""
    content = app.screen.query_one(selector, Static).content
    if isinstance(content, str):
        return content
    if isinstance(content, Text):
        return content.plain
    console = Console(width=200, file=io.StringIO(), color_system=None)
    with console.capture() as out:
        console.print(content)
    return out.get()


async def open_wizard(pilot, host: str = "kvm-03") -> DecommissionScreen:
    """From the cluster screen: the Hosts tab, the host's row, D; until the plan is read."""
    app = pilot.app
    await pilot.press("2")
    table = app.screen.query_one("#hosts", Listing).table
    table.move_cursor_to_key(host)
    await pilot.press("D")
    await until(pilot, lambda: isinstance(app.screen, DecommissionScreen)
                and app.screen.plan is not None)
    return app.screen


def next_key(screen: DecommissionScreen) -> str | None:
    return screen.plan.next.key if screen.plan and screen.plan.next else None


# ---- the summary, pure ----------------------------------------------------------------
def test_the_age_and_stale_mark_follow_the_clock(eng):
    s = eng.ceph_summary(CLUSTER)
    pal = Palette()
    assert not is_stale(s, FIXED + 15)
    assert is_stale(s, FIXED + 16)
    assert age_text(s, FIXED + 3, pal).plain == "read 3s ago from kvm-01"
    assert age_text(s, FIXED + 20, pal).plain == "read 20s ago from kvm-01 · STALE"


def test_flags_say_who_set_them_and_when_they_expire(eng):
    pal = Palette()
    eng.ceph.load("flags")
    s = eng.call(eng._ceph_read(CLUSTER))
    words = {f.name: flag_text(f, FIXED, pal).plain for f in s.flags}
    assert words["noout"] == ("noout on host kvm-04 · set by root@admin (pid 1) 2h 1m ago "
                              "for maintenance · EXPIRED 1m 40s ago: clear it if the work "
                              "is over")
    assert "set outside mvmtui" in words["norebalance"]
    noout = next(f for f in s.flags if f.name == "noout")
    assert "expires in 1m 40s" in flag_text(noout, FIXED - 200, pal).plain


def test_the_eta_comes_from_bytes_when_ceph_gives_no_objects_per_second(eng):
    eng.ceph.load("backfilling")
    s = eng.call(eng._ceph_read(CLUSTER))
    assert s.recovery.recovering_objects_per_sec == 0
    objects = sum(p.objects or 0 for p in s.pools)
    stored = sum(p.stored_bytes or 0 for p in s.pools)
    expected = s.recovery.degraded_objects / (s.recovery.recovering_bytes_per_sec
                                              / (stored / objects))
    assert s.recovery_eta() == pytest.approx(expected)
    assert f"ETA {int(expected)}s" in recovery_text(s, Palette()).plain


# ---- the Ceph tab and screen ------------------------------------------------------------
def test_the_ceph_tab_shows_the_summary_and_opens_the_ceph_screen(eng):
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        await pilot.press("6")
        await until(pilot, lambda: "HEALTH_OK" in text_of(app, "#ceph-compact"))
        tab = text_of(app, "#ceph-compact")
        assert "read 0s ago from kvm-01" in tab
        assert "3 of 3 in quorum: kvm-01 kvm-02 kvm-03" in tab
        assert "kvm-02 active · kvm-01 standby" in tab
        assert "4 of 4 up, 4 of 4 in, on 4 hosts" in tab
        assert "33: 33 active+clean" in tab
        assert "c Ceph screen" in footer_text(app)
        await pilot.press("c")
        assert isinstance(app.screen, CephScreen)
        body = text_of(app, "#ceph-overview") + text_of(app, "#ceph-osds")
        for name in ("osd.0", "osd.1", "osd.2", "osd.3", "kvm-04"):
            assert name in body
        assert "nearfull 85%, backfillfull 90%, full 95%" in text_of(app, "#ceph-ratios")
        await pilot.press("q")
        assert isinstance(app.screen, ClusterScreen)
        await pilot.press("enter")              # enter on the tab does the same
        assert isinstance(app.screen, CephScreen)

    run_app(app, check)


def test_the_ceph_screen_follows_each_reading(eng):
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        await pilot.press("6", "c")
        await until(pilot, lambda: "HEALTH_OK" in text_of(app, "#ceph-head"))
        eng.ceph.load("osd_down")           # an OSD's daemon dies
        await asyncio.to_thread(eng.call, eng._ceph_read(CLUSTER))
        await until(pilot, lambda: "HEALTH_WARN" in text_of(app, "#ceph-head"))
        overview = text_of(app, "#ceph-overview")
        assert "OSD_DOWN  1 osds down" in overview
        assert "3 of 4 up, 4 of 4 in" in overview
        assert "osd.3 (root=default,host=kvm-04) is down" in text_of(app, "#ceph-health")
        # Every detail line of every check (13 PGs degraded: all 13).
        assert text_of(app, "#ceph-health").count("is active+undersized+degraded") == 13

    run_app(app, check, size=(120, 40))


def test_a_reading_that_fails_keeps_the_last_one_marked_stale(eng):
    app = make_app(eng, CLUSTER)
    healthy = eng.ceph_reader

    async def failing(cluster, names, extra):
        return {"error": "kvm-01: no monitor answered: timed out", "host": ""}

    async def check(pilot):
        await pilot.press("6", "c")
        await until(pilot, lambda: "HEALTH_OK" in text_of(app, "#ceph-head"))
        assert "STALE" not in text_of(app, "#ceph-head")
        eng.ceph_reader = failing
        await asyncio.to_thread(eng.call, eng._ceph_read(CLUSTER))
        await until(pilot, lambda: "STALE" in text_of(app, "#ceph-head"))
        assert "HEALTH_OK" in text_of(app, "#ceph-head")     # the last reading, marked
        assert "not refreshed: kvm-01: no monitor answered" in text_of(app, "#ceph-problems")
        eng.ceph_reader = healthy
        await asyncio.to_thread(eng.call, eng._ceph_read(CLUSTER))
        await until(pilot, lambda: "STALE" not in text_of(app, "#ceph-head"))

    run_app(app, check)


def test_an_old_reading_is_marked_stale(tmp_path):
    now = [FIXED]
    eng = ceph_engine(tmp_path / "inv.db", clock=lambda: now[0])
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        await pilot.press("6")
        await until(pilot, lambda: "read 0s ago" in text_of(app, "#ceph-compact"))
        eng.ceph_reader = None          # the next reads go to hosts that have no SSH
        now[0] = FIXED + 20
        app.screen.tick()
        assert "read 20s ago from kvm-01 · STALE" in text_of(app, "#ceph-compact")

    try:
        run_app(app, check)
    finally:
        eng.stop()


def test_a_cluster_without_ceph_has_no_ceph_tab(tmp_path):
    eng = ceph_engine(tmp_path / "inv.db", read=False)

    async def absent(cluster, names, extra):
        return {"absent": True, "host": "kvm-01"}
    eng.ceph_reader = absent
    eng.call(eng._ceph_read(CLUSTER))
    assert eng.ceph_present(CLUSTER) is False
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        tabs = app.screen.query_one("#tabs")
        assert tabs.get_tab("tab-ceph").has_class("-hidden")
        await pilot.press("6")
        assert app.screen.active_tab == "summary"
        assert any("has no Ceph" in m for m in messages(app))
        await pilot.press("2")
        assert "Decommission" not in footer_text(app)

    try:
        run_app(app, check)
    finally:
        eng.stop()


def test_ceph_not_read_yet_says_so(tmp_path):
    eng = ceph_engine(tmp_path / "inv.db", read=False)

    async def nobody(cluster, names, extra):
        return {"error": "no host of the cluster is up", "host": ""}
    eng.ceph_reader = nobody
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        await pilot.press("6")
        assert "not read yet" in text_of(app, "#ceph-compact")
        assert eng.ceph_present(CLUSTER) is None

    try:
        run_app(app, check)
    finally:
        eng.stop()


# ---- the decommission wizard ------------------------------------------------------------
def test_the_wizard_walks_a_whole_decommission(eng):
    """kvm-03 (osd.2 and a monitor) from the first step to "no longer part of Ceph":
    each step's exact commands in the dialog, then run in that order on the right host;
    step 5 waits while the data moves, with its progress, until Ceph settles."""
    eng.ceph.hold = True        # the data moves until the test says it has moved
    app = make_app(eng, CLUSTER)
    seen: list[str] = []

    async def check(pilot):
        screen = await open_wizard(pilot)
        assert "Next: step 4 of 11, Take osd.2 out" in text_of(app, "#decom-status")
        assert "✓ 2 Check room without the host" in text_of(app, "#decom-checks")
        assert "CRUSH weight 0 first" in text_of(app, "#decom-checks")
        while next_key(screen) is not None:
            key = next_key(screen)
            seen.append(key)
            plan_action = screen.plan.next
            await pilot.press("enter")
            assert isinstance(app.screen, ConfirmScreen)
            facts = app.screen.facts
            for cmd in plan_action.commands:
                assert f"$ {cmd}   (on a monitor host)" in facts
            for cmd in plan_action.on_host:
                assert f"$ {cmd}   (on kvm-03)" in facts
            before = len(eng.ceph.commands)
            await pilot.press("y")
            if key.startswith("wait:"):
                await until(pilot, lambda: "PGs clean 18/33" in text_of(app, "#decom-progress"))
                assert "safe to destroy: no" in text_of(app, "#decom-progress")
                assert next_key(screen) == key          # still waiting
                eng.ceph.settle()
            await until(pilot, lambda: not screen._step_running and not screen._fetching
                        and next_key(screen) != key)
            ran = [c for _h, c in eng.ceph.commands[before:]
                   if not c.startswith("ceph config-key")]
            assert ran == list(plan_action.commands + plan_action.on_host), key
        assert "Finished: kvm-03 is no longer part of Ceph." in text_of(app, "#decom-status")

    run_app(app, check, size=(120, 40))
    assert seen == ["out:2", "wait:2", "stop:2", "crush-remove:2", "mon-remove",
                    "crush-rm-host", "auth-del:2", "osd-rm:2"]
    hosts = {c: h for h, c in eng.ceph.commands}
    assert hosts["systemctl stop ceph-osd@2"] == "kvm-03"
    assert hosts["systemctl stop ceph-mon@kvm-03"] == "kvm-03"
    assert hosts["ceph osd rm osd.2"] is None
    s = eng.ceph_summary(CLUSTER)
    assert 2 not in {o.id for o in s.osds} and "kvm-03" not in s.quorum
    assert "kvm-03" not in {h.name for h in s.hosts}
    tasks = [t for t in eng.tasks(CLUSTER) if t.kind == "ceph.decommission"]
    assert len(tasks) == 8 and all(t.status is TaskStatus.SUCCEEDED for t in tasks)


def test_the_wizard_resumes_where_ceph_shows_it_stopped(eng):
    # Steps 4 and 5 ran from another console (or one that died).
    run_steps_until(eng, "stop:2")
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        screen = await open_wizard(pilot)
        status = text_of(app, "#decom-status")
        assert status.startswith("Resumed: Ceph shows steps done already")
        assert "Next: step 6 of 11, Stop osd.2's service" in status
        table = screen.query_one("#decom-steps", Listing).table
        states = {k: cell_text(table, k, "state") for k in ("out:2", "wait:2", "stop:2",
                                                              "osd-rm:2")}
        assert states == {"out:2": "done", "wait:2": "done", "stop:2": "next",
                          "osd-rm:2": "pending"}
        assert table.cursor_key == "stop:2"
        detail = text_of(app, "#decom-detail")
        assert "$ ceph osd out osd.2   (on a monitor host)" in detail
        assert "$ systemctl stop ceph-osd@2   (on kvm-03)" in detail

    run_app(app, check, size=(120, 40))


def test_the_wizard_follows_a_step_still_running(eng):
    run_steps_until(eng, "wait:2")
    eng.ceph.hold = True
    eng.ceph.start_moving()
    task = eng.call(eng._decom_step(CLUSTER, "kvm-03", "wait:2"))
    wait_for(lambda: "pgs_total" in eng.task(task.id).checkpoint, 10)
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        screen = await open_wizard(pilot)
        assert screen.task_id == task.id
        assert "A step runs" in text_of(app, "#decom-status")
        assert "PGs clean 18/33" in text_of(app, "#decom-progress")
        await pilot.press("enter")              # nothing else may run meanwhile
        assert not isinstance(app.screen, ConfirmScreen)
        eng.ceph.settle()
        await until(pilot, lambda: next_key(screen) == "stop:2")

    run_app(app, check, size=(120, 40))


def test_the_wizard_refuses_while_ceph_is_not_healthy(tmp_path):
    eng = ceph_engine(tmp_path / "inv.db", "osd_down")
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        screen = await open_wizard(pilot)
        status = text_of(app, "#decom-status")
        assert status.startswith("REFUSED: Ceph is not HEALTH_OK: OSD_DOWN: 1 osds down")
        assert "✗ 1 Check health: NO — HEALTH_WARN" in text_of(app, "#decom-checks")
        assert next_key(screen) is None
        assert "Run next step" not in footer_text(app)
        await pilot.press("enter")
        assert not isinstance(app.screen, ConfirmScreen)
        assert any(m.startswith("Refused: Ceph is not HEALTH_OK") for m in messages(app))

    try:
        run_app(app, check, size=(120, 40))
    finally:
        eng.stop()
    assert not any(c.startswith("ceph osd") for _h, c in eng.ceph.commands)


def test_the_wizard_refuses_when_too_few_hosts_would_be_left(eng):
    eng.ceph.set_pool_size("vms", 4)
    eng.call(eng._ceph_read(CLUSTER))
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        await open_wizard(pilot)
        assert ("REFUSED: pool vms keeps 4 copies on different hosts; without kvm-03 only "
                "3 hosts are left") in text_of(app, "#decom-status")

    run_app(app, check, size=(120, 40))


def test_a_host_not_in_maintenance_is_sent_there_first(eng):
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        await open_wizard(pilot, "kvm-01")
        assert ("REFUSED: kvm-01 still runs 1 VM(s): put it in maintenance first"
                in text_of(app, "#decom-status"))

    run_app(app, check, size=(120, 40))


def test_a_step_ceph_refuses_shows_cephs_words(eng):
    eng.ceph.refuse["ceph osd crush reweight"] = (1, "Error EPERM: access denied")
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        screen = await open_wizard(pilot)
        await pilot.press("enter", "y")
        await until(pilot, lambda: screen.task_id is not None and not screen._step_running
                    and not screen._fetching)
        head = text_of(app, "#decom-task-head")
        assert "failed" in head
        assert "`ceph osd crush reweight osd.2 0` was refused: EPERM: access denied" in head
        assert next_key(screen) == "out:2"          # Ceph shows it not done: still next

    run_app(app, check, size=(120, 40))


def test_a_plan_that_changed_meanwhile_runs_nothing(eng):
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        screen = await open_wizard(pilot)
        assert next_key(screen) == "out:2"
        # Someone on another admin box weights osd.2 to 0 while this screen shows step 4.
        eng.ceph.run("ceph osd crush reweight osd.2 0")
        await pilot.press("enter", "y")
        await until(pilot, lambda: screen.refused and not screen._fetching
                    and next_key(screen) == "wait:2")
        assert text_of(app, "#decom-status").startswith(
            "Not run: The plan changed: the next step is now Wait until osd.2's data has "
            "moved (wait:2), not out:2.")

    run_app(app, check, size=(120, 40))
    assert [c for _h, c in eng.ceph.commands if "reweight" in c] == \
        ["ceph osd crush reweight osd.2 0"]


def test_an_engine_error_is_said_on_screen(tmp_path):
    eng = ceph_engine(tmp_path / "inv.db", read=False)

    async def nobody(cluster, names, extra):
        return {"error": "no host of the cluster is up", "host": ""}
    eng.ceph_reader = nobody
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        app.open_decommission(CLUSTER, "kvm-03")
        await until(pilot, lambda: isinstance(app.screen, DecommissionScreen)
                    and app.screen.error)
        assert "hci has no Ceph that answers" in text_of(app, "#decom-status")

    try:
        run_app(app, check)
    finally:
        eng.stop()


def test_d_is_in_the_footer_for_a_host_in_maintenance_and_hidden_read_only(tmp_path):
    eng = ceph_engine(tmp_path / "inv.db")
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        await pilot.press("2")
        table = app.screen.query_one("#hosts", Listing).table
        table.move_cursor_to_key("kvm-01")
        await pilot.pause()
        assert "D Decommission" not in footer_text(app)   # a key still (the wizard says why)
        table.move_cursor_to_key("kvm-03")
        await pilot.pause()
        assert "D Decommission" in footer_text(app)
        await pilot.press("enter")                          # its host screen: the same
        assert "D Decommission" in footer_text(app)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert ("D", "Decommission") in app.screen.groups["This screen"]

    try:
        run_app(app, check)
    finally:
        eng.stop()
    ro = ceph_engine(tmp_path / "ro.db", readonly=True)
    app = make_app(ro, CLUSTER)

    async def check_ro(pilot):
        await pilot.press("2")
        app.screen.query_one("#hosts", Listing).table.move_cursor_to_key("kvm-03")
        await pilot.press("D")
        assert not isinstance(app.screen, DecommissionScreen)
        assert "Decommission" not in footer_text(app)

    try:
        run_app(app, check_ro)
    finally:
        ro.stop()


def test_help_and_palette_name_the_new_keys(eng):
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        await pilot.press("6", "question_mark")
        assert ("c ⏎", "Ceph screen") in app.screen.groups["This screen"]   # c or enter
        await pilot.press("escape")
        await open_wizard(pilot)
        await pilot.press("question_mark")
        rows = app.screen.groups["This screen"]
        assert ("enter", "Run next step") in rows or ("⏎", "Run next step") in rows
        assert ("r", "Read Ceph again") in rows
        await pilot.press("escape", "ctrl+p", *"Ceph of cluster")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, CephScreen))

    run_app(app, check, size=(120, 40))


# ---- maintenance: ok-to-stop and noout --------------------------------------------------
def test_maintenance_of_a_host_with_osds_shows_ok_to_stop_and_sets_noout(eng):
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        await pilot.press("2")
        app.screen.query_one("#hosts", Listing).table.move_cursor_to_key("kvm-04")
        await pilot.press("m")
        assert isinstance(app.screen, MaintenanceScreen)
        await until(pilot, lambda: "ok-to-stop" in text_of(app, "#maint-summary"))
        summary = text_of(app, "#maint-summary")
        assert "Ceph: ok-to-stop for osd.3: yes" in summary
        assert "noout: off" in summary and "n sets noout on osd.3" in summary
        assert "n noout" in footer_text(app)
        await pilot.press("n")
        assert "noout: on — set on osd.3 until kvm-04 leaves maintenance (expires in 120 " \
               "min)" in text_of(app, "#maint-summary")
        await pilot.press("m")
        assert isinstance(app.screen, TypeNameScreen)
        facts = str(app.screen.query_one(".dialog-facts", Static).render())
        assert "Ceph: noout on osd.3 until kvm-04 leaves maintenance" in facts
        app.screen.query_one("#host-name", Input).value = "kvm-04"
        await pilot.press("enter")
        await until(pilot, lambda: eng.ceph_noout_mark(CLUSTER, "kvm-04"))
        task = next(t for t in eng.tasks(CLUSTER) if t.kind == "host.maintenance.enter")
        await asyncio.to_thread(eng.call, eng.journal.wait(task.id), 30)

    run_app(app, check, size=(120, 40))
    assert ("ceph osd set-group noout kvm-04" in [c for _h, c in eng.ceph.commands])
    mark = eng.ceph_noout_mark(CLUSTER, "kvm-04")
    assert mark["expires"] == FIXED + 7200 and mark["osds"] == [3]
    assert eng.host(CLUSTER, "kvm-04").maintenance == IN_MAINTENANCE
    s = eng.ceph_summary(CLUSTER)
    noout = next(f for f in s.flags if f.name == "noout")
    assert flag_text(noout, FIXED, Palette()).plain.startswith(
        "noout on host kvm-04 · set by console · root@admin-1 0s ago for maintenance · "
        "expires in 2h 0m")


def test_maintenance_says_when_ceph_would_not_let_the_osds_stop(tmp_path):
    eng = ceph_engine(tmp_path / "inv.db", "osd_down")
    app = make_app(eng, CLUSTER)

    async def check(pilot):
        await pilot.press("2")
        app.screen.query_one("#hosts", Listing).table.move_cursor_to_key("kvm-02")
        await pilot.press("m")
        await until(pilot, lambda: "ok-to-stop" in text_of(app, "#maint-summary"))
        assert ("ok-to-stop for osd.1: NO — Error EBUSY: unsafe to stop osd(s) at this "
                "time (13 PGs are or would become offline)") in text_of(app, "#maint-summary")

    try:
        run_app(app, check, size=(120, 40))
    finally:
        eng.stop()


def test_maintenance_of_a_host_without_ceph_shows_nothing_of_it(mixed_engine):
    app = make_app(mixed_engine, "prod")

    async def check(pilot):
        await pilot.press("2", "enter", "m")
        await pilot.pause(0.3)
        assert "Ceph" not in text_of(app, "#maint-summary")
        assert "noout" not in footer_text(app)

    run_app(app, check)


def test_progress_text_reads_the_checkpoint():
    cp = {"pgs_total": 33, "pgs_clean": 18, "degraded": 33, "misplaced": 0,
          "bytes_per_sec": 2097742.0, "eta_seconds": 62.0, "clean_for": 7.2, "settle": 15.0,
          "safe": False, "safe_reason": "osd.2: PGs still mapped to it"}
    assert progress_text(cp, Palette()).plain == (
        "PGs clean 18/33 · degraded 33 · misplaced 0 · 2.0 MiB/s · ETA 1m 2s · clean for "
        "7 s of 15 s · safe to destroy: no (osd.2: PGs still mapped to it)")
    assert progress_text({"key": "x"}, Palette()) is None
    assert json.dumps(cp)    # a checkpoint is JSON, as the journal keeps it


# ---- raw used over time -----------------------------------------------------------------------
def test_each_reading_is_sampled_and_charted_on_the_ceph_screen(tmp_path):
    now = [FIXED]
    eng = ceph_engine(tmp_path / "inv.db", clock=lambda: now[0])
    app = make_app(eng, CLUSTER)

    def chart():
        return app.screen.query_one("#ceph-chart", DetailChart)

    def shown():
        c = chart().view.chart
        return [v for _, v in c.series[0].points] if c and c.series else []

    async def check(pilot):
        await pilot.press("6", "c")
        await until(pilot, lambda: "HEALTH_OK" in text_of(app, "#ceph-head"))
        first = eng.ceph_summary(CLUSTER)
        assert 0 < first.raw_used_pct < 100
        await until(pilot, lambda: len(shown()) == 1)
        assert shown()[0] == pytest.approx(first.raw_used_pct, abs=0.05)   # 0.1 % steps
        assert "Raw used" in chart().query_one(RangeBar).render().plain
        # Five seconds on, Ceph reads again (a backfill's numbers): a second point.
        now[0] = FIXED + 5
        eng.ceph.load("backfilling")
        await asyncio.to_thread(eng.call, eng._ceph_read(CLUSTER))
        await until(pilot, lambda: len(shown()) == 2)
        # A reading that fails adds nothing: the chart does not pretend Ceph answered.
        eng.ceph_reader = failing_reader
        now[0] = FIXED + 10
        await asyncio.to_thread(eng.call, eng._ceph_read(CLUSTER))
        await until(pilot, lambda: "STALE" in text_of(app, "#ceph-head"))
        await pilot.pause(0.2)
        assert len(shown()) == 2
        # M: raw used in MiB, then client read and write; [ ]: the range.
        await pilot.press("M")
        assert chart().metric == "raw_used_mib"
        await until(pilot, lambda: shown() and shown()[0] == pytest.approx(
            first.raw_used_bytes / 2**20, abs=1))
        await pilot.press("M", "M")
        assert chart().metric == "client_wr_bps"
        await pilot.press("right_square_bracket")
        assert chart().view.chart.range == "1d"

    try:
        run_app(app, check, size=(120, 44))
    finally:
        eng.stop()


async def failing_reader(cluster, names, extra):
    return {"error": "kvm-01: no monitor answered: timed out", "host": ""}


def test_cephs_history_from_the_cli(tmp_path, capsys):
    eng = ceph_engine(tmp_path / "inv.db", clock=time.time)      # the CLI reads up to now
    raw = eng.ceph_summary(CLUSTER).raw_used_pct
    eng.stop()
    inv = ["--inventory", str(tmp_path / "inv.db")]
    assert main([*inv, "metrics", "ceph", CLUSTER, "--since", "15m", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "ceph" and doc["name"] == CLUSTER
    assert doc["metrics"]["raw_used_pct"][-1][1] == pytest.approx(raw, abs=0.05)
    assert set(doc["metrics"]) == {"raw_used_pct", "raw_used_mib", "client_rd_bps",
                                   "client_wr_bps"}
    assert main([*inv, "metrics", "ceph", CLUSTER]) == 0
    assert "Raw used" in capsys.readouterr().out
    assert main([*inv, "metrics", "ceph", "nosuch"]) == 3
    assert "nosuch" in capsys.readouterr().err
    assert main([*inv, "metrics", "ceph", CLUSTER, "--metric", "cpu_pct"]) == 2
    assert "no ceph metric 'cpu_pct'" in capsys.readouterr().err
