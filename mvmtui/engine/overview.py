"""A cluster as a whole: its summary and capacity, its policy, the planner's view.

Built on demand from the VM store's reads and the inventory's policy (any thread);
the planner's view grows with placement rules and maintenance (issue 7).
"""
from __future__ import annotations

from . import capacity
from .errors import EngineError, ReadOnly
from .model import Capacity, ClusterPolicy, ClusterSummary, HostStatus, VmState


# CPU modes that tie a VM to its host's CPU model (a generic model runs anywhere).
HOST_CPU_MODES = ("host-passthrough", "host-model")


class ClusterOverview:
    """Mixin of Engine: views over the store's hosts and VMs."""

    def summary(self, cluster: str) -> ClusterSummary:
        """Counts, capacity and problems. What comes from the VMs (a pass over all of
        them) is counted again only when a VM changed; a console asks every second."""
        c = self.cluster(cluster)
        hosts = self.hosts(cluster)
        version = self._vm_version          # read first: a change meanwhile recounts
        cached = self._summaries.get(cluster)
        if cached is None or cached[0] != version:
            vms = self.vms(cluster)
            cached = (version, (capacity.tally(vms), len(vms),
                                # Last known state of a stale host's VMs is not running.
                                sum(v.state is VmState.RUNNING and not v.stale for v in vms),
                                [f"{v.name}: crashed" for v in vms
                                 if v.state is VmState.CRASHED]))
            self._summaries[cluster] = cached
        tallied, total, running, crashed = cached[1]
        problems = [f"{h.name}: {h.status.value}" + (f" — {h.problem}" if h.problem else "")
                    for h in hosts
                    if h.status not in (HostStatus.UP, HostStatus.CONNECTING)]
        return ClusterSummary(
            cluster=c, hosts_up=sum(h.status is HostStatus.UP for h in hosts),
            hosts_total=len(hosts), vms_running=running, vms_total=total,
            capacity=capacity.of(hosts, tallied=tallied),
            problems=tuple(problems + crashed),
            hosts_connecting=sum(h.status is HostStatus.CONNECTING for h in hosts))

    def policy(self, cluster: str) -> ClusterPolicy:
        """The cluster's policy (overcommit, reserve, migration limits, shared storage)."""
        from . import policy
        self.cluster(cluster)
        return policy.from_stored(self.inv.cluster_policy(cluster))

    def set_policy(self, cluster: str, assignments: list[str]) -> ClusterPolicy:
        """Change settings given as KEY=VALUE; EngineError says what is wrong and
        nothing is changed."""
        from . import policy
        if self.readonly:
            raise ReadOnly("changing a cluster's policy")
        new = policy.apply(self.policy(cluster), assignments)
        self.inv.save_cluster_policy(cluster, policy.to_stored(new))
        return new

    def planner(self, cluster: str, returning: str = "", cooldown: frozenset[str] = frozenset()):
        """The placement planner's view of a cluster as it is now: hosts that are up
        and fresh, and not in maintenance, are candidates; the cluster's policy gives
        the overcommit, the host reserve and the placement rules (names are matched to
        the VMs and hosts of the cluster; a name that matches nothing binds nothing).
        A VM that runs on its host's own CPU model (host-passthrough, host-model) may
        go only to hosts with that model. `returning`: a host leaving maintenance,
        counted in the pool."""
        from . import placement, policy as policies
        pol = self.policy(cluster)
        all_hosts = self.hosts(cluster)
        reading = [f"{h.name} ({self._details_left(h)} left)" for h in all_hosts
                   if self._details_left(h)]
        if reading:   # their disks and placement rules decide where VMs may go
            raise EngineError(f"Still reading VM definitions on {', '.join(reading)}: "
                              f"placement needs their disks and rules. Try again in a "
                              f"few seconds.")
        model_of = {h.name: h.cpu_model for h in all_hosts}
        hosts = [placement.HostSpec(
            name=h.name, cpus=h.cpus, memory_mib=h.memory_mib,
            reserve_mib=pol.host_reserve_mib, cpu_model=h.cpu_model,
            available=h.status is HostStatus.UP,
            maintenance=not h.in_pool and h.name != returning,
            why_unavailable=h.status.value if h.status is not HostStatus.UP else "")
            for h in all_hosts]
        vms = self.vms(cluster)
        # Paths every host sees (shared datastores), per host: a VM with a writable
        # disk elsewhere cannot restart on another host (migration.storage_issue).
        shared_paths = {}
        for d in self.datastores(cluster):
            if d.name in pol.shared_datastores and d.path:
                shared_paths.setdefault(d.host, []).append(d.path.rstrip("/") + "/")

        def shared(v) -> bool:
            paths = shared_paths.get(v.host, ())
            return all(d.device != "disk" or not d.source or d.kind == "network"
                       or d.readonly or any(d.source.startswith(p) for p in paths)
                       for d in v.disks)
        rank = {"high": 0, "medium": 1, "low": 2}
        specs = [placement.VmSpec(
            uuid=v.uuid, name=v.name, host=v.host, vcpus=v.vcpus, memory_mib=v.memory_mib,
            active=v.state.active, strategy=v.strategy, home=v.home,
            cpu_model=model_of.get(v.host, "") if v.cpu_mode in HOST_CPU_MODES else "",
            priority=rank.get(v.priority, 1), shared=shared(v), cooldown=v.uuid in cooldown)
            for v in vms]
        by_name = {v.name: v.uuid for v in vms}
        names = set(model_of)

        def groups(text: str) -> tuple[frozenset[str], ...]:
            out = []
            for g in policies.groups(text):
                members = frozenset(by_name[n] for n in g if n in by_name)
                if len(members) > 1:
                    out.append(members)
            return tuple(out)

        def host_rules(text: str) -> dict[str, frozenset[str]]:
            return {by_name[vm]: frozenset(h for h in hs if h in names)
                    for vm, hs in policies.host_rules(text).items() if vm in by_name}
        return placement.Cluster(hosts, specs, placement.Rules(
            vcpu_ratio=pol.vcpu_ratio, memory_ratio=pol.memory_ratio,
            affinity=groups(pol.affinity), anti_affinity=groups(pol.anti_affinity),
            must=host_rules(pol.must_run_on), should=host_rules(pol.prefer)))

    def host_capacity(self, cluster: str, host: str) -> Capacity:
        """One host's capacity, by the same rules as the cluster's."""
        return capacity.of([self.host(cluster, host)], self.vms(cluster, host))

    def summaries(self) -> list[ClusterSummary]:
        return [self.summary(c.name) for c in self.clusters()]
