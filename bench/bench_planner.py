"""The placement planner at scale: 10,000 VMs on 200 hosts; place one VM and
evacuate one host (issue 7's goal: each ≤ 100 ms). Pure Python, no I/O.

    .venv/bin/python bench/bench_planner.py [VMS] [HOSTS]
"""
from __future__ import annotations

import platform
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mvmtui.engine.placement import Cluster, HostSpec, Rules, Strategy, VmSpec  # noqa: E402

VMS = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
HOSTS = int(sys.argv[2]) if len(sys.argv) > 2 else 200


def cluster(seed: int = 1) -> Cluster:
    rnd = random.Random(seed)
    hosts = [HostSpec(f"kvm-{i:03d}", cpus=64, memory_mib=512 * 1024, reserve_mib=8192,
                      cpu_model=rnd.choice(["EPYC-Milan", "EPYC-Rome"]))
             for i in range(HOSTS)]
    vms = []
    for i in range(VMS):
        h = hosts[i % HOSTS]
        vms.append(VmSpec(uuid=f"u{i:05d}", name=f"vm-{i:05d}", host=h.name,
                          vcpus=rnd.choice([1, 2, 4, 8]), memory_mib=rnd.choice([1, 2, 4, 8, 16]) * 1024,
                          active=rnd.random() < 0.8,
                          strategy=rnd.choice([Strategy.AUTO, Strategy.AUTO, Strategy.FAILOVER]),
                          cpu_model=h.cpu_model if rnd.random() < 0.1 else ""))
    groups = tuple(frozenset(f"u{j:05d}" for j in range(k, k + 3 * HOSTS, HOSTS))
                   for k in range(0, 300))
    return Cluster(hosts, vms, Rules(vcpu_ratio=4.0, anti_affinity=groups))


def timed(fn, n: int = 7) -> tuple[float, float]:
    runs = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t) * 1000)
    return statistics.median(runs), min(runs)


def main() -> None:
    t = time.perf_counter()
    c = cluster()
    built = (time.perf_counter() - t) * 1000
    # What a console pays for a preview: build the view from plain data, then plan.
    place = timed(lambda: cluster().place("u00042"))
    evac = timed(lambda: cluster().evacuate("kvm-007"))
    place_only = timed(lambda: c.place("u00042"))
    evac_only = timed(lambda: c.evacuate("kvm-007"))
    plan = c.evacuate("kvm-007")
    print(f"planner, {VMS} VMs on {HOSTS} hosts — {platform.node()}, "
          f"{len(__import__('os').sched_getaffinity(0))} cores, {time.strftime('%Y-%m-%d')}")
    print(f"  build the planner's view    {built:7.1f} ms")
    print(f"  place one VM                {place[0]:7.1f} ms median ({place[1]:.1f} fastest), "
          f"{place_only[0]:.1f} ms on a built view")
    print(f"  evacuate one host           {evac[0]:7.1f} ms median ({evac[1]:.1f} fastest), "
          f"{evac_only[0]:.1f} ms on a built view; "
          f"{len(plan.moves)} moves, {len(plan.blocked)} blocked")
    ok = place[0] <= 100 and evac[0] <= 100
    print(f"  goal ≤ 100 ms each, view built included: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
