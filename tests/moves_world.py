"""prod as a scripted world where VMs can move: kvm-01 and kvm-02 share the images
pool (declared shared in prod's policy), kvm-03 cannot be reached. For the console's
Manage Placement, migration and maintenance tests and snapshots (and for trying the
screens by hand: `python tests/moves_world.py`, never the lab)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from conftest import FIXED, GIB, build_inventory, scripted_world, uuid_of

from mvmtui.engine import Engine
from mvmtui.engine.model import Datastore, Strategy, Task, TaskStatus, TaskStep

WEB_01, DB_01, CACHE_01 = uuid_of(1), uuid_of(3), uuid_of(5)     # kvm-01's VMs


def moves_engine(path: Path, *, pinned: bool = False, migration_seconds: float = 0.3,
                 clock=lambda: FIXED, maintenance: dict[str, str] | None = None) -> Engine:
    """kvm-01 runs web-01 and db-01 (running) and cache-01 (shut off); with `pinned`,
    web-01 is pinned to kvm-01 (entering maintenance is then blocked). `maintenance`:
    host -> the state its own files say (ENTERING, IN_MAINTENANCE), read at connect."""
    world = scripted_world(clock)
    world.migration_seconds = migration_seconds
    for name in ("kvm-01", "kvm-02"):
        world.hosts[("prod", name)].datastores = [
            Datastore("prod", name, "images", kind="dir", path="/var/lib/libvirt/images",
                      active=True, capacity_bytes=2000 * GIB, allocation_bytes=400 * GIB,
                      available_bytes=1600 * GIB)]
    for name, state in (maintenance or {}).items():
        world.hosts[("prod", name)].files["maintenance"] = (state, FIXED)
    if pinned:
        h = world.hosts[("prod", "kvm-01")]
        h.vms[WEB_01] = replace(h.vms[WEB_01], strategy=Strategy.PINNED, home="kvm-01")
    eng = Engine(path, clock=clock, connect=world.connect, stats_interval=3600,
                 reconcile_interval=3600, reconnect_interval=3600)
    eng.set_policy("prod", ["shared-datastores=images"])
    eng.world = world
    eng.start(clusters=["prod"])
    eng.call(eng.wait_ready(timeout=10))
    return eng


MIB = 1024 * 1024
HALFWAY = {"processed": 1536 * MIB, "remaining": 2560 * MIB, "total": 4096 * MIB,
           "bytes_per_s": 400 * MIB, "elapsed_s": 3.8, "downtime_ms": 120, "phase": "memory"}


def journal_migration(eng: Engine, progress: dict = HALFWAY, vm: str = WEB_01,
                      name: str = "web-01", parent: int | None = None,
                      ago: float = 4.0) -> int:
    """A live migration of a kvm-01 VM to kvm-02 written into the journal by hand, at
    its second step with libvirt's figures in its checkpoint (as the engine writes
    them)."""
    inv = eng.inv
    start = FIXED - ago
    tid = inv.create_task(Task(
        id=0, kind="vm.migrate", title=f"Migrate {name} to kvm-02", cluster="prod",
        target_kind="vm", target=vm, target_name=name, host="kvm-01",
        status=TaskStatus.QUEUED, created_at=start, started_by="console · root@admin-1",
        parent=parent, steps=tuple(TaskStep(i, s) for i, s in enumerate(
            ("Check both hosts", "Migrate live", "Confirm on kvm-02"))),
        checkpoint={"source": "kvm-01", "target": "kvm-02", "phase": "migrating",
                    "progress": progress}))
    fraction = progress["processed"] / progress["total"]
    inv.update_task(tid, status=TaskStatus.RUNNING, started_at=start,
                    progress=1 / 3 + fraction / 3, cancellable=1)
    inv.update_step(tid, 0, status=TaskStatus.SUCCEEDED, started_at=start,
                    finished_at=start + 0.2)
    inv.update_step(tid, 1, status=TaskStatus.RUNNING, started_at=start + 0.2)
    for at, message in ((0.1, f"{name} runs on kvm-01; kvm-02 is up and has room; its "
                              f"disks are on shared storage"),
                        (0.2, "Live migration started (auto-converge, at most 500 ms "
                              "downtime)")):
        inv.add_log(tid, start + at, "info", message)
    return tid


def journal_entering(eng: Engine) -> int:
    """kvm-01 entering maintenance, written by hand: the parent task at its moves, one
    move done (cache-01), one migrating (db-01), one not started (web-01). Use with
    moves_engine(..., maintenance={"kvm-01": ENTERING})."""
    inv = eng.inv
    start = FIXED - 10
    steps = ("Take out of the placement pool", "Move 3 VMs", "Confirm the host is empty")
    tid = inv.create_task(Task(
        id=0, kind="host.maintenance.enter", title="Enter maintenance: kvm-01",
        cluster="prod", target_kind="host", target="kvm-01", target_name="kvm-01",
        host="kvm-01", status=TaskStatus.QUEUED, created_at=start,
        started_by="console · root@admin-1",
        steps=tuple(TaskStep(i, s) for i, s in enumerate(steps))))
    inv.update_task(tid, status=TaskStatus.RUNNING, started_at=start, progress=4 / 9,
                    checkpoint={"moved": [], "total": 3, "ended": 1})
    inv.update_step(tid, 0, status=TaskStatus.SUCCEEDED, started_at=start,
                    finished_at=start + 0.1)
    inv.update_step(tid, 1, status=TaskStatus.RUNNING, started_at=start + 0.1)
    inv.add_log(tid, start, "info", "kvm-01 is out of the placement pool")
    moved = inv.create_task(Task(
        id=0, kind="vm.move", title="Move cache-01 to kvm-02 (offline)", cluster="prod",
        target_kind="vm", target=CACHE_01, target_name="cache-01", host="kvm-01",
        status=TaskStatus.QUEUED, created_at=start + 0.2, parent=tid,
        started_by="console · root@admin-1"))
    inv.update_task(moved, status=TaskStatus.SUCCEEDED, started_at=start + 0.2,
                    finished_at=start + 1.4, progress=1.0)
    journal_migration(eng, HALFWAY, DB_01, "db-01", parent=tid, ago=8.6)
    inv.create_task(Task(
        id=0, kind="vm.migrate", title="Migrate web-01 to kvm-02", cluster="prod",
        target_kind="vm", target=WEB_01, target_name="web-01", host="kvm-01",
        status=TaskStatus.QUEUED, created_at=start + 0.2, parent=tid,
        started_by="console · root@admin-1"))
    return tid


if __name__ == "__main__":      # try the screens by hand over the scripted world
    import sys
    import tempfile
    import time

    from mvmtui.app import MvmApp

    pinned = "--pinned" in sys.argv
    path = build_inventory(Path(tempfile.mkdtemp()) / "inventory.db")
    eng = moves_engine(path, pinned=pinned, migration_seconds=8.0, clock=time.time)
    try:
        MvmApp(eng, start_cluster="prod").run()
    finally:
        eng.stop()
