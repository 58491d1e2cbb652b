"""Moving workloads (issue 7) over scripted hosts: live and offline moves, refusals,
cancel, a host lost mid-move, maintenance preview / enter / leave. The engine's real
code runs (links, journal, planner); the hosts are plain state (engine.scripted).
The same capabilities are tried on the real lab in tests/lab/test_moving_lab.py."""
from __future__ import annotations

import asyncio
import time

import pytest

from mvmtui.engine import EngineError
from mvmtui.engine.model import (ENTERING, IN_MAINTENANCE, MoveRequest, Strategy, TaskStatus,
                                 VmState)

from test_engine_truth import _engine, _inventory, _vm, _wait

A, B, C, P = (f"00000000-0000-4000-8000-0000000001{i:02d}" for i in range(4))


@pytest.fixture
def world():
    from mvmtui.engine.scripted import ScriptedWorld
    w = ScriptedWorld(migration_seconds=0.3)
    w.add_host("sim", "hv-1", cpus=8, memory_mib=16384,
               vms=[_vm(A, "web-01"), _vm(B, "db-01", VmState.SHUTOFF, vcpus=2),
                    _vm(P, "pin-01", VmState.SHUTOFF, strategy=Strategy.PINNED, home="hv-1")])
    w.add_host("sim", "hv-2", cpus=8, memory_mib=16384, vms=[_vm(C, "cache-01")])
    w.add_host("sim", "hv-3", cpus=8, memory_mib=16384)
    return w


@pytest.fixture
def eng(tmp_path, world):
    e = _engine(_inventory(tmp_path / "inv.db", hosts=("hv-1", "hv-2", "hv-3")), world)
    yield e
    e.stop()


def _move(eng, req: MoveRequest):
    task = asyncio.run(eng.migrate_vm(req))
    return asyncio.run(eng.wait_task(task.id))


def test_a_running_vm_migrates_live_and_the_target_confirms_it(eng, world):
    t = _move(eng, MoveRequest(A, "hv-3"))
    assert t.status is TaskStatus.SUCCEEDED, t.error
    assert t.kind == "vm.migrate" and t.checkpoint["phase"] == "done"
    assert t.checkpoint["progress"]["remaining"] == 0       # the bar ends full
    assert A in world.hosts[("sim", "hv-3")].vms and A not in world.hosts[("sim", "hv-1")].vms
    _wait(lambda: eng.vm(A).host == "hv-3")
    assert eng.vm(A).state is VmState.RUNNING
    assert eng.saved_definition(A) is not None               # kept to re-define it later
    assert any("hv-3 shows web-01 running" in log.message for log in t.logs)


def test_progress_is_written_while_it_migrates(eng, world):
    world.migration_seconds = 2.0
    task = asyncio.run(eng.migrate_vm(MoveRequest(A, "hv-2")))
    prog = _wait(lambda: eng.migration_progress(eng.task(task.id)), 5)
    assert prog.total and prog.processed <= prog.total
    assert asyncio.run(eng.wait_task(task.id)).status is TaskStatus.SUCCEEDED


def test_the_destination_refusing_is_said_in_libvirts_words_and_the_vm_stays(eng, world):
    world.hosts[("sim", "hv-3")].refuses_incoming = (
        "internal error: process exited while connecting to monitor: cannot allocate memory")
    t = _move(eng, MoveRequest(A, "hv-3"))
    assert t.status is TaskStatus.FAILED
    assert "cannot allocate memory" in t.error and "web-01 is on hv-1 (running)" in t.error
    assert eng.vm(A).host == "hv-1" and A in world.hosts[("sim", "hv-1")].vms


def test_cancel_aborts_the_migration_job_and_the_vm_stays_on_its_source(eng, world):
    world.migration_seconds = 5.0
    task = asyncio.run(eng.migrate_vm(MoveRequest(A, "hv-2")))
    _wait(lambda: eng.task(task.id).cancellable)
    asyncio.run(eng.cancel_task(task.id))
    t = asyncio.run(eng.wait_task(task.id))
    assert t.status is TaskStatus.CANCELLED and "web-01 is on hv-1" in t.error
    assert A in world.hosts[("sim", "hv-1")].vms


