"""The console's Manage Placement dialog, migration progress and maintenance mode,
driven by keys (Textual pilot) over scripted hosts (tests/moves_world.py)."""
from __future__ import annotations


import pytest

from mvmtui.engine.model import ENTERING, IN_MAINTENANCE, Strategy, TaskStatus, VmState
from mvmtui.screens.cluster import ClusterScreen
from mvmtui.screens.confirm import ConfirmScreen
from mvmtui.screens.maintenance import MaintenanceScreen, TypeNameScreen
from mvmtui.screens.placement import PlacementScreen
from mvmtui.screens.task import TaskScreen
from mvmtui.widgets.listing import Listing
from textual.widgets import Checkbox, OptionList, RadioSet, Static

from conftest import live_engine, make_app, run_app, until, uuid_of
from moves_world import CACHE_01, DB_01, WEB_01, moves_engine
from test_console import cell_text


@pytest.fixture
def eng(inventory_path):
    e = moves_engine(inventory_path)
    yield e
    e.stop()


@pytest.fixture
def pinned(inventory_path):
    e = moves_engine(inventory_path, pinned=True)
    yield e
    e.stop()


def messages(app) -> list[str]:
    return [n.message for n in app._notifications]


def plan_text(app) -> str:
    return str(app.screen.query_one("#plan", Static).render())


def error_text(app) -> str:
    box = app.screen.query_one("#placement-error", Static)
    return str(box.render()) if box.display else ""


async def open_placement(pilot, name: str) -> PlacementScreen:
    await pilot.press("3", "slash", "ctrl+u", *name, "enter", "P")
    await pilot.pause()
    assert isinstance(pilot.app.screen, PlacementScreen)
    return pilot.app.screen


# ---- Manage Placement -----------------------------------------------------------------
def test_placement_dialog_lists_every_other_host_with_its_fit_or_why_not(inventory_path):
    eng = live_engine(inventory_path)      # local storage only: nothing fits as it is
    app = make_app(eng, "prod")

    async def check(pilot):
        screen = await open_placement(pilot, "web-01")
        hosts = screen.query_one("#hosts", OptionList)
        options = [hosts.get_option_at_index(i) for i in range(hosts.option_count)]
        assert [o.id for o in options][1:] == ["kvm-02", "kvm-03"]
        kvm02, kvm03 = (str(o.prompt) for o in options[1:])
        assert "no: disk vda (/var/lib/libvirt/images/web-01.qcow2) is on storage only " \
               "kvm-01 sees: copy the storage to move it" in kvm02
        assert "no: unreachable" in kvm03
        assert all(o.disabled for o in options[1:])
        assert "Nothing to change" in plan_text(app)
        # Copying the storage makes kvm-02 fit, as the planner's choice.
        screen.query_one("#copy-storage", Checkbox).value = True
        await pilot.pause()
        kvm02 = hosts.get_option("kvm-02")
        assert not kvm02.disabled and "fits · best: kvm-02 has the most room" in str(kvm02.prompt)
        await pilot.press("down")
        assert screen.target == "kvm-02"
        assert plan_text(app).startswith("Migrate web-01 live from kvm-01 to kvm-02: it "
                                         "keeps running while its memory and its disks")

    try:
        run_app(app, check, size=(80, 24))
    finally:
        eng.stop()


