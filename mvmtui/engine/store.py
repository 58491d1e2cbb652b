"""The VM store: hosts and VMs in memory, indexed by host, with stale flags.

Owns the reads every screen makes (clusters, hosts, VMs, networks, pools), the
changes that keep them true (_put_vm, _drop_vm, _replace_host_vms, _set_host) and
their index by host, stale flags, inventory writes (_persist) and the event log.
"""
from __future__ import annotations

import hashlib
import logging
import sqlite3
from dataclasses import replace
from typing import Callable

from .errors import Ambiguous, NotFound
from .model import (Cluster, Datastore, EventRecorded, Host, HostChanged, HostStatus,
                    Network, Vm, VmChanged, VmRemoved, copy_with)

log = logging.getLogger("mvmtui.engine")

EVENTS_KEPT = 30 * 86400     # host/VM state changes seen, kept for 30 days


class VmStore:
    """Mixin of Engine: reads from any thread; changes on the I/O loop only.
    The dicts themselves are made by Engine._load."""

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
        """When the VM's state was last confirmed by its host (dict look-ups: cheap
        enough for every line a table draws). A stats pass confirms at once every VM
        of its host that agrees with what we hold (`_confirmed`), without touching
        each VM."""
        vm = self._vms.get(uuid)
        if vm is None:
            return None
        confirmed = self._confirmed.get((vm.cluster, vm.host))
        if confirmed is not None and (vm.seen_at is None or confirmed[0] > vm.seen_at) \
                and uuid not in confirmed[1]:
            return confirmed[0]
        return vm.seen_at

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

    # ---- changes (I/O loop) -------------------------------------------------------
    def _persist(self, write: Callable, *args) -> None:
        """Write to the inventory; a failed write (locked, disk full) is logged and the
        engine goes on: what is live in memory and on screen stays true."""
        try:
            write(*args)
        except sqlite3.Error as exc:
            log.warning("inventory write failed (%s): %s", getattr(write, "__name__", write),
                        exc)

    def _write_later(self, write: Callable, *args) -> None:
        """A bulk write (VM rows, definitions, samples) for the writer thread, in
        order; memory already holds what it writes (writer.py)."""
        if self._writer is None:
            self._persist(write, *args)
        else:
            self._writer.put(write, *args)

    def _writes_done(self) -> None:
        """Before reading back what was queued."""
        if self._writer is not None:
            self._writer.flush()

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
                      EVENTS_KEPT, "", self._event_outside(kind))
        self._emit(EventRecorded(cluster, host, target))

    def _restale(self, key: tuple[str, str], stale: bool) -> None:
        """A host went (not) live: flag its VMs once here, so reads stay free. Going
        stale, each keeps when it was last confirmed (its age then grows)."""
        self._vm_version += 1
        for vm in self._vms_on(key):
            if vm.stale != stale:
                self._vms[vm.uuid] = copy_with(vm, stale=stale, seen_at=self.vm_seen_at(vm.uuid))
                self._emit(VmChanged(self._vms[vm.uuid]))
        self._confirmed.pop(key, None)

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

    def _touch_vm(self, vm: Vm) -> None:
        """A VM's use figures moved (stats pass): same host, nothing to save."""
        self._vms[vm.uuid] = vm
        self._emit(VmChanged(vm))

    def _put_vm(self, vm: Vm, save: bool = True, live: bool | None = None) -> None:
        """`live`: whether its host is live, when the caller knows better than the
        host's status (a host marked up just after its VMs are stored)."""
        if self._shadowed(vm):
            log.info("%s is defined, stopped, on %s too; kept the copy on %s", vm.name,
                     vm.host, self._vms[vm.uuid].host)
            return
        old = self._vms.get(vm.uuid)
        if save:            # (a full re-read saved them all at once already)
            self._save_definitions([vm])
        if live is None:
            live = self._live(vm.cluster, vm.host)
        vm = copy_with(vm, stale=not live, definition="")
        if old is not None and (old.cluster, old.host) != (vm.cluster, vm.host):
            self._unindex(old)
        self._vms[vm.uuid] = vm
        self._index(vm)
        if save:
            self._write_later(self.inv.save_vms, [vm])
        if old is None or _differs_but_seen(old, vm):
            self._vm_version += 1
            self._emit(VmChanged(vm))

    def _save_definitions(self, vms: list[Vm]) -> None:
        """Keep each VM's XML as last read (a VM is re-defined elsewhere from it), when
        it changed; memory keeps only its digest."""
        changed, now = [], self.clock()
        if self._def_digest is None:
            self._def_digest = self.inv.definition_digests()
        for vm in vms:
            if not vm.definition:
                continue
            digest = hashlib.sha1(vm.definition.encode()).hexdigest()
            if self._def_digest.get(vm.uuid) != digest:
                self._def_digest[vm.uuid] = digest
                changed.append((vm, digest, now))
        if changed:
            self._write_later(self.inv.save_definitions, changed)

    def saved_definition(self, uuid: str) -> tuple[str, str, float] | None:
        """(host it was read on, XML, when) of a VM's last saved definition."""
        self._writes_done()
        return self.inv.definition(uuid)

    def _drop_vm(self, uuid: str) -> None:
        vm = self._vms.pop(uuid, None)
        if vm:
            self._vm_version += 1
            self._unindex(vm)
            self._emit(VmRemoved(vm.cluster, uuid))
            self._write_later(self.inv.delete_vms, [uuid])
            self._recent.pop(("vm", vm.cluster, uuid), None)    # its sparkline

    def _replace_host_vms(self, key: tuple[str, str], vms: list[Vm],
                          live: bool | None = None) -> None:
        fresh = {v.uuid for v in vms}
        for uuid in [u for u in self._on_host.get(key, ()) if u not in fresh]:
            self._drop_vm(uuid)
        kept = [_with_usage(v, self._vms.get(v.uuid)) for v in vms if not self._shadowed(v)]
        # Write only what changed: a reconciliation of 10,000 unchanged VMs must not
        # rewrite them all on this loop (2.7 s measured), where keepalives run.
        changed = [v for v in kept if _definition(v) != _definition(self._vms.get(v.uuid))]
        if changed:
            self._write_later(self.inv.save_vms, changed)
        self._save_definitions(kept)
        for v in kept:
            self._put_vm(v, save=False, live=live)


