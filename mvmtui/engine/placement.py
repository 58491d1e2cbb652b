"""Where VMs go: the pure planner (DESIGN rule 6). Plain data in, a plan out; no I/O.

Used to place one VM (Manage Placement, migration), to evacuate a host (maintenance),
to fail over a lost host (restart its VMs elsewhere; `n_minus_one` asks that of every
host) and to rebalance a cluster (DRS). Every move carries its
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

Failover restarts a lost host's running VMs, most important first (priority 0, then
1, then 2; within one, the biggest first), each where `place` would put it. Greedy in
that order, so when room runs out it is the lower priorities that wait: a high-priority
VM is never left down so that two smaller low-priority ones can run. Affinity is soft
here: a group is kept together where a host takes it, and restarted apart rather than
left down; anti-affinity and `must` rules are never broken.

A host's load is its dominant resource share: max(memory share, vCPU share) of its
running VMs, the memory share against what its VMs may use (memory × ratio − reserve),
the vCPU share against CPUs × ratio. A host is as full as its scarcest resource: one at
90 % of its memory and 10 % of its vCPUs takes no more VMs, however idle its CPUs. The
imbalance is the population standard deviation of the loads of the hosts that may take
VMs (available, not in maintenance); 0 is perfectly even. `lower_bound` is the best
max load there could be if load were divisible: per resource, what runs over what the
hosts may hold; the larger of the two.

Rebalance (DRS) moves running Auto VMs, live, from the most loaded hosts to the least
loaded ones while that lowers the imbalance enough. Its threshold, 1 (conservative) to
5 (aggressive) as vSphere's migration threshold:

    threshold  acts when imbalance >  stops below (target)  a move must gain at least
        1              0.20                 0.10                    0.02
        2              0.14                 0.07                    0.01
        3              0.08                 0.04                    0.005
        4              0.04                 0.02                    0.002
        5              0.02                 0.01                    0.001

A move's gain is the drop in imbalance it makes, times hosts / 2. One move changes the
standard deviation of a 200-host cluster about a hundred times less than that of a
2-host one, for the same relief to the host it leaves; counted this way a move is worth
the same in both (and in a 2-host cluster the gain is the drop itself).
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Iterable

from .model import Strategy

__all__ = ["Strategy", "HostSpec", "VmSpec", "Rules", "Move", "Blocked", "Plan", "Rebalance",
           "Cluster"]


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
    priority: int = 1                # restart priority: 0 high, 1 medium, 2 low
    shared: bool = True              # every disk on storage all hosts see (False: it
                                     # cannot restart elsewhere when its host is lost)
    cooldown: bool = False           # moved by DRS recently: DRS leaves it be for now


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


@dataclass(frozen=True)
class Rebalance:
    moves: tuple[Move, ...]
    before: float                    # imbalance before the moves, and after them
    after: float
    loads_before: tuple[tuple[str, float], ...]   # (host, load), name order
    loads_after: tuple[tuple[str, float], ...]
    threshold: int
    target: float                    # the imbalance below which it stops


# threshold -> (acts when imbalance above, stops below, least gain of a move); see above
_LEVELS = {1: (0.20, 0.10, 0.02), 2: (0.14, 0.07, 0.01), 3: (0.08, 0.04, 0.005),
           4: (0.04, 0.02, 0.002), 5: (0.02, 0.01, 0.001)}
_COLDEST = 8        # rebalance tries each VM on this many of the least loaded hosts
_HOTTEST = 4        # and, if the hottest host has no good move, the next ones, up to this


class _Load:
    """vCPUs and memory of what runs on each host, updated as moves are planned."""

    def __init__(self, hosts: dict[str, HostSpec], vms: Iterable[VmSpec]):
        self.vcpus = {h: 0 for h in hosts}
        self.memory = {h: 0 for h in hosts}
        self.members: dict[str, set[str]] = {h: set() for h in hosts}
        self.where: dict[str, str] = {}      # uuid -> host: members, the other way round
        members, where, vcpus, memory = self.members, self.where, self.vcpus, self.memory
        for v in vms:                        # add(v, v.host), inline: 10,000 VMs at a time
            host = v.host
            if host in members:
                members[host].add(v.uuid)
                where[v.uuid] = host
                if v.active:
                    vcpus[host] += v.vcpus
                    memory[host] += v.memory_mib

    def add(self, vm: VmSpec, host: str, moved: bool = False) -> None:
        """A VM moved by the plan counts even when stopped: it reserves room so that
        two stopped VMs moved to one host can both be started there."""
        if host in self.members:
            self.members[host].add(vm.uuid)
            self.where[vm.uuid] = host
            if vm.active or moved:
                self.vcpus[host] += vm.vcpus
                self.memory[host] += vm.memory_mib

    def remove(self, vm: VmSpec, host: str, moved: bool = False) -> None:
        if host in self.members:
            self.members[host].discard(vm.uuid)
            if self.where.get(vm.uuid) == host:
                del self.where[vm.uuid]
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
        # What each host's VMs may use (the same sums as why_not's), and its VMs.
        ratio, vratio = self.rules.memory_ratio, self.rules.vcpu_ratio
        self._mem_cap = {n: int(h.memory_mib * ratio) - h.reserve_mib
                         for n, h in self.hosts.items()}
        self._cpu_cap = {n: int(h.cpus * vratio) for n, h in self.hosts.items()}
        self._on: dict[str, list[VmSpec]] = {}
        for v in self.vms.values():
            self._on.setdefault(v.host, []).append(v)

    def __repr__(self) -> str:
        return (f"Cluster({list(self.hosts.values())!r}, {list(self.vms.values())!r}, "
                f"{self.rules!r})")

    # ---- one host, one VM -------------------------------------------------------
    def why_not(self, vm: VmSpec, host: str, load: _Load, leaving: str | None = None,
                together: bool = True, lost: bool = False) -> str:
        """"" if `vm` may go to `host` now, else the reason, in an operator's words.
        `leaving`: the host being evacuated (its VMs all move, groups with them), or
        with `lost` the host that is gone (none of its VMs runs, pinned ones included).
        `together=False`: affinity groups are not asked (a failover's last resort)."""
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
        for group in self._together.get(vm.uuid, ()) if together else ():
            # Members still on an evacuated host move along (unless pinned); members on
            # a lost host run nowhere; the others fix the host.
            at = set()
            for u in group:
                if u == vm.uuid or u not in self.vms:
                    continue
                where = self._placed_on(u, load)
                if not (where == leaving and
                        (lost or self.vms[u].strategy is not Strategy.PINNED)):
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
        return load.where.get(uuid) or self.vms[uuid].host

    def _rank(self, vm: VmSpec, host: str, load: _Load) -> tuple:
        """Smaller is better: preferred hosts, its home, then the most free memory
        (as a share), then the name (a plan is deterministic)."""
        should = self.rules.should.get(vm.uuid)
        return (0 if should and host in should else 1, 0 if host == vm.home else 1,
                *self._room(host, load), host)

    def _room(self, host: str, load: _Load) -> tuple[float, float]:
        """How full a host is, for ranking: memory share used, then vCPUs per CPU."""
        return (load.memory[host] / max(1, self._mem_cap[host]),
                load.vcpus[host] / max(1, self.hosts[host].cpus))

    def _reason(self, vm: VmSpec, host: str) -> str:
        should = self.rules.should.get(vm.uuid)
        if should and host in should:
            return f"{host} is preferred for {vm.name}"
        if host == vm.home:
            return f"{host} is its home"
        return f"{host} has the most room"

    def candidates(self, vm: VmSpec, load: _Load | None = None,
                   leaving: str | None = None, together: bool = True,
                   lost: bool = False) -> list[tuple[str, str]]:
        """(host, why not — "" when it fits) for every host but its own, best first."""
        load = load or _Load(self.hosts, self.vms.values())
        out = [(h, self.why_not(vm, h, load, leaving, together, lost))
               for h in self.hosts if h != vm.host]
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

    # ---- failover -----------------------------------------------------------------
    def failover(self, host: str) -> Plan:
        """Where `host`'s running VMs restart now that it is lost (HA). Moves are
        restarts (live=False), in the order to run them; stopped and pinned VMs stay;
        VMs whose disks only `host` sees, and those no host can take, are blocked."""
        return self._failover(host, _Load(self.hosts, self.vms.values()))

    def n_minus_one(self) -> list[tuple[str, Plan]]:
        """failover(h) for every host that could be lost (available, not in
        maintenance), in name order: the cluster survives any one loss iff every plan
        is complete. One load serves every plan (each leaves it as it found it)."""
        load = _Load(self.hosts, self.vms.values())
        return [(h, self._failover(h, load)) for h, spec in self.hosts.items()
                if spec.available and not spec.maintenance]

    def _failover(self, host: str, load: _Load) -> Plan:
        stays, blocked, restart = [], [], []
        for v in sorted(self._on.get(host, ()), key=lambda v: v.name):
            if not v.active:
                stays.append((v.uuid, f"{v.name} was shut off: it stays on {host}"))
            elif v.strategy is Strategy.PINNED:
                stays.append((v.uuid, f"{v.name} is pinned to {host}: unavailable until "
                                      f"{host} returns"))
            elif not v.shared:
                blocked.append(Blocked(v.uuid, v.name, host,
                                       f"{v.name}'s disks are on storage only {host} "
                                       f"sees: it cannot restart elsewhere"))
            else:
                restart.append(v)
        restart.sort(key=lambda v: (v.priority, -v.memory_mib, -v.vcpus, v.name))
        # The hosts that may take VMs, emptiest first as _rank orders them; kept sorted
        # as VMs land, so that each VM looks at a few hosts, not all of them.
        room = {h: self._room(h, load) + (h,) for h, spec in self.hosts.items()
                if h != host and spec.available and not spec.maintenance}
        order = sorted(room.values())
        moves, done = [], []
        for v in restart:
            target = self._restart_on(v, load, order, host, together=True)
            apart = target is None and v.uuid in self._together
            if apart:                                 # running apart beats not running
                target = self._restart_on(v, load, order, host, together=False)
            if target is None:
                blocked.append(Blocked(v.uuid, v.name, host, f"no host can take {v.name}",
                                       tuple(self.candidates(v, load, host, together=False,
                                                             lost=True))))
                continue
            load.move(v, host, target)                # it runs there now
            done.append((v, target))
            del order[bisect.bisect_left(order, room[target])]
            room[target] = self._room(target, load) + (target,)
            bisect.insort(order, room[target])
            moves.append(Move(v.uuid, v.name, host, target, False, self._reason(v, target)
                              + ("; no host takes it beside its group" if apart else "")))
        for v, target in reversed(done):
            load.undo(v, host, target)
        return Plan(moves=tuple(moves), blocked=tuple(sorted(blocked, key=lambda b: b.name)),
                    stays=tuple(stays))

    def _restart_on(self, vm: VmSpec, load: _Load, order: list[tuple], lost: str,
                    together: bool) -> str | None:
        """The host `place` would choose for `vm`, or None: the first that takes it in
        _rank's order (preferred hosts, its home, then `order`, emptiest first)."""
        should = self.rules.should.get(vm.uuid, frozenset())
        first = sorted((h for h in should | {vm.home} if h in self.hosts and h != lost),
                       key=lambda h: self._rank(vm, h, load))
        for h in first:
            if not self.why_not(vm, h, load, lost, together, lost=True):
                return h
        for *_, h in order:
            if h not in should and h != vm.home and \
                    not self.why_not(vm, h, load, lost, together, lost=True):
                return h
        return None

    # ---- load and rebalance (DRS) ---------------------------------------------------
    def _pool(self) -> list[str]:
        """The hosts that may take VMs, whose loads are measured: name order."""
        return [h for h, spec in self.hosts.items() if spec.available and not spec.maintenance]

    def _load_of(self, host: str, memory: int, vcpus: int) -> float:
        return max(memory / max(1, self._mem_cap[host]), vcpus / max(1, self._cpu_cap[host]))

    def loads(self, load: _Load | None = None) -> dict[str, float]:
        """host -> load (the dominant resource share) of every host that may take VMs."""
        load = load or _Load(self.hosts, self.vms.values())
        return {h: self._load_of(h, load.memory[h], load.vcpus[h]) for h in self._pool()}

    def imbalance(self, loads: dict[str, float] | None = None) -> float:
        """The population standard deviation of the loads: 0 is perfectly even."""
        return _spread(list((self.loads() if loads is None else loads).values()))

    def lower_bound(self) -> float:
        """The least max load there could be if load were divisible: per resource,
        what runs on the hosts that may take VMs over what they may hold; the larger."""
        pool = self._pool()
        on = [v for h in pool for v in self._on.get(h, ()) if v.active]
        mem = sum(v.memory_mib for v in on) / max(1, sum(self._mem_cap[h] for h in pool))
        cpu = sum(v.vcpus for v in on) / max(1, sum(self._cpu_cap[h] for h in pool))
        return max(mem, cpu) if pool else 0.0

    def rebalance(self, threshold: int = 3, max_moves: int | None = None) -> Rebalance:
        """Live moves of running Auto VMs that even the load (see the module's table
        for `threshold`). Greedy: from the most loaded host, the move to one of the
        least loaded hosts that lowers the imbalance most, again and again, until the
        imbalance is below target, no move gains enough, or `max_moves`. Each move is
        checked by why_not against the load as the moves before it leave it, so the
        plan breaks no rule and overcommits nothing; a VM moves once at most."""
        if threshold not in _LEVELS:
            raise ValueError(f"threshold is 1 (conservative) to 5 (aggressive), not "
                             f"{threshold!r}")
        acts, target, least = _LEVELS[threshold]
        drs = _Drs(self)
        before_loads = tuple(drs.lo.items())
        before = _spread(list(drs.lo.values()))
        moves: list[Move] = []
        if before > acts and len(drs.lo) > 1:
            while drs.sigma() >= target and (max_moves is None or len(moves) < max_moves):
                found = drs.best_move(least * 2 / len(drs.lo))
                if found is None:
                    break
                v, a, b = found
                moves.append(Move(v.uuid, v.name, a, b, True,
                                  f"{a} at {drs.lo[a]:.0%} → {b} at {drs.lo[b]:.0%}: "
                                  f"evens the load"))
                drs.move(v, a, b)
        return Rebalance(moves=tuple(moves), before=before,
                         after=_spread(list(drs.lo.values())),
                         loads_before=before_loads, loads_after=tuple(drs.lo.items()),
                         threshold=threshold, target=target)


class _Drs:
    """Rebalance's working state: the load as the planned moves leave it, each host's
    load, the hosts ranked by load, and two running sums (of the loads, of their
    squares) from which the imbalance after any one move comes in a few operations,
    at 10 hosts as at 200."""

    def __init__(self, c: Cluster):
        self.c = c
        self.load = _Load(c.hosts, c.vms.values())
        self.lo = c.loads(self.load)
        self.ranked = sorted((x, h) for h, x in self.lo.items())   # coldest first
        self.total = sum(self.lo.values())
        self.squares = sum(x * x for x in self.lo.values())
        self.mem_share = {h: max(1, c._mem_cap[h]) for h in self.lo}
        self.cpu_share = {h: max(1, c._cpu_cap[h]) for h in self.lo}
        # What DRS may move off each host, biggest dominant share first, by size:
        # VMs of one size move the load alike, so a move is weighed once per size.
        # A VM that has moved leaves these lists: it moves once at most.
        self.movable: dict[str, dict[tuple[int, int], list[VmSpec]]] = {}
        for h in self.lo:
            sizes = self.movable[h] = {}
            mine = (v for v in c._on.get(h, ())
                    if v.strategy is Strategy.AUTO and v.active and not v.cooldown
                    and v.shared)     # a local disk does not move live without a copy
            for v in sorted(mine, key=lambda v, h=h: (-c._load_of(h, v.memory_mib, v.vcpus),
                                                      v.name)):
                sizes.setdefault((v.memory_mib, v.vcpus), []).append(v)

    def sigma(self) -> float:
        n = len(self.lo)
        return math.sqrt(max(0.0, self.squares / n - (self.total / n) ** 2))

    def best_move(self, least: float) -> tuple[VmSpec, str, str] | None:
        """The move (vm, from, to) that lowers the imbalance most, by `least` at
        least, off the hottest host that has one (of the _HOTTEST hottest, above the
        mean) to one of the _COLDEST coldest; why_not is asked only of the moves that
        would do, best first."""
        n, sigma = len(self.lo), self.sigma()
        if sigma < least:
            return None
        worst = (sigma - least) ** 2          # the variance a move must get down to
        memory, vcpus = self.load.memory, self.load.vcpus
        ms, cs = self.mem_share, self.cpu_share
        cold = [(j, load_b, b, memory[b], vcpus[b], self.c._mem_cap[b], self.c._cpu_cap[b],
                 ms[b], cs[b]) for j, (load_b, b) in enumerate(self.ranked[:_COLDEST + 1])]
        for load_a, a in reversed(self.ranked[-_HOTTEST:]):
            if load_a <= self.total / n:
                break
            tries = []
            mem_a, cpu_a, ms_a, cs_a = memory[a], vcpus[a], ms[a], cs[a]
            for i, ((mib, cpus), vms) in enumerate(self.movable[a].items()):
                if not vms:
                    continue
                x, y = (mem_a - mib) / ms_a, (cpu_a - cpus) / cs_a
                la = x if x > y else y
                s_a = self.total - load_a + la
                q_a = self.squares - load_a * load_a + la * la
                for j, load_b, b, mem_b, cpu_b, mem_fit, cpu_fit, ms_b, cs_b in cold:
                    mem_b += mib
                    cpu_b += cpus
                    if b == a or mem_b > mem_fit or cpu_b > cpu_fit:
                        continue
                    x, y = mem_b / ms_b, cpu_b / cs_b
                    lb = x if x > y else y
                    s = s_a - load_b + lb
                    var = (q_a - load_b * load_b + lb * lb) / n - (s / n) * (s / n)
                    if var <= worst:
                        tries.append((var, i, j, vms, b))
            if not tries:
                continue
            # Mostly the best one will do; all of them are sorted only when it does not.
            best = min(tries, key=lambda t: t[:3])
            for v in best[3]:
                if not self.c.why_not(v, best[4], self.load):
                    return v, a, best[4]
            tries.sort(key=lambda t: t[:3])
            for *_, vms, b in tries:
                for v in vms:
                    if not self.c.why_not(v, b, self.load):
                        return v, a, b
        return None

    def move(self, vm: VmSpec, source: str, target: str) -> None:
        self.movable[source][vm.memory_mib, vm.vcpus].remove(vm)
        self.load.move(vm, source, target)
        for h in (source, target):
            old = self.lo[h]
            new = self.lo[h] = self.c._load_of(h, self.load.memory[h], self.load.vcpus[h])
            del self.ranked[bisect.bisect_left(self.ranked, (old, h))]
            bisect.insort(self.ranked, (new, h))
            self.total += new - old
            self.squares += new * new - old * old


def _spread(values: list[float]) -> float:
    """Population standard deviation (statistics.pstdev, without its exact and slow
    arithmetic)."""
    if not values:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((x - mean) ** 2 for x in values) / len(values))
