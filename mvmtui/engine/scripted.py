"""A scripted hypervisor: hosts whose VMs are plain Python state, for unit tests and
fixed demos. It implements adapter.Hypervisor, so the engine runs exactly the code
it runs against libvirt (links, events, stats, tasks); tests change the state as
an operator with virsh would, with or without an event, and take hosts down.

    world = ScriptedWorld()
    world.add_host("prod", "kvm-01", cpus=32, memory_mib=262144, vms=[...])
    eng = Engine(inv, connect=world.connect)
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

from .adapter import LIFECYCLE, LIFECYCLE_STARTED, REBOOT, HostUnreachable, VmSample
from .errors import HypervisorError
from .model import (Datastore, Disk, Host, MigrationProgress, Network, Nic, Strategy, Vm,
                    VmState)

_LIFECYCLE = {VmState.RUNNING: LIFECYCLE_STARTED, VmState.SHUTOFF: 5, VmState.PAUSED: 3}
_AFTER = {"start": VmState.RUNNING, "destroy": VmState.SHUTOFF, "suspend": VmState.PAUSED,
          "resume": VmState.RUNNING, "shutdown": VmState.SHUTOFF}


@dataclass
class ScriptedHost:
    cluster: str
    name: str
    facts: dict
    vms: dict[str, Vm] = field(default_factory=dict)
    networks: list[Network] = field(default_factory=list)
    datastores: list[Datastore] = field(default_factory=list)
    reachable: bool = True            # False: connecting fails as a dead network does
    libvirt_up: bool = True
    cpu_pct: float | None = None
    mem_used_mib: int | None = None
    ignores_acpi: set[str] = field(default_factory=set)   # uuids that ignore shutdown/reboot
    open_hv: list["ScriptedHypervisor"] = field(default_factory=list)
    refuses_incoming: str = ""        # libvirt's words when a migration here fails
    jobs: dict[str, "_Job"] = field(default_factory=dict)   # migrations running from here
    files: dict = field(default_factory=dict)   # its lock files and state (engine.locks)


@dataclass
class _Job:
    total: int
    seconds: float
    started: float = field(default_factory=time.monotonic)
    aborted: bool = False

    def fraction(self) -> float:
        return min(1.0, (time.monotonic() - self.started) / max(1e-6, self.seconds))


def _definition(vm: Vm) -> str:
    """A scripted domain's "XML": its record as JSON (define() reads it back)."""
    d = asdict(replace(vm, definition="", seen_at=None, config_at=None, cpu_pct=None,
                       mem_used_mib=None))
    return json.dumps(d, default=str)


def _from_definition(text: str, cluster: str, host: str) -> Vm:
    d = json.loads(text)
    d["state"] = VmState.SHUTOFF
    d["strategy"] = Strategy(d["strategy"])
    d["disks"] = tuple(Disk(**x) for x in d["disks"])
    d["nics"] = tuple(Nic(**x) for x in d["nics"])
    return Vm(**{**d, "cluster": cluster, "host": host})


class ScriptedWorld:
    def __init__(self, clock: Callable[[], float] = time.time,
                 migration_seconds: float = 0.3):
        self.hosts: dict[tuple[str, str], ScriptedHost] = {}
        self.lock = threading.RLock()
        self.clock = clock
        self.migration_seconds = migration_seconds   # how long a live migration takes

    def add_host(self, cluster: str, name: str, *, cpus: int = 4, memory_mib: int = 8192,
                 vms: list[Vm] = (), **kw) -> ScriptedHost:
        facts = {"hostname": name, "cpus": cpus, "memory_mib": memory_mib,
                 "cpu_model": "scripted", "libvirt_version": "9.0.0", "qemu_version": "7.2.0"}
        h = ScriptedHost(cluster, name, facts, {v.uuid: replace(v, host=name, cluster=cluster,
                                                                  stale=False) for v in vms},
                         **kw)
        self.hosts[(cluster, name)] = h
        return h

    def connect(self, host: Host) -> "ScriptedHypervisor":
        """Engine(connect=world.connect): runs on the host's libvirt thread."""
        h = self.hosts.get((host.cluster, host.name))
        if h is None or not h.reachable:
            raise HostUnreachable(f"Cannot reach {host.address}: no route to host")
        if not h.libvirt_up:
            raise HypervisorError("Failed to connect socket: Connection refused")
        return ScriptedHypervisor(self, h)

    # ---- what an operator does behind the console's back ----------------------
    def change_vm(self, cluster: str, host: str, uuid: str, event: str | None = None,
                  **changes) -> None:
        """Change a VM's definition or state; `event` is the kind of event sent, or
        None for a change no event reports (autostart, --config)."""
        with self.lock:
            h = self.hosts[(cluster, host)]
            h.vms[uuid] = replace(h.vms[uuid], **changes)
        if event:
            self._fire(h, uuid, event, 0)

    def undefine(self, cluster: str, host: str, uuid: str) -> None:
        """`virsh undefine` of a shut-off VM: gone from the host, with its event."""
        h = self.hosts[(cluster, host)]
        with self.lock:
            h.vms.pop(uuid)
        self._fire(h, uuid, LIFECYCLE, 1)      # VIR_DOMAIN_EVENT_UNDEFINED

    def power_cut(self, cluster: str, host: str) -> None:
        """The host dies: its connections close, it cannot be reached."""
        h = self.hosts[(cluster, host)]
        h.reachable = False
        for hv in list(h.open_hv):
            hv.lost()

    def crash(self, cluster: str, host: str) -> None:
        """Its power is cut: unreachable, and its guests are dead (shut off)."""
        h = self.hosts[(cluster, host)]
        with self.lock:
            for uuid, vm in list(h.vms.items()):
                h.vms[uuid] = replace(vm, state=VmState.SHUTOFF)
        self.power_cut(cluster, host)

    def revive(self, cluster: str, host: str) -> None:
        """Powered on again: /run is empty (the HA boot gate is closed)."""
        h = self.hosts[(cluster, host)]
        h.files.pop("ha-checked", None)
        h.reachable = True

    def _fire(self, h: ScriptedHost, uuid: str, kind: str, detail: int) -> None:
        for hv in list(h.open_hv):
            if hv.on_event:
                hv.on_event(uuid, kind, detail)


