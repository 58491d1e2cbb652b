"""Where VMs go: the pure planner (DESIGN rule 6). Plain data in, a plan out; no I/O.

Used to place one VM (Manage Placement, migration), to evacuate a host (maintenance),
and later to fail over a lost host and to rebalance a cluster. Every move carries its
reason; every VM that cannot be placed says why, host by host ("kvm-03: needs 4096
MiB, 2300 free"). The same input always gives the same plan.

Rules honoured:
- capacity: memory is not overcommitted unless the cluster allows it; vCPUs up to the
  cluster's overcommit ratio; each host keeps a memory reserve for itself;
- VM–VM affinity groups (together) and anti-affinity groups (apart);
- VM–host rules: `must` (never broken) and `should` (preferred);
- CPU compatibility: a VM that needs a host's CPU model goes only to hosts with it;
- hosts in maintenance, unreachable or stale are never targets;
- a Pinned VM is never moved.
Load is what runs: active VMs count on their host; a stopped VM that moves counts on
its new host as if it ran there, so that starting it later does not overcommit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from .model import Strategy

__all__ = ["Strategy", "HostSpec", "VmSpec", "Rules", "Move", "Blocked", "Plan", "Cluster"]


@dataclass(frozen=True)
class HostSpec:
    name: str
    cpus: int
    memory_mib: int
    reserve_mib: int = 0             # kept for the host itself
    cpu_model: str = ""
    available: bool = True           # up and fresh: a candidate at all
    maintenance: bool = False        # in (or entering) maintenance: never a target
    why_unavailable: str = "not reachable"


@dataclass(frozen=True)
class VmSpec:
    uuid: str
    name: str
    host: str
    vcpus: int
    memory_mib: int
    active: bool = True
    strategy: Strategy = Strategy.AUTO
    home: str = ""                   # the host it belongs on, if any
    cpu_model: str = ""              # a CPU model it needs ("" = runs anywhere)


@dataclass(frozen=True)
class Rules:
    vcpu_ratio: float = 4.0          # vCPUs per physical CPU
    memory_ratio: float = 1.0        # 1.0: memory is never overcommitted
    affinity: tuple[frozenset[str], ...] = ()        # groups of VM uuids: together
    anti_affinity: tuple[frozenset[str], ...] = ()   # groups of VM uuids: apart
    must: dict[str, frozenset[str]] = field(default_factory=dict)    # uuid -> hosts
    should: dict[str, frozenset[str]] = field(default_factory=dict)  # uuid -> hosts


@dataclass(frozen=True)
class Move:
    vm: str                          # uuid
    name: str
    source: str
    target: str
    live: bool                       # a running VM moves live; a stopped one offline
    reason: str


@dataclass(frozen=True)
class Blocked:
    vm: str
    name: str
    host: str
    reason: str                      # why it cannot go anywhere, in a sentence
    per_host: tuple[tuple[str, str], ...] = ()   # (host, why not) for every candidate


@dataclass(frozen=True)
class Plan:
    moves: tuple[Move, ...] = ()
    blocked: tuple[Blocked, ...] = ()
    stays: tuple[tuple[str, str], ...] = ()     # (uuid, why it stays where it is)

    @property
    def complete(self) -> bool:
        return not self.blocked


class _Load:
    """vCPUs and memory of what runs on each host, updated as moves are planned."""

    def __init__(self, hosts: dict[str, HostSpec], vms: Iterable[VmSpec]):
        self.vcpus = {h: 0 for h in hosts}
        self.memory = {h: 0 for h in hosts}
        self.members: dict[str, set[str]] = {h: set() for h in hosts}
        for v in vms:
            self.add(v, v.host)

    def add(self, vm: VmSpec, host: str, moved: bool = False) -> None:
        """A VM moved by the plan counts even when stopped: it reserves room so that
        two stopped VMs moved to one host can both be started there."""
        if host in self.members:
            self.members[host].add(vm.uuid)
            if vm.active or moved:
                self.vcpus[host] += vm.vcpus
                self.memory[host] += vm.memory_mib

    def remove(self, vm: VmSpec, host: str, moved: bool = False) -> None:
        if host in self.members:
            self.members[host].discard(vm.uuid)
            if vm.active or moved:
                self.vcpus[host] -= vm.vcpus
                self.memory[host] -= vm.memory_mib

    def move(self, vm: VmSpec, source: str, target: str) -> None:
        self.remove(vm, source)
        self.add(vm, target, moved=True)

    def undo(self, vm: VmSpec, source: str, target: str) -> None:
        self.remove(vm, target, moved=True)
        self.add(vm, source)


class Cluster:
    """The planner's view of one cluster: hosts, VMs, rules."""

    def __init__(self, hosts: Iterable[HostSpec], vms: Iterable[VmSpec],
                 rules: Rules | None = None):
        self.hosts = {h.name: h for h in sorted(hosts, key=lambda h: h.name)}
        self.vms = {v.uuid: v for v in vms}
        self.rules = rules or Rules()
        self._anti = {}
        for group in self.rules.anti_affinity:
            for u in group:
                self._anti.setdefault(u, []).append(group)
        self._together = {}
        for group in self.rules.affinity:
            for u in group:
                self._together.setdefault(u, []).append(group)

    def __repr__(self) -> str:
        return (f"Cluster({list(self.hosts.values())!r}, {list(self.vms.values())!r}, "
                f"{self.rules!r})")

    # ---- one host, one VM -------------------------------------------------------
    def why_not(self, vm: VmSpec, host: str, load: _Load, leaving: str | None = None) -> str:
        """"" if `vm` may go to `host` now, else the reason, in an operator's words.
        `leaving`: the host being evacuated (its VMs all move, groups with them)."""
        h = self.hosts[host]
        if host == vm.host:
            return "it is there now"
        if h.maintenance:
            return "in maintenance"
        if not h.available:
            return h.why_unavailable
        must = self.rules.must.get(vm.uuid)
        if must is not None and host not in must:
            return f"{vm.name} must run on {', '.join(sorted(must))}"
        if vm.cpu_model and h.cpu_model != vm.cpu_model:
            return f"CPU {h.cpu_model or 'unknown'}; {vm.name} needs {vm.cpu_model}"
        for group in self._anti.get(vm.uuid, ()):
            there = sorted(self.vms[u].name for u in load.members[host] & group
                           if u != vm.uuid)
            if there:
                return f"{there[0]} is there (kept apart from {vm.name})"
        for group in self._together.get(vm.uuid, ()):
            # Members still on an evacuated host move along (unless pinned); the others
            # fix the host.
            at = set()
            for u in group:
                if u == vm.uuid or u not in self.vms:
                    continue
                where = self._placed_on(u, load)
                if not (where == leaving and self.vms[u].strategy is not Strategy.PINNED):
                    at.add(where)
            elsewhere = sorted(at - {host})
            if elsewhere:
                return f"{vm.name} goes with its group on {', '.join(elsewhere)}"
        free_mem = int(h.memory_mib * self.rules.memory_ratio) - h.reserve_mib \
            - load.memory[host]
        if vm.memory_mib > free_mem:
            return f"needs {vm.memory_mib} MiB, {max(0, free_mem)} free"
        free_cpu = int(h.cpus * self.rules.vcpu_ratio) - load.vcpus[host]
        if vm.vcpus > free_cpu:
            return (f"needs {vm.vcpus} vCPUs, {max(0, free_cpu)} free at "
                    f"{self.rules.vcpu_ratio:g}× overcommit")
        return ""

    def _placed_on(self, uuid: str, load: _Load) -> str:
        for host, members in load.members.items():
            if uuid in members:
                return host
        return self.vms[uuid].host

    def _rank(self, vm: VmSpec, host: str, load: _Load) -> tuple:
        """Smaller is better: preferred hosts, its home, then the most free memory
        (as a share), then the name (a plan is deterministic)."""
        h = self.hosts[host]
        should = self.rules.should.get(vm.uuid)
        usable = max(1, int(h.memory_mib * self.rules.memory_ratio) - h.reserve_mib)
        return (0 if should and host in should else 1, 0 if host == vm.home else 1,
                load.memory[host] / usable, load.vcpus[host] / max(1, h.cpus), host)

    def _reason(self, vm: VmSpec, host: str) -> str:
        should = self.rules.should.get(vm.uuid)
        if should and host in should:
            return f"{host} is preferred for {vm.name}"
        if host == vm.home:
            return f"{host} is its home"
        return f"{host} has the most room"

    def candidates(self, vm: VmSpec, load: _Load | None = None,
                   leaving: str | None = None) -> list[tuple[str, str]]:
        """(host, why not — "" when it fits) for every host but its own, best first."""
        load = load or _Load(self.hosts, self.vms.values())
        out = [(h, self.why_not(vm, h, load, leaving)) for h in self.hosts if h != vm.host]
        return sorted(out, key=lambda hw: (hw[1] != "",
                                           self._rank(vm, hw[0], load) if not hw[1]
                                           else (hw[0],)))

    # ---- plans ------------------------------------------------------------------
    def place(self, uuid: str, load: _Load | None = None) -> Plan:
        """Where one VM should go now (Manage Placement, migrate without --to)."""
        vm = self.vms[uuid]
        load = load or _Load(self.hosts, self.vms.values())
        if vm.strategy is Strategy.PINNED:
            return Plan(blocked=(Blocked(vm.uuid, vm.name, vm.host,
                                         f"{vm.name} is pinned to {vm.host}; change its "
                                         f"strategy to move it"),))
        cands = self.candidates(vm, load)
        fits = [h for h, why in cands if not why]
        if not fits:
            return Plan(blocked=(Blocked(vm.uuid, vm.name, vm.host,
                                         f"no host can take {vm.name}", tuple(cands)),))
        return Plan(moves=(Move(vm.uuid, vm.name, vm.host, fits[0], vm.active,
                                self._reason(vm, fits[0])),))

    def evacuate(self, host: str, search_budget: int = 20_000) -> Plan:
        """Every VM off `host` (maintenance): each placed on its own merits, biggest
        first; where that greedy pass leaves VMs unplaced for want of room, a bounded
        search tries other orders. Pinned running VMs block; pinned stopped ones stay."""
        load = _Load(self.hosts, self.vms.values())
        mine = [v for v in self.vms.values() if v.host == host]
        stays, blocked, movable = [], [], []
        for v in sorted(mine, key=lambda v: v.name):
            if v.strategy is Strategy.PINNED:
                if v.active:
                    blocked.append(Blocked(
                        v.uuid, v.name, host,
                        f"{v.name} is pinned to {host} and running: shut it down, or "
                        f"change its strategy to move it"))
                else:
                    stays.append((v.uuid, f"{v.name} is pinned and shut off: it stays"))
            else:
                movable.append(v)
        movable.sort(key=lambda v: (-v.memory_mib, -v.vcpus, v.name))
        moves, left = self._greedy(movable, load, host)
        if left:
            found = self._search(movable, _Load(self.hosts, self.vms.values()),
                                 search_budget, host)
            if found is not None:
                moves, left = found, []
        for v in left:
            cands = tuple(self.candidates(v, load, host))
            blocked.append(Blocked(v.uuid, v.name, host, f"no host can take {v.name}",
                                   cands))
        moves = self._keep_groups_whole(moves, blocked, host)
        moves.sort(key=lambda m: (self.vms[m.vm].name))
        return Plan(moves=tuple(moves), blocked=tuple(sorted(blocked, key=lambda b: b.name)),
                    stays=tuple(stays))

    def _keep_groups_whole(self, moves: list[Move], blocked: list[Blocked],
                           host: str) -> list[Move]:
        """A VM that cannot leave keeps its affinity group with it: moving the others
        would split the group. (Such a plan is incomplete and is not run anyway.)"""
        stuck = {b.vm for b in blocked}
        while True:
            held = [m for m in moves if any(m.vm in g and g & stuck
                                            for g in self._together.get(m.vm, ()))]
            if not held:
                return moves
            for m in held:
                mate = next(self.vms[u].name for g in self._together[m.vm] for u in g & stuck)
                blocked.append(Blocked(m.vm, m.name, host,
                                       f"{m.name} goes with {mate}, which cannot move"))
                stuck.add(m.vm)
            moves = [m for m in moves if m not in held]

    def _greedy(self, vms: list[VmSpec], load: _Load, leaving: str
                ) -> tuple[list[Move], list[VmSpec]]:
        moves, left = [], []
        for v in vms:
            fits = [h for h in self.hosts if not self.why_not(v, h, load, leaving)]
            if not fits:
                left.append(v)
                continue
            best = min(fits, key=lambda h: self._rank(v, h, load))
            load.move(v, v.host, best)
            moves.append(Move(v.uuid, v.name, v.host, best, v.active, self._reason(v, best)))
        return moves, left

    def _search(self, vms: list[VmSpec], load: _Load, budget: int,
                leaving: str) -> list[Move] | None:
        """Depth-first over hosts in rank order, for a plan that moves every VM; None
        when there is none within `budget` steps."""
        steps = 0
        chosen: list[tuple[VmSpec, str]] = []

        def go(i: int) -> bool:
            nonlocal steps
            if i == len(vms):
                return True
            v = vms[i]
            fits = sorted((h for h in self.hosts if not self.why_not(v, h, load, leaving)),
                          key=lambda h: self._rank(v, h, load))
            for h in fits:
                steps += 1
                if steps > budget:
                    return False
                load.move(v, v.host, h)
                chosen.append((v, h))
                if go(i + 1):
                    return True
                chosen.pop()
                load.undo(v, v.host, h)
            return False

        if not go(0):
            return None
        return [Move(v.uuid, v.name, v.host, h, v.active, self._reason(v, h))
                for v, h in chosen]
