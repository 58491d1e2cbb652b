"""One host: what it is, how loaded it is, its VMs and what was done on it."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from ..engine.errors import NotFound
from ..engine.model import Host, Vm
from ..widgets import format as fmt
from ..widgets.fast_table import FastTable
from ..widgets.gauge import Gauge
from ..widgets.listing import Listing
from .base import STALE_FIGURES, Changes, ConsoleScreen, show_capacity
from .maintenance import host_maintenance, maintenance_binding
from .rows import (STORAGE_COLUMNS, TASK_COLUMNS, VM_COLUMNS, datastore_cells, facts_table,
                   host_state_text, network_cells, vm_cells)
from .vm_actions import vm_action_bindings


# Every VM here is on this host: its Host column is the first to give way.
HOST_VM_COLUMNS = [replace(c, priority=9) if c.key == "host" else c for c in VM_COLUMNS]


class HostScreen(ConsoleScreen):
    CSS_PATH = Path(__file__).with_name("host.tcss")
    BINDINGS = [*vm_action_bindings(), maintenance_binding()]
    footer_vm_keys = 3      # the footer keeps room for m Maintenance at 80 columns

    def __init__(self, cluster: str, name: str) -> None:
        super().__init__()
        self.cluster = cluster
        self.host_name = name
        self.host: Host | None = None
        self._vm_uuids: set[str] = set()
        self._vms_table_current = True     # VM keys follow the VMs table, not the history

    @property
    def TITLE_TEXT(self) -> str:  # type: ignore[override]
        return f"Host {self.host_name} ({self.cluster})"

    def crumbs(self) -> list[str]:
        return ["mvmtui", self.cluster, self.host_name]

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="host-top"):
            facts = Static(id="facts", classes="panel")
            facts.border_title = f"Host {self.host_name}"
            yield facts
            with Vertical(id="resources", classes="panel") as resources:
                resources.border_title = "Resources"
                yield Gauge("CPU use", label_width=14, detail_width=18, id="g-cpu")
                yield Gauge("Memory used", label_width=14, detail_width=18, id="g-mem")
                yield Gauge("vCPUs alloc.", label_width=14, detail_width=18, warn=None, bad=None, id="g-vcpu")
                yield Gauge("Memory alloc.", label_width=14, detail_width=18, warn=90, bad=100, id="g-memalloc")
                yield Static(id="capacity-note")
        yield Listing(HOST_VM_COLUMNS, "VM", sort="name", id="vms")
        yield Listing(STORAGE_COLUMNS, "storage item", sort="name", id="storage")
        yield Listing(TASK_COLUMNS, "task", sort="id", reverse=True, id="history")

    def reload(self) -> None:
        now, pal, seen = self.now(), self.palette, self.engine.vm_seen_at
        try:
            h = self.host = self.engine.host(self.cluster, self.host_name)
        except NotFound:
            self.query_one("#facts", Static).update(
                Text(f"{self.host_name} is no longer in the inventory of {self.cluster}.",
                     style=pal.bad))
            return
        vms = sorted(self.engine.vms(self.cluster, host=h.name), key=lambda v: v.name)
        address = h.address if h.port == 22 else f"{h.address}:{h.port}"
        self.query_one("#facts", Static).update(facts_table([
            ("Status", host_state_text(h, now, pal, self.engine.maintenance_progress(h.cluster, h.name))),
            ("Hostname", fmt.or_dash(h.hostname)),
            ("Address", address),
            ("CPU", f"{h.cpus or fmt.DASH} × {h.cpu_model or 'unknown model'}"),
            ("Memory", fmt.size_mib(h.memory_mib or None)),
            ("OS", fmt.or_dash(h.os_release)),
            ("libvirt", fmt.or_dash(h.libvirt_version)),
            ("QEMU", fmt.or_dash(h.qemu_version)),
            ("Host key", fmt.or_dash(h.fingerprint)),
            ("Last seen", f"{fmt.timestamp(h.seen_at)} ({fmt.ago(h.age(now))})"),
        ], pal))
        cap = self.engine.host_capacity(self.cluster, h.name)
        show_capacity(self, cap, short=True)
        self.query_one("#capacity-note", Static).update(
            "" if cap.live else Text(f"{STALE_FIGURES}: {h.name} is {h.status.value}",
                                     style=pal.warn))
        self._vm_uuids = {v.uuid for v in vms}
        pending = {t.target: t for t in reversed(self.engine.tasks(self.cluster, unfinished=True))
                   if t.target_kind == "vm" and t.target in self._vm_uuids}
        self.query_one("#vms", Listing).set_rows(
            [(v.uuid, vm_cells(v, now, pal, pending.get(v.uuid), seen)) for v in vms])
        self.query_one("#storage", Listing).set_rows(
            [(f"ds:{d.name}", datastore_cells(d, pal, h.status.live))
             for d in self.engine.datastores(self.cluster, h.name)]
            + [(f"net:{n.name}", network_cells(n, pal, h.status.live))
               for n in self.engine.networks(self.cluster, h.name)])
        self.set_history(self.engine.tasks(self.cluster, host=h.name))
        self.sync_vm_bindings()

    def apply_changes(self, ch: Changes) -> None:
        shown = self._vm_uuids
        mine = ((self.cluster, self.host_name) in ch.hosts
                or any(v.cluster == self.cluster and (v.host == self.host_name or u in shown)
                       for u, v in ch.vms.items())
                or any(u in shown for u in ch.removed))
        if mine:
            self.reload()
            return
        tasks = [t for t in ch.tasks.values()
                 if t.cluster == self.cluster and t.host == self.host_name]
        if any(t.target in shown for t in tasks):   # a VM's row says what it goes through
            self.reload()
            return
        if any(t.kind.startswith("host.maintenance") for t in tasks):   # "entering 2/3"
            self.throttle("maintenance", self.reload)
            return
        self.update_history(tasks)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        # Remember which table was last in use: the palette takes focus for a moment
        # and must not change what "the current VM" is.
        if isinstance(event.widget, FastTable):
            self._vms_table_current = event.widget.id == "vms-table"
            self.sync_vm_bindings()

    def selected_vm(self) -> Vm | None:
        if not self.is_mounted or not self._vms_table_current:
            return None
        return self.vm_at_cursor()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "maintenance":
            return not (self.engine.readonly or self.engine.offline) and self.host is not None
        return super().check_action(action, parameters)

    def action_maintenance(self) -> None:
        try:
            host = self.engine.host(self.cluster, self.host_name)
        except NotFound as exc:
            self.notify(str(exc), severity="error")
            return
        host_maintenance(self.app, host)