class ScriptedHypervisor:
    def __init__(self, world: ScriptedWorld, h: ScriptedHost):
        self.world, self.h = world, h
        self.cluster, self.host = h.cluster, h.name
        self.on_event: Callable[[str, str, int], None] | None = None
        self.on_close: Callable[[int], None] | None = None
        self.stats_calls: list[list[str] | None] = []   # what each pass asked (None: all)

    def _now(self) -> float:
        return self.world.clock()

    @property
    def lock_files(self) -> dict:
        """The host's lock files, shared by every engine that reaches it."""
        return self.h.files

    def _alive(self) -> None:
        if not self.h.reachable or self not in self.h.open_hv:
            raise HypervisorError("internal error: client socket is closed")

    def open(self, on_domain_event, on_close) -> None:
        self.on_event, self.on_close = on_domain_event, on_close
        self.h.open_hv.append(self)

    def close(self) -> None:
        if self in self.h.open_hv:
            self.h.open_hv.remove(self)

    def lost(self) -> None:
        self.close()
        if self.on_close:
            self.on_close(0)

    def facts(self) -> dict:
        self._alive()
        return dict(self.h.facts)

    def host_usage(self):
        self._alive()
        return self.h.cpu_pct, self.h.mem_used_mib

    def _vm(self, vm: Vm) -> Vm:
        now = self._now()   # a definition carries no use figures: the stats pass does
        return replace(vm, seen_at=now, config_at=now, stale=False, cpu_pct=None,
                       mem_used_mib=None, definition=_definition(vm))

    def vms(self) -> list[Vm]:
        self._alive()
        with self.world.lock:
            return [self._vm(v) for v in self.h.vms.values()]

    def summaries(self) -> list[Vm]:
        """Scripted hosts read everything at once: their listing is complete."""
        return self.vms()

    def details(self, uuids: list[str]) -> list[Vm]:
        self._alive()
        with self.world.lock:
            return [self._vm(self.h.vms[u]) for u in uuids if u in self.h.vms]

    def vm(self, uuid: str) -> Vm | None:
        self._alive()
        with self.world.lock:
            v = self.h.vms.get(uuid)
        return None if v is None else self._vm(v)

    def state(self, uuid: str) -> VmState:
        self._alive()
        vm = self.h.vms.get(uuid)
        if vm is None:   # as libvirt says it
            raise HypervisorError(f"Domain not found: no domain with matching uuid '{uuid}'")
        return vm.state

    def stats(self, uuids: list[str] | None = None) -> dict[str, VmSample]:
        self._alive()
        with self.world.lock:
            self.stats_calls.append(None if uuids is None else list(uuids))
            return {u: VmSample(v.state, v.vcpus, v.memory_mib,
                                v.cpu_pct if v.state.active else None,
                                v.mem_used_mib if v.state.active else None)
                    for u, v in self.h.vms.items() if uuids is None or u in uuids}

    def networks(self) -> list[Network]:
        self._alive()
        return list(self.h.networks)

    def datastores(self) -> list[Datastore]:
        self._alive()
        return list(self.h.datastores)

    def act(self, uuid: str, action: str) -> None:
        self._alive()
        with self.world.lock:
            vm = self.h.vms.get(uuid)
            if vm is None:
                raise HypervisorError(f"Domain not found: no domain with matching uuid '{uuid}'")
            if action == "start" and vm.state.active:
                raise HypervisorError("Requested operation is not valid: domain is already "
                                      "running")
            if action in ("shutdown", "reboot", "suspend", "destroy") and not vm.state.active:
                raise HypervisorError("Requested operation is not valid: domain is not running")
            if action in ("shutdown", "reboot") and uuid in self.h.ignores_acpi:
                return                      # accepted, and nothing happens: as with ACPI
            if action == "reboot":
                self.world._fire(self.h, uuid, REBOOT, 0)
                return
            new = _AFTER[action]
            self.h.vms[uuid] = replace(vm, state=new)
        self.world._fire(self.h, uuid, LIFECYCLE, _LIFECYCLE.get(new, 0))

    def set_placement(self, uuid: str, placement) -> None:
        self._alive()
        with self.world.lock:
            if uuid not in self.h.vms:
                raise HypervisorError(f"Domain not found: no domain with matching uuid "
                                      f"'{uuid}'")
            self.h.vms[uuid] = replace(self.h.vms[uuid], strategy=placement.strategy,
                                       home=placement.home, priority=placement.priority,
                                       failed_from=placement.failed_from)
        self.world._fire(self.h, uuid, "metadata_change", 0)


    # ---- moving VMs (as libvirt does it, in plain Python) ------------------------------
    def _dom(self, uuid: str) -> Vm:
        vm = self.h.vms.get(uuid)
        if vm is None:
            raise HypervisorError(f"Domain not found: no domain with matching uuid '{uuid}'")
        return vm

    def migrate(self, uuid: str, dest: "ScriptedHypervisor", *, bandwidth_mib: int = 0,
                auto_converge: bool = True, unsafe: bool = False,
                copy_storage: bool = False, disks: list[str] = ()) -> None:
        self._alive()
        with self.world.lock:
            vm = self._dom(uuid)
            if not vm.state.active:
                raise HypervisorError("Requested operation is not valid: domain is not "
                                      "running")
            job = _Job(total=max(1, vm.memory_mib) << 20, seconds=self.world.migration_seconds)
            self.h.jobs[uuid] = job
        try:
            while job.fraction() < 1.0:
                if job.aborted:
                    raise HypervisorError("operation aborted: migration out: canceled by "
                                          "client")
                if not self.h.reachable or self not in self.h.open_hv:
                    raise HypervisorError("internal error: client socket is closed")
                if not dest.h.reachable or dest not in dest.h.open_hv:
                    raise HypervisorError("operation failed: migration out job: "
                                          "unexpectedly failed")
                time.sleep(0.01)
            if dest.h.refuses_incoming:
                raise HypervisorError(dest.h.refuses_incoming)
            with self.world.lock:
                moved = replace(self.h.vms.pop(uuid), host=dest.h.name, cluster=dest.h.cluster)
                dest.h.vms[uuid] = moved
        finally:
            self.h.jobs.pop(uuid, None)
        self.world._fire(self.h, uuid, LIFECYCLE, 5)              # stopped (migrated)
        self.world._fire(self.h, uuid, LIFECYCLE, 1)              # undefined
        self.world._fire(dest.h, uuid, LIFECYCLE, LIFECYCLE_STARTED)

    def migration_progress(self, uuid: str) -> MigrationProgress | None:
        self._alive()
        job = self.h.jobs.get(uuid)
        if job is None:
            return None
        done = int(job.total * job.fraction())
        elapsed = time.monotonic() - job.started
        return MigrationProgress(processed=done, remaining=job.total - done, total=job.total,
                                 bytes_per_s=done / elapsed if elapsed > 0 else None,
                                 elapsed_s=elapsed, downtime_ms=30)

    def set_max_downtime(self, uuid: str, ms: int) -> None:
        self._alive()
        self._dom(uuid)

    def abort_job(self, uuid: str) -> None:
        self._alive()
        job = self.h.jobs.get(uuid)
        if job is None:
            raise HypervisorError("Requested operation is not valid: no job is active on "
                                  "the domain")
        job.aborted = True

    def definition(self, uuid: str) -> str:
        self._alive()
        with self.world.lock:
            return _definition(self._dom(uuid))

    def define(self, xml: str) -> None:
        self._alive()
        if self.h.refuses_incoming:
            raise HypervisorError(self.h.refuses_incoming)
        vm = _from_definition(xml, self.h.cluster, self.h.name)
        with self.world.lock:
            old = self.h.vms.get(vm.uuid)
            if old is not None and old.state.active:
                raise HypervisorError(f"operation failed: domain '{vm.name}' is already "
                                      f"active")
            self.h.vms[vm.uuid] = vm
        self.world._fire(self.h, vm.uuid, LIFECYCLE, 0)           # defined

    def disk_formats(self, uuid: str) -> dict[str, str]:
        self._alive()
        return {d.target: "qcow2" if d.source.endswith(".qcow2") else "raw"
                for d in self._dom(uuid).disks}

    def set_autostart(self, uuid: str, on: bool) -> None:
        self._alive()
        with self.world.lock:
            self.h.vms[uuid] = replace(self._dom(uuid), autostart=on)

    def undefine(self, uuid: str) -> None:
        self._alive()
        with self.world.lock:
            if self._dom(uuid).state.active:    # as the engine's adapter refuses it
                raise HypervisorError(f"{self.h.vms[uuid].name} is running on "
                                      f"{self.h.name}; not undefined")
            self.h.vms.pop(uuid)
        self.world._fire(self.h, uuid, LIFECYCLE, 1)

    def prepare_disks(self, disks: list[tuple[str, int, str]]) -> list[str]:
        self._alive()
        return [path for path, _size, _fmt in disks]
