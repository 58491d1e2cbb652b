"""What sampling costs per VM: one stats pass over a test-driver host of N VMs.

Issue 8 asks what history sampling costs per sampled VM and how that scales. One
host of N VMs (libvirt's test driver, in-process, node files from bench/testnode.py)
behind the real Engine; then, on the engine's own I/O loop, full stats passes as
the stats loop makes them: the bulk call (getAllDomainStats) with its per-record
work, confirming every VM against what the store holds, and writing one CPU sample
per VM (the test driver reports no CPU time, so the rows are made here, as a real
host's would be). CPU is the process's (every thread), so libvirt's share counts.

    .venv/bin/python bench/bench_sampling.py [N ...]      # default 1000 10000
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import testnode  # noqa: E402

from mvmtui.engine import Engine, Inventory  # noqa: E402
from mvmtui.engine.model import Cluster, Host  # noqa: E402
from mvmtui.engine.sync import FULL_PASS_VMS, HOST_SAMPLES_KEPT, VM_SAMPLES_KEPT  # noqa: E402

PASSES = 7


def measure(n: int, tmp: Path) -> dict:
    node = tmp / f"node-{n}.xml"
    testnode.write(n, node)
    inv = Inventory(tmp / f"inv-{n}.db")
    inv.save_cluster(Cluster(name="bench"))
    inv.save_host(Host(cluster="bench", name="hv-01", address=f"test://{node}"))
    eng = Engine(inv, stats_interval=3600, reconcile_interval=3600)
    eng.start()
    try:
        eng.call(eng.wait_ready(timeout=300, complete=True))
        key = ("bench", "hv-01")
        link = eng._links[key]
        hv = link.hv

        async def one_pass() -> tuple[float, float, float]:
            t0 = time.process_time()
            per_vm = await eng._lv(link, hv.stats)
            t1 = time.process_time()
            eng._confirm_vms(link, hv, eng.clock(), per_vm, True, eng._vms_on(key))
            t2 = time.process_time()
            now = eng.clock()
            rows = [dict(at=now, cluster=key[0], host=key[1], vm_uuid=u, metric="cpu_pct",
                         value=1.0) for u in per_vm]
            inv.add_samples(rows, HOST_SAMPLES_KEPT, now, VM_SAMPLES_KEPT)
            return t1 - t0, t2 - t1, time.process_time() - t2

        passes = [eng.call(one_pass()) for _ in range(PASSES)]
    finally:
        eng.stop()
    stats, confirm, write = (statistics.median(p[i] for p in passes) for i in range(3))
    every = max(1, -(-n // FULL_PASS_VMS))
    return dict(n=n, stats=stats, confirm=confirm, write=write, every=every)


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 10000]
    print(f"bench_sampling: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{platform.node()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
          f"median of {PASSES} full passes, CPU of every thread")
    print("| VMs | bulk call | confirm | write samples | per VM | full pass every | "
          "share of a core (5 s passes) |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            r = measure(n, Path(tmp))
            total = r["stats"] + r["confirm"] + r["write"]
            share = 100 * total / (5.0 * r["every"])
            print(f"| {n:,} | {r['stats'] * 1000:.1f} ms | {r['confirm'] * 1000:.1f} ms | "
                  f"{r['write'] * 1000:.1f} ms | {total / n * 1e6:.1f} µs | "
                  f"{5 * r['every']} s | {share:.2f} % |")


if __name__ == "__main__":
    main()
