"""Host loss: the watcher that fences, fails over and brings VMs home; the failover
plan ("what if this host dies now?"); DRS rebalancing.

Who acts. Any engine may watch (`mvmtui watch`, or a console with the setting on),
but only the holder of the cluster's watcher lease acts. The lease is a lock file on
every host (locks.py), renewed every LEASE_BEAT s and taken over once not renewed
for LEASE_STALE s; a watcher holds the cluster while it holds the file on more than
half of its hosts, so two watchers never act at once, and a watcher cut off from
the hosts holds nothing. What it sees (each host's state: suspect, lost, fenced…) is
written next to the lease on every host, so every console on any admin box shows it.

A host's life, as the watcher sees it:
- suspect: its SSH or libvirt keepalive failed (the link dropped);
- lost: still not answering after the cluster's ha-lost-after seconds. Unless most
  hosts are lost at once (then it is the watcher that is cut off: it acts on none);
- fenced: powered off by its fence method (fence.py), or an operator's typed "I have
  powered it off". Without that, nothing restarts: a host whose management is down
  may still run its guests;
- its Auto and Failover VMs restart from their saved definitions where the planner
  says, by priority, each marked with the host it failed over from; Pinned VMs wait;
- it returns: its stale copies are undefined (the boot gate, assets/libvirt-hook-qemu,
  kept them stopped), the gate opens, held autostart VMs start, and the VMs that
  failed over migrate back live (ha-return=migrate) or stay (stay).
The whole event is one "host.failover" task: its log is the timeline, its children
the restarts and the return.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import time

from .adapter import Placement
from .errors import EngineError, HypervisorError, ReadOnly
from .locks import owner_id
from .model import (PRIORITIES, FailoverPlan, FailoverRow, HaChanged, HaStatus, HostHa,
                    HostLossCheck, HostStatus, MoveRow, RebalancePreview, Strategy, Task,
                    TaskStatus, Vm, VmState, WatcherInfo)
from .tasks import Busy, TaskContext, TaskFailed, TaskSpec

log = logging.getLogger("mvmtui.ha")

LEASE = "watcher"           # the lease's lock file (locks/watcher.lock on every host)
LEASE_BEAT = 2.0            # seconds between renewals
LEASE_STALE = 10.0          # a lease not renewed this long is taken over
WATCH_TICK = 0.25           # seconds between looks at the hosts' states
STATUS_POLL = 5.0           # how often a console reads who watches
STATUS_FILE = "ha-status"   # what the watcher says, next to the lease on every host
GATE_MARK = "ha-gate"       # "a watcher keeps this cluster": the boot gate holds VMs
ACK = "fence-ack."          # + host: an operator's "I have powered it off"
RESTARTS_AT_ONCE = 4
RETRY_FAILED = 5.0          # seconds before a failover that left VMs down tries again
RETRY_RETURN = 10.0         # seconds before VMs that did not come home are tried again
DOWN = (HostStatus.UNREACHABLE, HostStatus.LIBVIRT_DOWN, HostStatus.AUTH_FAILED,
        HostStatus.HOST_KEY_CHANGED, HostStatus.HOST_KEY_UNKNOWN)
# Host states in which the host has been given up (its VMs restart, or wait for that).
GIVEN_UP = ("lost", "fencing", "unfenced", "fenced", "restarting", "failed-over")


class _Watch:
    """One watched cluster (I/O loop only)."""

    def __init__(self):
        self.hosts: dict[str, HostHa] = {}
        self.down_since: dict[str, float] = {}
        self.problem: dict[str, str] = {}
        self.failovers: dict[str, int] = {}   # host -> its failover task
        self.returning: set[str] = set()
        self.return_tried: dict[str, float] = {}
        self.held: set[str] = set()           # hosts whose lease file we hold
        self.active = False
        self.message = ""
        self.published = ""
        self.last_drs = 0.0
        self.other: dict | None = None         # another watcher's lease record
        self.policy = None                     # the cluster's policy, read every beat
        self.policy_at = float("-inf")


class HighAvailability:
    """Mixin for Engine."""

    # ---- what every console shows ---------------------------------------------------
    def ha_status(self, cluster: str) -> HaStatus:
        """Who watches the cluster and what the watcher says of its hosts (any thread):
        this engine's own view when it watches, else what the hosts last said."""
        st = self._ha.get(cluster)
        return st if st is not None else HaStatus(cluster, WatcherInfo(cluster))

    def _set_ha(self, status: HaStatus) -> None:
        if self._ha.get(status.cluster) != status:
            self._ha[status.cluster] = status
            self._emit(HaChanged(status))

    def _start_ha_poll(self) -> None:
        if self._ha_poller is None:
            self._ha_poller = asyncio.get_running_loop().create_task(self._ha_poll_loop())

    async def _ha_poll_loop(self) -> None:
        """Engines that do not watch read the lease and the watcher's words from a host
        of each cluster every STATUS_POLL s (every second until a host answered)."""
        while True:
            for c in list(self._clusters):
                if c in self._watches or (self._only is not None and c not in self._only):
                    continue
                try:
                    await self._read_ha(c)
                except Exception as exc:     # a console must keep showing the rest
                    log.info("%s: reading who watches failed: %s", c, exc)
                    self._set_ha(HaStatus(c, WatcherInfo(c, read_at=self.clock()),
                                          message=f"who watches could not be read: {exc}"))
            # Soon while a cluster was never read (its hosts are still connecting).
            never = any(self.ha_status(c).watcher.read_at is None for c in self._clusters
                        if c not in self._watches and (self._only is None or c in self._only))
            await asyncio.sleep(0.1 if never else STATUS_POLL)

    def _ha_unread(self, cluster: str | None = None) -> bool:
        """A cluster (of those contacted, not watched here) with a host up that can be
        asked, whose watcher was never read: wait_ready waits for that first read."""
        if self.offline:
            return False
        for c in list(self._clusters):
            if (cluster is not None and c != cluster) or c in self._watches \
                    or (self._only is not None and c not in self._only):
                continue
            if self.ha_status(c).watcher.read_at is None and any(
                    h.status is HostStatus.UP and self._lock_store(c, h.name) is not None
                    for h in self.hosts(c)):
                return True
        return False

    async def _read_ha(self, cluster: str) -> None:
        hosts = [h for h in self.hosts(cluster) if h.status is HostStatus.UP]
        total = len(self.hosts(cluster))
        for h in hosts:
            store = self._lock_store(cluster, h.name)
            if store is None:
                continue
            holder, said = await store.peek_with_state(LEASE, STATUS_FILE)
            break
        else:
            if hosts:       # up, but reached without SSH (libvirt's test driver)
                self._set_ha(HaStatus(cluster, WatcherInfo(cluster, hosts_total=total,
                                                           read_at=self.clock()),
                                      message="who watches cannot be read: its hosts are "
                                              "reached without SSH"))
            elif self._ha.get(cluster) is None:     # no host answers yet
                self._set_ha(HaStatus(cluster, WatcherInfo(cluster, hosts_total=total)))
            return                                  # (else: keep what was read; it ages)
        now = self.clock()
        info = WatcherInfo(cluster, hosts_total=total, read_at=now)
        if holder is not None and holder.get("age", 0) <= LEASE_STALE:
            owner = str(holder.get("owner", ""))
            pid = owner.split(":", 1)[0]
            info = WatcherInfo(cluster, holder=str(holder.get("holder", "?")),
                               pid=int(pid) if pid.isdigit() else None,
                               machine=owner.rsplit("@", 1)[-1], age=holder.get("age"),
                               hosts_total=total, read_at=now)
        rows, message = (), ""
        if said and info.watched:
            try:
                data = json.loads(said)
                rows = tuple(HostHa(**r) for r in data.get("hosts", ()))
                message = data.get("message", "")
            except (ValueError, TypeError):
                message = "the watcher's status on the hosts is unreadable"
        self._set_ha(HaStatus(cluster, info, rows, message))

    # ---- watching ---------------------------------------------------------------------
    def start_watching(self, clusters=None) -> None:
        """Make this engine a watcher of the clusters (all by default): it competes for
        each cluster's lease, and while it holds one, fails over, returns and
        rebalances there. Call after start()."""
        if self.readonly or self.offline:
            raise ReadOnly("watching for host loss")
        names = list(clusters) if clusters is not None else list(self._clusters)

        def go():
            for c in names:
                if c in self._watches:
                    continue
                self._watches[c] = _Watch()
                loop = asyncio.get_running_loop()
                self._watch_tasks += [loop.create_task(self._lease_loop(c)),
                                      loop.create_task(self._watch_loop(c))]
        self._loop.call_soon_threadsafe(go)

    async def _stop_watching(self) -> None:
        """Release the leases (a standby takes over at once rather than after
        LEASE_STALE s); the boot gate's mark stays while another watcher keeps it."""
        if self._ha_poller is not None:
            self._ha_poller.cancel()
            self._ha_poller = None
        self._stop_ceph_poll()
        for t in self._watch_tasks:
            t.cancel()
        for t in self._watch_tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._watch_tasks = []
        me = self._lease_owner()
        for c, w in self._watches.items():
            for host in list(w.held):
                store = self._lock_store(c, host)
                if store is None:
                    continue
                try:    # the last watcher gone: hosts boot with plain autostart again
                    # (a standby writes the mark again when it takes the lease)
                    await asyncio.wait_for(store.release([LEASE], me), 3)
                    if w.active:
                        await asyncio.wait_for(store.write_state(GATE_MARK, ""), 3)
                except Exception:
                    pass
        self._watches.clear()

    def _lease_owner(self) -> str:
        """This engine, as a lease names it: the process, and which engine in it (tests
        run two watchers in one process)."""
        proc, machine = owner_id().rsplit("@", 1)
        return f"{proc}.{id(self) % 10000}@{machine}"

    async def _lease_loop(self, cluster: str) -> None:
        w = self._watches[cluster]
        me = self._lease_owner()
        record = {"holder": self.journal.started_by, "owner": me, "pid": os.getpid(),
                  "title": f"HA watcher of {cluster}"}
        while True:
            hosts = self.hosts(cluster)
            held = set()
            others: list[dict] = []     # another watcher's lease, fresh, as a host said

            async def one(name: str) -> None:
                store = self._lock_store(cluster, name)
                if store is None:
                    return
                try:     # one command a host a beat: take it, or renew it
                    got = await store.hold(LEASE, {**record, "taken_at": int(self.clock())},
                                           me)
                    if isinstance(got, dict) and got.get("age", 0) > LEASE_STALE:
                        log.info("%s/%s: taking over a stale watcher lease (%s)", cluster,
                                 name, got.get("holder"))
                        await store.break_stale(LEASE, got["raw"])
                        got = await store.hold(LEASE, record, me)
                    if got == "taken":
                        held.add(name)
                        await store.write_state(GATE_MARK, cluster)
                    elif got == "renewed":
                        held.add(name)
                    else:
                        others.append(got)
                except Exception as exc:
                    log.debug("%s/%s: lease: %s", cluster, name, exc)
            await asyncio.gather(*(one(h.name) for h in hosts if h.status is HostStatus.UP))
            w.held = held
            w.other = min(others, key=lambda r: r.get("age", 0)) if others else None
            was = w.active
            w.active = len(held) > len(hosts) / 2
            if w.active != was:
                log.info("%s: %s the watcher lease (%d of %d hosts)", cluster,
                         "holding" if w.active else "lost", len(held), len(hosts))
                if w.active:     # hosts that booted while nobody watched: check them
                    w.last_drs = self.clock()    # and the first rebalance one interval on
                    for h in hosts:
                        if h.status is HostStatus.UP:
                            self._track(self._check_gate(cluster, h.name, w))
            if not w.active and held:
                # A standby that got only some hosts lets go, so that one watcher can
                # hold them all; a random pause keeps two from splitting them again.
                for name in held:
                    store = self._lock_store(cluster, name)
                    if store is not None:
                        try:
                            await store.release([LEASE], me)
                        except Exception:
                            pass
                w.held = set()
                await asyncio.sleep(random.uniform(0, 2 * LEASE_BEAT))
            self._publish(cluster)
            if w.active:
                self._bring_home(cluster, w)
            await asyncio.sleep(LEASE_BEAT)

    def _bring_home(self, cluster: str, w: _Watch) -> None:
        """VMs still away from a host they failed over from, that is up again (a return
        that failed, a watcher that died before it): try again, now and then."""
        now = self.clock()
        away = [v for v in self.vms(cluster) if v.failed_from and v.host != v.failed_from]
        if not away:
            return
        try:
            planner = self.planner(cluster)
        except EngineError:
            return                  # definitions still being read: at the next beat
        # Only VMs that may go home now (a rule or the room may keep one away for good)
        homes = {v.failed_from for v in away if v.uuid in planner.vms and not dict(
            planner.candidates(planner.vms[v.uuid])).get(v.failed_from, "?")}
        for host in homes:
            h = self._hosts.get((cluster, host))
            st = w.hosts.get(host, HostHa(host))
            if h is None or h.status is not HostStatus.UP or host in w.returning \
                    or st.state in GIVEN_UP or now - w.return_tried.get(host, 0) < RETRY_RETURN:
                continue
            self._start_return(cluster, host, w)

    def _publish(self, cluster: str) -> None:
        """Our view into ha_status, and (when it changed) onto every live host."""
        w = self._watches[cluster]
        hosts = self.hosts(cluster)
        now = self.clock()
        if w.active:
            info = WatcherInfo(cluster, holder=self.journal.started_by, pid=os.getpid(),
                               machine=socket.gethostname(), age=0.0,
                               hosts_held=len(w.held), hosts_total=len(hosts), me=True,
                               read_at=now)
        elif w.other is not None:        # a standby: the holder, as the hosts name it
            owner = str(w.other.get("owner", ""))
            pid = owner.split(":", 1)[0]
            info = WatcherInfo(cluster, holder=str(w.other.get("holder", "?")),
                               pid=int(pid) if pid.isdigit() else None,
                               machine=owner.rsplit("@", 1)[-1], age=w.other.get("age"),
                               hosts_total=len(hosts), read_at=now)
        else:
            info = WatcherInfo(cluster, hosts_total=len(hosts), read_at=now)
        rows = tuple(sorted((r for r in w.hosts.values() if r.state), key=lambda r: r.host))
        if w.active or w.message.startswith("isolated"):
            message = w.message
        elif w.other is not None:
            message = "standby: this engine takes over if the holder stops renewing"
        else:
            up = sum(h.status is HostStatus.UP for h in hosts)
            message = (f"not holding the lease: {len(w.held)} of {len(hosts)} hosts held, "
                       f"{up} answer; failover needs more than half")
        self._set_ha(HaStatus(cluster, info, rows, message))
        if not w.active:
            return
        text = json.dumps({"hosts": [r.__dict__ for r in rows], "message": w.message},
                          sort_keys=True)
        if text == w.published:
            return
        w.published = text

        async def write():
            for h in hosts:
                store = self._lock_store(cluster, h.name)
                if store is not None and h.status is HostStatus.UP:
                    try:
                        await store.write_state(STATUS_FILE, text)
                    except Exception as exc:
                        log.info("%s/%s: writing the HA status failed: %s", cluster, h.name,
                                 exc)
                        w.published = ""
        self._track(write())

    def _mark(self, cluster: str, host: str, state: str, note: str = "") -> None:
        w = self._watches[cluster]
        old = w.hosts.get(host)
        if old is None or old.state != state or old.note != note:
            since = old.since if old is not None and old.state == state else self.clock()
            w.hosts[host] = HostHa(host, state, since, note)
            if state:
                log.info("%s/%s: %s%s", cluster, host, state, f" — {note}" if note else "")
            self._publish(cluster)

    async def _watch_loop(self, cluster: str) -> None:
        w = self._watches[cluster]
        while True:
            await asyncio.sleep(WATCH_TICK)
            try:
                self._watch_once(cluster, w)
            except Exception:        # the watcher must keep watching
                log.exception("%s: watching failed", cluster)

    def _watch_once(self, cluster: str, w: _Watch) -> None:
        now = self.clock()
        # The policy from the inventory once a lease beat, not every tick: a change
        # made elsewhere (`cluster set`) is seen within LEASE_BEAT s.
        beat = time.monotonic()
        if w.policy is None or not 0 <= beat - w.policy_at < LEASE_BEAT:
            w.policy, w.policy_at = self.policy(cluster), beat
        pol = w.policy
        hosts = [h for h in self.hosts(cluster)]
        pool = [h for h in hosts if not h.maintenance]
        for h in hosts:
            st = w.hosts.get(h.name, HostHa(h.name))
            if h.status is HostStatus.UP:
                w.down_since.pop(h.name, None)
                if st.state in GIVEN_UP or st.state == "returning":
                    if w.active and h.name not in w.returning:
                        self._start_return(cluster, h.name, w)
                elif st.state in ("suspect", "isolated"):
                    self._mark(cluster, h.name, "")
                    if w.active:     # back before it was lost: if it rebooted, check it
                        self._track(self._check_gate(cluster, h.name, w))
            elif h.status in DOWN and not h.maintenance:
                if h.name not in w.down_since:
                    w.down_since[h.name] = now
                    w.problem[h.name] = h.problem
                if not st.state:
                    self._mark(cluster, h.name, "suspect", h.problem or h.status.value)
        down = [h.name for h in pool if h.name in w.down_since]
        if len(down) > len(pool) / 2:
            msg = (f"isolated: {len(down)} of {len(pool)} hosts stopped answering at once; "
                   f"it is this watcher that is cut off, so it fences and restarts nothing")
            if w.message != msg:
                w.message = msg
                log.warning("%s: %s", cluster, msg)
                self._publish(cluster)
            return
        if w.message.startswith("isolated"):
            w.message = ""
            self._publish(cluster)
        for name in down:
            st = w.hosts.get(name, HostHa(name))
            if st.state in ("suspect", "lost") and \
                    now - w.down_since[name] >= pol.ha_lost_after:
                if not w.active:
                    continue         # the lease holder acts; we only watch
                if name not in w.failovers:
                    self._start_failover(cluster, name, w)
        if w.active and pol.drs_interval and not down and not w.returning \
                and now - w.last_drs >= pol.drs_interval:
            w.last_drs = now
            self._track(self._periodic_rebalance(cluster))

    # ---- failover -----------------------------------------------------------------------
    def _start_failover(self, cluster: str, host: str, w: _Watch) -> None:
        suspect_at = w.down_since[host]
        h = self._hosts[(cluster, host)]
        self._mark(cluster, host, "lost", f"no answer for {self.clock() - suspect_at:.1f} s")
        spec = TaskSpec(kind="host.failover", title=f"Failover: {host}", cluster=cluster,
                        target_kind="host", target=host, target_name=host, host=host,
                        steps=("Declare the host lost", "Fence", "Restart its VMs",
                               "Confirm"),
                        locks=(f"ha:{cluster}/{host}",),
                        params={"suspect_at": suspect_at, "problem": w.problem.get(host, "")})

        async def body(ctx: TaskContext) -> None:
            await self._failover(ctx, cluster, host, suspect_at, w, h.address)

        async def start():
            try:
                task = await self.journal.submit(spec, body)
            except Busy as exc:
                log.info("%s/%s: failover not started: %s", cluster, host, exc)
                w.failovers.pop(host, None)
                return
            w.failovers[host] = task.id
        w.failovers[host] = 0
        self._track(start())

    def _at(self, t: float) -> str:
        return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 10) % 10}"

    async def _failover(self, ctx: TaskContext, cluster: str, host: str, suspect_at: float,
                        w: _Watch, address: str) -> None:
        from . import fence as fencing, policy as policies
        pol = self.policy(cluster)
        lost_at = self.clock()
        ctx.step(0)
        ctx.checkpoint(suspect_at=suspect_at, lost_at=lost_at)
        ctx.log(f"{self._at(suspect_at)} suspect: {w.problem.get(host) or 'its link dropped'}")
        ctx.log(f"{self._at(lost_at)} lost: no answer for {lost_at - suspect_at:.1f} s "
                f"(ha-lost-after {pol.ha_lost_after:g} s)")
        ctx.step(1)
        self._mark(cluster, host, "fencing")
        method = policies.fence_method(pol, host)
        done = await fencing.fence(self, cluster, host, address, method, pol)
        if done.ok:
            how = done.how
        else:
            ack = await self._fence_ack(cluster, host)
            if ack:
                how = ack
            else:
                note = f"not restarted: host not fenced ({done.how})"
                ctx.log(f"{self._at(self.clock())} not fenced: {done.how}. Nothing restarts "
                        f"until it is: power it off and confirm (\"I have powered it "
                        f"off\"; `mvmtui host fenced {host}`)", "warning")
                self._mark(cluster, host, "unfenced", note)
                how = await self._wait_ack(ctx, cluster, host)
                if not how:
                    ctx.log(f"{self._at(self.clock())} {host} answers again before it was "
                            f"fenced: nothing was restarted")
                    ctx.checkpoint(returned_unfenced=True)
                    return
        fenced_at = self.clock()
        ctx.checkpoint(fenced_at=fenced_at, fence=how)
        ctx.log(f"{self._at(fenced_at)} fenced: {how}")
        self._mark(cluster, host, "fenced", how)
        ctx.step(2)
        self._mark(cluster, host, "restarting")
        plan = await self._plan_when_read(ctx, cluster, host)
        for r in plan.rows:
            if r.outcome != "restart":
                ctx.log(f"{r.name}: not restarted — {r.reason}",
                        "warning" if r.outcome == "blocked" else "info")
        restarted, failed = [], []
        for prio in PRIORITIES:        # high first: lower ones wait for them
            rows = [r for r in plan.restarts if r.priority == prio]
            gate = asyncio.Semaphore(RESTARTS_AT_ONCE)

            async def one(r: FailoverRow) -> None:
                async with gate:
                    ok, words = await self._restart(ctx, cluster, host, r)
                (restarted if ok else failed).append(words)
            await asyncio.gather(*(one(r) for r in rows))
        ctx.step(3)
        took = self.clock() - suspect_at
        ctx.checkpoint(restarted=restarted, failed=failed, done_at=self.clock())
        ctx.log(f"{self._at(self.clock())} {len(restarted)} of {len(plan.restarts)} VMs "
                f"restarted, {took:.1f} s after {host} was suspect"
                + (f"; {len(plan.blocked)} could not be" if plan.blocked else ""))
        if failed:
            # Tried again while the host stays lost (a lock a dead watcher left on a
            # target goes stale, a host that refused may accept): a new failover.
            self._mark(cluster, host, "lost", f"{len(failed)} VMs not restarted: trying "
                                              f"again in {RETRY_FAILED:.0f} s")
            asyncio.get_running_loop().call_later(RETRY_FAILED, w.failovers.pop, host, None)
            raise TaskFailed(f"not restarted: {'; '.join(failed)}")
        self._mark(cluster, host, "failed-over",
                   f"{len(restarted)} VM{'s' if len(restarted) != 1 else ''} restarted "
                   f"elsewhere"
                   + (f", {len(plan.blocked)} could not be" if plan.blocked else ""))

    async def _plan_when_read(self, ctx: TaskContext, cluster: str, host: str) -> FailoverPlan:
        """The failover plan, once every live host's VM definitions are read (their
        disks and rules decide where VMs may go): a watcher just started may still be
        reading them."""
        for attempt in range(120):
            try:
                return self.failover_plan(cluster, host)
            except EngineError as exc:
                if attempt == 0:
                    ctx.log(f"waiting: {exc}")
                await asyncio.sleep(0.5)
        raise TaskFailed("the hosts' VM definitions were not read within a minute: "
                         "nothing was restarted")

    async def _restart(self, parent: TaskContext, cluster: str, lost: str,
                       r: FailoverRow) -> tuple[bool, str]:
        """One VM of a fenced host, started on `r.target` from its saved definition (a
        child task); (done, what happened)."""
        vm = self._vms.get(r.vm) or Vm(cluster=cluster, host=lost, uuid=r.vm, name=r.name)
        spec = TaskSpec(kind="vm.restart", title=f"Restart {r.name} on {r.target}",
                        cluster=cluster, target_kind="vm", target=r.vm, target_name=r.name,
                        host=r.target, parent=parent.id, locks=(f"vm:{r.vm}",),
                        steps=("Ask every host", f"Define on {r.target}",
                               f"Start on {r.target}", "Confirm it runs"),
                        params={"source": lost, "target": r.target, "priority": r.priority})
        out: list[str] = []

        async def body(ctx: TaskContext) -> None:
            start = time.monotonic()
            ctx.step(0)
            live = [h.name for h in self.hosts(cluster) if h.status is HostStatus.UP]
            where = await self._where(vm, live)
            running = [h for h, s in where.items() if s is not None and s.active]
            if running:
                out.append(f"{r.name} already runs on {running[0]}")
                ctx.log(f"{r.name} already runs on {running[0]}: nothing to do")
                return
            target = next((h for h, s in where.items() if s is not None), r.target)
            link = self._links.get((cluster, target))
            if link is None or link.hv is None:
                raise TaskFailed(f"{target} stopped answering")
            ctx.step(1)
            async with self._locked_on_hosts(ctx, spec, [target]):
                marked = Placement(vm.strategy, vm.home, vm.priority, failed_from=lost)
                if target in where and where[target] is not None:
                    await self._lv(link, link.hv.set_placement, vm.uuid, marked)
                    ctx.log(f"{r.name} is defined on {target} already (an earlier try)")
                else:
                    saved = self.saved_definition(vm.uuid)
                    if saved is None:
                        raise TaskFailed(f"no saved definition of {r.name}: it cannot be "
                                         f"defined elsewhere")
                    try:
                        await self._lv(link, link.hv.define, saved[1])
                        await self._lv(link, link.hv.set_placement, vm.uuid, marked)
                        if vm.autostart:     # not part of a definition: set it again
                            await self._lv(link, link.hv.set_autostart, vm.uuid, True)
                    except HypervisorError as exc:
                        raise TaskFailed(f"{target} refused the definition: {exc}") from None
                    ctx.log(f"Defined on {target} from the definition saved "
                            f"{self._at(saved[2])} on {saved[0]}")
                ctx.step(2)
                try:
                    await self._lv(link, link.hv.act, vm.uuid, "start")
                except HypervisorError as exc:
                    raise TaskFailed(f"{target} did not start it: {exc}") from None
                ctx.step(3)
                await self._wait_state(link, link.hv, vm.uuid, VmState.RUNNING, 30.0, ctx)
                await self._refresh_vm(link, link.hv, vm.uuid)
            took = time.monotonic() - start
            ctx.checkpoint(seconds=round(took, 2), target=target)
            msg = f"{r.name} runs on {target} ({took:.1f} s)"
            ctx.log(msg)
            out.append(msg)
        try:
            task = await self.journal.submit(spec, body)
        except Busy as exc:
            return False, f"{r.name}: {exc}"
        end = await self.journal.wait(task.id)
        if end.status is TaskStatus.SUCCEEDED:
            words = out[0] if out else f"{r.name} restarted on {r.target}"
            parent.log(f"{self._at(self.clock())} {words}")
            return True, words
        parent.log(f"{self._at(self.clock())} {r.name} not restarted: {end.error}", "error")
        return False, f"{r.name}: {end.error}"

    # ---- an operator's "I have powered it off" --------------------------------------------
    async def _fence_ack(self, cluster: str, host: str) -> str:
        """An operator's confirmation, from any console, written since the host was last
        seen up: "confirmed powered off by …", or ""."""
        seen = self._hosts[(cluster, host)].seen_at or 0
        for h in self.hosts(cluster):
            store = self._lock_store(cluster, h.name)
            if store is None or h.status is not HostStatus.UP:
                continue
            try:
                said = await store.read_state(ACK + host)
            except Exception:
                continue
            try:
                ack = json.loads(said) if said else None
            except ValueError:
                ack = None
            if ack and ack.get("at", 0) >= seen - 1:
                return f"confirmed powered off by {ack.get('by', '?')} at {self._at(ack['at'])}"
        return ""

    async def _wait_ack(self, ctx: TaskContext, cluster: str, host: str) -> str:
        """Until an operator confirms (the how), or the host answers again ("")."""
        with ctx.cancellable():
            while True:
                ctx.check_stop()
                if self._hosts[(cluster, host)].status is HostStatus.UP:
                    return ""
                ack = await self._fence_ack(cluster, host)
                if ack:
                    return ack
                await asyncio.sleep(1.0)

    async def confirm_fenced(self, cluster: str, host: str, typed: str) -> Task:
        """The operator says the lost host is powered off (typed: its name). Written on
        every live host (the watcher, wherever it runs, reads it) and journaled with who
        said it. Refused while the host answers."""
        self._refuse_changes("confirming a host is powered off")
        h = self.host(cluster, host)
        if typed != host:
            raise EngineError(f"Type the host's name, {host}, to confirm that it is powered "
                              f"off; nothing was recorded.")
        if h.status is HostStatus.UP:
            raise EngineError(f"{host} answers: it is not lost, and is not powered off. "
                              f"Nothing was recorded.")
        spec = TaskSpec(kind="host.fence.confirm", title=f"Confirm powered off: {host}",
                        cluster=cluster, target_kind="host", target=host, target_name=host,
                        host=host, steps=("Record the confirmation on the hosts",),
                        locks=(), params={"typed": typed})
        record = json.dumps({"by": self.journal.started_by, "at": self.clock()})

        async def body(ctx: TaskContext) -> None:
            ctx.step(0)
            wrote = []
            for other in self.hosts(cluster):
                store = self._lock_store(cluster, other.name)
                if store is None or other.status is not HostStatus.UP:
                    continue
                try:
                    await store.write_state(ACK + host, record)
                    wrote.append(other.name)
                except Exception as exc:
                    ctx.log(f"{other.name}: not recorded ({exc})", "warning")
            if not wrote:
                raise TaskFailed("no host answered: the confirmation could not be recorded")
            ctx.log(f"{self.journal.started_by} confirmed that {host} is powered off; "
                    f"recorded on {', '.join(wrote)}. Its Auto and Failover VMs restart "
                    f"elsewhere once the watcher reads it.")

        async def run() -> Task:
            task = await self.journal.submit(spec, body)
            return await self.journal.wait(task.id)
        return await self._on_io(run())

    # ---- coming home ------------------------------------------------------------------------
    def _start_return(self, cluster: str, host: str, w: _Watch) -> None:
        parent = w.failovers.get(host) or None
        if parent is not None:
            t = self.inv.task(parent)
            if t is not None and not t.status.finished:
                return                  # the failover first (restarts still running)
        w.returning.add(host)
        w.return_tried[host] = self.clock()
        self._mark(cluster, host, "returning", "checking its copies")

        async def run():
            try:
                await self._return_home(cluster, host, parent)
            except Exception:
                log.exception("%s/%s: return failed", cluster, host)
            finally:
                w.returning.discard(host)
                w.failovers.pop(host, None)
                self._mark(cluster, host, "")
        self._track(run())

    async def _check_gate(self, cluster: str, host: str, w: _Watch) -> None:
        """A host whose boot gate is closed has booted since a watcher checked it: its
        Auto and Failover VMs are held until it is checked (the return, below)."""
        store = self._lock_store(cluster, host)
        try:
            is_open = store is None or await store.gate()
        except Exception as exc:
            log.info("%s/%s: reading its boot gate failed: %s", cluster, host, exc)
            return
        if not is_open and host not in w.returning:
            self._start_return(cluster, host, w)

    async def _return_home(self, cluster: str, host: str, parent: int | None) -> None:
        pol = self.policy(cluster)
        back_rows: list[MoveRow] = []
        away = any(v.failed_from == host and v.host != host for v in self.vms(cluster))
        title = f"Return: {host}" if parent or away else f"Check {host} after its boot"
        spec = TaskSpec(kind="host.return", title=title, cluster=cluster,
                        target_kind="host", target=host, target_name=host, host=host,
                        parent=parent, locks=(f"ha:{cluster}/{host}",), params={},
                        steps=("Undefine its stale copies", "Open the boot gate",
                               "Bring its VMs back"))

        def timeline(msg: str, level: str = "info") -> None:
            if parent:
                self.inv.add_log(parent, self.clock(), level, f"{self._at(self.clock())} {msg}")
                self.journal.emit_task(parent)

        async def body(ctx: TaskContext) -> None:
            ctx.step(0)
            timeline(f"{host} answers again")
            link = self._links.get((cluster, host))
            if link is None or link.hv is None:
                raise TaskFailed(f"{host} stopped answering again")
            listed = await self._lv(link, link.hv.summaries)
            for copy in listed:
                held = self._vms.get(copy.uuid)
                if held is None or held.host == host:
                    continue
                if copy.state.active:
                    msg = (f"{copy.name} RUNS ON BOTH {host} and {held.host}: stop one by "
                           f"hand (Force off) at once")
                    self._event(cluster, host, copy.uuid, "vm.split", msg)
                    ctx.log(msg, "error")
                    timeline(msg, "error")
                    continue
                if held.failed_from != host:   # not ours to judge: said, left alone
                    ctx.log(f"{copy.name} is defined, stopped, on {host} too; it runs on "
                            f"{held.host}. Left as it is")
                    continue
                try:
                    await self._lv(link, link.hv.undefine, copy.uuid)
                except HypervisorError as exc:
                    ctx.log(f"{copy.name}: its stale copy on {host} was not undefined: {exc}",
                            "warning")
                    continue
                ctx.log(f"{copy.name}: the stale copy on {host} ({copy.state.value}) is "
                        f"undefined; it runs on {held.host}")
            # Its stale copies are gone: lift what a storage fence kept out.
            from . import fence as fencing
            for said in await fencing.unfence(self, cluster, host):
                ctx.log(said)
            ctx.step(1)
            store = self._lock_store(cluster, host)
            if store is not None:
                await store.gate(open_it=True)
                for other in self.hosts(cluster):
                    s2 = self._lock_store(cluster, other.name)
                    if s2 is not None and other.status is HostStatus.UP:
                        try:
                            await s2.write_state(ACK + host, "")
                        except Exception:
                            pass
            await self._reread(link, "return")
            for vm in self._vms_on((cluster, host)):
                if vm.autostart and not vm.state.active and vm.strategy is not Strategy.PINNED:
                    try:
                        await self._lv(link, link.hv.act, vm.uuid, "start")
                        ctx.log(f"{vm.name}: autostart, held at boot by the gate, started now")
                    except HypervisorError as exc:
                        ctx.log(f"{vm.name}: autostart failed: {exc}", "warning")
            pinned = [v.name for v in self._vms_on((cluster, host))
                      if v.strategy is Strategy.PINNED and not v.state.active]
            if pinned:
                ctx.log(f"Pinned, stopped, ready to start: {', '.join(sorted(pinned))}")
                timeline(f"pinned VMs are there, stopped: {', '.join(sorted(pinned))}")
            ctx.step(2)
            away = [v for v in self.vms(cluster) if v.failed_from == host and v.host != host]
            if pol.ha_return == "stay":
                for v in away:
                    await self._clear_failed_from(v)
                ctx.log(f"ha-return is stay: {len(away)} VMs stay where they restarted")
                return
            planner = self.planner(cluster)
            for v in sorted(away, key=lambda v: v.name):
                why = dict(planner.candidates(planner.vms[v.uuid])).get(host, "") \
                    if v.uuid in planner.vms else "it is not known here"
                if why:
                    ctx.log(f"{v.name} stays on {v.host}: it cannot go back to {host} now "
                            f"({why})")
                    continue
                back_rows.append(MoveRow(v.uuid, v.name, v.state, target=host,
                                         method="live" if v.state.active else "offline",
                                         reason=f"it failed over from {host}"))
            if back_rows:
                start = time.monotonic()
                try:
                    await self._run_moves(ctx, cluster, host, back_rows,
                                          pol.migration_concurrency,
                                          "the rest stay where they restarted")
                finally:
                    for v in [self._vms.get(r.vm) for r in back_rows]:
                        if v is not None and v.host == host:
                            await self._clear_failed_from(v)
                    moved = ctx.data.get("moved", [])
                    timeline(f"{len(moved)} of {len(back_rows)} VMs back on {host} live "
                             f"({time.monotonic() - start:.1f} s): "
                             + ", ".join(m["name"] for m in moved))
            else:
                ctx.log("no VM failed over from it")
        try:
            task = await self.journal.submit(spec, body)
        except Busy as exc:
            log.info("%s/%s: return not started: %s", cluster, host, exc)
            return
        await self.journal.wait(task.id)

    async def _clear_failed_from(self, vm: Vm) -> None:
        link = self._links.get((vm.cluster, vm.host))
        if link is None or link.hv is None:
            return
        try:
            await self._lv(link, link.hv.set_placement, vm.uuid,
                           Placement(vm.strategy, vm.home, vm.priority, ""))
            await self._refresh_vm(link, link.hv, vm.uuid)
        except HypervisorError as exc:
            log.warning("%s: clearing failed-from failed: %s", vm.name, exc)

    # ---- "what if this host dies now?" -------------------------------------------------------
    def failover_plan(self, cluster: str, host: str) -> FailoverPlan:
        """Where each VM of the host would restart if it died now, or why it would not."""
        self.host(cluster, host)
        return self._rows_of(cluster, host, self.planner(cluster).failover(host))

    def host_loss_check(self, cluster: str) -> HostLossCheck:
        """N−1: the failover plan of every host that is up and in the pool, and the
        worst host's shortfall (the memory and vCPUs of what it could not restart)."""
        plans = [self._rows_of(cluster, name, plan)
                 for name, plan in self.planner(cluster).n_minus_one()]
        short_mib = short_cpu = 0
        for p in plans:
            vms = [self._vms[r.vm] for r in p.blocked if r.vm in self._vms]
            short_mib = max(short_mib, sum(v.memory_mib for v in vms))
            short_cpu = max(short_cpu, sum(v.vcpus for v in vms))
        return HostLossCheck(cluster, tuple(plans), short_mib, short_cpu)

    def _rows_of(self, cluster: str, host: str, plan) -> FailoverPlan:
        rows = []
        for m in plan.moves:
            v = self._vms[m.vm]
            rows.append(FailoverRow(m.vm, m.name, v.strategy, v.priority, v.state,
                                    target=m.target, outcome="restart", reason=m.reason))
        for b in plan.blocked:
            v = self._vms[b.vm]
            per_host = "; ".join(f"{h}: {why}" for h, why in b.per_host if why)
            rows.append(FailoverRow(b.vm, b.name, v.strategy, v.priority, v.state,
                                    outcome="blocked",
                                    reason=b.reason + (f" ({per_host})" if per_host else "")))
        for uuid, why in plan.stays:
            v = self._vms[uuid]
            rows.append(FailoverRow(uuid, v.name, v.strategy, v.priority, v.state,
                                    outcome="stays", reason=why))
        order = {p: i for i, p in enumerate(PRIORITIES)}
        rows.sort(key=lambda r: (("restart", "blocked", "stays").index(r.outcome),
                                 order.get(r.priority, 1), r.name))
        return FailoverPlan(cluster, host, tuple(rows))

    # ---- DRS ----------------------------------------------------------------------------------
    def _cooling(self, cluster: str, cooldown: int) -> dict[str, float]:
        """VMs that DRS moved within the cooldown: uuid -> when."""
        now, out = self.clock(), {}
        for t in self.inv.tasks(cluster=cluster, limit=50):
            if t.kind != "cluster.rebalance" or (t.finished_at or now) < now - cooldown:
                continue
            full = self.inv.task(t.id)
            for item in (full.checkpoint.get("moved", []) if full else []):
                out[item["vm"]] = t.finished_at or now
        return out

    def rebalance_preview(self, cluster: str, threshold: int | None = None) -> RebalancePreview:
        pol = self.policy(cluster)
        threshold = pol.drs_threshold if threshold is None else threshold
        if not 1 <= threshold <= 5:
            raise EngineError(f"The threshold is 1 (conservative) to 5 (aggressive), not "
                              f"{threshold}.")
        cooling = self._cooling(cluster, pol.drs_cooldown)
        planner = self.planner(cluster, cooldown=frozenset(cooling))
        plan = planner.rebalance(threshold)
        rows = []
        for m in plan.moves:
            v = self._vms[m.vm]
            rows.append(MoveRow(m.vm, m.name, v.state, target=m.target, method="live",
                                reason=m.reason))
        skipped = tuple(f"{self._vms[u].name}: moved by DRS {self._ago(at)}, cooling down"
                        for u, at in sorted(cooling.items()) if u in self._vms)
        return RebalancePreview(cluster, threshold, tuple(rows), plan.before, plan.after,
                                plan.loads_before, plan.loads_after, skipped)

    def _ago(self, at: float) -> str:
        s = max(0, int(self.clock() - at))
        return f"{s // 60} min ago" if s >= 60 else f"{s} s ago"

    async def rebalance(self, cluster: str, expect: RebalancePreview | None = None,
                        threshold: int | None = None) -> Task:
        """Run a rebalance as a task (moves at the cluster's migration concurrency);
        `expect`: the preview the operator confirmed, refused if the plan changed."""
        self._refuse_changes("rebalancing")
        preview = self.rebalance_preview(cluster, threshold)
        if expect is not None and [(r.vm, r.target) for r in preview.moves] != \
                [(r.vm, r.target) for r in expect.moves]:
            raise EngineError("The rebalance plan changed since you looked (VMs or load "
                              "moved meanwhile); look at the preview again. Nothing was "
                              "changed.")
        if not preview.moves:
            raise EngineError(f"{cluster} is balanced enough at threshold "
                              f"{preview.threshold} (imbalance {preview.before:.3f}): "
                              f"nothing to move.")
        pol = self.policy(cluster)
        n = len(preview.moves)
        spec = TaskSpec(kind="cluster.rebalance", title=f"Rebalance {cluster} ({n} moves)",
                        cluster=cluster, target_kind="cluster", target=cluster,
                        target_name=cluster, host="",
                        steps=(f"Move {n} VM{'s' if n != 1 else ''}",),
                        locks=(f"drs:{cluster}",),
                        params={"threshold": preview.threshold, "before": preview.before,
                                "after": preview.after,
                                "moves": [{"vm": r.vm, "name": r.name, "target": r.target}
                                          for r in preview.moves]})

        async def body(ctx: TaskContext) -> None:
            ctx.step(0)
            ctx.log(f"Imbalance {preview.before:.3f} → {preview.after:.3f} expected "
                    f"(threshold {preview.threshold})")
            for r in preview.moves:
                ctx.log(f"{r.name} → {r.target}: {r.reason}")
            await self._run_moves(ctx, cluster, "", preview.moves, pol.migration_concurrency,
                                  "run the rebalance again to finish")
        return await self._on_io(self.journal.submit(spec, body))

    async def _periodic_rebalance(self, cluster: str) -> None:
        try:
            preview = self.rebalance_preview(cluster)
            if preview.moves:
                log.info("%s: DRS moves %d VMs", cluster, len(preview.moves))
                await self.rebalance(cluster, preview)
        except EngineError as exc:
            log.info("%s: DRS: %s", cluster, exc)
