"""What the engine needs from one host's hypervisor: the interface, and the plain
records it hands back. Two implementations: `hypervisor.LibvirtHypervisor` (the real
one, libvirt over the host's SSH tunnel) and `scripted.ScriptedHypervisor` (plain
Python state that unit tests script). The engine only ever talks to this interface.

Every method blocks and runs on the host's own libvirt worker thread, never on the
engine's I/O loop (DESIGN rule 3). Failures raise errors.HypervisorError.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Callable, Protocol

from .model import Datastore, MigrationProgress, Network, Strategy, Vm, VmState

# A VM's placement lives in its own libvirt definition, so every console (and a lost
# inventory) sees the same value:
#   <metadata><mvmtui:placement xmlns:mvmtui="urn:mvmtui:placement:1"
#        strategy="pinned" home="kvm-01" priority="high" failed-from="kvm-03"/></metadata>
# failed-from: the lost host a failover restarted it from (it goes home from there),
# kept on the VM itself so that any watcher, on any admin box, brings it back.
PLACEMENT_NS = "urn:mvmtui:placement:1"
PLACEMENT_KEY = "mvmtui"


@dataclass(frozen=True)
class Placement:
    strategy: Strategy = Strategy.AUTO
    home: str = ""
    priority: str = "medium"
    failed_from: str = ""


def placement_xml(p: Placement) -> str:
    attrs = {"strategy": p.strategy.value, "home": p.home}
    if p.priority != "medium":
        attrs["priority"] = p.priority
    if p.failed_from:
        attrs["failed-from"] = p.failed_from
    el = ET.Element("placement", attrs)
    return ET.tostring(el, encoding="unicode")


def parse_placement(domain: ET.Element) -> Placement:
    """A domain's placement from its XML; Auto with no home when it has none."""
    el = domain.find(f"metadata/{{{PLACEMENT_NS}}}placement")
    if el is None:
        return Placement()
    try:
        strategy = Strategy(el.get("strategy", "auto"))
    except ValueError:
        strategy = Strategy.AUTO     # written by something newer: the safe default
    priority = el.get("priority", "medium")
    if priority not in ("high", "medium", "low"):
        priority = "medium"
    return Placement(strategy, el.get("home", ""), priority, el.get("failed-from", ""))


# Domain events the engine follows (`kind` in on_domain_event). "lifecycle" carries
# libvirt's lifecycle event number as detail; the rest are changes to what a VM is.
LIFECYCLE = "lifecycle"
REBOOT = "reboot"
LIFECYCLE_STARTED = 2          # VIR_DOMAIN_EVENT_STARTED


@dataclass(frozen=True)
class VmSample:
    """One VM in a bulk statistics pass: its state and the figures the tables show,
    so a change that no event reported is still caught within one pass."""

    state: VmState
    vcpus: int | None = None          # None: this host does not report it in bulk
    memory_mib: int | None = None
    cpu_pct: float | None = None      # share of its own vCPUs since the last pass, 0..100
    mem_used_mib: int | None = None   # as the guest reports it (balloon driver)
    disk_rd_bps: float | None = None  # bytes a second since the last pass, all its disks
    disk_wr_bps: float | None = None
    net_rx_bps: float | None = None   # all its NICs
    net_tx_bps: float | None = None


class Hypervisor(Protocol):
    host: str
    cluster: str

    def open(self, on_domain_event: Callable[[str, str, int], None],
             on_close: Callable[[int], None]) -> None: ...

    def close(self) -> None: ...

    def facts(self) -> dict: ...

    def host_usage(self) -> tuple[float | None, int | None]: ...

    def vms(self) -> list[Vm]: ...

    # The fast listing (config_at None unless it carries the whole definition, as
    # scripted hosts do), and the rest of chosen VMs after it.
    def summaries(self) -> list[Vm]: ...

    def details(self, uuids: list[str]) -> list[Vm]: ...

    def vm(self, uuid: str) -> Vm | None: ...

    def state(self, uuid: str) -> VmState: ...

    def stats(self, uuids: list[str] | None = None) -> dict[str, VmSample]: ...

    def networks(self) -> list[Network]: ...

    def datastores(self) -> list[Datastore]: ...

    def act(self, uuid: str, action: str) -> None: ...

    def set_placement(self, uuid: str, placement: "Placement") -> None: ...

    # Moving VMs. `migrate` blocks for the whole job and runs on a thread of its own;
    # progress and abort come through the host's worker meanwhile.
    def migrate(self, uuid: str, dest: "Hypervisor", *, bandwidth_mib: int = 0,
                auto_converge: bool = True, unsafe: bool = False,
                copy_storage: bool = False, disks: list[str] = ()) -> None: ...

    def disk_formats(self, uuid: str) -> dict[str, str]: ...

    def migration_progress(self, uuid: str) -> MigrationProgress | None: ...

    def set_max_downtime(self, uuid: str, ms: int) -> None: ...

    def abort_job(self, uuid: str) -> None: ...

    def definition(self, uuid: str) -> str: ...

    def define(self, xml: str) -> None: ...

    def undefine(self, uuid: str) -> None: ...

    def set_autostart(self, uuid: str, on: bool) -> None: ...

    def prepare_disks(self, disks: list[tuple[str, int, str]]) -> list[str]: ...


class HostUnreachable(Exception):
    """The host cannot be reached at all (what a dead network or SSH looks like)."""
