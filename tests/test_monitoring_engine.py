"""Monitoring in the engine (sync.py's stats pass → history.py; monitoring.py): over a
scripted world, the engine runs exactly its libvirt code path; changes made behind
the console's back are made in the world, as virsh would."""
from __future__ import annotations

import asyncio
import time

import pytest

from mvmtui.engine import Engine, Inventory
from mvmtui.engine.model import (OUTSIDE, Cluster, Host, MetricsChanged, TaskStatus, Vm,
                                 VmState)
from mvmtui.engine.scripted import ScriptedWorld


def _wait(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while not (v := pred()):
        if time.monotonic() > end:
            raise AssertionError("not true in time")
        time.sleep(0.02)
    return v


@pytest.fixture
def world_engine(tmp_path):
    world = ScriptedWorld()
    vms = [Vm(cluster="c", host="kvm-01", uuid=f"u{i}", name=f"vm-{i}", vcpus=1,
              memory_mib=1024, state=VmState.RUNNING, cpu_pct=10.0 * i, mem_used_mib=100 * i)
           for i in (1, 2, 3)]
    world.add_host("c", "kvm-01", vms=vms, cpu_pct=42.0, mem_used_mib=2048)
    inv = Inventory(tmp_path / "inv.db")
    inv.save_cluster(Cluster(name="c"))
    inv.save_host(Host(cluster="c", name="kvm-01", address="kvm-01"))
    eng = Engine(inv, connect=world.connect, stats_interval=0.05, reconnect_interval=0.1)
    seen = []
    eng.subscribe(lambda e: seen.append(e) if isinstance(e, MetricsChanged) else None)
    eng.start()
    eng.call(eng.wait_ready(timeout=10))
    yield world, eng, seen
    eng.stop()


def test_each_pass_writes_the_host_and_its_vms_and_says_so(world_engine):
    world, eng, seen = world_engine
    _wait(lambda: len(eng.sparkline("host", "c", "kvm-01")) >= 3)
    eng._writes_done()
    chart = eng.host_chart("c", "kvm-01", "cpu_pct", "15m")
    assert chart.series[0].points and all(v == 42.0 for _, v in chart.series[0].points)
    assert chart.as_of is not None and chart.tier == "raw samples"
    assert eng.host_chart("c", "kvm-01", "mem_used_mib", "1h").series[0].points[-1][1] == 2048
    vm3 = eng.vm_chart("u3", "cpu_pct", "15m")
    assert vm3.series[0].label == "vm-3" and vm3.series[0].points[-1][1] == 30.0
    top = eng.top_vms_chart("c", "cpu_pct", "15m", n=2)
    assert [s.label for s in top.series] == ["vm-3", "vm-2"]       # busiest first
    assert eng.hosts_chart("c", "cpu_pct", "1h").series[0].label == "kvm-01"
    assert eng.sparkline("vm", "c", "u2")[-1] == 20.0
    assert seen and seen[-1] == MetricsChanged("c", "kvm-01")


def test_a_stopped_vm_is_not_sampled_and_its_chart_says_how_old_it_is(world_engine):
    world, eng, _ = world_engine
    _wait(lambda: len(eng.sparkline("vm", "c", "u1")) >= 2)
    world.change_vm("c", "kvm-01", "u1", event="lifecycle", state=VmState.SHUTOFF)
    _wait(lambda: eng.vm("u1").state is VmState.SHUTOFF)
    time.sleep(0.3)
    eng._writes_done()
    before = eng.vm_chart("u1", "cpu_pct", "15m").as_of
    time.sleep(0.3)
    eng._writes_done()
    assert eng.vm_chart("u1", "cpu_pct", "15m").as_of == before      # no new points


def test_events_name_the_task_or_say_it_was_done_outside(world_engine):
    world, eng, _ = world_engine
    t = asyncio.run(eng.vm_action("u2", "destroy"))
    assert t.status is TaskStatus.SUCCEEDED
    world.change_vm("c", "kvm-01", "u3", event="lifecycle", state=VmState.SHUTOFF)
    _wait(lambda: eng.vm("u3").state is VmState.SHUTOFF)
    eng._writes_done()
    ev = _wait(lambda: [e for e in eng.event_log("c") if e.kind == "vm.state"])
    by_vm = {e.target_name: e for e in ev}
    assert by_vm["vm-2"].source.startswith(f"task {t.id} (") and "vm-2" in by_vm["vm-2"].source
    assert by_vm["vm-3"].source == OUTSIDE
    assert [e.target_name for e in eng.event_log("c", vm="u3")] == ["vm-3"]
    assert eng.event_log("c", host="kvm-09") == []
