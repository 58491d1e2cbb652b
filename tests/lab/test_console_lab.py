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
