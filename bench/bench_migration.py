"""Live migration on the real lab: through the engine vs a raw libvirt managed
migration of the same VM, interleaved in one run (issue 7's goal: ≤ 1.1×), and the
evacuation of a 3-VM host (wall time, and each VM's longest pause as its disk counter
shows it: the guest writes every 0.5 s, so that is the resolution).

    .venv/bin/python bench/bench_migration.py [ROUNDS]

Builds its own lab ("mbench", subnet 79) and takes it down after. Needs root.
The engine figure is what an operator waits for: from the call to the task finished,
i.e. checks, the lock files on both hosts, the migration, and the confirmation that
the target runs it and the source no longer lists it. The raw figure is migrate3 alone
over two libvirt connections made beforehand (same flags: live, persist on the
target, undefine on the source, auto-converge, unsafe for the shared directory).
"""
from __future__ import annotations

import asyncio
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mvmtui.engine import Engine, Inventory  # noqa: E402
from mvmtui.engine.lab import Lab  # noqa: E402
from mvmtui.engine.model import MoveRequest, TaskStatus  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
VM = "db-02"


def raw_migrate(lab: Lab, src: str, dst: str) -> float:
    import libvirt
    uri = ("qemu+libssh://root@{addr}/system?keyfile={key}&known_hosts={kh}"
           "&known_hosts_verify=normal&sshauth=privkey")
    conns = [libvirt.open(uri.format(addr=lab.host(h).address, key=lab.ssh_key,
                                     kh=lab.known_hosts)) for h in (src, dst)]
    try:
        dom = conns[0].lookupByName(VM)
        flags = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PERSIST_DEST
                 | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE | libvirt.VIR_MIGRATE_AUTO_CONVERGE
                 | libvirt.VIR_MIGRATE_UNSAFE)
        t0 = time.perf_counter()
        dom.migrate3(conns[1], {}, flags)
        took = time.perf_counter() - t0
        del dom
        return took
    finally:
        for c in conns:
            c.close()


def engine_migrate(eng: Engine, dst: str) -> float:
    vm = eng.find_vm(VM)
    t0 = time.perf_counter()
    task = asyncio.run(eng.migrate_vm(MoveRequest(vm.uuid, dst)))
    done = asyncio.run(eng.wait_task(task.id))
    took = time.perf_counter() - t0
    assert done.status is TaskStatus.SUCCEEDED, done.error
    return took


def where(eng: Engine) -> str:
    return eng.find_vm(VM).host


def pauses(lab: Lab, names: list[str], stop: threading.Event, out: dict) -> None:
    """Each VM's longest time between two counter increments while `stop` is unset."""
    last = {n: (time.monotonic(), lab.disk_counter(n)) for n in names}
    out.update({n: 0.0 for n in names})
    while not stop.is_set():
        now = time.monotonic()
        for n in names:
            c = lab.disk_counter(n)
            if c != last[n][1]:
                out[n] = max(out[n], now - last[n][0])
                last[n] = (now, c)
        time.sleep(0.02)


def main() -> None:
    lab = Lab("mbench", hosts=3, subnet=79, root=Path(tempfile.mkdtemp()) / "labs")
    inv_path = Path(tempfile.mkdtemp()) / "inv.db"
    inv = Inventory(inv_path)
    lab.up(inv)
    inv.close()
    eng = Engine(inv_path, reconnect_interval=0.5)
    try:
        eng.start()
        eng.call(eng.wait_ready(timeout=20))
        time.sleep(3)                      # guests boot and start counting
        ours, raw = [], []
        for _ in range(ROUNDS):
            src = where(eng)
            dst = "kvm-03" if src != "kvm-03" else "kvm-02"
            ours.append(engine_migrate(eng, dst))
            src, dst = dst, src
            raw.append(raw_migrate(lab, src, dst))
            asyncio.run(eng.refresh())
        m_ours, m_raw = statistics.median(ours), statistics.median(raw)
        print(f"machine: {platform.node()}, {platform.processor() or platform.machine()}, "
              f"{time.strftime('%Y-%m-%d %H:%M')}")
        print(f"live migration of {VM} (96 MiB TCG guest, disk on the shared directory), "
              f"{ROUNDS} rounds interleaved:")
        print(f"  engine (call → task confirmed): median {m_ours * 1000:.0f} ms  "
              f"[{', '.join(f'{x * 1000:.0f}' for x in ours)}]")
        print(f"  raw libvirt migrate3:          median {m_raw * 1000:.0f} ms  "
              f"[{', '.join(f'{x * 1000:.0f}' for x in raw)}]")
        print(f"  ratio: {m_ours / m_raw:.2f}×")

        c = lab.name
        host = "kvm-02"
        names = [v.name for v in eng.vms(c, host)]
        running = [v.name for v in eng.vms(c, host) if v.state.active]
        stop, out = threading.Event(), {}
        watcher = threading.Thread(target=pauses, args=(lab, running, stop, out))
        watcher.start()
        t0 = time.perf_counter()
        task = asyncio.run(eng.enter_maintenance(c, host, host))
        done = asyncio.run(eng.wait_task(task.id))
        wall = time.perf_counter() - t0
        stop.set()
        watcher.join()
        assert done.status is TaskStatus.SUCCEEDED, done.error
        print(f"evacuation of {host} ({len(names)} VMs: {', '.join(sorted(names))}; "
              f"concurrency {eng.policy(c).migration_concurrency}): {wall:.1f} s to "
              f"'in maintenance'")
        for n in sorted(out):
            print(f"  {n}: longest counter pause {out[n] * 1000:.0f} ms")
    finally:
        eng.stop()
        lab.down()


if __name__ == "__main__":
    main()