def test_a_source_lost_mid_migration_is_not_guessed_about(eng, world):
    world.migration_seconds = 5.0
    task = asyncio.run(eng.migrate_vm(MoveRequest(A, "hv-2")))
    _wait(lambda: eng.task(task.id).cancellable)
    world.power_cut("sim", "hv-1")
    t = asyncio.run(eng.wait_task(task.id))
    assert t.status is TaskStatus.FAILED
    assert "hv-1 did not answer" in t.error and "unknown" in t.error
    assert A not in world.hosts[("sim", "hv-2")].vms     # never on two hosts


def test_an_offline_move_defines_on_the_target_undefines_on_the_source_and_starts(eng, world):
    t = _move(eng, MoveRequest(B, "hv-2", start_after=True))
    assert t.status is TaskStatus.SUCCEEDED, t.error
    assert t.kind == "vm.move"
    assert B not in world.hosts[("sim", "hv-1")].vms
    assert world.hosts[("sim", "hv-2")].vms[B].state is VmState.RUNNING
    _wait(lambda: eng.vm(B).host == "hv-2" and eng.vm(B).state is VmState.RUNNING)


def test_wait_shutdown_stops_a_running_vm_then_moves_it_offline(eng, world):
    t = _move(eng, MoveRequest(A, "hv-3", wait_shutdown=True))
    assert t.status is TaskStatus.SUCCEEDED, t.error
    assert [s.name for s in t.steps][0] == "Shut down"
    assert world.hosts[("sim", "hv-3")].vms[A].state is VmState.SHUTOFF


def test_refusals_say_why_and_change_nothing(eng, world):
    with pytest.raises(EngineError, match="pinned to hv-1"):
        eng.check_move(MoveRequest(P, "hv-2"))
    with pytest.raises(EngineError, match="on hv-1 already"):
        eng.check_move(MoveRequest(A, "hv-1"))
    with pytest.raises(EngineError, match="--wait-shutdown"):
        eng.check_move(MoveRequest(A, "hv-2", offline=True))
    big = _vm("00000000-0000-4000-8000-000000000199", "big-01", memory_mib=15000)
    world.hosts[("sim", "hv-1")].vms[big.uuid] = big.__class__(**{**big.__dict__,
                                                                  "host": "hv-1"})
    asyncio.run(eng.refresh("sim"))
    fits = {f.host: f for f in eng.placement_options(big.uuid)}
    assert "needs 15000 MiB" in fits["hv-2"].why_not
    assert not eng.tasks(target=big.uuid)


def test_maintenance_preview_is_blocked_by_a_running_pinned_vm(eng, world):
    asyncio.run(eng.vm_action(P, "start"))
    preview = eng.maintenance_preview("sim", "hv-1")
    blocked = {r.name: r for r in preview.blocked}
    assert "pin-01" in blocked and "shut it down" in blocked["pin-01"].ways_out
    with pytest.raises(EngineError, match="cannot enter maintenance"):
        asyncio.run(eng.enter_maintenance("sim", "hv-1", "hv-1"))
    assert not eng.host("sim", "hv-1").maintenance            # nothing changed
    asyncio.run(eng.vm_action(P, "destroy"))
    preview = eng.maintenance_preview("sim", "hv-1")
    assert not preview.blocked
    assert {r.name: r.method for r in preview.rows} == {
        "web-01": "live", "db-01": "offline", "pin-01": "stays"}


