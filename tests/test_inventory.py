"""The inventory and the task journal, without hosts."""
from __future__ import annotations

import asyncio
import sqlite3

import pytest

from mvmtui.engine import Engine, InventoryError
from mvmtui.engine.inventory import SCHEMA_VERSION, Inventory
from mvmtui.engine.model import (Cluster, Disk, Host, HostStatus, Nic, TaskStatus, Vm,
                                 VmState)
from mvmtui.engine.tasks import Busy, Journal, TaskSpec


def test_round_trip_of_hosts_and_vms(tmp_path):
    inv = Inventory(tmp_path / "i.db")
    assert inv.schema_version == SCHEMA_VERSION
    inv.save_cluster(Cluster(name="prod", layout="kvm+ceph"))
    h = Host(cluster="prod", name="kvm-01", address="10.0.0.1", status=HostStatus.UP,
             cpus=32, memory_mib=262144, seen_at=100.0)
    inv.save_host(h)
    vm = Vm(cluster="prod", host="kvm-01", uuid="u1", name="web-01", state=VmState.RUNNING,
            vcpus=2, memory_mib=2048, disks=(Disk("vda", "/img/a.qcow2", capacity_bytes=10),),
            nics=(Nic("52:54:00:00:00:01", "bridge", "br0", "virtio"),), seen_at=100.0)
    inv.save_vms([vm])
    inv.close()
    inv = Inventory(tmp_path / "i.db")
    assert inv.hosts("prod") == [h]
    assert inv.vms("prod") == [vm]
    inv.delete_cluster("prod")
    assert inv.vms() == [] and inv.hosts() == [] and inv.clusters() == []


def test_corrupt_file_is_refused_and_left_untouched(tmp_path):
    p = tmp_path / "inventory.db"
    junk = b"this is not a database" * 100
    p.write_bytes(junk)
    with pytest.raises(InventoryError, match="cannot be read.*left untouched"):
        Inventory(p)
    assert p.read_bytes() == junk
    assert sorted(x.name for x in tmp_path.iterdir()) == ["inventory.db"]


def test_newer_schema_is_refused_and_left_untouched(tmp_path):
    p = tmp_path / "inventory.db"
    Inventory(p).close()
    conn = sqlite3.connect(p)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    before = p.read_bytes()
    with pytest.raises(InventoryError, match="newer mvmtui"):
        Inventory(p)
    assert p.read_bytes() == before


