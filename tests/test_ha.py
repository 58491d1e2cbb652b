"""The watcher on a scripted cluster (engine/ha.py): the engine's real links, tasks,
leases and planner over scripted hosts; the lab tests do the same on real ones."""
from __future__ import annotations

import asyncio

import pytest
from ha_world import ha_engine, ha_inventory, ha_world, uuid, wait_for

from mvmtui.engine.errors import EngineError
from mvmtui.engine.model import Strategy, TaskStatus, VmState


def _where(world, name):
    """(host, state) of every copy of the VM the scripted hosts hold."""
    return sorted((h.name, h.vms[uuid(name)].state.value) for h in world.hosts.values()
                  if uuid(name) in h.vms)


def _failover(eng, host="kvm-01"):
    return next((t for t in eng.tasks("ha", target=host, details=True)
                 if t.kind == "host.failover"), None)


@pytest.fixture
def world():
    return ha_world()


@pytest.fixture
def eng(tmp_path, world):
    e = ha_engine(ha_inventory(tmp_path / "inv.db"), world)
    wait_for(lambda: e.ha_status("ha").watcher.me, 10)
    yield e
    e.stop()


def test_the_watcher_holds_the_lease_and_says_so(eng):
    st = eng.ha_status("ha")
    assert st.watcher.watched and st.watcher.me and st.watcher.hosts_held == 3
    assert st.watcher.holder.startswith("watcher · ")
    # Every host has the lease file and the boot gate's mark.
    for h in eng.world.hosts.values():
        assert "watcher.lock" in h.files and "ha-gate" in h.files


def test_a_lost_host_is_fenced_its_vms_restart_and_come_home(eng, world):
    world.crash("ha", "kvm-01")
    wait_for(lambda: (_failover(eng) or None) and _failover(eng).status.finished, 20)
    t = _failover(eng)
    assert t.status is TaskStatus.SUCCEEDED, t.error
    log = "\n".join(entry.message for entry in t.logs)
    for word in ("suspect", "lost: no answer", "fenced: true power-off",
                 "web-01 runs on", "web-02 runs on"):
        assert word in log
    assert "db-01: not restarted — db-01 is pinned" in log
    assert "app-local: not restarted — app-local's disks are on storage only" in log
    for name in ("web-01", "web-02"):
        (host, state), = [w for w in _where(world, name) if w[0] != "kvm-01"]
        assert state == "running" and eng.vm(uuid(name)).failed_from == "kvm-01"
    children = eng.task_children(t.id)
    assert sorted(c.title.split(" on ")[0] for c in children) == ["Restart web-01",
                                                                   "Restart web-02"]
    assert eng.ha_status("ha").of("kvm-01").state == "failed-over"
    assert eng.vm(uuid("web-01")).autostart      # set again where it restarted
    # The host returns: its stale copies are undefined, the two come back live.
    world.revive("ha", "kvm-01")
    wait_for(lambda: all(eng.vm(uuid(n)).host == "kvm-01" and not eng.vm(uuid(n)).failed_from
                         for n in ("web-01", "web-02")), 20)
    assert _where(world, "web-01") == [("kvm-01", "running")]
    assert _where(world, "db-01") == [("kvm-01", "shut off")]   # pinned: there, stopped
    assert world.hosts[("ha", "kvm-01")].vms[uuid("web-01")].autostart   # and back home
    assert world.hosts[("ha", "kvm-01")].files.get("ha-checked")    # the gate opened
    wait_for(lambda: not eng.ha_status("ha").of("kvm-01").state, 10)
    log = "\n".join(e.message for e in eng.task(t.id).logs)
    assert "kvm-01 answers again" in log and "2 of 2 VMs back on kvm-01 live" in log


def test_without_a_fence_nothing_restarts_until_an_operator_confirms(tmp_path, world):
    eng = ha_engine(ha_inventory(tmp_path / "inv.db", fence="none"), world)
    try:
        wait_for(lambda: eng.ha_status("ha").watcher.me, 10)
        with pytest.raises(EngineError, match="answers"):
            asyncio.run(eng.confirm_fenced("ha", "kvm-01", "kvm-01"))
        world.power_cut("ha", "kvm-01")      # management lost; its guests still run
        wait_for(lambda: eng.ha_status("ha").of("kvm-01").state == "unfenced", 15)
        assert "not restarted: host not fenced" in eng.ha_status("ha").of("kvm-01").note
        assert _where(world, "web-01") == [("kvm-01", "running")]
        with pytest.raises(EngineError, match="Type the host's name"):
            asyncio.run(eng.confirm_fenced("ha", "kvm-01", "kvm-1"))
        world.crash("ha", "kvm-01")          # the operator pulls its power, then says so
        t = asyncio.run(eng.confirm_fenced("ha", "kvm-01", "kvm-01"))
        assert t.status is TaskStatus.SUCCEEDED
        assert any("confirmed that kvm-01 is powered off" in e.message for e in t.logs)
        wait_for(lambda: _failover(eng).status.finished, 15)
        assert "fenced: confirmed powered off by watcher" in "\n".join(
            e.message for e in _failover(eng).logs)
        assert any(h != "kvm-01" and s == "running" for h, s in _where(world, "web-01"))
    finally:
        eng.stop()


def test_a_watcher_cut_off_from_most_hosts_acts_on_none(eng, world):
    world.power_cut("ha", "kvm-02")      # the watcher's side of the network is cut
    world.power_cut("ha", "kvm-03")
    wait_for(lambda: eng.ha_status("ha").message.startswith("isolated")
             or not eng.ha_status("ha").watcher.me, 10)
    import time
    time.sleep(1.5)                  # well past ha-lost-after
    assert _failover(eng, "kvm-02") is None and _failover(eng, "kvm-03") is None
    assert _where(world, "ci-01") == [("kvm-02", "running")]