def test_entering_maintenance_empties_the_host_then_marks_it(eng, world):
    with pytest.raises(EngineError, match="Type the host's name"):
        asyncio.run(eng.enter_maintenance("sim", "hv-1", "hv-2"))
    world.migration_seconds = 1.0
    preview = eng.maintenance_preview("sim", "hv-1")
    task = asyncio.run(eng.enter_maintenance("sim", "hv-1", "hv-1"))
    # Out of the pool from the first second, "in maintenance" only once empty.
    _wait(lambda: eng.host("sim", "hv-1").maintenance == ENTERING)
    assert "in maintenance" in {f.host: f.why_not for f in eng.placement_options(C)}["hv-1"]
    t = asyncio.run(eng.wait_task(task.id))
    assert t.status is TaskStatus.SUCCEEDED, t.error
    assert eng.host("sim", "hv-1").maintenance == IN_MAINTENANCE
    kids = eng.task_children(t.id)
    assert sorted(k.target_name for k in kids) == ["db-01", "web-01"]
    assert all(k.parent == t.id and k.status is TaskStatus.SUCCEEDED for k in kids)
    # The preview said where each would go; that is where each went.
    for row in preview.moves:
        assert row.vm in world.hosts[("sim", row.target)].vms
    assert set(world.hosts[("sim", "hv-1")].vms) == {P}     # the pinned, stopped one stays

    back = eng.return_preview("sim", "hv-1")
    assert sorted(r.name for r in back.moves) == ["db-01", "web-01"]
    t = asyncio.run(eng.wait_task(asyncio.run(
        eng.leave_maintenance("sim", "hv-1", bring_back=True)).id))
    assert t.status is TaskStatus.SUCCEEDED, t.error
    assert not eng.host("sim", "hv-1").maintenance
    assert {A, B, P} <= set(world.hosts[("sim", "hv-1")].vms)


def test_a_failed_move_leaves_the_host_entering_and_says_which(eng, world):
    world.hosts[("sim", "hv-2")].refuses_incoming = "no space left on device"
    world.hosts[("sim", "hv-3")].refuses_incoming = "no space left on device"
    t = asyncio.run(eng.wait_task(asyncio.run(
        eng.enter_maintenance("sim", "hv-1", "hv-1")).id))
    assert t.status is TaskStatus.FAILED
    assert "0 of 2 VMs moved" in t.error and "no space left on device" in t.error
    assert eng.host("sim", "hv-1").maintenance == ENTERING     # still out of the pool
    assert {A, B} <= set(world.hosts[("sim", "hv-1")].vms)


# ---- a console that died mid-move: the next start finishes or undoes it ---------------
def _dead_move(path, vm_uuid, name, source, target, method="live"):
    """A move task left running by a process that no longer exists."""
    from mvmtui.engine.inventory import Inventory
    from mvmtui.engine.model import Task, TaskStep
    inv = Inventory(path)
    tid = inv.create_task(Task(id=0, kind="vm.migrate" if method == "live" else "vm.move",
                               title=f"Migrate {name} to {target}", cluster="sim",
                               target_kind="vm", target=vm_uuid, target_name=name,
                               host=source, status=TaskStatus.RUNNING,
                               steps=(TaskStep(0, "Check both hosts"),
                                      TaskStep(1, "Migrate live"))),
                          {"source": source, "target": target, "method": method},
                          owner="999999:0")
    inv.close()
    return tid


@pytest.mark.parametrize("on, status, words", [
    (("hv-2",), TaskStatus.SUCCEEDED, "the move was completed"),
    (("hv-1",), TaskStatus.ROLLED_BACK, "nothing moved"),
    (("hv-1", "hv-2"), TaskStatus.SUCCEEDED, "stopped copy on hv-1 is undefined"),
])
def test_an_interrupted_move_is_decided_from_what_the_hosts_show(tmp_path, world, on, status,
                                                                 words):
    path = _inventory(tmp_path / "inv.db", hosts=("hv-1", "hv-2", "hv-3"))
    vm = world.hosts[("sim", "hv-1")].vms.pop(A)
    for host in on:   # a second copy is the stopped one a half-done move leaves behind
        world.hosts[("sim", host)].vms[A] = vm.__class__(**{
            **vm.__dict__, "host": host,
            "state": VmState.RUNNING if host == on[-1] else VmState.SHUTOFF})
    tid = _dead_move(path, A, "web-01", "hv-1", "hv-2")
    eng = _engine(path, world)
    try:
        t = _wait(lambda: (x := eng.task(tid)).checkpoint.get("recovered") and x)
        assert t.status is status and words in t.logs[-1].message, t.logs[-1].message
        assert sum(A in world.hosts[("sim", h)].vms for h in ("hv-1", "hv-2")) == 1
    finally:
        eng.stop()


