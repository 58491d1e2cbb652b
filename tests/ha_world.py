"""A three-host cluster "ha" as a scripted world, for the watcher's tests: kvm-01 holds
the failover example (web-01 Auto, web-02 Failover, db-01 Pinned) and app-local, whose
disk only kvm-01 sees; kvm-02 and kvm-03 hold a VM each. Every disk but app-local's is
on the "shared" pool. Fencing runs a real command (true; its status check says off),
so the whole path from loss to restart runs as it would against hosts."""
from __future__ import annotations

import time
from pathlib import Path

from mvmtui.engine import Engine
from mvmtui.engine.inventory import Inventory
from mvmtui.engine.model import Cluster, Datastore, Disk, Host, Strategy, Vm, VmState
from mvmtui.engine.scripted import ScriptedWorld

GIB = 1024 ** 3
NAMES = {"web-01": 1, "web-02": 2, "db-01": 3, "app-local": 4, "ci-01": 5, "mon-01": 6}


def uuid(name: str) -> str:
    return f"00000000-0000-4000-9000-{NAMES[name]:012d}"


def _vm(name, host, state=VmState.RUNNING, strategy=Strategy.AUTO, mib=2048, vcpus=1,
        local=False, **kw) -> Vm:
    pool = "/var/lib/libvirt/images" if local else "/var/lib/libvirt/shared"
    return Vm(cluster="ha", host=host, uuid=uuid(name), name=name, state=state,
              vcpus=vcpus, memory_mib=mib, max_memory_mib=mib, strategy=strategy,
              home=host if strategy is Strategy.PINNED else "",
              disks=(Disk("vda", f"{pool}/{name}.raw", capacity_bytes=GIB),), **kw)


def ha_world(*, memory_gib: int = 16, sizes: dict[str, int] | None = None) -> ScriptedWorld:
    """`sizes`: VM name -> memory in MiB (2048 otherwise)."""
    world = ScriptedWorld(time.time, migration_seconds=0.2)
    mib = {n: (sizes or {}).get(n, 2048) for n in NAMES}
    vms = {"kvm-01": [_vm("web-01", "kvm-01", autostart=True, mib=mib["web-01"]),
                      _vm("web-02", "kvm-01", strategy=Strategy.FAILOVER, mib=mib["web-02"]),
                      _vm("db-01", "kvm-01", strategy=Strategy.PINNED, mib=mib["db-01"]),
                      _vm("app-local", "kvm-01", local=True, mib=mib["app-local"])],
           "kvm-02": [_vm("ci-01", "kvm-02", mib=mib["ci-01"])],
           "kvm-03": [_vm("mon-01", "kvm-03", mib=mib["mon-01"])]}
    for name, mine in vms.items():
        h = world.add_host("ha", name, cpus=8, memory_mib=memory_gib * 1024, vms=mine)
        h.datastores = [Datastore("ha", name, p, kind="dir", path=f"/var/lib/libvirt/{p}",
                                  active=True, capacity_bytes=100 * GIB,
                                  available_bytes=90 * GIB) for p in ("images", "shared")]
    return world


def ha_inventory(path: Path, *, fence: str = "command", lost_after: float = 0.5,
                 extra: tuple[str, ...] = ()) -> Path:
    inv = Inventory(path)
    inv.save_cluster(Cluster("ha", description="scripted HA cluster"))
    for i in (1, 2, 3):
        inv.save_host(Host(cluster="ha", name=f"kvm-0{i}", address=f"10.99.0.1{i}"))
    inv.close()
    eng = Engine(path, offline=True)
    eng.set_policy("ha", ["shared-datastores=shared", "host-reserve=1024",
                          f"ha-lost-after={lost_after}", f"fence-method={fence}",
                          "fence-command=true", "fence-status=echo power is off", *extra])
    eng.inv.close()
    return path


def ha_engine(path: Path, world: ScriptedWorld, *, watch: bool = True,
              actor: str = "watcher") -> Engine:
    eng = Engine(path, connect=world.connect, stats_interval=3600, reconcile_interval=3600,
                 reconnect_interval=0.2, actor=actor)
    eng.world = world
    eng.start(clusters=["ha"])
    eng.call(eng.wait_ready(timeout=10, complete=True))
    if watch:
        eng.start_watching(["ha"])
    return eng


def wait_for(what, timeout: float = 15.0, every: float = 0.05):
    """Poll until `what()` is truthy; returns it, or fails saying what was awaited."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = what()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"not within {timeout} s: {getattr(what, '__doc__', None) or what}")