def test_foreign_sqlite_file_is_refused(tmp_path):
    p = tmp_path / "other.db"
    conn = sqlite3.connect(p)
    conn.execute("CREATE TABLE photos (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(InventoryError, match="not an mvmtui inventory"):
        Inventory(p)


def _spec(**kw):
    base = dict(kind="vm.start", title="Start web-01", cluster="prod", target_kind="vm",
                target="u1", target_name="web-01", host="kvm-01",
                steps=("Check host", "Start"), locks=("vm:u1",), params={})
    base.update(kw)
    return TaskSpec(**base)


def test_journal_records_steps_logs_and_outcome(tmp_path):
    inv = Inventory(tmp_path / "i.db")
    events = []
    clock = iter(range(100, 200)).__next__
    j = Journal(inv, lambda: float(clock()), events.append)

    async def ok(ctx):
        ctx.step(0)
        ctx.log("checked")
        ctx.step(1)

    async def boom(ctx):
        ctx.step(0)
        raise RuntimeError("libvirt refused: domain is already running")

    t = asyncio.run(j.run(_spec(), ok))
    assert t.status is TaskStatus.SUCCEEDED and t.progress == 1.0
    assert [s.status for s in t.steps] == [TaskStatus.SUCCEEDED] * 2
    assert [l.message for l in t.logs] == [f"Start web-01: started by {j.started_by}",
                                           "checked", "Start web-01: done"]
    assert t.started_by == j.started_by and j.started_by.startswith("console · ")
    t = asyncio.run(j.run(_spec(), boom))
    assert t.status is TaskStatus.FAILED and "already running" in t.error
    assert t.steps[0].status is TaskStatus.FAILED and t.steps[1].status is TaskStatus.SKIPPED
    assert inv.locks() == {}
    assert events and all(e.task.id in (1, 2) for e in events)


def test_a_locked_target_refuses_a_second_task(tmp_path):
    inv = Inventory(tmp_path / "i.db")
    j = Journal(inv, lambda: 1.0, lambda e: None)

    async def scenario():
        gate = asyncio.Event()

        async def slow(ctx):
            await gate.wait()

        first = asyncio.ensure_future(j.run(_spec(), slow))
        await asyncio.sleep(0.01)
        with pytest.raises(Busy, match=r"busy with Start web-01 \(task 1, console · "):
            await j.run(_spec(title="Stop web-01"), slow)
        gate.set()
        return await first

    assert asyncio.run(scenario()).status is TaskStatus.SUCCEEDED
    refused = inv.task(inv.tasks()[0].id)
    assert refused.status is TaskStatus.FAILED and "busy" in refused.error
    assert [s.status for s in refused.steps] == [TaskStatus.SKIPPED] * 2   # never started


def test_tasks_of_a_crashed_console_are_marked_interrupted(tmp_path):
    """A task whose console died is closed as interrupted and its lock freed; a task of
    a console that still runs (here: this process) is left alone."""
    from mvmtui.engine.model import Task, TaskStep
    from mvmtui.engine.tasks import this_process
    p = tmp_path / "i.db"
    inv = Inventory(p)
    inv.save_cluster(Cluster(name="prod"))

    def running(owner, target):
        tid = inv.create_task(Task(id=0, kind="vm.start", title=f"Start {target}",
                                   cluster="prod", target_kind="vm", target=target,
                                   target_name=target, status=TaskStatus.RUNNING,
                                   steps=(TaskStep(0, "Start", TaskStatus.RUNNING),)),
                              owner=owner)
        inv.update_step(tid, 0, status=TaskStatus.RUNNING)
        assert inv.take_locks(tid, [f"vm:{target}"], 1.0) == []
        return tid

    dead = running("999999999:0", "u1")          # no such process
    alive = running(this_process(), "u2")
    inv.close()
    eng = Engine(p, offline=True, clock=lambda: 9.0)
    eng.start()
    try:
        t = eng.task(dead)
        assert t.status is TaskStatus.INTERRUPTED
        assert t.steps[0].status is TaskStatus.INTERRUPTED
        assert "outcome is unknown" in t.logs[-1].message
        assert eng.task(alive).status is TaskStatus.RUNNING
        assert eng.inv.locks() == {"vm:u2": alive}
    finally:
        eng.stop()
    # Read-only never writes the journal: another dead console's task stays as it was.
    inv = Inventory(p)
    ghost = running("999999998:0", "u3")
    before = (inv.task(ghost), inv.locks())
    inv.close()
    ro = Engine(p, offline=True, readonly=True)
    ro.start()
    try:
        assert (ro.task(ghost), ro.inv.locks()) == before
        assert ro.task(ghost).status is TaskStatus.RUNNING
    finally:
        ro.stop()


def test_a_cancelled_task_is_closed_as_interrupted(tmp_path):
    inv = Inventory(tmp_path / "i.db")
    j = Journal(inv, lambda: 1.0, lambda e: None)

    async def scenario():
        async def forever(ctx):
            ctx.step(0)
            await asyncio.sleep(3600)
        run = asyncio.ensure_future(j.run(_spec(), forever))
        await asyncio.sleep(0.01)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(scenario())
    t = inv.tasks()[0]
    assert t.status is TaskStatus.INTERRUPTED and "cancelled" in t.error
    assert inv.locks() == {}


def test_a_damaged_page_is_refused_and_left_untouched(tmp_path):
    p = tmp_path / "i.db"
    inv = Inventory(p)
    inv.save_cluster(Cluster(name="prod"))
    inv.save_vms([Vm(cluster="prod", host="h", uuid=f"u{i}", name=f"vm-{i:04d}" * 20)
                  for i in range(400)])
    inv.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    inv.close()
    data = bytearray(p.read_bytes())
    for page in range(2, 8):                                   # scribble over page headers
        data[page * 4096: page * 4096 + 64] = b"\xff" * 64
    p.write_bytes(bytes(data))
    with pytest.raises(InventoryError, match="left untouched"):
        Engine(p, offline=True)
    assert p.read_bytes() == bytes(data)


def test_offline_engine_shows_last_known_state_as_stale(tmp_path):
    p = tmp_path / "i.db"
    inv = Inventory(p)
    inv.save_cluster(Cluster(name="prod"))
    inv.save_host(Host(cluster="prod", name="kvm-01", address="10.0.0.1",
                       status=HostStatus.UP, seen_at=1000.0))
    inv.save_vms([Vm(cluster="prod", host="kvm-01", uuid="u1", name="web-01",
                     state=VmState.RUNNING, seen_at=1000.0)])
    inv.close()
    eng = Engine(p, offline=True, clock=lambda: 1125.0)
    eng.start()
    try:
        h = eng.host("prod", "kvm-01")
        assert h.status is HostStatus.STALE and h.age(eng.now()) == 125.0
        (vm,) = eng.vms("prod")
        assert vm.stale and vm.state is VmState.RUNNING
        s = eng.summary("prod")
        assert s.hosts_up == 0 and s.vms_running == 0   # last known, not live: not counted
        assert s.problems == ("kvm-01: stale",)

    finally:
        eng.stop()
    # First contact under way (a host slow to answer): not (yet) a problem.
    import threading

    from mvmtui.engine.adapter import HostUnreachable
    gate = threading.Event()

    def slow(host):
        gate.wait(10)
        raise HostUnreachable("no answer")
    eng = Engine(p, connect=slow)
    eng.start()
    try:
        s = eng.summary("prod")
        assert eng.host("prod", "kvm-01").status is HostStatus.CONNECTING
        assert s.problems == () and s.hosts_connecting == 1
    finally:
        gate.set()
        eng.stop()


def test_cli_registers_and_removes_a_cluster(tmp_path, capsys):
    from mvmtui.cli import main
    inv = str(tmp_path / "i.db")
    assert main(["--inventory", inv, "cluster", "add", "prod", "kvm-01=10.1.2.3",
                 "10.1.2.4:2222", "--user", "admin"]) == 0
    assert main(["--inventory", inv, "cluster", "add", "prod", "x=1.2.3.4"]) == 2
    assert main(["--inventory", inv, "cluster", "add", "q", "x=1.2.3.4:ssh"]) == 2
    assert "write NAME=ADDRESS[:PORT]" in capsys.readouterr().err
    assert main(["--inventory", inv, "cluster", "add", "q", "a=1.1.1.1", "a=1.1.1.2"]) == 2
    assert "host a is given twice" in capsys.readouterr().err
    eng = Engine(inv, offline=True)
    eng.start()
    try:
        assert eng.cluster("prod").ssh_user == "admin"
        assert [(h.name, h.address, h.port) for h in eng.hosts("prod")] == [
            ("10.1.2.4", "10.1.2.4", 2222), ("kvm-01", "10.1.2.3", 22)]
    finally:
        eng.stop()
    assert main(["--inventory", inv, "cluster", "add", "dup", "again=10.1.2.3"]) == 2
    assert "already host kvm-01 of cluster prod" in capsys.readouterr().err
    assert main(["--inventory", inv, "cluster", "remove", "prod"]) == 0
    assert main(["--inventory", inv, "cluster", "remove", "prod"]) == 3


def test_cli_reports_a_corrupt_inventory(tmp_path, capsys):
    from mvmtui.cli import main
    p = tmp_path / "i.db"
    p.write_bytes(b"garbage" * 50)
    assert main(["--inventory", str(p), "vm", "list", "--offline"]) == 5
    assert "left untouched" in capsys.readouterr().err
    assert p.read_bytes() == b"garbage" * 50


def test_old_events_go_when_new_ones_are_recorded(tmp_path):
    inv = Inventory(tmp_path / "i.db")
    inv.add_event(100.0, "c", "h", "h", "host.status", "up → unreachable")
    inv.add_event(200.0, "c", "h", "h", "host.status", "unreachable → up", keep_seconds=3600)
    assert len(inv.events("c")) == 2                   # nothing old enough yet
    inv.add_event(100.0 + 7200, "c", "h", "h", "host.status", "up → unreachable",
                  keep_seconds=3600)
    assert [e["at"] for e in inv.events("c")] == [7300.0]