def test_placement_moves_a_running_vm_live_and_it_shows_on_the_target(eng):
    app = make_app(eng, "prod")

    async def check(pilot):
        screen = await open_placement(pilot, "web-01")
        assert not screen.query("#copy-storage")                    # shared storage
        await pilot.press("down")                                    # kvm-02
        await pilot.press("a")
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.body.startswith("Migrate web-01 live from kvm-01 to kvm-02")
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, TaskScreen))
        task = app.screen.entry
        assert task.kind == "vm.migrate" and task.title == "Migrate web-01 to kvm-02"
        await app.workers.wait_for_complete()
        await pilot.pause(0.3)
        assert eng.task(task.id).status is TaskStatus.SUCCEEDED
        assert eng.vm(WEB_01).host == "kvm-02"
        assert messages(app)[-1] == ("Migrate web-01 to kvm-02: done — web-01 runs on "
                                     "kvm-02")
        # The task screen shows libvirt's last figures; the VMs table the new host.
        gauge = app.screen.query_one("#g-migration")
        assert gauge.display and "4.0 / 4.0 GiB" in gauge.detail
        await pilot.press("escape")
        assert isinstance(app.screen, ClusterScreen)
        table = app.screen.query_one("#vms", Listing).table
        await until(pilot, lambda: cell_text(table, WEB_01, "host") == "kvm-02")

    run_app(app, check, size=(80, 24))