def test_an_interrupted_move_of_a_vm_neither_host_lists_re_defines_it(tmp_path, world):
    from mvmtui.engine.inventory import Inventory
    from mvmtui.engine.scripted import _definition
    path = _inventory(tmp_path / "inv.db", hosts=("hv-1", "hv-2", "hv-3"))
    vm = world.hosts[("sim", "hv-1")].vms.pop(A)
    inv = Inventory(path)
    inv.save_definitions([(vm.__class__(**{**vm.__dict__, "host": "hv-1", "cluster": "sim",
                                          "definition": _definition(vm)}), "x", 0.0)])
    inv.close()
    tid = _dead_move(path, A, "web-01", "hv-1", "hv-2")
    eng = _engine(path, world)
    try:
        t = _wait(lambda: (x := eng.task(tid)).checkpoint.get("recovered") and x)
        assert t.status is TaskStatus.ROLLED_BACK and "re-defined" in t.logs[-1].message
        assert world.hosts[("sim", "hv-1")].vms[A].state is VmState.SHUTOFF
    finally:
        eng.stop()


# ---- two consoles, two inventories, one cluster: the locks live on the hosts -----------
def test_a_second_console_is_refused_by_the_lock_on_the_host_naming_the_holder(tmp_path, world):
    from mvmtui.engine.tasks import Busy
    world.migration_seconds = 3.0
    one = _engine(_inventory(tmp_path / "one.db", hosts=("hv-1", "hv-2", "hv-3")), world,
                  actor="console")
    two = _engine(_inventory(tmp_path / "two.db", hosts=("hv-1", "hv-2", "hv-3")), world,
                  actor="cli")
    try:
        first = asyncio.run(one.migrate_vm(MoveRequest(A, "hv-2")))
        with pytest.raises(Busy, match=r"busy on hv-1 with Migrate web-01 to hv-2 \(console"):
            asyncio.run(two.migrate_vm(MoveRequest(A, "hv-3")))
        assert asyncio.run(one.wait_task(first.id)).status is TaskStatus.SUCCEEDED
        assert not any(k.endswith(".lock") for h in world.hosts.values() for k in h.files)
        # Maintenance set by one console is what the host says, so the other sees it.
        t = asyncio.run(one.wait_task(asyncio.run(
            one.enter_maintenance("sim", "hv-3", "hv-3")).id))
        assert t.status is TaskStatus.SUCCEEDED
        asyncio.run(two.refresh("sim"))
        assert two.host("sim", "hv-3").maintenance == IN_MAINTENANCE
    finally:
        one.stop()
        two.stop()


def test_a_dead_consoles_lock_is_taken_over_once_it_is_stale(eng, world):
    import json
    from mvmtui.engine.locks import STALE, _file
    files = world.hosts[("sim", "hv-1")].files
    dead = json.dumps({"holder": "console · root@gone", "owner": "1:1@gone",
                       "title": "Migrate web-01 to hv-3", "taken_at": 0}, sort_keys=True)
    files[_file(f"vm:{A}")] = (dead, time.time() - 5)
    from mvmtui.engine.tasks import Busy
    with pytest.raises(Busy, match="root@gone"):
        asyncio.run(eng.migrate_vm(MoveRequest(A, "hv-2")))
    files[_file(f"vm:{A}")] = (dead, time.time() - STALE - 1)
    assert _move(eng, MoveRequest(A, "hv-2")).status is TaskStatus.SUCCEEDED


