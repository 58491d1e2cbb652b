"""A scripted hypervisor: hosts whose VMs are plain Python state, for unit tests and
fixed demos. It implements adapter.Hypervisor, so the engine runs exactly the code
it runs against libvirt (links, events, stats, tasks); tests change the state as
an operator with virsh would, with or without an event, and take hosts down.

    world = ScriptedWorld()
    world.add_host("prod", "kvm-01", cpus=32, memory_mib=262144, vms=[...])
    eng = Engine(inv, connect=world.connect)
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from .adapter import LIFECYCLE, LIFECYCLE_STARTED, REBOOT, HostUnreachable, VmSample
from .errors import HypervisorError
from .model import Datastore, Host, Network, Strategy, Vm, VmState

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


class ScriptedWorld:
    def __init__(self, clock: Callable[[], float] = time.time):
        self.hosts: dict[tuple[str, str], ScriptedHost] = {}
        self.lock = threading.RLock()
        self.clock = clock

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

    def revive(self, cluster: str, host: str) -> None:
        self.hosts[(cluster, host)].reachable = True

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

    def _now(self) -> float:
        return self.world.clock()

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
                       mem_used_mib=None)

    def vms(self) -> list[Vm]:
        self._alive()
        with self.world.lock:
            return [self._vm(v) for v in self.h.vms.values()]

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

    def stats(self) -> dict[str, VmSample]:
        self._alive()
        with self.world.lock:
            return {u: VmSample(v.state, v.vcpus, v.memory_mib,
                                v.cpu_pct if v.state.active else None,
                                v.mem_used_mib if v.state.active else None)
                    for u, v in self.h.vms.items()}

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

    def set_placement(self, uuid: str, strategy: Strategy, home: str) -> None:
        self._alive()
        with self.world.lock:
            if uuid not in self.h.vms:
                raise HypervisorError(f"Domain not found: no domain with matching uuid "
                                      f"'{uuid}'")
            self.h.vms[uuid] = replace(self.h.vms[uuid], strategy=strategy, home=home)
        self.world._fire(self.h, uuid, "metadata_change", 0)

