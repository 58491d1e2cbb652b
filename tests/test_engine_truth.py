"""The engine never lies (issue 6), over scripted hosts: the engine's real links,
events, stats pass, reconciliation and journal, with hosts whose VMs are plain state
(mvmtui.engine.scripted). The same defects are tried on the real lab in
tests/lab/test_truth_lab.py."""
from __future__ import annotations

import asyncio
import time

import pytest

from mvmtui.engine import Engine, EngineError, Inventory
from mvmtui.engine.errors import Offline
from mvmtui.engine.model import Cluster, Host, HostStatus, TaskChanged, TaskStatus, Vm, VmState
from mvmtui.engine.scripted import ScriptedWorld
from mvmtui.engine.tasks import Busy

U1, U2, U3 = (f"00000000-0000-4000-8000-00000000000{i}" for i in (1, 2, 3))


def _wait(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError("not true in time")
        time.sleep(0.02)


def _vm(uuid, name, state=VmState.RUNNING, vcpus=1, memory_mib=512, **kw):
    return Vm(cluster="sim", host="", uuid=uuid, name=name, state=state, vcpus=vcpus,
              memory_mib=memory_mib, max_memory_mib=memory_mib, **kw)


def _inventory(path, hosts=("hv-1", "hv-2")):
    inv = Inventory(path)
    inv.save_cluster(Cluster(name="sim"))
    for i, h in enumerate(hosts, 1):
        inv.save_host(Host(cluster="sim", name=h, address=f"10.9.0.{i}"))
    inv.close()
    return path


@pytest.fixture
def world():
    w = ScriptedWorld()
    w.add_host("sim", "hv-1", cpus=4, memory_mib=8192,
               vms=[_vm(U1, "web-01"), _vm(U2, "db-01", VmState.SHUTOFF, vcpus=2)])
    w.add_host("sim", "hv-2", cpus=8, memory_mib=16384, vms=[_vm(U3, "cache-01", vcpus=2)])
    return w


def _engine(path, world, **kw):
    opts = dict(connect=world.connect, reconnect_interval=0.2, stats_interval=0.2,
                reconcile_interval=60.0, shutdown_timeout=2.0, reboot_timeout=1.0)
    opts.update(kw)
    eng = Engine(path, **opts)
    eng.start()
    eng.call(eng.wait_ready(timeout=10))
    return eng


@pytest.fixture
def sim(tmp_path, world):
    eng = _engine(_inventory(tmp_path / "inv.db"), world)
    yield eng
    eng.stop()


# ---- 1: changes made outside the console show, and ages say how fresh ------------------
def test_a_config_change_no_event_reports_shows_within_a_stats_pass(sim, world):
    """virsh setvcpus --config on a shut-off VM sends no event; the bulk stats pass
    sees the vCPU count differ and re-reads the VM."""
    assert sim.vm(U2).vcpus == 2
    world.change_vm("sim", "hv-1", U2, event=None, vcpus=4)
    _wait(lambda: sim.vm(U2).vcpus == 4, 3)


def test_a_change_reported_by_an_event_shows_at_once(sim, world):
    world.change_vm("sim", "hv-1", U1, event="device_added",
                    nics=(), disks=())  # e.g. a NIC hot-plugged: the event re-reads it
    world.change_vm("sim", "hv-1", U1, event="tunable", memory_mib=512, vcpus=1,
                    name="web-01-renamed")
    _wait(lambda: sim.vm(U1).name == "web-01-renamed", 2)


def test_the_slow_reconciliation_catches_what_nothing_else_reports(tmp_path, world):
    """Autostart changes send no event and are not in the bulk stats: the periodic
    full re-read (its interval a setting) catches them."""
    eng = _engine(_inventory(tmp_path / "inv.db"), world, reconcile_interval=0.5)
    try:
        assert eng.vm(U1).autostart is False
        world.change_vm("sim", "hv-1", U1, event=None, autostart=True)
        _wait(lambda: eng.vm(U1).autostart, 3)
        assert eng.vm(U1).config_at is not None
    finally:
        eng.stop()


def test_data_age_is_when_the_state_was_last_confirmed(tmp_path, world):
    now = [1000.0]
    world.clock = lambda: now[0]
    eng = _engine(_inventory(tmp_path / "inv.db"), world, clock=lambda: now[0])
    try:
        assert eng.vm(U1).seen_at == 1000.0 and eng.vm(U1).config_at == 1000.0
        now[0] = 1010.0
        _wait(lambda: eng.vm_seen_at(U1) == 1010.0, 3)   # confirmed by the stats pass
        assert eng.vm(U1).config_at == 1000.0             # the definition was not re-read
    finally:
        eng.stop()


# ---- 2: history follows tasks that another process runs ----------------------------
def test_tasks_of_another_process_reach_this_engine(tmp_path, world):
    path = _inventory(tmp_path / "inv.db")
    console = Engine(path, offline=True)          # the console: it only reads the journal
    console.start()
    seen: list[TaskChanged] = []
    console.subscribe(lambda ev: isinstance(ev, TaskChanged) and seen.append(ev))
    cli = _engine(path, world, actor="cli")       # the CLI, another engine on the file
    try:
        t = asyncio.run(cli.vm_action(U2, "start"))
        assert t.status is TaskStatus.SUCCEEDED
        final = _wait(lambda: [e.task for e in seen if e.task.id == t.id
                               and e.task.status is TaskStatus.SUCCEEDED], 3)
        assert final[-1].started_by.startswith("cli · ")
        assert console.task(t.id).status is TaskStatus.SUCCEEDED
    finally:
        cli.stop()
        console.stop()


# ---- 3: Force off pre-empts a pending shutdown; running tasks can be cancelled ------
def test_force_off_supersedes_a_shutdown_that_waits(sim, world):
    world.hosts[("sim", "hv-1")].ignores_acpi.add(U1)

    async def scenario():
        shutdown = await sim.submit_vm_action(U1, "shutdown")
        await asyncio.sleep(0.5)                        # it waits for the guest now
        forced = await sim.vm_action(U1, "destroy")
        return await sim.wait_task(shutdown.id), forced
    shutdown, forced = asyncio.run(scenario())
    assert forced.status is TaskStatus.SUCCEEDED, forced.error
    assert shutdown.status is TaskStatus.SUPERSEDED
    assert f"task {forced.id}" in shutdown.error
    assert sim.vm(U1).state is VmState.SHUTOFF
    assert sim.inv.locks() == {}


def test_a_waiting_task_is_cancelled_from_another_process(tmp_path, world):
    path = _inventory(tmp_path / "inv.db")
    world.hosts[("sim", "hv-1")].ignores_acpi.add(U1)
    owner = _engine(path, world, shutdown_timeout=30.0)
    other = Engine(path, offline=True, actor="cli")
    other.start()
    try:
        async def scenario():
            t = await owner.submit_vm_action(U1, "shutdown")
            await asyncio.sleep(0.5)
            asked = await other.cancel_task(t.id)
            assert asked.cancel_requested.startswith("cancelled by cli · ")
            start = time.monotonic()
            done = await owner.wait_task(t.id)
            return done, time.monotonic() - start
        done, took = asyncio.run(scenario())
        assert done.status is TaskStatus.CANCELLED and took < 1.5
        assert [s.status for s in done.steps][-1] is TaskStatus.CANCELLED
        with pytest.raises(EngineError, match="already cancelled"):
            asyncio.run(other.cancel_task(done.id))
    finally:
        other.stop()
        owner.stop()


def test_a_task_that_is_not_waiting_cannot_be_cancelled(sim):
    t = asyncio.run(sim.vm_action(U2, "start"))
    with pytest.raises(EngineError, match="already succeeded"):
        asyncio.run(sim.cancel_task(t.id))


def test_busy_names_the_holder_and_skips_every_step(sim, world):
    world.hosts[("sim", "hv-1")].ignores_acpi.add(U1)

    async def scenario():
        await sim.submit_vm_action(U1, "shutdown")
        await asyncio.sleep(0.3)
        with pytest.raises(Busy, match=r"busy with Shut down web-01 \(task \d+, console"):
            await sim.submit_vm_action(U1, "suspend")
    asyncio.run(scenario())
    refused = sim.task(sim.tasks(limit=1)[0].id)
    assert refused.status is TaskStatus.FAILED
    assert {s.status for s in refused.steps} == {TaskStatus.SKIPPED}


# ---- 4: a reboot that did not happen is not a success ------------------------------
def test_a_reboot_the_guest_ignores_fails_with_the_reason(sim, world):
    world.hosts[("sim", "hv-1")].ignores_acpi.add(U1)
    t = asyncio.run(sim.vm_action(U1, "reboot"))
    assert t.status is TaskStatus.FAILED
    assert "did not reboot within 1 s" in t.error and "ACPI" in t.error


def test_a_reboot_is_confirmed_by_the_guests_reboot_event(sim):
    t = asyncio.run(sim.vm_action(U1, "reboot"))
    assert t.status is TaskStatus.SUCCEEDED, t.error
    assert any("rebooted" in line.message for line in t.logs)


# ---- 6: offline refuses changes, records nothing -------------------------------------
def test_offline_refuses_actions_without_a_task(tmp_path, world):
    path = _inventory(tmp_path / "inv.db")
    live = _engine(path, world)
    live.stop()                                    # the inventory now knows the VMs
    eng = Engine(path, offline=True)
    eng.start()
    try:
        before = eng.tasks()
        with pytest.raises(Offline, match="Offline mode"):
            asyncio.run(eng.vm_action(U2, "start"))
        assert eng.tasks() == before
    finally:
        eng.stop()


# ---- 11: one capacity model ----------------------------------------------------------
def test_capacity_counts_live_hosts_only_and_agrees_with_itself(sim, world):
    cap = sim.summary("sim").capacity
    assert (cap.hosts, cap.cpus, cap.vcpus_allocated, cap.live) == (2, 12, 3, True)
    world.power_cut("sim", "hv-2")
    _wait(lambda: sim.host("sim", "hv-2").status is HostStatus.UNREACHABLE, 5)
    s = sim.summary("sim")
    cap = s.capacity
    # hv-2's CPUs and its (stale) VM are both left out: 1 vCPU of web-01 on 4 CPUs.
    assert (cap.hosts, cap.cpus, cap.vcpus_allocated) == (1, 4, 1)
    assert (cap.hosts_left_out, cap.vms_left_out) == (1, 1)
    assert s.vms_running == 1
    assert sim.host_capacity("sim", "hv-2").live is False


def test_offline_capacity_is_the_last_known_state_marked_stale(tmp_path, world):
    path = _inventory(tmp_path / "inv.db")
    _engine(path, world).stop()
    eng = Engine(path, offline=True)
    eng.start()
    try:
        cap = eng.summary("sim").capacity
        assert cap.live is False and (cap.hosts, cap.cpus, cap.vcpus_allocated) == (2, 12, 3)
    finally:
        eng.stop()


# ---- 14: history goes with its cluster -----------------------------------------------
def test_removing_a_cluster_removes_its_history(tmp_path, world):
    path = _inventory(tmp_path / "inv.db")
    eng = _engine(path, world)
    try:
        asyncio.run(eng.vm_action(U2, "start"))
        assert eng.tasks("sim")
        assert eng.remove_cluster("sim") == 1
        assert eng.tasks() == [] and eng.inv.events("sim") == []
        eng.add_cluster(Cluster(name="sim"), [Host(cluster="sim", name="hv-1",
                                                   address="10.9.0.1")])
        assert eng.tasks("sim") == []              # a new cluster starts clean
    finally:
        eng.stop()


# ---- the seam itself -------------------------------------------------------------------
def test_a_lost_host_keeps_its_vms_as_last_known(sim, world):
    world.power_cut("sim", "hv-1")
    _wait(lambda: sim.host("sim", "hv-1").status is HostStatus.UNREACHABLE, 5)
    assert sim.vm(U1).stale and sim.vm(U1).state is VmState.RUNNING
    world.revive("sim", "hv-1")
    _wait(lambda: sim.host("sim", "hv-1").status is HostStatus.UP, 5)
    assert not sim.vm(U1).stale


# ---- settings: the reconciliation's interval (and the others) ---------------------------
def test_settings_file_sets_the_intervals_and_bad_ones_are_said(tmp_path, monkeypatch,
                                                                capsys):
    from mvmtui.cli import main
    from mvmtui.engine import settings
    conf = tmp_path / "settings.toml"
    monkeypatch.setenv("MVMTUI_CONFIG", str(conf))
    assert settings.load() == settings.Settings()            # no file: the defaults
    conf.write_text("[intervals]\nreconcile = 30\nstats = 2.5\n[timeouts]\nreboot = 45\n")
    s = settings.load()
    assert (s.reconcile, s.stats, s.reboot, s.shutdown) == (30.0, 2.5, 45.0, 90.0)
    for bad, says in (("[intervals]\nreconcile = -1\n", "between 0 and 86400"),
                      ("[intervals]\nrecon = 5\n", "no setting 'recon'"),
                      ("[colours]\n", "unknown section [colours]"),
                      ("[intervals\n", "not valid TOML")):
        conf.write_text(bad)          # said on stderr; that setting keeps its default
        inv = tmp_path / "i.db"
        inv.unlink(missing_ok=True)
        assert main(["--inventory", str(inv), "cluster", "add", "c", "h=10.0.0.1"]) == 0
        assert says in capsys.readouterr().err
        assert settings.load().engine_options() == settings.Settings().engine_options()


def test_a_full_re_read_keeps_the_live_use_figures(tmp_path, world):
    """The reconciliation reads definitions, which carry no CPU %: the figures of the
    last stats pass stay until the next one (seen blanked once a minute before)."""
    world.change_vm("sim", "hv-1", U1, cpu_pct=42.0)
    eng = _engine(_inventory(tmp_path / "inv.db"), world)
    try:
        _wait(lambda: eng.vm(U1).cpu_pct == 42.0, 3)
        eng.stats_interval = 3600                   # no stats pass from here on …
        time.sleep(0.3)
        asyncio.run(eng.refresh("sim"))             # … a full re-read of every host
        assert eng.vm(U1).cpu_pct == 42.0
    finally:
        eng.stop()


# ---- review fixes ------------------------------------------------------------------------
def test_a_stopped_copy_on_another_host_is_not_re_read_every_pass(tmp_path, monkeypatch):
    from mvmtui.engine import scripted
    w = ScriptedWorld()
    w.add_host("sim", "hv-1", vms=[_vm(U1, "web-01")])
    w.add_host("sim", "hv-2", vms=[_vm(U1, "web-01", VmState.SHUTOFF)])
    reads = []
    real = scripted.ScriptedHypervisor.vm

    def counted(self, uuid):
        reads.append((self.host, uuid))
        return real(self, uuid)
    monkeypatch.setattr(scripted.ScriptedHypervisor, "vm", counted)
    eng = _engine(_inventory(tmp_path / "inv.db"), w)
    try:
        time.sleep(1.2)                                  # about six stats passes
        assert eng.vm(U1).host == "hv-1"
        assert reads.count(("hv-2", U1)) <= 1
    finally:
        eng.stop()


def test_a_task_whose_process_died_is_recovered_when_its_lock_is_wanted(sim):
    """A CLI killed mid-task leaves its task running and its lock held; the next
    action on that VM closes it as interrupted instead of being refused as busy."""
    from mvmtui.engine.model import Task, TaskStep
    inv = sim.inv
    tid = inv.create_task(Task(id=0, kind="vm.shutdown", title="Shut down web-01",
                               cluster="sim", target_kind="vm", target=U1,
                               target_name="web-01", status=TaskStatus.RUNNING,
                               steps=(TaskStep(0, "Wait", TaskStatus.RUNNING),)),
                          owner="999999999:0")
    assert inv.take_locks(tid, [f"vm:{U1}"], 1.0) == []
    with pytest.raises(EngineError, match="no longer running"):
        asyncio.run(sim.cancel_task(tid))
    assert sim.task(tid).status is TaskStatus.INTERRUPTED
    tid2 = inv.create_task(Task(id=0, kind="vm.shutdown", title="Shut down web-01",
                                cluster="sim", target_kind="vm", target=U1,
                                target_name="web-01", status=TaskStatus.RUNNING),
                           owner="999999999:0")
    assert inv.take_locks(tid2, [f"vm:{U1}"], 1.0) == []
    t = asyncio.run(sim.vm_action(U1, "suspend"))
    assert t.status is TaskStatus.SUCCEEDED, t.error
    assert sim.task(tid2).status is TaskStatus.INTERRUPTED


def test_a_running_task_that_does_not_wait_cannot_be_cancelled(tmp_path):
    from mvmtui.engine.tasks import Journal, TaskSpec
    inv = Inventory(tmp_path / "i.db")
    j = Journal(inv, time.time, lambda e: None)
    spec = TaskSpec(kind="vm.start", title="Start web-01", cluster="sim", target_kind="vm",
                    target=U1, target_name="web-01", host="hv-1",
                    steps=("Check host", "Start"), locks=(f"vm:{U1}",), params={})

    async def scenario():
        gate = asyncio.Event()

        async def body(ctx):
            ctx.step(1)
            await gate.wait()                     # a libvirt call under way: not a wait
        t = await j.submit(spec, body)
        await asyncio.sleep(0.05)
        with pytest.raises(ValueError, match="cannot be cancelled now: it is at “Start”"):
            j.cancel(t.id, "by hand")
        gate.set()
        return await j.wait(t.id)
    assert asyncio.run(scenario()).status is TaskStatus.SUCCEEDED


def test_a_task_stopped_as_its_wait_ended_is_not_recorded_as_succeeded(tmp_path):
    """Another process's Force off asks the shutdown to stop and makes the state come
    true in the same moment: the shutdown did not happen, and History says so."""
    from mvmtui.engine.tasks import Journal, TaskSpec
    inv = Inventory(tmp_path / "i.db")
    j = Journal(inv, time.time, lambda e: None)
    spec = TaskSpec(kind="vm.shutdown", title="Shut down web-01", cluster="sim",
                    target_kind="vm", target=U1, target_name="web-01", host="hv-1",
                    steps=("Wait",), locks=(f"vm:{U1}",), params={})

    async def body(ctx):
        ctx.step(0)
        inv.update_task(ctx.id, cancel_requested="superseded by task 9 (Force off web-01)")
    t = asyncio.run(j.run(spec, body))
    assert t.status is TaskStatus.SUPERSEDED and "task 9" in t.error


def test_a_re_read_writes_only_the_vms_that_changed(sim, world, monkeypatch):
    """A reconciliation of thousands of unchanged VMs must not rewrite them all on the
    loop where keepalives run."""
    written = []
    real = sim.inv.save_vms
    monkeypatch.setattr(sim.inv, "save_vms", lambda vms: (written.extend(vms), real(vms)))
    asyncio.run(sim.refresh("sim"))
    sim._writes_done()     # rows are written on the writer thread: wait for it
    assert written == []
    world.change_vm("sim", "hv-1", U1, autostart=True)
    asyncio.run(sim.refresh("sim"))
    sim._writes_done()
    assert [v.uuid for v in written] == [U1]


# ---- placement strategy (issue 7 §1: kept in the domain and the inventory) --------------
def test_placement_is_written_to_the_vm_and_read_back(tmp_path, world):
    from mvmtui.engine.model import Strategy
    path = _inventory(tmp_path / "inv.db")
    eng = _engine(path, world)
    try:
        t = asyncio.run(eng.set_placement(U1, "pinned"))
        assert t.status is TaskStatus.SUCCEEDED, t.error
        assert (eng.vm(U1).strategy, eng.vm(U1).home) == (Strategy.PINNED, "hv-1")
        assert world.hosts[("sim", "hv-1")].vms[U1].strategy is Strategy.PINNED
        with pytest.raises(EngineError, match="Unknown strategy 'sticky'"):
            asyncio.run(eng.set_placement(U1, "sticky"))
        with pytest.raises(Exception, match="No host 'hv-9'"):
            asyncio.run(eng.set_placement(U1, home="hv-9"))
    finally:
        eng.stop()
    # Another console with its own, empty inventory reads it from the host itself.
    other = _engine(_inventory(tmp_path / "other.db"), world)
    try:
        assert other.vm(U1).strategy is Strategy.PINNED
    finally:
        other.stop()
    offline = Engine(path, offline=True)
    offline.start()
    try:
        assert offline.vm(U1).strategy is Strategy.PINNED    # and the inventory kept it
    finally:
        offline.stop()


# ---- cluster policy and the planner's view (issue 7 §0/§1) ----------------------------
def test_cluster_policy_is_kept_checked_and_feeds_the_planner(sim, world):
    from mvmtui.engine.errors import BadSetting
    from mvmtui.engine.model import ClusterPolicy
    assert sim.policy("sim") == ClusterPolicy()
    p = sim.set_policy("sim", ["vcpu-ratio=1", "host-reserve=7000",
                               "shared-datastores=ceph, nfs"])
    assert (p.vcpu_ratio, p.host_reserve_mib, p.shared_datastores) == (1.0, 7000,
                                                                       ("ceph", "nfs"))
    for bad in (["vcpu-ratio=0"], ["cpu=2"], ["host-reserve=lots"]):
        with pytest.raises(BadSetting):
            sim.set_policy("sim", bad)
    assert sim.policy("sim") == p                     # a refused change changed nothing
    # hv-2 has 16 GiB and 8 CPUs: with 7000 MiB reserved and no vCPU overcommit, the
    # 2-vCPU db-01 fits, but not once hv-2 runs 7 vCPUs.
    plan = sim.planner("sim").place(U2)
    assert [m.target for m in plan.moves] == ["hv-2"]
    world.change_vm("sim", "hv-2", U3, event="tunable", vcpus=7)
    _wait(lambda: sim.vm(U3).vcpus == 7, 2)
    (blocked,) = sim.planner("sim").place(U2).blocked
    assert dict(blocked.per_host)["hv-2"] == "needs 2 vCPUs, 1 free at 1× overcommit"
    world.power_cut("sim", "hv-2")
    _wait(lambda: sim.host("sim", "hv-2").status is HostStatus.UNREACHABLE, 5)
    (blocked,) = sim.planner("sim").place(U2).blocked
    assert dict(blocked.per_host)["hv-2"] == "unreachable"
