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


def of(hosts: Iterable[Host], vms: Iterable[Vm]) -> Capacity:
    hosts, vms = list(hosts), list(vms)
    live = [h for h in hosts if h.status is HostStatus.UP]
    counted = live or hosts
    names = {(h.cluster, h.name) for h in counted}
    mine = [v for v in vms if (v.cluster, v.host) in names]
    active = [v for v in mine if v.state.active]
    used = [h.mem_used_mib for h in counted if h.mem_used_mib is not None]
    # Weighted by CPUs: a 4-CPU host at 100 % and a 64-CPU host idle are 6 % busy.
    cpu = [(h.cpu_pct, max(1, h.cpus)) for h in counted if h.cpu_pct is not None]
    return Capacity(
        hosts=len(counted), cpus=sum(h.cpus for h in counted),
        memory_mib=sum(h.memory_mib for h in counted),
        vcpus_allocated=sum(v.vcpus for v in active),
        memory_allocated_mib=sum(v.memory_mib for v in active),
        memory_used_mib=sum(used) if used else None,
        cpu_pct=sum(p * n for p, n in cpu) / sum(n for _, n in cpu) if cpu else None,
        live=bool(live), hosts_left_out=len(hosts) - len(counted),
        vms_left_out=len(vms) - len(mine))