def test_placement_rules_in_the_policy_reach_the_planner(eng, world):
    """anti-affinity, must-run-on and prefer, set by name as an operator types them."""
    from mvmtui.engine.errors import BadSetting
    eng.set_policy("sim", ["anti-affinity=web-01+cache-01", "prefer=db-01:hv-3"])
    fits = {f.host: f.why_not for f in eng.placement_options(A)}
    assert "cache-01 is there (kept apart from web-01)" in fits["hv-2"]
    preview = {r.name: r.target for r in eng.maintenance_preview("sim", "hv-1").moves}
    assert preview == {"web-01": "hv-3", "db-01": "hv-3"}
    eng.set_policy("sim", ["must-run-on=web-01:hv-1"])
    blocked = {r.name: r.reason for r in eng.maintenance_preview("sim", "hv-1").blocked}
    assert "web-01" in blocked
    with pytest.raises(BadSetting, match="not a group"):
        eng.set_policy("sim", ["affinity=web-01"])


def test_a_vm_on_its_hosts_own_cpu_goes_only_to_hosts_with_that_cpu(tmp_path, world):
    world.hosts[("sim", "hv-3")].facts["cpu_model"] = "EPYC-Milan"
    eng = _engine(_inventory(tmp_path / "inv.db", hosts=("hv-1", "hv-2", "hv-3")), world)
    try:
        world.change_vm("sim", "hv-1", A, event="tunable", cpu_mode="host-passthrough")
        _wait(lambda: eng.vm(A).cpu_mode == "host-passthrough")
        fits = {f.host: f.why_not for f in eng.placement_options(A)}
        assert fits["hv-2"] == ""                     # the same CPU model as hv-1
        assert fits["hv-3"] == "CPU EPYC-Milan; web-01 needs scripted"
        world.change_vm("sim", "hv-1", A, event="tunable", cpu_mode="custom")
        _wait(lambda: eng.vm(A).cpu_mode == "custom")  # a generic model runs anywhere
        assert all(f.fits for f in eng.placement_options(A))
    finally:
        eng.stop()


# ---- what the review found (each failed before its fix) --------------------------------
def test_a_short_cli_engine_does_not_resume_an_interrupted_evacuation(tmp_path, world):
    from mvmtui.engine.inventory import Inventory
    from mvmtui.engine.model import Task, TaskStep
    path = _inventory(tmp_path / "inv.db", hosts=("hv-1", "hv-2", "hv-3"))
    world.hosts[("sim", "hv-1")].files["maintenance"] = (ENTERING, time.time())
    inv = Inventory(path)
    tid = inv.create_task(Task(id=0, kind="host.maintenance.enter",
                               title="Enter maintenance: hv-1", cluster="sim",
                               target_kind="host", target="hv-1", target_name="hv-1",
                               host="hv-1", status=TaskStatus.RUNNING,
                               steps=(TaskStep(0, "Take out of the placement pool"),)),
                          {}, owner="999999:0")
    inv.close()
    cli = _engine(path, world, actor="cli", recover=False)
    cli.stop()
    inv = Inventory(path)
    assert not inv.task(tid).checkpoint.get("recovered")       # left for the console
    assert len(inv.tasks(limit=10)) == 1                        # and nothing started
    inv.close()
    console = _engine(path, world)
    try:
        t = _wait(lambda: (x := console.task(tid)).checkpoint.get("recovered") and x)
        assert "resumed as task" in t.logs[-1].message
    finally:
        console.stop()


