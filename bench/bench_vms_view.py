"""The console's VMs view with 10,000 VMs: the real screen, engine and inventory.

An offline engine over an inventory of 10,000 VMs on 200 hosts; the console opens
the cluster, then the VMs tab (key 3). Measured: first paint of the tab, a filter
keystroke (typing into the `/` bar), sorting (key o), and RSS at the end.
Each step then processes pending messages and repaints directly (pilot.pause()
sleeps ≥ 20 ms, too coarse for a 16 ms goal); keystrokes are reported as the
process's CPU time, since pilot.press itself waits for idle.

    .venv/bin/python bench/bench_vms_view.py
"""
from __future__ import annotations

import asyncio
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mvmtui.app import MvmApp  # noqa: E402
from mvmtui.engine import Engine, Inventory  # noqa: E402
from mvmtui.engine.model import Cluster, Disk, Host, HostStatus, Vm, VmState  # noqa: E402
from mvmtui.widgets.listing import Listing  # noqa: E402

N_VMS, N_HOSTS = 10_000, 200
STATES = [VmState.RUNNING] * 6 + [VmState.SHUTOFF] * 3 + [VmState.PAUSED]


def build(path: Path) -> None:
    inv = Inventory(path)
    inv.save_cluster(Cluster(name="big"))
    for h in range(N_HOSTS):
        inv.save_host(Host(cluster="big", name=f"hv-{h:03d}", address=f"10.1.{h // 250}.{h % 250}",
                           status=HostStatus.UP, cpus=64, memory_mib=512 * 1024, seen_at=1.0))
    inv.save_vms(Vm(cluster="big", host=f"hv-{i % N_HOSTS:03d}", uuid=f"uuid-{i:05d}",
                    name=f"{('web', 'db', 'cache', 'batch', 'ci')[i % 5]}-{i:05d}",
                    state=STATES[i % len(STATES)], vcpus=1 + i % 8,
                    memory_mib=512 * (1 + i % 16), seen_at=1.0,
                    disks=(Disk("vda", f"rbd/vm-{i}"),)) for i in range(N_VMS))
    inv.close()


async def measure(path: Path) -> dict:
    eng = Engine(path, offline=True, clock=lambda: 100.0)
    eng.start()
    app = MvmApp(eng, start_cluster="big")
    app.animation_level = "none"
    out: dict = {}
    async with app.run_test(size=(160, 50)) as pilot:
        async def frame() -> None:
            await pilot._wait_for_screen()
            app.screen._on_timer_update()

        await pilot.pause()
        t0 = time.perf_counter()
        await pilot.press("3")
        await frame()
        out["VMs tab first paint (wall)"] = time.perf_counter() - t0
        table = app.screen.query_one("#vms", Listing).table
        assert table.total_count == N_VMS, table.total_count
        await pilot.press("slash")
        await frame()
        keys = []
        for word in ("web-0", "batch-12", "cache"):
            for i in range(1, len(word) + 1):
                keys.append(word[i - 1])
            keys += ["backspace"] * len(word)
        times, cpu = [], []
        for k in keys:
            t0, c0 = time.perf_counter(), time.process_time()
            await pilot.press(k)
            await frame()
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        # pilot.press waits for idle (it sleeps), so wall time overstates the work;
        # CPU time of the process is the work a keystroke costs.
        out["filter keystroke median"] = statistics.median(cpu)
        out["filter keystroke p95"] = sorted(cpu)[int(len(cpu) * 0.95)]
        out["filter keystroke wall median"] = statistics.median(times)
        out["_keys"] = len(times)
        idle = []
        for _ in range(20):     # what a keystroke that changes nothing costs the harness
            c0 = time.process_time()
            await pilot.press("end")
            await frame()
            idle.append(time.process_time() - c0)
        out["no-op keystroke (baseline)"] = statistics.median(idle)
        await pilot.press("enter")
        await frame()
        sorts = []
        for _ in range(6):
            c0 = time.process_time()
            await pilot.press("o")
            await frame()
            sorts.append(time.process_time() - c0)
        out["sort (o) median"] = statistics.median(sorts)
    eng.stop()
    out["_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "big.db"
        t0 = time.perf_counter()
        build(path)
        built = time.perf_counter() - t0
        r = asyncio.run(measure(path))
    print(f"VMs view, {N_VMS:,} VMs on {N_HOSTS} hosts, 160x50 — {platform.node()}, "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"  (inventory of {N_VMS:,} VMs written in {built:.1f} s)")
    for k, v in r.items():
        if not k.startswith("_"):
            print(f"  {k:<28} {v * 1000:8.1f} ms")
    print(f"  {'filter keystrokes':<28} {r['_keys']:8d}")
    print(f"  {'peak RSS':<28} {r['_rss']:8.1f} MiB   (goal ≤ 150 MB)")
    goal = r["filter keystroke median"] * 1000
    print(f"  goal ≤ 16 ms median per filter keystroke: {'met' if goal <= 16 else 'MISSED'} "
          f"({goal:.1f} ms)")


if __name__ == "__main__":
    main()
