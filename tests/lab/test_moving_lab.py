"""Moving workloads (issue 7) on the real lab: live migration through the engine and
the CLI with the guest's disk counter counting on, an offline move with shut-down
and start-after, maintenance (blocked by a running pinned VM, cleared, entered,
left with the VMs brought back), and a CLI killed mid-migration whose task the next
start decides from what the hosts show. Every test puts back what it moved: the
session's lab is shared."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

from mvmtui.engine.model import IN_MAINTENANCE, MoveRequest, Strategy, TaskStatus, VmState

from .conftest import wait_for


def _running(engine, name: str, cluster: str):
    """The VM, started if an earlier test (a host's power cut) left it stopped."""
    vm = engine.find_vm(name, cluster)
    if not vm.state.active:
        assert asyncio.run(engine.vm_action(vm.uuid, "start")).status is TaskStatus.SUCCEEDED
    return engine.vm(vm.uuid)


def _move(engine, req):
    task = asyncio.run(engine.migrate_vm(req))
    return asyncio.run(engine.wait_task(task.id))


def _counting(lab, vm: str, timeout: float = 30.0):
    """The guest's (count, boot id) once it writes, and it keeps writing."""
    first, _ = wait_for(lambda: lab.disk_counter(vm), timeout, 0.1)
    later, _ = wait_for(lambda: (c := lab.disk_counter(vm)) and c[0] > first[0] and c, 10, 0.1)
    return later


def test_live_migration_keeps_the_guest_running_and_its_counter_counting(engine, lab_cluster):
    lab = lab_cluster.lab
    vm = _running(engine, "db-02", lab_cluster.name)
    home = vm.host
    assert vm.state is VmState.RUNNING and not engine.storage_issue(vm)
    before = _counting(lab, "db-02")
    samples = []
    t = None
    try:
        task = asyncio.run(engine.migrate_vm(MoveRequest(vm.uuid, "kvm-03")))
        while not engine.task(task.id).status.finished:   # sample the disk meanwhile
            samples.append((time.monotonic(), lab.disk_counter("db-02")))
            time.sleep(0.05)
        t = engine.task(task.id)
        assert t.status is TaskStatus.SUCCEEDED, t.error
        after = _counting(lab, "db-02")
        assert after[1] == before[1]                    # the same boot: it never restarted
        assert after[0] > before[0]
        counts = [c[0] for _, c in samples if c]
        assert counts == sorted(counts)                 # no write lost, no second writer
        assert lab.virsh("kvm-03", "domstate", "db-02").stdout.strip() == "running"
        assert "db-02" not in lab.virsh(home, "list", "--all", "--name").stdout.split()
        wait_for(lambda: engine.vm(vm.uuid).host == "kvm-03", 10)
    finally:
        if t is not None and t.status is TaskStatus.SUCCEEDED:
            back = _move(engine, MoveRequest(vm.uuid, home))
            assert back.status is TaskStatus.SUCCEEDED, back.error


def test_the_cli_migrates_and_refuses_local_storage_with_the_reason(engine, lab_cluster):
    _running(engine, "ci-runner-01", lab_cluster.name)
    env = {**os.environ, "MVMTUI_INVENTORY": str(lab_cluster.inventory)}
    cli = [sys.executable, "-m", "mvmtui"]
    r = subprocess.run(cli + ["vm", "migrate", "staging-01", "--to", "kvm-01", "--dry-run"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "only kvm-03 sees" in r.stderr
    r = subprocess.run(cli + ["vm", "migrate", "ci-runner-01", "--to", "kvm-02", "--json"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert '"status": "succeeded"' in r.stdout
    r = subprocess.run(cli + ["vm", "migrate", "ci-runner-01", "--to", "kvm-03"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "succeeded" in r.stdout, r.stdout + r.stderr


def test_an_offline_move_with_shutdown_and_start_after(engine, lab_cluster):
    lab = lab_cluster.lab
    vm = _running(engine, "cache-01", lab_cluster.name)
    home = vm.host
    _counting(lab, "cache-01")
    t = _move(engine, MoveRequest(vm.uuid, "kvm-01", wait_shutdown=True, start_after=True))
    try:
        assert t.status is TaskStatus.SUCCEEDED, t.error
        assert lab.virsh("kvm-01", "domstate", "cache-01").stdout.strip() == "running"
        assert "cache-01" not in lab.virsh(home, "list", "--all", "--name").stdout.split()
        before = lab.disk_counter("cache-01")
        after = _counting(lab, "cache-01")
        assert after[1] != before[1] or after[0] > before[0]   # it booted again there
    finally:
        if t.status is TaskStatus.SUCCEEDED:
            back = _move(engine, MoveRequest(vm.uuid, home))   # live, home again
            assert back.status is TaskStatus.SUCCEEDED, back.error


def test_maintenance_blocked_by_a_pinned_vm_then_cleared_entered_and_left(engine,
                                                                          lab_cluster):
    lab = lab_cluster.lab
    c = lab_cluster.name
    db = engine.find_vm("db-01", c)                  # pinned to kvm-01
    assert db.strategy is Strategy.PINNED
    if not db.state.active:
        assert asyncio.run(engine.vm_action(db.uuid, "start")).status is TaskStatus.SUCCEEDED
    try:
        preview = engine.maintenance_preview(c, "kvm-01")
        assert [r.name for r in preview.blocked] == ["db-01"]
        assert "pinned" in preview.blocked[0].reason
        # The way out the preview offers: shut it down (it then stays, stopped).
        assert asyncio.run(engine.vm_action(db.uuid, "destroy")).status is TaskStatus.SUCCEEDED
        preview = engine.maintenance_preview(c, "kvm-01")
        assert not preview.blocked
        planned = {r.name: r.target for r in preview.moves}
        assert set(planned) == {"web-01", "web-02"}
        task = asyncio.run(engine.enter_maintenance(c, "kvm-01", "kvm-01"))
        t = asyncio.run(engine.wait_task(task.id))
        assert t.status is TaskStatus.SUCCEEDED, t.error
        assert engine.host(c, "kvm-01").maintenance == IN_MAINTENANCE
        running = lab.virsh("kvm-01", "list", "--name").stdout.split()
        assert running == []
        for name, target in planned.items():         # the preview is what happened
            assert lab.virsh(target, "domstate", name).stdout.strip() == "running"
        with_reason = {f.host: f.why_not for f in engine.placement_options(
            engine.find_vm("db-02", c).uuid)}
        assert with_reason["kvm-01"] == "in maintenance"
    finally:
        if engine.host(c, "kvm-01").maintenance:
            t = asyncio.run(engine.wait_task(asyncio.run(
                engine.leave_maintenance(c, "kvm-01", bring_back=True)).id))
            assert t.status is TaskStatus.SUCCEEDED, t.error
    for name in ("web-01", "web-02"):                  # leave brought them back
        assert lab.virsh("kvm-01", "domstate", name).stdout.strip() == "running"


def test_a_cli_killed_mid_migration_is_decided_at_the_next_start(lab_cluster):
    """The console (here the CLI) dies with a migration running; libvirt aborts the job
    whose driver went away, and the next start records what the hosts then show."""
    from mvmtui.engine import Engine
    env = {**os.environ, "MVMTUI_INVENTORY": str(lab_cluster.inventory)}
    cli = [sys.executable, "-m", "mvmtui"]
    subprocess.run(cli + ["cluster", "set", lab_cluster.name, "migration-bandwidth=4"],
                   env=env, check=True, capture_output=True, timeout=30)
    p = subprocess.Popen(cli + ["vm", "migrate", "monitor-01", "--to", "kvm-02"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    eng = None
    try:
        eng = Engine(lab_cluster.inventory, reconnect_interval=0.5)
        vm = eng.find_vm("monitor-01", lab_cluster.name)
        home = vm.host
        wait_for(lambda: any(t.kind == "vm.migrate" and t.status is TaskStatus.RUNNING
                             and t.steps[1].status is TaskStatus.RUNNING
                             for t in eng.tasks(target=vm.uuid, limit=1, details=True)), 60, 0.2)
        time.sleep(1.0)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
        tid = eng.tasks(target=vm.uuid, limit=1)[0].id
        eng.start()
        eng.call(eng.wait_ready(timeout=15))
        t, _ = wait_for(lambda: (x := eng.task(tid)).checkpoint.get("recovered") and x, 60, 0.2)
        assert t.status in (TaskStatus.SUCCEEDED, TaskStatus.ROLLED_BACK), t.error
        lab = lab_cluster.lab
        on = [h for h in ("kvm-01", "kvm-02", "kvm-03")
              if "monitor-01" in lab.virsh(h, "list", "--all", "--name").stdout.split()]
        assert len(on) == 1                                 # defined on exactly one host
        assert lab.virsh(on[0], "domstate", "monitor-01").stdout.strip() == "running"
        assert any("Recovery:" in log.message for log in t.logs)
        if on[0] != home:
            back = _move(eng, MoveRequest(vm.uuid, home))
            assert back.status is TaskStatus.SUCCEEDED, back.error
    finally:
        if p.poll() is None:
            p.kill()
        subprocess.run(cli + ["cluster", "set", lab_cluster.name, "migration-bandwidth=0"],
                       env=env, capture_output=True, timeout=30)
        if eng is not None:
            eng.stop()


def test_a_slow_inventory_write_never_makes_a_healthy_host_look_lost(lab_cluster):
    """Another process holds the inventory's write lock for longer than the SSH
    keepalive allows (3 s): the engine's writes wait out their busy timeout meanwhile,
    but SSH runs on a loop of its own, so no host is ever seen lost."""
    import sqlite3
    from mvmtui.engine import Engine
    from mvmtui.engine.model import HostChanged, HostStatus
    eng = Engine(lab_cluster.inventory, reconnect_interval=0.5, stats_interval=0.5)
    seen = []
    eng.subscribe(lambda ev: seen.append(ev.host.status) if isinstance(ev, HostChanged)
                  else None)
    eng.start()
    try:
        eng.call(eng.wait_ready(timeout=15))
        assert all(h.status is HostStatus.UP for h in eng.hosts(lab_cluster.name))
        seen.clear()
        other = sqlite3.connect(lab_cluster.inventory, timeout=0)
        other.execute("BEGIN EXCLUSIVE")
        time.sleep(9.0)
        other.rollback()
        other.close()
        time.sleep(2.0)
        assert set(seen) <= {HostStatus.UP}, seen
        assert all(h.status is HostStatus.UP for h in eng.hosts(lab_cluster.name))
    finally:
        eng.stop()


def _slow(lab_cluster, mib_s: int):
    """Set the cluster's migration bandwidth in the test inventory (0 = no limit)."""
    from mvmtui.engine import Inventory
    inv = Inventory(lab_cluster.inventory)
    try:
        pol = inv.cluster_policy(lab_cluster.name)
        pol["migration_bandwidth_mib"] = mib_s
        inv.save_cluster_policy(lab_cluster.name, pol)
    finally:
        inv.close()


def test_a_destination_lost_mid_migration_leaves_the_vm_running_on_its_source(lab_cluster):
    from mvmtui.engine import Engine
    lab = lab_cluster.lab
    _slow(lab_cluster, 4)
    eng = Engine(lab_cluster.inventory, reconnect_interval=0.5)
    eng.start()
    try:
        eng.call(eng.wait_ready(timeout=15))
        vm = _running(eng, "ci-runner-01", lab_cluster.name)
        assert vm.host == "kvm-03"
        task = asyncio.run(eng.migrate_vm(MoveRequest(vm.uuid, "kvm-02")))
        wait_for(lambda: (x := eng.task(task.id)).checkpoint.get("progress")
                 or x.status.finished, 30, 0.1)
        assert not eng.task(task.id).status.finished, eng.task(task.id).error
        lab.crash("kvm-02")
        t = asyncio.run(eng.wait_task(task.id))
        assert t.status is TaskStatus.FAILED
        assert "ci-runner-01 is on kvm-03 (running)" in t.error, t.error
        assert lab.virsh("kvm-03", "domstate", "ci-runner-01").stdout.strip() == "running"
        lab.revive("kvm-02")
        assert "ci-runner-01" not in lab.virsh("kvm-02", "list", "--all", "--name").stdout.split()
        _counting(lab, "ci-runner-01")
    finally:
        _slow(lab_cluster, 0)
        if not lab.init_pid(lab.host("kvm-02")):
            lab.revive("kvm-02")
        eng.stop()


def test_a_second_console_on_another_inventory_is_refused_naming_the_holder(engine,
                                                                             lab_cluster,
                                                                             tmp_path):
    """Two admin boxes: two processes, two inventory files, one cluster. The lock on the
    hosts refuses the second, naming the first. (A dead holder's lock taken over once
    stale: tests/test_moving.py.)"""
    from mvmtui.engine import Engine, Inventory
    from mvmtui.engine.tasks import Busy
    vm = _running(engine, "ci-runner-01", lab_cluster.name)
    # Nothing of an earlier test still acting on it (a move settled on a host's return).
    wait_for(lambda: not engine.tasks(target=vm.uuid, unfinished=True), 60, 0.2)
    second = tmp_path / "second.db"
    inv = Inventory(second)
    lab_cluster.lab.register(inv)
    inv.close()
    _slow(lab_cluster, 4)
    env = {**os.environ, "MVMTUI_INVENTORY": str(lab_cluster.inventory)}
    p = subprocess.Popen([sys.executable, "-m", "mvmtui", "vm", "migrate", "ci-runner-01",
                          "--to", "kvm-01"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    eng = Engine(second, actor="console", reconnect_interval=0.5)
    eng.start()
    try:
        eng.call(eng.wait_ready(timeout=15))
        vm = eng.find_vm("ci-runner-01", lab_cluster.name)
        first = Inventory(lab_cluster.inventory)   # the other box's journal, to see it run
        try:
            wait_for(lambda: any(t.kind == "vm.migrate" and t.steps[1].status is
                                 TaskStatus.RUNNING for t in first.tasks(
                                     target=vm.uuid, limit=1, details=True)), 60, 0.2)
        except AssertionError:      # say what the CLI said (it may have ended early)
            p.kill()
            out, err = p.communicate(timeout=10)
            raise AssertionError(f"the CLI's migration never ran: exit {p.returncode}, "
                                 f"{out}{err}; tasks {first.tasks(target=vm.uuid, limit=3)}")
        finally:
            first.close()
        with pytest.raises(Busy) as refused:
            asyncio.run(eng.migrate_vm(MoveRequest(vm.uuid, "kvm-02")))
        assert "Migrate ci-runner-01 to kvm-01 (cli" in str(refused.value), refused.value
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, out + err
    finally:
        if p.poll() is None:
            p.kill()
        _slow(lab_cluster, 0)
        eng.stop()
    back = subprocess.run([sys.executable, "-m", "mvmtui", "vm", "migrate", "ci-runner-01",
                           "--to", "kvm-03"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert back.returncode == 0, back.stdout + back.stderr


def test_copy_storage_moves_a_vm_whose_disk_only_its_host_sees(engine, lab_cluster):
    lab = lab_cluster.lab
    vm = engine.find_vm("staging-01", lab_cluster.name)
    assert engine.storage_issue(vm)
    if not vm.state.active:
        assert asyncio.run(engine.vm_action(vm.uuid, "start")).status is TaskStatus.SUCCEEDED
    try:
        refused = {f.host: f.why_not for f in engine.placement_options(vm.uuid)}
        assert "only kvm-03 sees" in refused["kvm-01"]
        t = _move(engine, MoveRequest(vm.uuid, "kvm-01", copy_storage=True))
        assert t.status is TaskStatus.SUCCEEDED, t.error
        assert lab.virsh("kvm-01", "domstate", "staging-01").stdout.strip() == "running"
        disk = lab.host("kvm-01").dir / "var-lib-libvirt/images/staging-01.qcow2"
        assert disk.exists()
        back = _move(engine, MoveRequest(vm.uuid, "kvm-03", copy_storage=True))
        assert back.status is TaskStatus.SUCCEEDED, back.error
    finally:
        asyncio.run(engine.vm_action(vm.uuid, "destroy"))


def test_a_source_lost_mid_migration_is_settled_when_it_answers_again(lab_cluster):
    """The source dies with the guest: the task fails without guessing, and once the
    source answers again History says where the VM is (defined on exactly one host)."""
    from mvmtui.engine import Engine
    lab = lab_cluster.lab
    _slow(lab_cluster, 4)
    eng = Engine(lab_cluster.inventory, reconnect_interval=0.5)
    eng.start()
    try:
        eng.call(eng.wait_ready(timeout=15))
        vm = _running(eng, "ci-runner-01", lab_cluster.name)
        task = asyncio.run(eng.migrate_vm(MoveRequest(vm.uuid, "kvm-01")))
        wait_for(lambda: (x := eng.task(task.id)).checkpoint.get("progress")
                 or x.status.finished, 30, 0.1)
        lab.crash("kvm-03")
        t = asyncio.run(eng.wait_task(task.id))
        assert t.status is TaskStatus.FAILED and "kvm-03 did not answer" in t.error, t.error
        lab.revive("kvm-03")
        try:
            t, _ = wait_for(lambda: (x := eng.task(task.id)).checkpoint.get("recovered")
                            and x, 90, 0.2)
        except AssertionError:
            raise AssertionError([(x.id, x.kind, x.status.value, x.error, x.checkpoint,
                                   [g.message for g in eng.task(x.id).logs])
                                  for x in eng.tasks(limit=3)]) from None
        assert t.status is TaskStatus.ROLLED_BACK, t.error
        assert "still on kvm-03" in t.error
        on = [h for h in ("kvm-01", "kvm-02", "kvm-03")
              if "ci-runner-01" in lab.virsh(h, "list", "--all", "--name").stdout.split()]
        assert on == ["kvm-03"]
    finally:
        _slow(lab_cluster, 0)
        if not lab.init_pid(lab.host("kvm-03")):
            lab.revive("kvm-03")
        eng.stop()


def test_a_cli_killed_mid_evacuation_is_resumed_by_the_next_console(lab_cluster):
    """`host maintenance enter --yes` dies with its moves running; the next console
    settles the interrupted moves and resumes the evacuation until the host is empty."""
    from mvmtui.engine import Engine
    from mvmtui.engine.model import ENTERING
    lab = lab_cluster.lab
    _slow(lab_cluster, 4)
    env = {**os.environ, "MVMTUI_INVENTORY": str(lab_cluster.inventory)}
    cli = [sys.executable, "-m", "mvmtui"]
    eng = Engine(lab_cluster.inventory, reconnect_interval=0.5)
    eng.start()
    try:
        eng.call(eng.wait_ready(timeout=15))
        for name in ("db-02", "cache-01"):
            _running(eng, name, lab_cluster.name)
        eng.stop()
        eng = None
        p = subprocess.Popen(cli + ["host", "maintenance", "enter", "kvm-02", "--yes"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        from mvmtui.engine import Inventory
        inv = Inventory(lab_cluster.inventory)
        try:
            wait_for(lambda: any(t.kind == "vm.migrate" and t.status is TaskStatus.RUNNING
                                 for t in inv.tasks(limit=5)), 60, 0.2)
        finally:
            inv.close()
        time.sleep(1.0)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
        _slow(lab_cluster, 0)
        eng = Engine(lab_cluster.inventory, reconnect_interval=0.5)
        eng.start()
        eng.call(eng.wait_ready(timeout=15))
        assert eng.host(lab_cluster.name, "kvm-02").maintenance == ENTERING   # from the host
        parent = next(t for t in eng.tasks(limit=20) if t.kind == "host.maintenance.enter")
        t, _ = wait_for(lambda: (x := eng.task(parent.id)).checkpoint.get("recovered")
                        and x, 90, 0.2)
        assert "resumed as task" in t.logs[-1].message, t.logs[-1].message
        resumed = int(t.logs[-1].message.rsplit(" ", 1)[1])
        done = asyncio.run(eng.wait_task(resumed))
        assert done.status is TaskStatus.SUCCEEDED, done.error
        assert eng.host(lab_cluster.name, "kvm-02").maintenance == IN_MAINTENANCE
        assert lab.virsh("kvm-02", "list", "--name").stdout.split() == []
        for name in ("db-02", "cache-01"):                 # each on exactly one host
            on = [h for h in ("kvm-01", "kvm-02", "kvm-03")
                  if name in lab.virsh(h, "list", "--all", "--name").stdout.split()]
            assert len(on) == 1 and on[0] != "kvm-02", (name, on)
    finally:
        _slow(lab_cluster, 0)
        if eng is None:
            eng = Engine(lab_cluster.inventory, reconnect_interval=0.5)
            eng.start()
            eng.call(eng.wait_ready(timeout=15))
        if eng.host(lab_cluster.name, "kvm-02").maintenance:
            back = asyncio.run(eng.wait_task(asyncio.run(
                eng.leave_maintenance(lab_cluster.name, "kvm-02", bring_back=True)).id))
            assert back.status is TaskStatus.SUCCEEDED, back.error
        eng.stop()
