"""Refresh of N hosts: does the time stay flat as N grows?

Hosts are libvirt test-driver connections (in-process, no SSH), each with its own
node file of DOMS domains, so N can reach 200 on one machine. Measured through
the real Engine: connect + first full refresh of all hosts, then a full re-read
(`Engine.refresh`). Hosts refresh concurrently, each on its own libvirt thread.
Then the same 200 × DOMS VMs (4,000 by default) spread over 50 to 400 hosts: what a
host costs by itself.

    .venv/bin/python bench/bench_refresh.py [DOMS_PER_HOST]
"""
from __future__ import annotations

import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mvmtui.engine import Engine, Inventory  # noqa: E402
from mvmtui.engine.model import Cluster, Host, HostStatus  # noqa: E402

DOMS = int(sys.argv[1]) if len(sys.argv) > 1 else 20


def node_xml(i: int, doms: int) -> str:
    doms = "".join(
        f"<domain type='test'><name>vm-{i:03d}-{d:02d}</name>"
        f"<uuid>{uuid.uuid5(uuid.NAMESPACE_DNS, f'{i}.{d}.bench')}</uuid>"
        f"<memory>524288</memory><vcpu>1</vcpu><os><type>hvm</type></os>"
        f"<devices><disk type='file' device='disk'><source file='/img/{i}-{d}.qcow2'/>"
        f"<target dev='vda' bus='virtio'/></disk></devices></domain>"
        for d in range(doms))
    return (f"<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>8</cores>"
            f"<threads>1</threads><active>8</active><mhz>2000</mhz><model>x86_64</model>"
            f"</cpu><memory>33554432</memory>{doms}</node>")


def run(n: int, tmp: Path, doms: int = DOMS) -> tuple[float, float]:
    inv = Inventory(tmp / f"bench-{n}-{doms}.db")
    inv.save_cluster(Cluster(name="bench"))
    for i in range(n):
        f = tmp / f"node-{i}.xml"
        f.write_text(node_xml(i, doms))
        inv.save_host(Host(cluster="bench", name=f"hv-{i:03d}", address=f"test://{f}"))
    eng = Engine(inv, stats_interval=3600)
    t0 = time.perf_counter()
    eng.start()
    eng.call(eng.wait_ready(timeout=300))
    first = time.perf_counter() - t0
    up = sum(h.status is HostStatus.UP for h in eng.hosts("bench"))
    assert up == n, f"only {up}/{n} hosts up"
    assert len(eng.vms("bench")) == n * doms
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        asyncio.run(eng.refresh("bench"))
        times.append(time.perf_counter() - t0)
    eng.stop()
    return first, statistics.median(times)


def run_lab(hosts: list[Host], cluster: Cluster, tmp: Path) -> float:
    """Median full re-read of these real lab hosts (over SSH + libvirt)."""
    inv = Inventory(tmp / f"lab-{len(hosts)}.db")
    inv.save_cluster(cluster)
    for h in hosts:
        inv.save_host(h)
    eng = Engine(inv, stats_interval=3600)
    eng.start()
    eng.call(eng.wait_ready(timeout=30))
    assert all(h.status is HostStatus.UP for h in eng.hosts(cluster.name)), "lab not up"
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        asyncio.run(eng.refresh(cluster.name))
        times.append(time.perf_counter() - t0)
    eng.stop()
    return statistics.median(times)


def lab_section(tmp: Path) -> None:
    path = os.environ.get("MVMTUI_INVENTORY")
    if not path or not Path(path).exists():
        print("\n(no lab: `mvmtui lab up`, then MVMTUI_INVENTORY=… to add real hosts)")
        return
    src = Inventory(path)
    clusters = {c.name: c for c in src.clusters()}
    hosts = src.hosts("lab")
    src.close()
    if "lab" not in clusters or not hosts:
        print("\n(no cluster 'lab' in the inventory)")
        return
    print("\nrefresh of real lab hosts (SSH tunnel + libvirt, concurrent)")
    base = None
    for n in range(1, len(hosts) + 1):
        t = run_lab(hosts[:n], clusters["lab"], tmp)
        base = base or t
        print(f"{n:>6} hosts  re-read {t * 1000:6.1f} ms   ({t / base:.1f}× of 1 host)")


def main() -> None:
    print(f"refresh of N test-driver hosts × {DOMS} VMs — {platform.node()}, "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    print(f"{'hosts':>6} {'VMs':>6} {'connect+first':>14} {'re-read':>10} {'per host':>10}")
    with tempfile.TemporaryDirectory() as d:
        base = None
        for n in (1, 10, 50, 100, 200):
            first, again = run(n, Path(d))
            base = base or again
            print(f"{n:>6} {n * DOMS:>6} {first * 1000:>11.0f} ms {again * 1000:>7.0f} ms "
                  f"{again / n * 1000:>7.2f} ms   ({again / base:.1f}× of 1 host)")
        # The same 4,000 VMs spread over more and more hosts: what a host adds by itself.
        print(f"\nthe same {200 * DOMS} VMs over N hosts (re-read)")
        total = 200 * DOMS
        for n in (50, 100, 200, 400):
            _, again = run(n, Path(d), doms=total // n)
            print(f"{n:>6} hosts × {total // n:>3} VMs  {again * 1000:7.0f} ms")
        lab_section(Path(d))


if __name__ == "__main__":
    main()
