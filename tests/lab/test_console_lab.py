"""The console on the live lab: start a VM from the keyboard and watch it change."""
from __future__ import annotations

import asyncio

from mvmtui.app import MvmApp
from mvmtui.screens.cluster import ClusterScreen
from mvmtui.screens.confirm import ConfirmScreen
from mvmtui.widgets.listing import Listing


def _state(table, key):
    index = [c.key for c in table.columns].index("state")
    row = next(r for r in table._view if r.key == key)
    cell = row.cells[index]
    return getattr(cell, "plain", str(cell))


async def _until(pilot, predicate, timeout):
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"not true within {timeout} s")


def test_start_and_force_off_a_lab_vm_from_the_console(engine, lab_cluster):
    vm = engine.find_vm("staging-01", lab_cluster.name)
    app = MvmApp(engine, start_cluster=lab_cluster.name)
    app.animation_level = "none"

    async def go():
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, ClusterScreen)
            await pilot.press("3", "slash", *"staging", "enter")
            table = app.screen.query_one("#vms", Listing).table
            assert table.cursor_key == vm.uuid
            assert _state(table, vm.uuid) == "shut off"
            await pilot.press("s")                              # start: no question asked
            await _until(pilot, lambda: _state(table, vm.uuid) == "running", 15)
            assert lab_cluster.lab.virsh("kvm-03", "domstate", "staging-01").stdout.strip() \
                == "running"
            await pilot.press("F")                              # force off asks first
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            assert "Force off staging-01" in app.screen.title_text + app.screen.body
            assert _state(table, vm.uuid) == "running"          # nothing happened yet
            await pilot.press("y")
            await _until(pilot, lambda: _state(table, vm.uuid) == "shut off", 15)
            await pilot.press("4")                              # History shows both tasks
            await pilot.pause(0.3)
            titles = [t.title for t in engine.tasks(target=vm.uuid, limit=2)]
            assert titles == ["Force off staging-01", "Start staging-01"]

    asyncio.run(go())


def test_manage_placement_migrates_a_lab_vm_live_from_the_keyboard(engine, lab_cluster):
    """P on a running VM, the best host, apply, yes: the task screen follows the
    migration and the VM then runs on the target, as virsh there says."""
    from mvmtui.engine.model import MoveRequest, TaskStatus
    from mvmtui.screens.placement import PlacementScreen
    from mvmtui.screens.task import TaskScreen
    lab = lab_cluster.lab
    vm = engine.find_vm("db-02", lab_cluster.name)
    if not vm.state.active:
        asyncio.run(engine.vm_action(vm.uuid, "start"))
    home = engine.vm(vm.uuid).host
    best = next(f.host for f in engine.placement_options(vm.uuid) if f.best)
    app = MvmApp(engine, start_cluster=lab_cluster.name)
    app.animation_level = "none"

    async def go():
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.pause()
            await pilot.press("3", "slash", *"db-02", "enter")
            await pilot.press("P")
            await pilot.pause(0.3)
            assert isinstance(app.screen, PlacementScreen)
            await pilot.press("down", "a")                      # the best host is first
            await pilot.pause(0.3)
            assert isinstance(app.screen, ConfirmScreen)
            assert f"to {best}" in app.screen.body
            await pilot.press("y")
            await _until(pilot, lambda: isinstance(app.screen, TaskScreen), 10)
            await _until(pilot, lambda: engine.tasks(target=vm.uuid, limit=1)[0]
                         .status.finished, 60)
    asyncio.run(go())
    t = engine.tasks(target=vm.uuid, limit=1)[0]
    assert t.kind == "vm.migrate" and t.status is TaskStatus.SUCCEEDED, t.error
    assert lab.virsh(best, "domstate", "db-02").stdout.strip() == "running"
    back = asyncio.run(engine.wait_task(asyncio.run(
        engine.migrate_vm(MoveRequest(vm.uuid, home))).id))
    assert back.status is TaskStatus.SUCCEEDED, back.error