def _with_usage(vm: Vm, old: Vm | None) -> Vm:
    """A VM read from its definition has no use figures: keep those of the last
    stats pass while it stays active (a re-read must not blank its CPU %)."""
    if old is None or not vm.state.active or (vm.host, vm.cluster) != (old.host, old.cluster):
        return copy_with(vm, cpu_pct=None, mem_used_mib=None) if not vm.state.active else vm
    return copy_with(vm, cpu_pct=old.cpu_pct, mem_used_mib=old.mem_used_mib)


def _definition(vm: Vm | None):
    """What the inventory keeps of a VM, less the figures that move on their own (a
    tuple of fields: a load compares 10,000 of these, and replace() is slow)."""
    if vm is None:
        return None
    d = vm.__dict__
    return tuple(d[k] for k in _KEPT)


_KEPT = tuple(k for k in Vm.__dataclass_fields__ if k not in
              ("seen_at", "config_at", "cpu_pct", "mem_used_mib", "stale", "definition"))


def _differs_but_seen(old: Vm, new: Vm) -> bool:
    """Whether two VMs differ in more than when they were seen (and their XML, which
    is not compared): what is announced."""
    a, b = old.__dict__, new.__dict__
    return any(a[k] != b[k] for k in _ANNOUNCED)


_ANNOUNCED = tuple(k for k in Vm.__dataclass_fields__ if k not in ("seen_at", "definition"))
