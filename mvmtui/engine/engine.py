"""The Engine: the one facade screens and the CLI talk to.

engine.py holds the state, the I/O thread, subscriptions, clusters and tasks; the
rest is in rooms Engine inherits (mixins that share its state and import nothing
from each other but types):
- links.py     HostLinks: reaching hosts, the libvirt thread, host keys
- sync.py      HostSync: events, stats and reconcile passes into the store
- store.py     VmStore: hosts and VMs in memory, their index, the reads
- power.py     VmPower: VM power actions and placement, as tasks
- overview.py  ClusterOverview: summary, capacity, policy, the planner's view
- migration.py Migration: where a VM may go, live and offline moves
- maintenance.py Maintenance: the preview, entering and leaving maintenance
- recovery.py  Recovery: finishing or undoing moves a dead console left half done
- locks.py     ClusterLocks: lock files on the hosts, that other consoles see
- ha.py        HighAvailability: the watcher (lease, loss, fencing, failover, return),
               the failover plan and N−1, DRS rebalancing
- monitoring.py Monitoring: charts' data from the metric history (history.py),
               sparklines, the event log
- ceph/        CephRoom: the Ceph summary, `ceph` commands, noout for maintenance,
               the guided decommission, storage fencing

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
from dataclasses import replace
from typing import Awaitable, Callable, Iterable

from .adapter import Hypervisor
from .errors import EngineError, InventoryError, NotFound, ReadOnly, Offline
from .ceph import fence as _ceph_fence  # noqa: F401  (registers the storage fence)
from .ceph.room import CephRoom
from .ceph.wizard import CephWizard
from .ha import HighAvailability
from .inventory import Inventory
from .links import HostLinks
from .locks import ClusterLocks
from .maintenance import Maintenance
from .migration import Migration
from .monitoring import Monitoring
from .recovery import Recovery
from .model import Cluster, Event, Host, HostStatus, Task, TaskStatus, Vm
from .overview import ClusterOverview
from .power import VmPower
from .store import VmStore
from .sync import HostSync
from .tasks import Journal, JournalFollower
from .writer import InventoryWriter

# Names that lived here before the rooms: callers still import them from here.
from .links import LIBVIRT_SOCKET, LIBVIRT_TIMEOUT, _Link
from .power import SUPERSEDES, VM_ACTIONS, vm_actions
from .store import EVENTS_KEPT

__all__ = ["Engine", "VM_ACTIONS", "SUPERSEDES", "vm_actions", "LIBVIRT_SOCKET",
           "LIBVIRT_TIMEOUT", "_Link", "EVENTS_KEPT"]

log = logging.getLogger("mvmtui.engine")


class Engine(HostLinks, HostSync, VmStore, VmPower, ClusterOverview, Migration, Maintenance,
             Recovery, ClusterLocks, HighAvailability, CephRoom,
             CephWizard, Monitoring):
    """Every method the screens and the CLI call; see the rooms above."""

    def __init__(self, inventory: Inventory | str | os.PathLike | None = None, *,
                 clock: Callable[[], float] = time.time, readonly: bool = False,
                 offline: bool = False, reconnect_interval: float = 2.0,
                 stats_interval: float = 5.0, shutdown_timeout: float = 90.0,
                 reboot_timeout: float | None = None, reconcile_interval: float = 300.0,
                 actor: str = "console", recover: bool = True,
                 connect: Callable[[Host], Hypervisor] | None = None,
                 ceph_reader=None, ceph_runner=None):
        """`connect` replaces SSH + libvirt with another way to reach a host's
        hypervisor (tests script hosts with scripted.ScriptedHypervisor); it raises
        adapter.HostUnreachable or HypervisorError as a real host would fail.
        `ceph_reader` / `ceph_runner` replace SSH to a Ceph host likewise
        (ceph/room.py: a reads document for a cluster; a command's rc, out, err)."""
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
        self._mover_pool = None     # threads for migration jobs (migration._movers)
        self._writer: InventoryWriter | None = None   # bulk writes, from start()
        # Per live host: VMs whose definition is still to be read after the fast
        # listing (sync._read_details_later); read from any thread.
        self._details_pending: dict[tuple[str, str], int] = {}
        # Per live host: (when its last stats pass confirmed its VMs, the VMs it did
        # not confirm); store.vm_seen_at reads it.
        self._confirmed: dict[tuple[str, str], tuple[float, set[str]]] = {}
        self._watched: frozenset[str] = frozenset()   # VMs on screen (sync.watch_vms)
        # Bumped when a VM is added, removed or changes other than in its use figures:
        # a cluster's summary (a pass over all its VMs) is computed again only then.
        self._vm_version = 0
        self._summaries: dict[str, tuple[int, tuple]] = {}   # overview.summary
        self._moving: set[str] = set()   # VMs in a live migration now (not re-read)
        self._jobs: dict[int, int] = {}  # id(hypervisor) -> migration jobs using it
        # id(hypervisor) -> (its link's libvirt thread, it): to close once its jobs end
        self._close_after_job: dict[int, tuple] = {}
        # Finish or undo what a dead console left half done (recovery.py): engines
        # that stay up do; a short CLI verb must not start work it then cuts off.
        self.recover = recover
        self._recoveries: set[asyncio.Task] = set()
        # Host loss (ha.py): what each cluster's watcher says; the clusters this
        # engine watches, and their loops.
        self._ha: dict = {}
        self._watches: dict = {}
        self._watch_tasks: list[asyncio.Task] = []
        self._ha_poller: asyncio.Task | None = None
        self.ceph_reader, self.ceph_runner = ceph_reader, ceph_runner
        self._ceph_init()
        self._monitoring_init()
        # Lock files on hosts that were away when their task ended (locks.py).
        self._leftover_locks: dict[tuple[str, str], set[str]] = {}
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
        self._vms: dict[str, Vm] = {v.uuid: v for v in self.inv.vms(stale=True)
                                    if (v.cluster, v.host) in self._hosts}
        # Each host's VMs (uuids, in arrival order), kept with _vms on the I/O loop: a
        # host's refresh, stats and status changes then touch its own VMs only, not
        # every VM of every host (200 hosts × 10,000 VMs).
        self._on_host: dict[tuple[str, str], dict[str, None]] = {}
        for v in self._vms.values():
            self._index(v)
        # Digest of each VM's saved XML: a definition is written only when it changed.
        # Read when first needed (store._save_definitions), not before the first frame.
        self._def_digest: dict[str, str] | None = None

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
        self._writer = InventoryWriter()
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
            if not self.readonly and self.recover:
                self._loop.call_soon_threadsafe(self._start_recovery)
            self._loop.call_soon_threadsafe(self._start_ha_poll)
            self._loop.call_soon_threadsafe(self._start_ceph_poll)

    def stop(self) -> None:
        if not self._thread or not self._loop:
            return
        if self._follower:
            self._follower.stop()
        try:    # a watcher lets go of its leases first: a standby takes over at once
            self._submit(self._stop_watching()).result(timeout=8)
        except concurrent.futures.TimeoutError:
            log.warning("the watcher's leases were not released within 8 s")
        try:   # recoveries first (they start tasks), then our running tasks: they end
            # recorded as interrupted, never left "running"
            self._submit(self._cancel_recoveries()).result(timeout=5)
            self._submit(self.journal.cancel_all()).result(timeout=5)
        except concurrent.futures.TimeoutError:
            log.warning("tasks did not stop within 5 s")
        try:
            self._submit(self._disconnect_all()).result(timeout=15)
        except concurrent.futures.TimeoutError:
            log.warning("hosts did not disconnect within 15 s")
        if self._mover_pool is not None:
            self._mover_pool.shutdown(wait=False)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._thread = None
        shutil.rmtree(self._runtime, ignore_errors=True)
        writer, self._writer = self._writer, None
        if writer is not None:
            if self.recover and not self.offline and not self.readonly:
                # A console or watcher that stops: the windows still open get their
                # averages now (from what was sampled so far), as a restart later than
                # two windows would not roll them again. (Not a short CLI verb: at
                # 10,000 VMs a rollup is ~0.4 s.)
                writer.put(self.history.roll_up, self.clock() + 900 + 60)
            writer.stop()
        self.inv.close()

    async def _cancel_recoveries(self) -> None:
        for fut in list(self._recoveries):
            fut.cancel()
        if self._recoveries:
            await asyncio.wait(list(self._recoveries), timeout=3)

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

    # ---- tasks and cluster views (any thread) -----------------------------------
    def tasks(self, cluster: str | None = None, target: str | None = None,
              host: str | None = None, limit: int = 500,
              unfinished: bool = False, details: bool = False) -> list[Task]:
        """Newest first; `unfinished`: only those queued or running; `details`: with
        their steps and logs."""
        statuses = (TaskStatus.QUEUED, TaskStatus.RUNNING) if unfinished else None
        return self.inv.tasks(cluster=cluster, target=target, host=host, limit=limit,
                              statuses=statuses, details=details)

    def task_children(self, tid: int) -> list[Task]:
        """A parent task's children (an evacuation's moves), oldest first."""
        return self.inv.children(tid)

    def task(self, tid: int) -> Task:
        t = self.inv.task(tid)
        if t is None:
            raise NotFound(f"No task {tid}.")
        return t

    def pending_task(self, vm_uuid: str) -> Task | None:
        """The unfinished task on a VM, if any (shown as "shutting down…")."""
        tasks = self.inv.tasks(target=vm_uuid, limit=1,
                               statuses=(TaskStatus.QUEUED, TaskStatus.RUNNING))
        return tasks[0] if tasks else None

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
        self.history.forget(name)
        return self.inv.delete_cluster(name)

    def _refuse_changes(self, what: str) -> None:
        if self.readonly:
            raise ReadOnly(what)
        if self.offline:
            raise Offline(what)

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
