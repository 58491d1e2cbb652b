"""What monitoring costs at 200 hosts / 10,000 VMs: a sampling round, its writes, and
how big the history gets.

1. **A sampling round.** 200 hosts of 50 VMs each (libvirt's test driver, in-process:
   bench/testnode.py) behind the real Engine. A round is every host's stats pass
   (sync._stats_pass, the code the stats loop runs): the host's figures, the bulk
   getAllDomainStats call, confirming each VM, and one history write per host (its
   samples and its VMs', one transaction, on the writer thread). CPU is the
   process's (every thread), so libvirt's share counts. The test driver reports no
   CPU time nor I/O for its domains, so VM rows carry the state-derived figures only;
   their count and write path are a real host's.
2. **The history's size.** A synthetic hour of 5-second samples for 1,000 VMs and 20
   hosts with every figure set (as a real KVM host gives), written as the stats pass
   writes them, rolled up and pruned as the engine does; the bytes per point (SQLite's
   dbstat) give the size at 10,200 series: each tier is capped by its keep, so the
   file grows for a month and then stays level.

    .venv/bin/python bench/bench_sampling.py [--hosts 200] [--per-host 50] [--rounds 5]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import testnode  # noqa: E402

from mvmtui.engine import Engine, Inventory  # noqa: E402
from mvmtui.engine.history import History  # noqa: E402
from mvmtui.engine.metrics import MINUTE, QUARTER, RAW  # noqa: E402
from mvmtui.engine.model import Cluster, Host  # noqa: E402

INTERVAL = 5.0


def sampling_rounds(hosts: int, per_host: int, rounds: int, tmp: Path) -> dict:
    inv = Inventory(tmp / "rounds.db")
    inv.save_cluster(Cluster(name="bench"))
    for h in range(hosts):
        uri = testnode.write(per_host, tmp / f"node-{h:03d}.xml", first=h * per_host)
        inv.save_host(Host(cluster="bench", name=f"hv-{h:03d}", address=uri))
    eng = Engine(inv, stats_interval=3600, reconcile_interval=3600)
    eng.start()
    writes: list[float] = []
    try:
        eng.call(eng.wait_ready(timeout=900, complete=True))
        real_write = eng.history.write

        def timed_write(samples, now=None):       # on the writer thread
            t = time.thread_time()
            real_write(samples, now)
            writes.append(time.thread_time() - t)
        eng.history.write = timed_write

        async def one_round(n: int) -> None:
            await asyncio.gather(*(eng._stats_pass(link, n) for link in eng._links.values()))

        out = []
        for n in range(1, rounds + 2):     # the first round warms up (series made)
            writes.clear()
            c0, w0 = time.process_time(), time.perf_counter()
            eng.call(one_round(n), timeout=600)
            eng._writes_done()
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            if n > 1:
                out.append((cpu, wall, sum(writes), len(writes)))
            time.sleep(1.1)                # the next round's samples a second later
        points = inv.conn.execute("SELECT count(*) FROM metric_points").fetchone()[0]
    finally:
        eng.stop()
    return dict(cpu=statistics.median(r[0] for r in out), wall=statistics.median(r[1] for r in out),
                write=statistics.median(r[2] for r in out), batches=out[0][3], points=points)


def history_size(vms: int, hosts: int, tmp: Path) -> dict:
    """An hour of synthetic passes, then the bytes per stored point."""
    rnd = random.Random(11)
    inv = Inventory(tmp / "size.db")
    h = History(inv)
    start = 1_800_000_000
    per_host = vms // hosts
    t0 = time.perf_counter()
    write_cpu = 0.0
    for p in range(int(3600 / INTERVAL)):
        now = start + p * INTERVAL
        for k in range(hosts):
            batch = [("c", "host", f"hv-{k:03d}", f"hv-{k:03d}", now, {
                "cpu_pct": rnd.uniform(5, 95), "mem_used_mib": rnd.randint(100_000, 250_000),
                "load1": rnd.uniform(0, 40), "net_rx_bps": rnd.uniform(0, 1e9),
                "net_tx_bps": rnd.uniform(0, 1e9), "disk_rd_bps": rnd.uniform(0, 5e8),
                "disk_wr_bps": rnd.uniform(0, 5e8)})]
            for v in range(per_host):
                batch.append(("c", "vm", f"vm-{k}-{v}", f"vm-{k}-{v}", now, {
                    "cpu_pct": rnd.uniform(0, 100), "mem_used_mib": rnd.randint(200, 16_000),
                    "net_rx_bps": rnd.uniform(0, 1e8), "net_tx_bps": rnd.uniform(0, 1e8),
                    "disk_rd_bps": rnd.uniform(0, 1e8), "disk_wr_bps": rnd.uniform(0, 1e8)}))
            c = time.process_time()
            h.write(batch, now=now)
            write_cpu += time.process_time() - c
    h.write([], now=start + 3600 + 60)     # roll the last windows
    wall = time.perf_counter() - t0
    # What the writer does once a minute besides: roll a minute window up again (as
    # the first write after a start does) and prune the raw minute that aged out.
    c = time.process_time()
    with inv.transaction():
        h._roll(MINUTE, start + 3000, start + 3060)
    roll = time.process_time() - c
    c = time.process_time()
    with inv.transaction():
        h.prune(start + 3600 + 60 + 60)
    prune = time.process_time() - c
    rows = dict(inv.conn.execute("SELECT tier, count(*) FROM metric_points GROUP BY tier"))
    size = sum(r[0] for r in inv.conn.execute(
        "SELECT sum(pgsize) FROM dbstat WHERE name = 'metric_points'"))
    total = sum(rows.values())
    return dict(series=vms + hosts, rows=rows, bytes_per_point=size / total, wall=wall,
                roll=roll, prune=prune,
                write_cpu=write_cpu, writes=int(3600 / INTERVAL) * hosts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--per-host", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    n_vms = a.hosts * a.per_host
    print(f"bench_sampling: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{platform.node()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        r = sampling_rounds(a.hosts, a.per_host, a.rounds, Path(tmp))
        print(f"\n1. A sampling round, {a.hosts} hosts / {n_vms:,} VMs (test driver), median "
              f"of {a.rounds}:")
        print("| CPU per round (all threads) | wall | of it, history writes | writes | "
              f"share of a core at {INTERVAL:.0f} s |")
        print("|---|---|---|---|---|")
        print(f"| {r['cpu'] * 1000:.0f} ms | {r['wall'] * 1000:.0f} ms | "
              f"{r['write'] * 1000:.0f} ms | {r['batches']} batches | "
              f"{100 * r['cpu'] / INTERVAL:.1f} % |")
        s = history_size(1000, 20, Path(tmp))
        bpp = s["bytes_per_point"]
        series = n_vms + a.hosts
        raw_pd = 86400 / INTERVAL * series
        cap = {t.name: (t.keep / (t.step or INTERVAL)) * series * bpp for t in (RAW, MINUTE, QUARTER)}
        print(f"\n2. The history: an hour of 5 s samples for {s['series']:,} series, every figure "
              f"set: {sum(s['rows'].values()):,} points, {bpp:.1f} bytes a point; "
              f"{s['write_cpu'] / s['writes'] * 1000:.2f} ms CPU a write of 51 series.")
        print(f"   Once a minute: rolling a minute window up {s['roll'] * 1000:.0f} ms, pruning "
              f"the raw minute that aged out {s['prune'] * 1000:.0f} ms (CPU, {s['series']:,} "
              f"series; both grow with the series, so about "
              f"{(s['roll'] + s['prune']) * series / s['series'] * 1000:.0f} ms at {series:,}).")
        print(f"   At {series:,} series ({a.hosts} hosts, {n_vms:,} VMs):")
        print("| tier | kept | points when full | size when full |")
        print("|---|---|---|---|")
        for t in (RAW, MINUTE, QUARTER):
            pts = t.keep / (t.step or INTERVAL) * series
            print(f"| {t.name} | {t.keep / 3600:g} h | {pts / 1e6:.1f} M | "
                  f"{cap[t.name] / 2**30:.2f} GiB |")
        grow = 86400 / QUARTER.step * series * bpp
        print(f"   Growth: {(cap[RAW.name] + cap[MINUTE.name]) / 2**30:.2f} GiB on the first day "
              f"(raw and minute tiers filling), then {grow / 2**20:.0f} MiB a day (15-minute "
              f"tier) until day 30, then none: {sum(cap.values()) / 2**30:.2f} GiB in all. "
              f"Written each day: {raw_pd / 1e6:.0f} M raw points.")


if __name__ == "__main__":
    main()
