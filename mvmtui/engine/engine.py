"""The Engine: the one facade screens and the CLI talk to.

Threads (DESIGN rule 3):
- the caller's thread (Textual's loop, or the CLI) calls the async/sync facade;
- one engine I/O thread runs an asyncio loop: SSH connections, tunnels, timers,
  task bodies, inventory writes, and every change to the in-memory state;
- one libvirt worker thread per host runs every libvirt call for that host, in
  order (FIFO keeps a host's events and refreshes in sequence);
- libvirt's own event-loop thread delivers domain events, which are handed to
  the I/O loop at once;
- the journal follower thread watches the inventory for tasks other processes
  write, and hands their ids to the I/O loop, which reads and announces them.
Subscribers get model events on the I/O thread and must not block.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable, Iterable

from . import capacity
from .adapter import LIFECYCLE, LIFECYCLE_STARTED, REBOOT, Hypervisor, HostUnreachable
from .errors import (Ambiguous, EngineError, HostDown, HypervisorError, InventoryError,
                     NotFound, Offline, ReadOnly)
from .inventory import Inventory
from .model import (Capacity, Cluster, ClusterPolicy, ClusterSummary, Datastore, Event, Host, HostChanged,
                    HostKeyQuestion, HostStatus, Network, Strategy, Task, TaskStatus, Vm,
                    VmChanged, VmRemoved, VmState)
from .tasks import (Journal, JournalFollower, TaskContext, TaskFailed, TaskSpec,
                    can_supersede)

log = logging.getLogger("mvmtui.engine")

LIBVIRT_SOCKET = "/run/libvirt/libvirt-sock"
LIBVIRT_TIMEOUT = 60.0       # seconds a libvirt call may take before the link is dropped
HOST_SAMPLES_KEPT = 86400     # a day of host CPU/memory samples
VM_SAMPLES_KEPT = 3600        # an hour of per-VM samples (there are many more VMs)
EVENTS_KEPT = 30 * 86400     # host/VM state changes seen, kept for 30 days

# action -> (title verb, state to wait for, destructive?)
VM_ACTIONS: dict[str, tuple[str, VmState | None, bool]] = {
    "start": ("Start", VmState.RUNNING, False),
    "shutdown": ("Shut down", VmState.SHUTOFF, True),
    "destroy": ("Force off", VmState.SHUTOFF, True),
    "reboot": ("Reboot", None, True),
    "suspend": ("Suspend", VmState.PAUSED, True),     # its services stop answering
    "resume": ("Resume", VmState.RUNNING, False),
}
# Force off takes over from a shutdown or reboot that only waits for the guest.
SUPERSEDES = {"destroy": ("vm.shutdown", "vm.reboot")}

_ACTIONS_BY_STATE: dict[VmState, tuple[str, ...]] = {
    VmState.RUNNING: ("shutdown", "destroy", "reboot", "suspend"),
    VmState.BLOCKED: ("shutdown", "destroy", "reboot", "suspend"),
    VmState.SHUTTING_DOWN: ("destroy",),
    VmState.PAUSED: ("destroy", "resume"),
    VmState.SUSPENDED: ("destroy",),
    VmState.SHUTOFF: ("start",),
    VmState.CRASHED: ("start", "destroy"),
}


def vm_actions(vm: Vm) -> tuple[str, ...]:
    """The power actions that make sense in the VM's (last known) state, in
    VM_ACTIONS order; every action when the state is unknown."""
    return _ACTIONS_BY_STATE.get(vm.state, tuple(VM_ACTIONS))


@dataclass
class _Link:
    """The live connection state of one host (I/O loop only)."""

    key: tuple[str, str]
    executor: concurrent.futures.ThreadPoolExecutor
    runner: asyncio.Task | None = None
    ssh: Any = None
    hv: Hypervisor | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    offered_key: str = ""          # public key offered when unknown (for TOFU)
    offered_fp: str = ""
    offered_type: str = ""
    lv_lost: asyncio.Event | None = None   # set when libvirt is lost or stops answering


class Engine:
    def __init__(self, inventory: Inventory | str | os.PathLike | None = None, *,
                 clock: Callable[[], float] = time.time, readonly: bool = False,
                 offline: bool = False, reconnect_interval: float = 2.0,
                 stats_interval: float = 5.0, shutdown_timeout: float = 90.0,
                 reboot_timeout: float | None = None, reconcile_interval: float = 300.0,
                 actor: str = "console",
                 connect: Callable[[Host], Hypervisor] | None = None):
        """`connect` replaces SSH + libvirt with another way to reach a host's
        hypervisor (tests script hosts with scripted.ScriptedHypervisor); it raises
        adapter.HostUnreachable or HypervisorError as a real host would fail."""
        self.inv = inventory if isinstance(inventory, Inventory) else Inventory(inventory)
        try:
            self._load()
        except sqlite3.Error as exc:
            raise InventoryError(f"The inventory {self.inv.path} is damaged ({exc}); it was "
                                 f"left untouched. Move it aside or restore a backup.") from exc
        self.clock = clock
        self.readonly = readonly
        self.offline = offline
        self.reconnect_interval = reconnect_interval
        self.stats_interval = stats_interval
        self.shutdown_timeout = shutdown_timeout
        self.reboot_timeout = shutdown_timeout if reboot_timeout is None else reboot_timeout
        # Re-read every VM in full this often: what neither an event nor the stats
        # pass reports (autostart, a disk's path) is then at most this old.
        self.reconcile_interval = reconcile_interval
        self._connect = connect
        # Boots seen per VM (reboot events, starts): how a reboot is confirmed.
        self._boots: dict[str, int] = {}
        # (host, VM) re-reads already queued: one read for a burst of events
        self._refresh_due: set[tuple[tuple[str, str], str]] = set()
        self._subs: list[Callable[[Event], None]] = []
        self._passwords: dict[str, str] = {}
        self._links: dict[tuple[str, str], _Link] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._only: set[str] | None = None
        self._runtime = ""
        self.journal = Journal(self.inv, clock, self._emit, actor=actor)
        self._follower: JournalFollower | None = None
        self._follow_lock = threading.Lock()

    def _load(self) -> None:
        self._clusters: dict[str, Cluster] = {c.name: c for c in self.inv.clusters()}
        # Last known state from the inventory: stale until contacted this session.
        # Rows of a cluster that is gone (removed by another process) are ignored.
        self._hosts: dict[tuple[str, str], Host] = {
            (h.cluster, h.name): replace(h, status=HostStatus.STALE, problem="")
            for h in self.inv.hosts() if h.cluster in self._clusters}
        self._vms: dict[str, Vm] = {v.uuid: replace(v, stale=True) for v in self.inv.vms()
                                    if (v.cluster, v.host) in self._hosts}
        # Each host's VMs (uuids, in arrival order), kept with _vms on the I/O loop: a
        # host's refresh, stats and status changes then touch its own VMs only, not
        # every VM of every host (200 hosts × 10,000 VMs).
        self._on_host: dict[tuple[str, str], dict[str, None]] = {}
        for v in self._vms.values():
            self._index(v)

    # ---- life cycle -----------------------------------------------------------
    def start(self, clusters: Iterable[str] | None = None) -> None:
        """Start the I/O thread; unless offline, begin connecting to every host
        (or only those of the named clusters)."""
        if self._thread:
            return
        self._only = set(clusters) if clusters is not None else None
        if not self.readonly:
            self.journal.recover()
        self._runtime = tempfile.mkdtemp(prefix="mvmtui-")
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._loop.call_soon(ready.set)
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="mvmtui-io", daemon=True)
        self._thread.start()
        ready.wait()
        if self._subs:
            self._follow_journal()
        if not self.offline:
            self._submit(self._connect_all()).result()

    def stop(self) -> None:
        if not self._thread or not self._loop:
            return
        if self._follower:
            self._follower.stop()
        try:   # our running tasks end recorded as interrupted, never left "running"
            self._submit(self.journal.cancel_all()).result(timeout=5)
        except concurrent.futures.TimeoutError:
            log.warning("tasks did not stop within 5 s")
        try:
            self._submit(self._disconnect_all()).result(timeout=15)
        except concurrent.futures.TimeoutError:
            log.warning("hosts did not disconnect within 15 s")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._thread = None
        shutil.rmtree(self._runtime, ignore_errors=True)
        self.inv.close()

    def __enter__(self) -> "Engine":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _submit(self, coro: Awaitable) -> concurrent.futures.Future:
        assert self._loop, "Engine.start() first"
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _on_io(self, coro: Awaitable):
        """Run a coroutine on the engine's I/O loop from any other loop."""
        return await asyncio.wrap_future(self._submit(coro))

    def call(self, coro: Awaitable, timeout: float | None = None):
        """Synchronous bridge for the CLI and tests."""
        return self._submit(coro).result(timeout)

    # ---- subscriptions ----------------------------------------------------------
    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        self._subs.append(callback)
        if self._loop is not None:
            self._follow_journal()
        return lambda: self._subs.remove(callback) if callback in self._subs else None

    def _follow_journal(self) -> None:
        """Tasks that other processes (the CLI, a second console) run reach our
        subscribers too; only engines with subscribers follow (a CLI verb has none).
        The I/O loop reads the task again when it announces it: a snapshot the
        follower took earlier must never overwrite a newer state."""
        with self._follow_lock:   # subscribe() and start() may race
            if self._follower is not None:
                return
            self._follower = JournalFollower(
                self.inv, lambda ev: self._loop.call_soon_threadsafe(self.journal.emit_task,
                                                                     ev.task.id))
            self._follower.start()

    def _emit(self, event: Event) -> None:
        for cb in list(self._subs):
            try:
                cb(event)
            except Exception:  # a broken subscriber must not stop the engine
                log.exception("subscriber failed")

    # ---- reads (in memory, any thread) -------------------------------------------
    def now(self) -> float:
        return self.clock()

    def clusters(self) -> list[Cluster]:
        return sorted(self._clusters.values(), key=lambda c: c.name)

    def cluster(self, name: str) -> Cluster:
        try:
            return self._clusters[name]
        except KeyError:
            raise NotFound(f"No cluster named {name!r}. Known: "
                           f"{', '.join(self._clusters) or 'none'}.") from None

    def hosts(self, cluster: str | None = None) -> list[Host]:
        return sorted((h for h in list(self._hosts.values())
                       if cluster is None or h.cluster == cluster),
                      key=lambda h: (h.cluster, h.name))

    def host(self, cluster: str, name: str) -> Host:
        try:
            return self._hosts[(cluster, name)]
        except KeyError:
            raise NotFound(f"No host {name!r} in cluster {cluster!r}.") from None

    def _live(self, cluster: str, host: str) -> bool:
        h = self._hosts.get((cluster, host))
        return h is not None and h.status is HostStatus.UP

    def vms(self, cluster: str | None = None, host: str | None = None) -> list[Vm]:
        """VMs; those whose host is not live are marked stale (last known state)."""
        return [v for v in list(self._vms.values())
                if (cluster is None or v.cluster == cluster)
                and (host is None or v.host == host)]

    def vm(self, uuid: str) -> Vm:
        try:
            return self._vms[uuid]
        except KeyError:
            raise NotFound(f"No VM with UUID {uuid}.") from None

    def vm_seen_at(self, uuid: str) -> float | None:
        """When the VM's state was last confirmed by its host (a dict look-up: cheap
        enough for every line a table draws)."""
        vm = self._vms.get(uuid)
        return None if vm is None else vm.seen_at

    def find_vm(self, name: str, cluster: str | None = None) -> Vm:
        """By name or UUID; refuses a name that is on more than one cluster."""
        if name in self._vms:
            return self.vm(name)
        hits = [v for v in self.vms(cluster) if v.name == name]
        if not hits:
            where = f" in cluster {cluster!r}" if cluster else ""
            raise NotFound(f"No VM named {name!r}{where}. `mvmtui vm list` shows them.")
        if len(hits) > 1:
            where = "; ".join(f"{v.cluster}/{v.host}: {v.uuid}" for v in hits)
            hint = ("use the UUID" if len({v.cluster for v in hits}) == 1 or cluster
                    else "name the cluster with --cluster, or use the UUID")
            raise Ambiguous(f"{len(hits)} VMs are named {name!r} ({where}); {hint}.")
        return hits[0]

    def networks(self, cluster: str, host: str | None = None) -> list[Network]:
        return [n for n in self.inv.networks(cluster) if host in (None, n.host)]

    def datastores(self, cluster: str, host: str | None = None) -> list[Datastore]:
        """Storage pools, as last read (on connect and on refresh)."""
        return [d for d in self.inv.datastores(cluster) if host in (None, d.host)]

    def tasks(self, cluster: str | None = None, target: str | None = None,
              host: str | None = None, limit: int = 500,
              unfinished: bool = False, details: bool = False) -> list[Task]:
        """Newest first; `unfinished`: only those queued or running; `details`: with
        their steps and logs."""
        statuses = (TaskStatus.QUEUED, TaskStatus.RUNNING) if unfinished else None
        return self.inv.tasks(cluster=cluster, target=target, host=host, limit=limit,
                              statuses=statuses, details=details)

    def task(self, tid: int) -> Task:
        t = self.inv.task(tid)
        if t is None:
            raise NotFound(f"No task {tid}.")
        return t

    def summary(self, cluster: str) -> ClusterSummary:
        c = self.cluster(cluster)
        hosts = self.hosts(cluster)
        vms = self.vms(cluster)
        problems = [f"{h.name}: {h.status.value}" + (f" — {h.problem}" if h.problem else "")
                    for h in hosts
                    if h.status not in (HostStatus.UP, HostStatus.CONNECTING)]
        problems += [f"{v.name}: crashed" for v in vms if v.state is VmState.CRASHED]
        return ClusterSummary(
            cluster=c, hosts_up=sum(h.status is HostStatus.UP for h in hosts),
            hosts_total=len(hosts),
            # Last known state of a stale host's VMs is not counted as running.
            vms_running=sum(v.state is VmState.RUNNING and not v.stale for v in vms),
            vms_total=len(vms), capacity=capacity.of(hosts, vms),
            problems=tuple(problems),
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

    def planner(self, cluster: str):
        """The placement planner's view of a cluster as it is now: hosts that are up
        and fresh are candidates; the cluster's policy gives the overcommit and the
        host reserve. (Affinity rules and maintenance come with issue 7.)"""
        from . import placement
        pol = self.policy(cluster)
        hosts = [placement.HostSpec(
            name=h.name, cpus=h.cpus, memory_mib=h.memory_mib,
            reserve_mib=pol.host_reserve_mib, cpu_model=h.cpu_model,
            available=h.status is HostStatus.UP,
            why_unavailable=h.status.value if h.status is not HostStatus.UP else "")
            for h in self.hosts(cluster)]
        vms = [placement.VmSpec(uuid=v.uuid, name=v.name, host=v.host, vcpus=v.vcpus,
                                memory_mib=v.memory_mib, active=v.state.active,
                                strategy=v.strategy, home=v.home)
               for v in self.vms(cluster)]
        return placement.Cluster(hosts, vms, placement.Rules(
            vcpu_ratio=pol.vcpu_ratio, memory_ratio=pol.memory_ratio))

    def host_capacity(self, cluster: str, host: str) -> Capacity:
        """One host's capacity, by the same rules as the cluster's."""
        return capacity.of([self.host(cluster, host)], self.vms(cluster, host))

    def vm_actions(self, vm: Vm) -> tuple[str, ...]:
        """The power actions that make sense for this VM now (see vm_actions)."""
        return vm_actions(vm)

    def would_supersede(self, task: Task, action: str) -> bool:
        """Whether `action` on the VM would take over this pending task (Force off over
        a shutdown that waits) rather than be refused as busy."""
        return can_supersede(task, SUPERSEDES.get(action, ()))

    def pending_task(self, vm_uuid: str) -> Task | None:
        """The unfinished task on a VM, if any (shown as "shutting down…")."""
        tasks = self.inv.tasks(target=vm_uuid, limit=1,
                               statuses=(TaskStatus.QUEUED, TaskStatus.RUNNING))
        return tasks[0] if tasks else None

    def summaries(self) -> list[ClusterSummary]:
        return [self.summary(c.name) for c in self.clusters()]

    # ---- clusters ---------------------------------------------------------------
    def add_cluster(self, cluster: Cluster, hosts: Iterable[Host],
                    password: str | None = None) -> None:
        """Register (or replace) a cluster and its hosts; connects if running online.
        The engine must be started: the change is made on its I/O loop."""
        if self.readonly:
            raise ReadOnly("registering a cluster")
        self.call(self._add_cluster(cluster, list(hosts), password), timeout=30)

    async def _add_cluster(self, cluster: Cluster, hosts: list[Host],
                           password: str | None) -> None:
        taken = {(h.address, h.port): h for h in self._hosts.values() if h.cluster != cluster.name}
        for h in hosts:
            other = taken.get((h.address, h.port))
            if other is not None:   # one host in two clusters would show its VMs twice
                raise EngineError(f"{h.address}:{h.port} is already host {other.name} of "
                                  f"cluster {other.cluster}; a host belongs to one cluster.")
        old = self._clusters.get(cluster.name)
        new_hosts = {h.name: replace(h, cluster=cluster.name) for h in hosts}
        # Hosts dropped, moved, or reached with other credentials: reconnect afresh.
        redo = [k for k, h in self._hosts.items() if k[0] == cluster.name and (
            k[1] not in new_hosts or old != cluster
            or (h.address, h.port) != (new_hosts[k[1]].address, new_hosts[k[1]].port))]
        await self._disconnect(redo)
        self.inv.save_cluster(cluster)
        self._clusters[cluster.name] = cluster
        if password:
            self._passwords[cluster.name] = password  # memory only, never written
        gone = [k for k in redo if k[1] not in new_hosts]
        for k in gone:
            self._hosts.pop(k)
            for uuid in self._on_host.pop(k, ()):
                self._vms.pop(uuid, None)
        self.inv.delete_hosts(cluster.name, [k[1] for k in gone])
        for h in new_hosts.values():
            key = (h.cluster, h.name)
            if key in self._hosts and key not in redo:
                continue             # unchanged: keep its live state and link
            self._hosts[key] = h
            self.inv.save_host(h)
        if not self.offline:
            await self._connect_all()

    def remove_cluster(self, name: str) -> int:
        """Forget a cluster and its history (its hosts are not touched); returns how
        many tasks of history went. Made on the I/O loop."""
        if self.readonly:
            raise ReadOnly("removing a cluster")
        return self.call(self._remove_cluster(name), timeout=30)

    async def _remove_cluster(self, name: str) -> int:
        keys = [k for k in self._hosts if k[0] == name]
        await self._disconnect(keys)
        for k in keys:
            self._hosts.pop(k, None)
            for uuid in self._on_host.pop(k, ()):
                self._vms.pop(uuid, None)
        self._clusters.pop(name, None)
        return self.inv.delete_cluster(name)

    # ---- host links (I/O loop) ----------------------------------------------------
    async def _connect_all(self) -> None:
        for key in list(self._hosts):
            if self._only is not None and key[0] not in self._only:
                continue
            if key not in self._links:
                ex = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix=f"libvirt-{key[1]}")
                link = _Link(key, ex)
                self._links[key] = link
                link.runner = asyncio.get_running_loop().create_task(self._host_loop(link))

    async def _disconnect_all(self) -> None:
        await self._disconnect(list(self._links))

    async def _disconnect(self, keys: list[tuple[str, str]]) -> None:
        links = [self._links.pop(k) for k in keys if k in self._links]
        for link in links:
            if link.runner:
                link.runner.cancel()
        for link in links:
            # Python 3.11's wait_for can swallow a cancel that lands as its call
            # finishes (a host stopped mid-connect): cancel again until it ends.
            while link.runner and not link.runner.done():
                await asyncio.wait([link.runner], timeout=0.1)
                link.runner.cancel()
            if link.runner and not link.runner.cancelled():
                link.runner.exception()      # retrieved: never "never retrieved"
            await self._close(link)   # libvirt objects end on their own thread
            link.executor.shutdown(wait=False)

    async def _lv(self, link: _Link, fn: Callable, *args):
        """Run a libvirt call on the host's own libvirt thread. A libvirtd that takes
        the call but never answers must not hang the host, its tasks and callers: after
        LIBVIRT_TIMEOUT the link is dropped (closing the tunnel unblocks the thread)."""
        call = asyncio.get_running_loop().run_in_executor(link.executor, fn, *args)
        try:
            return await asyncio.wait_for(call, LIBVIRT_TIMEOUT)
        except asyncio.TimeoutError:
            if link.lv_lost is not None:
                link.lv_lost.set()
            raise HypervisorError(f"libvirt on {link.key[1]} did not answer within "
                                  f"{LIBVIRT_TIMEOUT:.0f} s") from None

    def _persist(self, write: Callable, *args) -> None:
        """Write to the inventory; a failed write (locked, disk full) is logged and the
        engine goes on: what is live in memory and on screen stays true."""
        try:
            write(*args)
        except sqlite3.Error as exc:
            log.warning("inventory write failed (%s): %s", getattr(write, "__name__", write),
                        exc)

    def _set_host(self, key: tuple[str, str], **changes) -> Host:
        old = self._hosts.get(key)
        if old is None:
            raise NotFound(f"host {key} is gone")
        new = replace(old, **changes)
        if new != old:
            self._hosts[key] = new
            if (new.status is HostStatus.UP) != (old.status is HostStatus.UP):
                self._restale(key, stale=new.status is not HostStatus.UP)
            self._emit(HostChanged(new))
            self._persist(self.inv.update_host, new)
            if new.status is not old.status:
                log.info("%s/%s: %s -> %s %s", *key, old.status.value, new.status.value,
                         new.problem)
                self._event(key[0], key[1], key[1], "host.status",
                            f"{old.status.value} → {new.status.value}"
                            + (f": {new.problem}" if new.problem else ""))
        return new

    def _event(self, cluster: str, host: str, target: str, kind: str, message: str) -> None:
        """Record a state change seen; events older than EVENTS_KEPT go now and then."""
        self._persist(self.inv.add_event, self.clock(), cluster, host, target, kind, message,
                      EVENTS_KEPT)

    def _restale(self, key: tuple[str, str], stale: bool) -> None:
        """A host went (not) live: flag its VMs once here, so reads stay free."""
        for vm in self._vms_on(key):
            if vm.stale != stale:
                self._vms[vm.uuid] = replace(vm, stale=stale)
                self._emit(VmChanged(self._vms[vm.uuid]))

    def _index(self, vm: Vm) -> None:
        self._on_host.setdefault((vm.cluster, vm.host), {})[vm.uuid] = None

    def _unindex(self, vm: Vm) -> None:
        uuids = self._on_host.get((vm.cluster, vm.host))
        if uuids is not None:
            uuids.pop(vm.uuid, None)
            if not uuids:
                del self._on_host[(vm.cluster, vm.host)]

    def _vms_on(self, key: tuple[str, str]) -> list[Vm]:
        """This host's VMs (I/O loop only: the index is not for other threads)."""
        return [self._vms[u] for u in self._on_host.get(key, ())]

    def _shadowed(self, vm: Vm) -> bool:
        """An inactive copy of a VM held on another host: the copy must not take its
        place (rule 7: the console would then offer to start a VM that runs, or may
        still run, elsewhere; and two stopped copies would take turns). It takes over
        once the other host no longer lists the VM, or when it runs here."""
        old = self._vms.get(vm.uuid)
        return (old is not None and (old.cluster, old.host) != (vm.cluster, vm.host)
                and not vm.state.active)

    def _put_vm(self, vm: Vm, save: bool = True) -> None:
        if self._shadowed(vm):
            log.info("%s is defined, stopped, on %s too; kept the copy on %s", vm.name,
                     vm.host, self._vms[vm.uuid].host)
            return
        old = self._vms.get(vm.uuid)
        vm = replace(vm, stale=not self._live(vm.cluster, vm.host))
        if old is not None and (old.cluster, old.host) != (vm.cluster, vm.host):
            self._unindex(old)
        self._vms[vm.uuid] = vm
        self._index(vm)
        if save:
            self._persist(self.inv.save_vms, [vm])
        if old is None or replace(old, seen_at=None) != replace(vm, seen_at=None):
            self._emit(VmChanged(vm))

    def _drop_vm(self, uuid: str) -> None:
        vm = self._vms.pop(uuid, None)
        if vm:
            self._unindex(vm)
            self._emit(VmRemoved(vm.cluster, uuid))
            self._persist(self.inv.delete_vms, [uuid])

    def _replace_host_vms(self, key: tuple[str, str], vms: list[Vm]) -> None:
        fresh = {v.uuid for v in vms}
        for uuid in [u for u in self._on_host.get(key, ()) if u not in fresh]:
            self._drop_vm(uuid)
        kept = [_with_usage(v, self._vms.get(v.uuid)) for v in vms if not self._shadowed(v)]
        # Write only what changed: a reconciliation of 10,000 unchanged VMs must not
        # rewrite them all on this loop (2.7 s measured), where keepalives run.
        changed = [v for v in kept if _definition(v) != _definition(self._vms.get(v.uuid))]
        if changed:
            self._persist(self.inv.save_vms, changed)
        for v in kept:
            self._put_vm(v, save=False)

    async def _read_contents(self, link: _Link, hv: Hypervisor
                             ) -> tuple[list[Network], list[Datastore], list[Vm]]:
        """A host's networks, storage pools and VMs. VMs last: the caller applies them
        with no await in between, so an event handled meanwhile is never overwritten
        by an older listing."""
        nets = await self._lv(link, hv.networks)
        stores = await self._lv(link, hv.datastores)
        return nets, stores, await self._lv(link, hv.vms)

    def _apply_contents(self, key: tuple[str, str], nets: list[Network],
                        stores: list[Datastore], vms: list[Vm]) -> None:
        self._replace_host_vms(key, vms)
        self._persist(self.inv.replace_host_networks, key[0], key[1], nets, stores)

    async def _host_loop(self, link: _Link) -> None:
        """Connect, refresh, watch; on loss mark the host and try again, forever."""
        # asyncssh costs ~150 ms to import: here it loads on the I/O thread, after the
        # console's first frame, and never in offline mode.
        from . import ssh as sshmod
        key = link.key
        first = True
        delay = self.reconnect_interval
        while True:
            host = self._hosts[key]
            if first:
                self._set_host(key, status=HostStatus.CONNECTING, problem="")
            first = False
            ssh_lost = asyncio.Event()
            lv_lost = asyncio.Event()
            try:
                await self._open(link, host, ssh_lost, lv_lost)
            except sshmod.SshError as exc:
                asked = link.offered_fp
                link.offered_key, link.offered_fp = exc.public_key, exc.fingerprint
                link.offered_type = exc.key_type
                unknown = exc.status is HostStatus.HOST_KEY_UNKNOWN
                # A changed key is not the host's key: keep showing the recorded one.
                self._set_host(key, status=exc.status, problem=exc.message,
                               fingerprint=exc.fingerprint if unknown else host.fingerprint)
                if unknown and exc.fingerprint != asked:   # ask once per key offered
                    self._emit(HostKeyQuestion(self._hosts[key], exc.key_type, exc.fingerprint))
                # Wrong keys don't fix themselves: wait for the operator (or retry slowly).
                slow = exc.status in (HostStatus.AUTH_FAILED, HostStatus.HOST_KEY_UNKNOWN,
                                      HostStatus.HOST_KEY_CHANGED)
                await self._pause(link, 60.0 if slow else delay)
                delay = min(delay * 1.5, 10.0)
                continue
            except (_LibvirtDown, HostUnreachable) as exc:
                await self._close(link)
                self._set_host(key, problem=str(exc), status=HostStatus.LIBVIRT_DOWN
                               if isinstance(exc, _LibvirtDown) else HostStatus.UNREACHABLE)
                await self._pause(link, delay)
                delay = min(delay * 1.5, 10.0)
                continue
            except Exception as exc:  # anything else: say so and keep trying, never stick
                log.exception("%s/%s: connecting failed", *key)
                await self._close(link)
                self._set_host(key, status=HostStatus.UNREACHABLE,
                               problem=f"connecting failed: {exc or exc.__class__.__name__}")
                await self._pause(link, delay)
                delay = min(delay * 1.5, 10.0)
                continue
            delay = self.reconnect_interval
            loop = asyncio.get_running_loop()
            watchers = [loop.create_task(self._stats_loop(link)),
                        loop.create_task(self._reconcile_loop(link))]
            try:
                await _first(ssh_lost.wait(), lv_lost.wait())
            finally:
                for w in watchers:
                    w.cancel()
                await self._close(link)
            at = time.strftime("%H:%M:%S", time.localtime(self.clock()))
            if ssh_lost.is_set():
                self._set_host(key, status=HostStatus.UNREACHABLE,
                               problem=f"lost contact at {at}: the SSH connection dropped")
            else:
                self._set_host(key, status=HostStatus.LIBVIRT_DOWN,
                               problem=f"libvirt connection closed at {at}")
            await self._pause(link, delay)

    async def _pause(self, link: _Link, seconds: float) -> None:
        """Wait before the next try; a retry asked meanwhile (even during the last
        attempt) ends the wait at once."""
        try:
            await asyncio.wait_for(link.wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass
        link.wake.clear()

    async def _open(self, link: _Link, host: Host, ssh_lost: asyncio.Event,
                    lv_lost: asyncio.Event) -> None:
        key = link.key
        loop = asyncio.get_running_loop()
        cluster = self._clusters[host.cluster]
        from . import ssh as sshmod
        if self._connect is not None:
            try:
                hv = await self._lv(link, self._connect, host)
            except HypervisorError as exc:
                raise _LibvirtDown(f"libvirtd does not answer: {exc}") from exc
            return await self._begin(link, hv, lv_lost)
        if host.address.startswith("test:"):
            uri = host.address  # libvirt's test driver, for benchmarks without SSH
        else:
            known = cluster.known_hosts or os.path.expanduser("~/.ssh/known_hosts")
            conn = await sshmod.connect(sshmod.Target(
                host.address, host.port, cluster.ssh_user, cluster.ssh_key, known,
                self._passwords.get(cluster.name)))
            link.ssh = conn
            server_key = conn.get_server_host_key()
            if server_key is not None:
                self._set_host(key, fingerprint=sshmod.fingerprint(server_key))
            loop.create_task(_when_closed(conn, ssh_lost))
            sock = os.path.join(self._runtime, f"{key[0]}-{key[1]}.sock")
            if os.path.exists(sock):
                os.unlink(sock)
            await conn.forward_local_path(sock, LIBVIRT_SOCKET)
            uri = f"qemu+unix:///system?socket={sock}"
        from .hypervisor import LibvirtHypervisor  # libvirt loads on the I/O thread, when needed
        await self._begin(link, LibvirtHypervisor(uri, key[0], key[1], self.clock), lv_lost)

    async def _begin(self, link: _Link, hv: Hypervisor, lv_lost: asyncio.Event) -> None:
        """Open the hypervisor, follow its events, read what the host has; then the
        host is up."""
        key = link.key
        loop = asyncio.get_running_loop()
        link.lv_lost = lv_lost

        def on_event(uuid: str, kind: str, detail: int) -> None:   # libvirt event thread
            loop.call_soon_threadsafe(self._domain_event, link, hv, uuid, kind, detail)

        def on_close(why: int) -> None:                             # libvirt event thread
            loop.call_soon_threadsafe(lv_lost.set)

        try:
            await self._lv(link, hv.open, on_event, on_close)
        except HypervisorError as exc:
            raise _LibvirtDown(f"SSH works but libvirtd does not answer: {exc}") from exc
        link.hv = hv
        try:
            facts = await self._lv(link, hv.facts)
            if link.ssh is not None:
                facts.update(await self._ssh_facts(link.ssh))
            _cpu, mem_used = await self._lv(link, hv.host_usage)  # primes CPU counters
            contents = await self._read_contents(link, hv)
        except HypervisorError as exc:
            raise _LibvirtDown(f"libvirt failed during refresh: {exc}") from exc
        self._apply_contents(key, *contents)
        self._set_host(key, status=HostStatus.UP, problem="", seen_at=self.clock(),
                       mem_used_mib=mem_used, **{k: v for k, v in facts.items() if k in Host.__dataclass_fields__})

    async def _ssh_facts(self, conn) -> dict:
        """What libvirt does not say: the OS release and the CPU's marketing name."""
        from . import ssh as sshmod
        try:
            out = await sshmod.run(conn, "cat /etc/os-release; echo ---; "
                                         "grep -m1 'model name' /proc/cpuinfo", timeout=10)
        except (RuntimeError, asyncio.TimeoutError, OSError) as exc:
            log.warning("facts over SSH failed: %s", exc)
            return {}
        release, _, cpu = out.partition("---")
        facts = {}
        for line in release.splitlines():
            if line.startswith("PRETTY_NAME="):
                facts["os_release"] = line.split("=", 1)[1].strip().strip('"')
        if ":" in cpu:
            facts["cpu_model"] = cpu.split(":", 1)[1].strip()
        return facts

    async def _close(self, link: _Link) -> None:
        hv, link.hv = link.hv, None
        if hv is not None:
            try:
                await asyncio.wait_for(self._lv(link, hv.close), 5)
            except (asyncio.TimeoutError, Exception):
                log.warning("%s: libvirt close did not finish", link.key)
        conn, link.ssh = link.ssh, None
        if conn is not None:
            conn.abort()

    def _domain_event(self, link: _Link, hv: Hypervisor, uuid: str, kind: str,
                      detail: int) -> None:
        if kind == REBOOT or (kind == LIFECYCLE and detail == LIFECYCLE_STARTED):
            self._boots[uuid] = self._boots.get(uuid, 0) + 1   # a reboot is confirmed so
        self._queue_refresh(link, hv, uuid)

    def _queue_refresh(self, link: _Link, hv: Hypervisor, uuid: str) -> None:
        """Re-read one VM soon; a burst of events about it costs one read."""
        if (link.key, uuid) in self._refresh_due:
            return
        self._refresh_due.add((link.key, uuid))
        asyncio.get_running_loop().create_task(self._refresh_vm(link, hv, uuid))

    async def _refresh_vm(self, link: _Link, hv: Hypervisor, uuid: str) -> None:
        self._refresh_due.discard((link.key, uuid))   # an event from now asks for another
        if link.hv is not hv:
            return  # event from a connection that has since closed
        try:
            vm = await self._lv(link, hv.vm, uuid)
        except HypervisorError as exc:
            log.warning("refresh of %s failed: %s", uuid, exc)
            return
        if link.hv is not hv:
            return
        if vm is None:
            known = self._vms.get(uuid)
            if known is not None and (known.cluster, known.host) == link.key:
                self._drop_vm(uuid)   # only the host that had it can say it is gone
            return
        old = self._vms.get(uuid)
        vm = _with_usage(vm, old)
        if old is not None:
            if old.state is not vm.state:
                self._event(vm.cluster, vm.host, uuid, "vm.state",
                            f"{vm.name}: {old.state.value} → {vm.state.value}")
        self._put_vm(vm)

    async def _stats_loop(self, link: _Link) -> None:
        """Every stats_interval: host usage and every VM's state, vCPUs, memory and
        use in one bulk call. A VM whose figures differ from what we hold (a change
        no event reported) is re-read in full; the rest are confirmed as of now."""
        key = link.key
        while True:
            await asyncio.sleep(self.stats_interval)
            hv = link.hv
            if hv is None:
                return
            try:
                cpu, mem = await self._lv(link, hv.host_usage)
                per_vm = await self._lv(link, hv.stats)
            except Exception as exc:  # a failed sample must not end sampling
                log.warning("%s: stats failed: %s", key, exc)
                continue
            if link.hv is not hv:
                return
            now = self.clock()
            self._set_host(key, cpu_pct=cpu, mem_used_mib=mem, seen_at=now)
            samples = []
            if cpu is not None:
                samples.append(dict(at=now, cluster=key[0], host=key[1], vm_uuid=None,
                                    metric="cpu_pct", value=cpu))
            if mem is not None:
                samples.append(dict(at=now, cluster=key[0], host=key[1], vm_uuid=None,
                                    metric="mem_used_mib", value=mem))
            held = set()
            for vm in self._vms_on(key):
                held.add(vm.uuid)
                sample = per_vm.get(vm.uuid)
                if sample is None or _differs(vm, sample):
                    self._queue_refresh(link, hv, vm.uuid)   # gone, or changed unseen
                    continue
                # Confirmed by its host just now; only changes are announced.
                self._put_vm(replace(vm, cpu_pct=sample.cpu_pct,
                                     mem_used_mib=sample.mem_used_mib, seen_at=now),
                             save=False)
                if sample.cpu_pct is not None:
                    samples.append(dict(at=now, cluster=key[0], host=key[1], vm_uuid=vm.uuid,
                                        metric="cpu_pct", value=sample.cpu_pct))
            for uuid in per_vm.keys() - held:
                if uuid in self._vms and not per_vm[uuid].state.active:
                    continue   # a stopped copy of a VM held on another host (rule 7)
                self._queue_refresh(link, hv, uuid)            # defined without an event
            self._persist(self.inv.add_samples, samples, HOST_SAMPLES_KEPT, now,
                          VM_SAMPLES_KEPT)

    async def _reconcile_loop(self, link: _Link) -> None:
        """The slow, complete pass: every reconcile_interval, re-read the host's VMs,
        networks and pools in full (what no event and no stats pass would show)."""
        while link.hv is not None:
            await asyncio.sleep(self.reconcile_interval)
            try:
                await self._reread(link, "reconcile")
            except Exception:   # one bad pass must not end reconciliation of this host
                log.exception("%s: reconcile failed", link.key)

    async def _reread(self, link: _Link, why: str) -> bool:
        """Read a host's networks, pools and VMs in full and apply them (unless the
        link changed meanwhile); False if the host could not say."""
        hv = link.hv
        if hv is None:
            return False
        try:
            contents = await self._read_contents(link, hv)
        except HypervisorError as exc:
            log.warning("%s: %s failed: %s", link.key, why, exc)
            return False
        if link.hv is not hv:
            return False
        self._apply_contents(link.key, *contents)
        return True

    # ---- operations (async facade) ------------------------------------------------------
    async def wait_ready(self, timeout: float = 15.0, cluster: str | None = None) -> None:
        """Until every host has left 'connecting' (first contact done, either way)."""
        async def wait():
            while any(h.status is HostStatus.CONNECTING for h in self.hosts(cluster)):
                await asyncio.sleep(0.05)
        try:
            await self._on_io(asyncio.wait_for(wait(), timeout))
        except asyncio.TimeoutError:
            pass

    async def refresh(self, cluster: str | None = None) -> None:
        """Re-read every VM on every live host (events keep it current otherwise)."""
        async def go():
            links = [l for k, l in self._links.items()
                     if (cluster is None or k[0] == cluster) and l.hv is not None]

            async def one(link: _Link):
                if await self._reread(link, "refresh"):
                    self._set_host(link.key, seen_at=self.clock())
            await asyncio.gather(*(one(l) for l in links))
        await self._on_io(go())

    async def retry_host(self, cluster: str, name: str) -> None:
        """Try to reach a host now instead of at its next retry."""
        def wake():
            link = self._links.get((cluster, name))
            if link:
                link.offered_fp = ""   # the operator asked: an unknown key is asked again
                link.wake.set()
        self._loop.call_soon_threadsafe(wake)

    async def trust_host_key(self, cluster: str, name: str, fingerprint: str) -> None:
        """The operator confirmed this fingerprint: record the key and connect."""
        if self.readonly:
            raise ReadOnly("trusting a host key")
        h = self.host(cluster, name)
        link = self._links.get((cluster, name))
        if h.status is HostStatus.HOST_KEY_CHANGED:
            raise EngineError(f"The host key of {name} CHANGED; mvmtui never trusts a "
                              f"changed key. {h.problem}")
        if link is None or h.status is not HostStatus.HOST_KEY_UNKNOWN:
            raise EngineError(f"{name} has no host key waiting to be trusted.")
        from . import ssh as sshmod
        key_text = link.offered_key          # one read: the key written is the key checked
        offered = sshmod.key_fingerprint(key_text) if key_text else ""
        if not offered:
            raise EngineError(f"{name} is being contacted again; confirm its key when "
                              f"asked.")
        if offered != fingerprint:
            raise EngineError(f"{name} now offers {offered}, not {fingerprint}; "
                              f"not trusted. Check the host again.")
        known = self._clusters[cluster].known_hosts or os.path.expanduser("~/.ssh/known_hosts")
        sshmod.trust_key(known, h.address, h.port, key_text)
        link.offered_key = ""
        await self.retry_host(cluster, name)

    def pending_host_keys(self) -> list[HostKeyQuestion]:
        """Unknown host keys still waiting for the operator (for a UI that starts late)."""
        out = []
        for key, link in list(self._links.items()):
            h = self._hosts.get(key)
            if h and h.status is HostStatus.HOST_KEY_UNKNOWN and link.offered_key:
                out.append(HostKeyQuestion(h, link.offered_type, link.offered_fp))
        return out

    def set_password(self, cluster: str, password: str) -> None:
        """SSH password for a cluster: kept in memory for this session only."""
        self._passwords[cluster] = password

    def _refuse_changes(self, what: str) -> None:
        if self.readonly:
            raise ReadOnly(what)
        if self.offline:
            raise Offline(what)

    async def vm_action(self, uuid: str, action: str) -> Task:
        """Run a VM power action as a journaled task; returns the finished task
        (status failed with the reason if it did not happen). Raises Busy when the VM
        is locked by another task, ReadOnly / Offline in those modes."""
        task = await self.submit_vm_action(uuid, action)
        return await self.wait_task(task.id)

    async def submit_vm_action(self, uuid: str, action: str) -> Task:
        """Start a VM power action; returns the task once it runs (holding its lock).
        Its outcome: wait_task(task.id)."""
        if action not in VM_ACTIONS:
            raise EngineError(f"Unknown VM action {action!r}; one of {', '.join(VM_ACTIONS)}.")
        verb, wait_for, _ = VM_ACTIONS[action]
        self._refuse_changes(f"{verb.lower()} of a VM")
        vm = self.vm(uuid)
        steps = ["Check host", verb]
        if wait_for is not None:
            steps.append(f"Wait until {wait_for.value}")
        elif action == "reboot":
            steps.append("Wait for the guest to reboot")
        spec = TaskSpec(kind=f"vm.{action}", title=f"{verb} {vm.name}", cluster=vm.cluster,
                        target_kind="vm", target=vm.uuid, target_name=vm.name, host=vm.host,
                        steps=tuple(steps), locks=(f"vm:{vm.uuid}",),
                        params={"action": action}, supersedes=SUPERSEDES.get(action, ()))

        async def body(ctx: TaskContext) -> None:
            ctx.step(0)
            link, hv = self._live_link(vm)
            ctx.log(f"{vm.name} is on {vm.host}")
            ctx.step(1)
            boots = self._boots.get(vm.uuid, 0)
            try:
                await self._lv(link, hv.act, vm.uuid, action)
            except HypervisorError as exc:
                raise TaskFailed(f"libvirt refused: {exc}") from exc
            ctx.log(f"libvirt accepted {verb.lower()}")
            if wait_for is not None:
                ctx.step(2)
                limit = self.shutdown_timeout if action == "shutdown" else 30.0
                if action == "shutdown":
                    ctx.log(f"Asked the guest to power off (ACPI); waiting up to {limit:.0f} s")
                await self._wait_state(link, hv, vm.uuid, wait_for, limit, ctx)
            elif action == "reboot":
                ctx.step(2)
                await self._wait_reboot(vm, boots, ctx)
            await self._refresh_vm(link, hv, vm.uuid)

        return await self._on_io(self.journal.submit(spec, body))

    async def set_placement(self, uuid: str, strategy: Strategy | str | None = None,
                            home: str | None = None) -> Task:
        """Change a VM's placement strategy and/or home host, as a task that writes it
        into the domain's own definition and confirms it by reading it back. A Pinned
        VM without a home is pinned where it is."""
        vm = self.vm(uuid)
        try:
            new_strategy = vm.strategy if strategy is None else Strategy(strategy)
        except ValueError:
            raise EngineError(f"Unknown strategy {strategy!r}; one of "
                              f"{', '.join(s.value for s in Strategy)}.") from None
        new_home = vm.home if home is None else home
        if new_home:
            self.host(vm.cluster, new_home)       # NotFound names the cluster's hosts
        if new_strategy is Strategy.PINNED and not new_home:
            new_home = vm.host
        self._refuse_changes("changing a VM's placement")
        what = new_strategy.value + (f", home {new_home}" if new_home else "")
        spec = TaskSpec(kind="vm.placement", title=f"Placement of {vm.name}: {what}",
                        cluster=vm.cluster, target_kind="vm", target=vm.uuid,
                        target_name=vm.name, host=vm.host,
                        steps=("Check host", "Write the placement", "Confirm"),
                        locks=(f"vm:{vm.uuid}",),
                        params={"strategy": new_strategy.value, "home": new_home})

        async def body(ctx: TaskContext) -> None:
            ctx.step(0)
            link, hv = self._live_link(vm)
            ctx.log(f"{vm.name} is on {vm.host}; was {vm.strategy.value}"
                    + (f", home {vm.home}" if vm.home else ""))
            ctx.step(1)
            try:
                await self._lv(link, hv.set_placement, vm.uuid, new_strategy, new_home)
            except HypervisorError as exc:
                raise TaskFailed(f"libvirt refused: {exc}") from exc
            ctx.step(2)
            await self._refresh_vm(link, hv, vm.uuid)
            now = self._vms.get(vm.uuid)
            if now is None or (now.strategy, now.home) != (new_strategy, new_home):
                raise TaskFailed(f"{vm.host} does not show the new placement of {vm.name}")
            ctx.log(f"{vm.host} shows {what}")

        async def run() -> Task:
            task = await self.journal.submit(spec, body)
            return await self.journal.wait(task.id)
        return await self._on_io(run())

    def _live_link(self, vm: Vm) -> tuple[_Link, Hypervisor]:
        """The VM's host link if the host is up; HostDown (nothing changed) if not."""
        key = (vm.cluster, vm.host)
        link = self._links.get(key)
        host = self._hosts.get(key)
        if link is None or link.hv is None or host is None or host.status is not HostStatus.UP:
            status = host.status.value if host else "unknown"
            raise HostDown(f"Host {vm.host} is {status}"
                           + (f" ({host.problem})" if host and host.problem else "")
                           + "; nothing was changed.")
        return link, link.hv

    async def wait_task(self, task_id: int) -> Task:
        """The task once finished (ours, or another process's: then polled)."""
        return await self._on_io(self.journal.wait(task_id))

    async def cancel_task(self, task_id: int) -> Task:
        """Ask a running task to stop, from any process on this inventory: its owner
        stops it within about a second. Only while it waits (cancelling then is safe);
        otherwise EngineError says why not."""
        if self.readonly:
            raise ReadOnly("cancelling a task")

        async def cancel() -> Task:     # journal writes happen on the I/O loop
            return self.journal.cancel(task_id, f"cancelled by {self.journal.started_by}")
        try:
            return await self._on_io(cancel())
        except LookupError as exc:
            raise NotFound(str(exc)) from None
        except ValueError as exc:
            raise EngineError(str(exc)) from None

    async def _wait_state(self, link: _Link, hv: Hypervisor, uuid: str,
                          want: VmState, limit: float, ctx: TaskContext) -> None:
        start = time.monotonic()
        with ctx.cancellable():
            while True:
                try:
                    state = await self._lv(link, hv.state, uuid)
                except HypervisorError as exc:
                    raise TaskFailed(
                        f"lost track of the VM: {link.key[1]} stopped answering while "
                        f"this waited ({exc}). What it did is unknown until "
                        f"{link.key[1]} answers again.") from exc
                if state is want:
                    ctx.log(f"VM is {want.value}")
                    return
                waited = time.monotonic() - start
                if waited > limit:
                    hint = " It may ignore ACPI: Force off cuts the power." \
                        if want is VmState.SHUTOFF else ""
                    raise TaskFailed(f"VM still {state.value} after {limit:.0f} s.{hint}")
                ctx.progress(min(0.95, 0.66 + 0.3 * waited / limit))
                await ctx.sleep(0.2)

    async def _wait_reboot(self, vm: Vm, boots: int, ctx: TaskContext) -> None:
        """libvirt accepting a reboot proves nothing: the guest may ignore ACPI (or not
        have booted far enough to hear it). Success is a reboot event or a new boot."""
        limit = self.reboot_timeout
        ctx.log(f"Asked the guest to restart (ACPI); waiting up to {limit:.0f} s for it "
                f"to reboot")
        start = time.monotonic()
        with ctx.cancellable():
            while self._boots.get(vm.uuid, 0) == boots:
                waited = time.monotonic() - start
                if waited > limit:
                    raise TaskFailed(f"the guest did not reboot within {limit:.0f} s; it "
                                     f"may ignore ACPI, or was still booting. Force off "
                                     f"then Start restarts it for sure.")
                ctx.progress(min(0.95, 0.66 + 0.3 * waited / limit))
                await ctx.sleep(0.2)
        ctx.log("The guest rebooted")


class _LibvirtDown(Exception):
    pass


async def _when_closed(conn, event: asyncio.Event) -> None:
    try:
        await conn.wait_closed()
    finally:
        event.set()


async def _first(*aws: Awaitable) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


def _differs(vm: Vm, sample) -> bool:
    """A bulk sample disagrees with what we hold: something changed unreported.
    Figures the host does not report in bulk (None) are not compared."""
    # Memory only of a running VM: for a shut-off one libvirt's bulk figure is the
    # maximum, not the current size dominfo gives.
    return (sample.state is not vm.state
            or (sample.vcpus is not None and sample.vcpus != vm.vcpus)
            or (sample.memory_mib is not None and vm.state.active
                and sample.memory_mib != vm.memory_mib))


def _with_usage(vm: Vm, old: Vm | None) -> Vm:
    """A VM read from its definition has no use figures: keep those of the last
    stats pass while it stays active (a re-read must not blank its CPU %)."""
    if old is None or not vm.state.active or (vm.host, vm.cluster) != (old.host, old.cluster):
        return replace(vm, cpu_pct=None, mem_used_mib=None) if not vm.state.active else vm
    return replace(vm, cpu_pct=old.cpu_pct, mem_used_mib=old.mem_used_mib)


def _definition(vm: Vm | None):
    """What the inventory keeps of a VM, less the figures that move on their own."""
    return None if vm is None else replace(vm, seen_at=None, config_at=None, cpu_pct=None,
                                           mem_used_mib=None, stale=False)