def test_two_watchers_one_acts_and_the_other_takes_over(tmp_path, world):
    a = ha_engine(ha_inventory(tmp_path / "a.db"), world)
    wait_for(lambda: a.ha_status("ha").watcher.me, 10)
    b = ha_engine(ha_inventory(tmp_path / "b.db"), world)
    try:
        import time
        time.sleep(1.0)
        assert not b.ha_status("ha").watcher.me
        assert "standby" in b.ha_status("ha").message
        a.stop()                     # releases its lease: b takes over at its next beat
        wait_for(lambda: b.ha_status("ha").watcher.me, 10)
        world.crash("ha", "kvm-02")
        wait_for(lambda: (_failover(b, "kvm-02") or None)
                 and _failover(b, "kvm-02").status.finished, 20)
        assert _failover(b, "kvm-02").status is TaskStatus.SUCCEEDED
        assert [h for h, s in _where(world, "ci-01") if s == "running"] != ["kvm-02"]
    finally:
        b.stop()


def test_short_of_room_high_priority_restarts_and_the_rest_say_why(tmp_path):
    # 5 GiB hosts, 1 GiB reserve: kvm-02 has 1 GiB free, kvm-03 2 GiB: room for one
    world = ha_world(memory_gib=5, sizes={"ci-01": 3072})
    path = ha_inventory(tmp_path / "inv.db")
    eng = ha_engine(path, world)
    try:
        asyncio.run(eng.set_placement(uuid("web-02"), priority="high"))
        plan = eng.failover_plan("ha", "kvm-01")
        rows = {r.name: r for r in plan.rows}
        assert rows["web-02"].outcome == "restart" and rows["web-02"].priority == "high"
        check = eng.host_loss_check("ha")
        assert not check.ok and check.worst.host == "kvm-01"
        wait_for(lambda: eng.ha_status("ha").watcher.me, 10)
        world.crash("ha", "kvm-01")
        wait_for(lambda: (_failover(eng) or None) and _failover(eng).status.finished, 20)
        log = "\n".join(e.message for e in _failover(eng).logs)
        assert "web-02 runs on" in log
        blocked = [r.name for r in plan.blocked if r.reason.startswith("no host can take")]
        assert blocked == ["web-01"]
        for name in blocked:
            assert f"{name}: not restarted — no host can take {name}" in log
    finally:
        eng.stop()


def test_the_failover_plan_and_n_minus_one(eng):
    plan = eng.failover_plan("ha", "kvm-01")
    out = {r.name: (r.outcome, r.target) for r in plan.rows}
    assert out["web-01"][0] == out["web-02"][0] == "restart"
    assert out["db-01"] == ("stays", "") and out["app-local"] == ("blocked", "")
    check = eng.host_loss_check("ha")
    assert [p.host for p in check.plans] == ["kvm-01", "kvm-02", "kvm-03"]
    assert not check.ok       # app-local cannot restart anywhere


def test_rebalance_moves_auto_vms_off_a_hot_host(eng, world):
    before = eng.rebalance_preview("ha", 5)
    assert all(eng.vm(r.vm).strategy is Strategy.AUTO for r in before.moves)
    assert before.after <= before.before
    if before.moves:
        t = asyncio.run(eng.rebalance("ha", before))
        end = eng.call(eng.wait_task(t.id), timeout=30)
        assert end.status is TaskStatus.SUCCEEDED, end.error
        for r in before.moves:
            assert eng.vm(r.vm).host == r.target and eng.vm(r.vm).state is VmState.RUNNING
        again = eng.rebalance_preview("ha", 5)
        assert not {r.vm for r in again.moves} & {r.vm for r in before.moves}   # cooldown


def test_a_console_that_does_not_watch_reads_who_does(tmp_path, world, eng):
    console = ha_engine(ha_inventory(tmp_path / "console.db"), world, watch=False,
                        actor="console")
    try:
        info = wait_for(lambda: console.ha_status("ha").watcher.watched
                        and console.ha_status("ha").watcher, 15)
        assert info.holder == eng.journal.started_by and not info.me
        assert info.age is not None and info.age <= 10
    finally:
        console.stop()
    eng.stop()
    lonely = ha_engine(ha_inventory(tmp_path / "lonely.db"), world, watch=False,
                       actor="console")
    try:
        wait_for(lambda: lonely.ha_status("ha").watcher.read_at is not None, 15)
        assert not lonely.ha_status("ha").watcher.watched
    finally:
        lonely.stop()


def test_the_watcher_rebalances_every_drs_interval(tmp_path, world):
    eng = ha_engine(ha_inventory(tmp_path / "inv.db", extra=("drs-interval=10",
                                                              "drs-threshold=3")), world)
    try:
        wait_for(lambda: eng.ha_status("ha").watcher.me, 10)
        assert not [t for t in eng.tasks("ha") if t.kind == "cluster.rebalance"]
        t = wait_for(lambda: next((t for t in eng.tasks("ha")
                                   if t.kind == "cluster.rebalance"), None), 25, 0.2)
        end = eng.call(eng.wait_task(t.id), timeout=30)
        assert end.status is TaskStatus.SUCCEEDED, end.error
        assert end.started_by.startswith("watcher · ")
        moved = [c for c in eng.task_children(t.id)]
        assert moved and all(eng.vm(c.target).strategy is Strategy.AUTO for c in moved)
    finally:
        eng.stop()