def test_a_second_console_cannot_power_a_vm_that_is_being_moved(tmp_path, world):
    world.migration_seconds = 3.0
    one = _engine(_inventory(tmp_path / "one.db", hosts=("hv-1", "hv-2", "hv-3")), world)
    two = _engine(_inventory(tmp_path / "two.db", hosts=("hv-1", "hv-2", "hv-3")), world)
    try:
        first = asyncio.run(one.migrate_vm(MoveRequest(A, "hv-2")))
        refused = asyncio.run(two.vm_action(A, "suspend"))    # journaled as refused
        assert refused.status is TaskStatus.FAILED
        assert "busy on hv-1 with Migrate web-01 to hv-2" in refused.error
        assert world.hosts[("sim", "hv-1")].vms[A].state is VmState.RUNNING
        assert asyncio.run(one.wait_task(first.id)).status is TaskStatus.SUCCEEDED
    finally:
        one.stop()
        two.stop()


def test_a_move_whose_source_still_runs_the_vm_fails_loudly(eng, world, monkeypatch):
    from mvmtui.engine import scripted
    real = scripted.ScriptedHypervisor.migrate

    def copies(self, uuid, dest, **kw):     # a broken migration: a copy, not a move
        vm = self.h.vms[uuid]
        real(self, uuid, dest, **kw)
        self.h.vms[uuid] = vm
    monkeypatch.setattr(scripted.ScriptedHypervisor, "migrate", copies)
    t = _move(eng, MoveRequest(A, "hv-2"))
    assert t.status is TaskStatus.FAILED and "RUNS ON BOTH hv-1 and hv-2" in t.error


def test_a_vm_lost_without_a_saved_definition_is_said_to_be_lost(tmp_path, world):
    path = _inventory(tmp_path / "inv.db", hosts=("hv-1", "hv-2", "hv-3"))
    world.hosts[("sim", "hv-1")].vms.pop(A)
    tid = _dead_move(path, A, "web-01", "hv-1", "hv-2")
    eng = _engine(path, world)
    try:
        t = _wait(lambda: (x := eng.task(tid)).checkpoint.get("recovered") and x)
        assert t.status is TaskStatus.FAILED and "it is lost" in t.error
    finally:
        eng.stop()


def test_bring_back_remembers_the_moves_of_a_failed_entry_and_its_retry(eng, world):
    world.hosts[("sim", "hv-2")].refuses_incoming = "no space left on device"
    world.hosts[("sim", "hv-3")].refuses_incoming = ""
    eng.set_policy("sim", ["must-run-on=web-01:hv-1+hv-2", "prefer=db-01:hv-3"])
    t = asyncio.run(eng.wait_task(asyncio.run(eng.enter_maintenance("sim", "hv-1",
                                                                    "hv-1")).id))
    assert t.status is TaskStatus.FAILED            # web-01 could only go to hv-2
    world.hosts[("sim", "hv-2")].refuses_incoming = ""
    t = asyncio.run(eng.wait_task(asyncio.run(eng.enter_maintenance("sim", "hv-1",
                                                                    "hv-1")).id))
    assert t.status is TaskStatus.SUCCEEDED, t.error
    assert sorted(r.name for r in eng.return_preview("sim", "hv-1").moves) == [
        "db-01", "web-01"]


def test_the_confirmed_plan_is_the_plan_that_runs(eng, world):
    seen = eng.maintenance_preview("sim", "hv-1")
    eng.set_policy("sim", ["prefer=web-01:hv-3"])     # the plan changes meanwhile
    with pytest.raises(EngineError, match="changed since you looked"):
        asyncio.run(eng.enter_maintenance("sim", "hv-1", "hv-1", expect=seen))
    assert not eng.host("sim", "hv-1").maintenance


def test_leaving_maintenance_needs_the_host_to_answer(eng, world):
    from mvmtui.engine.errors import HostDown
    t = asyncio.run(eng.wait_task(asyncio.run(eng.enter_maintenance("sim", "hv-3",
                                                                    "hv-3")).id))
    assert t.status is TaskStatus.SUCCEEDED
    world.power_cut("sim", "hv-3")
    _wait(lambda: eng.host("sim", "hv-3").status.value != "up")
    with pytest.raises(HostDown, match="nothing was changed"):
        asyncio.run(eng.leave_maintenance("sim", "hv-3"))
