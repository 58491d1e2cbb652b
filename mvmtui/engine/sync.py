"""Keeping the VM store in step with each live host.

Owns what a live link reads: domain events (one re-read per burst), the stats pass
(host and VM figures, samples), the slow reconcile pass and refresh on demand.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from .adapter import LIFECYCLE, LIFECYCLE_STARTED, REBOOT, Hypervisor
from .errors import HypervisorError
from .metrics import PROC_COMMAND, parse_proc, rate
from .model import Datastore, Host, HostStatus, MetricsChanged, Network, Vm, copy_with
from .store import _definition, _with_usage

if TYPE_CHECKING:
    from .links import _Link

log = logging.getLogger("mvmtui.engine")

FULL_PASS_VMS = 2000          # a host's VMs all sampled every stats pass up to this many
DETAIL_CHUNK = 200            # definitions read per libvirt call after the fast listing


class HostSync:
    """Mixin of Engine: reads from live hosts into the store (I/O loop)."""

    async def _read_contents(self, link: _Link, hv: Hypervisor, fast: bool = False
                             ) -> tuple[list[Network], list[Datastore], list[Vm]]:
        """A host's networks, storage pools and VMs. VMs last: the caller applies them
        with no await in between, so an event handled meanwhile is never overwritten
        by an older listing. `fast`: the VMs' listing only (state, vCPUs, memory),
        their definitions left for `_read_details_later`."""
        nets = await self._lv(link, hv.networks)
        stores = await self._lv(link, hv.datastores)
        if not fast:
            return nets, stores, await self._lv(link, hv.vms)
        vms = await self._lv(link, hv.summaries)
        bare = [v.uuid for v in vms if v.config_at is None]
        if bare and len(bare) <= DETAIL_CHUNK:   # a small host: no need to wait for more
            full = {v.uuid: v for v in await self._lv(link, hv.details, bare)}
            vms = [full.get(v.uuid, v) for v in vms]
        return nets, stores, vms

    def _apply_contents(self, key: tuple[str, str], nets: list[Network],
                        stores: list[Datastore], vms: list[Vm], live: bool | None = None
                        ) -> None:
        vms = [_with_known(v, self._vms.get(v.uuid)) for v in vms]
        self._replace_host_vms(key, vms, live)
        self._persist(self.inv.replace_host_networks, key[0], key[1], nets, stores)

    # ---- definitions after the fast listing --------------------------------------
    def _read_details_later(self, link: _Link, hv: Hypervisor, listed: list[Vm]) -> None:
        """Read in full the VMs the fast listing left without their definition (disks,
        NICs, placement, CPU mode): in chunks, name order (the VMs table's first page
        first), so an operator's call on this host waits one chunk at most. Until
        done, the planner refuses to plan for the cluster (`_details_left`)."""
        uuids = [v.uuid for v in sorted(listed, key=lambda v: v.name)
                 if v.config_at is None]
        if link.details is not None:
            link.details.cancel()
        if not uuids:
            self._details_pending.pop(link.key, None)
            return
        self._details_pending[link.key] = len(uuids)
        link.details = asyncio.get_running_loop().create_task(
            self._read_details(link, hv, uuids))

    async def _read_details(self, link: _Link, hv: Hypervisor, uuids: list[str]) -> None:
        key = link.key
        try:
            for i in range(0, len(uuids), DETAIL_CHUNK):
                vms = await self._lv(link, hv.details, uuids[i:i + DETAIL_CHUNK])
                if link.hv is not hv:
                    return
                self._apply_details(key, vms)
                self._details_pending[key] = max(0, len(uuids) - i - DETAIL_CHUNK)
        except Exception as exc:   # a full re-read then; else the next connect does
            log.warning("%s: reading VM definitions failed: %s", key, exc)
            if link.hv is hv:
                await self._reread(link, "definitions")   # clears the count if it works
            return
        self._details_pending.pop(key, None)

    def _apply_details(self, key: tuple[str, str], vms: list[Vm]) -> None:
        fresh = []
        for vm in vms:
            old = self._vms.get(vm.uuid)
            if old is None or (old.cluster, old.host) != key or vm.uuid in self._moving:
                continue   # gone or moved since the listing: its own read says more
            fresh.append(_with_usage(vm, old))
        changed = [v for v in fresh if _definition(v) != _definition(self._vms.get(v.uuid))]
        if changed:
            self._write_later(self.inv.save_vms, changed)
        self._save_definitions(fresh)
        for v in fresh:
            self._put_vm(v, save=False)

    def watch_vms(self, uuids) -> None:
        """The VMs on screen now (any thread): sampled every stats pass, whatever the
        host's size. The console says which at each of its ticks (every 5 s)."""
        self._watched = frozenset(uuids)

    def settled(self) -> bool:
        """No host is being reached, no VM definition is left to read (any thread)."""
        return not any(h.status is HostStatus.CONNECTING or self._details_left(h)
                       for h in list(self._hosts.values()))

    def _details_left(self, host: Host) -> int:
        """VMs of a live host whose definition is still to be read (any thread)."""
        return self._details_pending.get((host.cluster, host.name), 0) \
            if host.status is HostStatus.UP else 0

    def _domain_event(self, link: _Link, hv: Hypervisor, uuid: str, kind: str,
                      detail: int) -> None:
        if kind == REBOOT or (kind == LIFECYCLE and detail == LIFECYCLE_STARTED):
            self._boots[uuid] = self._boots.get(uuid, 0) + 1   # a reboot is confirmed so
        self._queue_refresh(link, hv, uuid)

    def _queue_refresh(self, link: _Link, hv: Hypervisor, uuid: str) -> None:
        """Re-read one VM soon; a burst of events about it costs one read. Not while
        it migrates: the move reads it on both hosts when it ends, and reads during the
        job compete with it for the VM's monitor."""
        if (link.key, uuid) in self._refresh_due or uuid in self._moving:
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
        """Every stats_interval: host usage, and the state, vCPUs, memory and use of
        the VMs on screen (`watch_vms`); every VM of the host in one bulk call every
        pass up to FULL_PASS_VMS VMs, less often beyond (10,000 VMs: every 5th pass),
        so sampling costs the same share of a core at any scale. A VM whose figures
        differ from what we hold (a change no event reported) is re-read in full; the
        rest are confirmed as of now."""
        passes = 0
        while True:
            await asyncio.sleep(self.stats_interval)
            passes += 1
            if await self._stats_pass(link, passes) is None:
                return

    async def _stats_pass(self, link: _Link, passes: int) -> bool | None:
        """One pass of _stats_loop (bench_sampling runs it too): False if the host's
        reads failed (sampling goes on), None once the link is gone or replaced."""
        key = link.key
        hv = link.hv
        if hv is None:
            return None
        held = self._on_host.get(key, {})
        full = passes % max(1, -(-len(held) // FULL_PASS_VMS)) == 0
        watched = None if full else [u for u in self._watched if u in held]
        try:
            cpu, mem = await self._lv(link, hv.host_usage)
            per_vm = await self._lv(link, hv.stats, watched) if full or watched else {}
        except Exception as exc:  # a failed sample must not end sampling
            log.warning("%s: stats failed: %s", key, exc)
            return False
        if link.hv is not hv:
            return None
        host_io = await self._host_counters(link)
        if link.hv is not hv:
            return None
        now = self.clock()
        self._set_host(key, cpu_pct=cpu, mem_used_mib=mem, seen_at=now)
        samples = [(key[0], "host", key[1], key[1], now,
                    {"cpu_pct": cpu, "mem_used_mib": mem, **host_io})]
        self._remember(("host", key[0], key[1]), cpu)
        samples += self._confirm_vms(link, hv, now, per_vm, full,
                                     self._vms_on(key) if full else
                                     [self._vms[u] for u in watched if u in self._vms])
        if full:
            for uuid in per_vm.keys() - held.keys():
                if uuid in self._vms and not per_vm[uuid].state.active:
                    continue   # a stopped copy of a VM held on another host (rule 7)
                self._queue_refresh(link, hv, uuid)        # defined without an event
        # One write per pass: the host's and its VMs' samples in one transaction.
        self._write_later(self.history.write, samples, now)
        self._emit(MetricsChanged(key[0], key[1]))
        return True

    def _confirm_vms(self, link: _Link, hv: Hypervisor, now: float, per_vm: dict,
                     full: bool, vms: list[Vm]) -> list[tuple]:
        """Apply one pass's samples to `vms` (every VM of the host when `full`, else
        those on screen); returns their history samples."""
        key = link.key
        doubtful, samples = set(), []
        for vm in vms:
            sample = per_vm.get(vm.uuid)
            if sample is None or _differs(vm, sample):
                doubtful.add(vm.uuid)
                self._queue_refresh(link, hv, vm.uuid)   # gone, or changed unseen
                continue
            # Confirmed by its host just now: a whole host's VMs all at once (below),
            # those on screen one by one; only VMs whose figures moved are announced.
            if full:
                if sample.cpu_pct != vm.cpu_pct or sample.mem_used_mib != vm.mem_used_mib:
                    self._touch_vm(copy_with(vm, cpu_pct=sample.cpu_pct,
                                         mem_used_mib=sample.mem_used_mib))
            else:
                self._touch_vm(copy_with(vm, cpu_pct=sample.cpu_pct,
                                     mem_used_mib=sample.mem_used_mib, seen_at=now))
            if sample.state.active:
                samples.append((key[0], "vm", vm.uuid, vm.name, now, {
                    "cpu_pct": sample.cpu_pct, "mem_used_mib": sample.mem_used_mib,
                    "disk_rd_bps": sample.disk_rd_bps, "disk_wr_bps": sample.disk_wr_bps,
                    "net_rx_bps": sample.net_rx_bps, "net_tx_bps": sample.net_tx_bps}))
                self._remember(("vm", key[0], vm.uuid), sample.cpu_pct)
        if full:
            self._confirmed[key] = (now, doubtful)
        return samples

    async def _host_counters(self, link: _Link) -> dict[str, float | None]:
        """The host's load and network and disk rates from /proc, over its SSH
        connection (libvirt has no call for them); nothing where it has none."""
        if link.ssh is None:
            return {}
        from . import ssh as sshmod
        try:
            text = await sshmod.run(link.ssh, PROC_COMMAND, timeout=5.0)
        except Exception as exc:      # a failed read must not end sampling
            log.debug("%s: reading /proc failed: %s", link.key, exc)
            return {}
        at, cur = asyncio.get_running_loop().time(), parse_proc(text)
        prev, link.proc = link.proc, (at, cur)
        out: dict[str, float | None] = {"load1": cur.load1}
        if prev is not None:
            dt = at - prev[0]
            out.update(net_rx_bps=rate(prev[1].rx_bytes, cur.rx_bytes, dt),
                       net_tx_bps=rate(prev[1].tx_bytes, cur.tx_bytes, dt),
                       disk_rd_bps=rate(prev[1].rd_bytes, cur.rd_bytes, dt),
                       disk_wr_bps=rate(prev[1].wr_bytes, cur.wr_bytes, dt))
        return out

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
        state = await self._read_host_state(link)   # maintenance set by anyone
        if link.hv is not hv:
            return False
        self._apply_contents(link.key, *contents)
        self._apply_host_state(link.key, state)
        # Everything was just read in full: no definitions are left to read.
        if link.details is not None and link.details is not asyncio.current_task():
            link.details.cancel()
        self._details_pending.pop(link.key, None)
        return True

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


def _with_known(vm: Vm, known: Vm | None) -> Vm:
    """A VM from the fast listing keeps what was known of its definition on the same
    host (with the age of that reading, config_at) until its own is read."""
    if vm.config_at is not None or known is None or known.config_at is None \
            or (known.cluster, known.host) != (vm.cluster, vm.host):
        return vm
    return copy_with(known, name=vm.name, state=vm.state, vcpus=vm.vcpus,
                 memory_mib=vm.memory_mib, max_memory_mib=vm.max_memory_mib,
                 seen_at=vm.seen_at, stale=False)


def _differs(vm: Vm, sample) -> bool:
    """A bulk sample disagrees with what we hold: something changed unreported.
    Figures the host does not report in bulk (None) are not compared."""
    # Memory only of a running VM: for a shut-off one libvirt's bulk figure is the
    # maximum, not the current size dominfo gives.
    return (sample.state is not vm.state
            or (sample.vcpus is not None and sample.vcpus != vm.vcpus)
            or (sample.memory_mib is not None and vm.state.active
                and sample.memory_mib != vm.memory_mib))