def test_placement_changes_the_strategy_only(eng):
    app = make_app(eng, "prod")

    async def check(pilot):
        screen = await open_placement(pilot, "db-01")
        radio = screen.query_one("#strategy", RadioSet)
        radio.focus()
        await pilot.press("right", "enter")                         # Failover
        assert screen.strategy is Strategy.FAILOVER
        assert plan_text(app) == "Placement auto → failover."
        await pilot.press("a", "y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not isinstance(app.screen, (PlacementScreen, ConfirmScreen))
        assert eng.vm(DB_01).strategy is Strategy.FAILOVER and eng.vm(DB_01).host == "kvm-01"
        assert messages(app)[-1] == "Placement of db-01: now failover."

    run_app(app, check, size=(80, 24))


def test_placement_refusals_stay_in_the_dialog_and_change_nothing(pinned):
    app = make_app(pinned, "prod")
    before = len(pinned.tasks())

    async def check(pilot):
        screen = await open_placement(pilot, "web-01")              # pinned to kvm-01
        await pilot.press("down")
        assert "A pinned VM never moves" in plan_text(app)
        await pilot.press("a")
        assert isinstance(app.screen, PlacementScreen)               # no question asked
        assert "A pinned VM never moves" in error_text(app)
        assert "Nothing was changed." in error_text(app)
        # A running VM may be shut down first, then moved offline (and started after).
        await pilot.press("escape")
        screen = await open_placement(pilot, "db-01")
        screen.query_one("#wait-shutdown", Checkbox).value = True
        await pilot.pause()
        assert not screen.query_one("#start-after", Checkbox).disabled
        await pilot.press("down")
        assert plan_text(app).startswith("Shut db-01 down (ACPI; it waits for the guest), "
                                         "then move offline from kvm-01 to kvm-02")

    run_app(app, check, size=(80, 24))
    assert len(pinned.tasks()) == before
    assert pinned.vm(WEB_01).host == "kvm-01"


def test_an_engine_refusal_at_apply_is_shown_in_the_dialog(eng, monkeypatch):
    from mvmtui.engine.errors import Busy

    app = make_app(eng, "prod")

    async def refuse(req, parent=None):
        raise Busy("web-01 is busy with Shut down web-01 (task 42)")
    monkeypatch.setattr(eng, "migrate_vm", refuse)

    async def check(pilot):
        await open_placement(pilot, "web-01")
        await pilot.press("down", "a", "y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, PlacementScreen)
        assert error_text(app) == ("web-01 is busy with Shut down web-01 (task 42) "
                                   "Nothing was changed.")

    run_app(app, check, size=(80, 24))
    assert eng.vm(WEB_01).host == "kvm-01"


# ---- maintenance -------------------------------------------------------------------------
def test_maintenance_preview_is_blocked_by_a_running_pinned_vm_until_it_is_shut_down(pinned):
    app = make_app(pinned, "prod")

    async def check(pilot):
        await pilot.press("2", "m")                                  # kvm-01
        screen = app.screen
        assert isinstance(screen, MaintenanceScreen)
        table = screen.query_one("#moves", Listing).table
        assert cell_text(table, WEB_01, "method") == "BLOCKED"
        assert "pinned to kvm-01" in cell_text(table, WEB_01, "reason")
        assert cell_text(table, DB_01, "method") == "live"
        assert cell_text(table, CACHE_01, "method") == "offline"
        assert table.cursor_key == WEB_01                             # the block, in view
        summary = str(screen.query_one("#maint-summary", Static).render())
        assert "Entering is refused while 1 VM is blocked" in summary
        detail = str(screen.query_one("#move-detail", Static).render())
        assert "Ways out: shut it down (d); change its strategy (P Placement)." in detail
        await pilot.press("m")                                       # refused
        assert app.screen is screen
        assert "kvm-01 cannot enter maintenance: web-01 is blocked" in messages(app)[-1]
        # The row's ways out: d shuts it down (asks first) ...
        assert screen.check_action("vm_action", ("shutdown",))
        assert screen.check_action("vm_action", ("placement",))
        assert not screen.check_action("vm_action", ("destroy",))
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await until(pilot, lambda: cell_text(table, WEB_01, "method") == "stays")
        assert "m enters maintenance" in str(screen.query_one("#maint-summary",
                                                              Static).render())
        await pilot.press("m")
        assert isinstance(app.screen, TypeNameScreen)

    run_app(app, check, size=(80, 24))
    assert pinned.vm(WEB_01).state is VmState.SHUTOFF
    assert pinned.host("prod", "kvm-01").maintenance == ""


def test_a_blocked_vm_s_placement_is_changed_from_the_preview(pinned):
    app = make_app(pinned, "prod")

    async def check(pilot):
        await pilot.press("2", "m", "P")                           # web-01's placement
        screen = app.screen
        assert isinstance(screen, PlacementScreen) and screen.uuid == WEB_01
        screen.query_one("#strategy", RadioSet).focus()
        await pilot.press("left", "enter")                          # Failover
        await pilot.press("a", "y")
        await app.workers.wait_for_complete()
        assert isinstance(app.screen, MaintenanceScreen)
        table = app.screen.query_one("#moves", Listing).table
        await until(pilot, lambda: cell_text(table, WEB_01, "method") == "live")
        assert not app.screen.preview.blocked

    run_app(app, check, size=(80, 24))
    assert pinned.vm(WEB_01).strategy is Strategy.FAILOVER


def test_entering_asks_for_the_typed_name_then_enters_and_leaves(inventory_path):
    eng = moves_engine(inventory_path, migration_seconds=1.5)
    app = make_app(eng, "prod")

    def status(table) -> str:
        return cell_text(table, "kvm-01", "status")

    async def check(pilot):
        await pilot.press("2", "m", "m")
        dialog = app.screen
        assert isinstance(dialog, TypeNameScreen)
        facts = str(dialog.query_one(".dialog-facts", Static).render())
        assert facts.startswith("3 VMs move off kvm-01: cache-01 → kvm-02 (offline), "
                                "db-01 → kvm-02 (live), web-01 → kvm-02 (live).")
        await pilot.press(*"kvm-0", "enter")                         # not the name
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen is dialog
        assert str(dialog.query_one("#type-name-error", Static).render()) == (
            "Type the host's name, kvm-01, to confirm; nothing was changed.")
        assert eng.host("prod", "kvm-01").maintenance == ""
        await pilot.press("1", "enter")                             # kvm-01
        await until(pilot, lambda: isinstance(app.screen, ClusterScreen))
        table = app.screen.query_one("#hosts", Listing).table
        await until(pilot, lambda: status(table).startswith("up · entering"))
        assert eng.host("prod", "kvm-01").maintenance == ENTERING
        await until(pilot, lambda: status(table) == "up · maintenance", timeout=20)
        assert eng.host("prod", "kvm-01").maintenance == IN_MAINTENANCE
        assert not eng.vms("prod", host="kvm-01")
        await until(pilot, lambda: any("kvm-01 is in maintenance" in m for m in messages(app)))
        # The task: a parent with a child per move.
        parent = next(t for t in eng.tasks("prod") if t.kind == "host.maintenance.enter")
        assert parent.status is TaskStatus.SUCCEEDED
        assert len(eng.task_children(parent.id)) == 3
        # Leaving: the same key, with the bring-back preview.
        await pilot.press("m")
        screen = app.screen
        assert isinstance(screen, MaintenanceScreen) and screen.leaving
        assert len(screen.preview.moves) == 3
        await pilot.press("m", "y")
        await until(pilot, lambda: isinstance(app.screen, ClusterScreen))
        await until(pilot, lambda: len(eng.vms("prod", host="kvm-01")) == 3, timeout=20)
        await until(pilot, lambda: status(table) == "up")

    try:
        run_app(app, check, size=(80, 24))
    finally:
        eng.stop()


def test_m_on_a_host_entering_maintenance_opens_its_task(inventory_path):
    eng = moves_engine(inventory_path, migration_seconds=1.5)
    app = make_app(eng, "prod")

    async def check(pilot):
        task = await eng.enter_maintenance("prod", "kvm-01", confirm="kvm-01")
        await until(pilot, lambda: eng.host("prod", "kvm-01").maintenance == ENTERING)
        await pilot.press("2", "m")
        assert isinstance(app.screen, TaskScreen) and app.screen.task_id == task.id
        children = app.screen.query_one("#children", Listing)
        await until(pilot, lambda: children.display and children.table.total_count >= 2)
        await until(pilot, lambda: eng.task(task.id).status.finished, timeout=20)
        await until(pilot, lambda: children.table.total_count == 3)

    try:
        run_app(app, check, size=(80, 24))
    finally:
        eng.stop()


def test_read_only_offers_neither_placement_nor_maintenance(readonly_engine):
    app = make_app(readonly_engine, "prod")

    async def check(pilot):
        await pilot.press("3")
        assert not app.screen.check_action("vm_action", ("placement",))
        await pilot.press("P")
        assert not isinstance(app.screen, PlacementScreen)
        await pilot.press("2")
        assert not app.screen.check_action("maintenance", ())
        await pilot.press("m")
        assert isinstance(app.screen, ClusterScreen)

    run_app(app, check, size=(80, 24))


def test_a_host_left_entering_by_a_failed_move_offers_enter_again_or_leave(eng):
    eng.world.hosts[("prod", "kvm-02")].refuses_incoming = (
        "operation failed: migration job: unexpectedly failed")
    app = make_app(eng, "prod")

    async def check(pilot):
        task = await eng.enter_maintenance("prod", "kvm-01", confirm="kvm-01")
        end = await eng.wait_task(task.id)
        assert end.status is TaskStatus.FAILED
        assert eng.host("prod", "kvm-01").maintenance == ENTERING
        await pilot.press("2")
        table = app.screen.query_one("#hosts", Listing).table
        await until(pilot, lambda: cell_text(table, "kvm-01", "status") == "up · entering")
        await pilot.press("m")                  # no task runs: the preview, not a task
        screen = app.screen
        assert isinstance(screen, MaintenanceScreen) and not screen.leaving
        summary = str(screen.query_one("#maint-summary", Static).render())
        assert "m enters again, M leaves maintenance instead" in summary
        assert screen.check_action("switch", ()) and screen.check_action("go", ("enter",))
        await pilot.press("M")
        assert screen.leaving and screen.check_action("go", ("leave",))
        await pilot.press("m", "y")
        await until(pilot, lambda: eng.host("prod", "kvm-01").maintenance == "")
        await app.workers.wait_for_complete()
        assert any("kvm-01 is back in the placement pool" in m for m in messages(app))

    run_app(app, check, size=(80, 24))
