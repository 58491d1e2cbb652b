"""Capacity: one model, used by every screen and the CLI.

Numerator and denominator always cover the same hosts. Normally those are the live
hosts and the VMs active on them; a host that does not answer is left out (its last
known VMs are counted apart, not as load on the live hosts). When no host is live
(offline mode, or every host lost) the last known state of all hosts is counted
instead, marked not live so screens say it is stale.
"""
from __future__ import annotations

from typing import Iterable

from .model import Capacity, Host, HostStatus, Vm


def tally(vms: Iterable[Vm]) -> dict[tuple[str, str], tuple[int, int, int]]:
    """Per (cluster, host): VMs, vCPUs and memory (MiB) of the active ones. A
    console keeps it while no VM changes (a pass over every VM)."""
    out: dict[tuple[str, str], list[int]] = {}
    for v in vms:
        t = out.get((v.cluster, v.host))
        if t is None:
            t = out[(v.cluster, v.host)] = [0, 0, 0]
        t[0] += 1
        if v.state.active:
            t[1] += v.vcpus
            t[2] += v.memory_mib
    return {k: (n, c, m) for k, (n, c, m) in out.items()}


def of(hosts: Iterable[Host], vms: Iterable[Vm] = (),
       tallied: dict[tuple[str, str], tuple[int, int, int]] | None = None) -> Capacity:
    """From the VMs, or from their `tally`."""
    hosts = list(hosts)
    per_host = tally(vms) if tallied is None else tallied
    live = [h for h in hosts if h.status is HostStatus.UP]
    counted = live or hosts
    mine = [per_host.get((h.cluster, h.name), (0, 0, 0)) for h in counted]
    total = sum(t[0] for t in per_host.values())
    used = [h.mem_used_mib for h in counted if h.mem_used_mib is not None]
    # Weighted by CPUs: a 4-CPU host at 100 % and a 64-CPU host idle are 6 % busy.
    cpu = [(h.cpu_pct, max(1, h.cpus)) for h in counted if h.cpu_pct is not None]
    return Capacity(
        hosts=len(counted), cpus=sum(h.cpus for h in counted),
        memory_mib=sum(h.memory_mib for h in counted),
        vcpus_allocated=sum(t[1] for t in mine),
        memory_allocated_mib=sum(t[2] for t in mine),
        memory_used_mib=sum(used) if used else None,
        cpu_pct=sum(p * n for p, n in cpu) / sum(n for _, n in cpu) if cpu else None,
        live=bool(live), hosts_left_out=len(hosts) - len(counted),
        vms_left_out=total - sum(t[0] for t in mine))
