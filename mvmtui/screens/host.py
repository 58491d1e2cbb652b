"""One host: what it is, how loaded it is, its VMs, what would become of them if it
died now (its failover plan), and what was done on it. Under the line that says who
watches the cluster; a host the watcher is worried about says so, and one that does
not answer offers F, "I have powered it off". On a cluster with Ceph, D takes the host
out of Ceph (the decommission wizard; in the footer once the host is in maintenance).
Its chart (CPU, memory, load, network, disks: M steps through them; `[` / `]` the
range) is under its facts; E opens its events."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from ..engine.errors import NotFound
from ..engine.model import FailoverPlan, HaStatus, Host, Strategy, Vm
from ..widgets import format as fmt
from ..widgets.fast_table import FastTable
from ..widgets.gauge import Gauge
from ..widgets.listing import Listing
from .base import STALE_FIGURES, Changes, ConsoleScreen, show_capacity
from .ceph import CephUpdate
from .decommission import decommission_bindings, decommission_offered, host_decommission
from .fence import fence_offered, fenced_binding, host_fenced
from .ha import PLAN_COLUMNS, WatchBanner, host_banner, plan_heading, plan_rows, plan_title
from .maintenance import host_maintenance, maintenance_binding
from .monitoring import (ChartScreen, DetailChart, events_binding, metric_binding,
                         range_bindings)
from .rows import (STORAGE_COLUMNS, TASK_COLUMNS, VM_COLUMNS, datastore_cells, facts_table,
                   host_state_text, network_cells, vm_cells)
from .vm_actions import vm_action_bindings


# Every VM here is on this host: its Host column is the first to give way.
HOST_VM_COLUMNS = [replace(c, priority=9) if c.key == "host" else c for c in VM_COLUMNS]
UNFENCED_NOTE = "not restarted: host not fenced"


class HostScreen(ChartScreen, ConsoleScreen):
    CSS_PATH = [Path(__file__).with_name(name) for name in
                ("host.tcss", "ha.tcss", "monitoring.tcss")]
    # F: a VM's Force off, or (the host not answering) "I have powered it off": never
    # both (vm_keys).
    BINDINGS = [*vm_action_bindings(), maintenance_binding(), fenced_binding(),
                *decommission_bindings(), events_binding(), metric_binding(),
                # In the range bar above the chart, not the footer (80 columns).
                *range_bindings(show=False)]

    @property
    def footer_vm_keys(self) -> int:  # type: ignore[override]
        """The footer keeps room for m Maintenance (and F Powered off…) at 80 columns."""
        return 2 if self._fence_offered else 3

    def __init__(self, cluster: str, name: str) -> None:
        super().__init__()
        self.cluster = cluster
        self.host_name = name
        self.host: Host | None = None
        self._vm_uuids: set[str] = set()
        self._vms_table_current = True     # VM keys follow the VMs table, not the history
        self._fence_offered = False
        self._decom_state: tuple = ()      # (maintenance, Ceph present) D was shown for
        self._plan_heading = ""            # "If kvm-01 dies now", "Once kvm-01 is fenced"

    @property
    def TITLE_TEXT(self) -> str:  # type: ignore[override]
        return f"Host {self.host_name} ({self.cluster})"

    def crumbs(self) -> list[str]:
        return ["mvmtui", self.cluster, self.host_name]

    def compose_body(self) -> ComposeResult:
        yield WatchBanner(self.cluster)
        yield Static(id="host-ha")
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
        yield DetailChart("host", self.cluster, self.host_name, id="chart")
        yield Listing(HOST_VM_COLUMNS, "VM", sort="name", id="vms")
        yield Static(id="plan-title", classes="plan-title")
        yield Listing(PLAN_COLUMNS, "VM", id="plan")
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
        ha = self.engine.ha_status(self.cluster).of(h.name)
        banner = self.query_one("#host-ha", Static)
        banner.display = bool(ha.state)
        if ha.state:
            banner.update(host_banner(h.name, ha, now, pal,
                                      not (self.engine.readonly or self.engine.offline)))
        unfenced = ha.state == "unfenced"

        def note(v: Vm) -> str:
            """What the watcher waits for before it restarts this one elsewhere."""
            return UNFENCED_NOTE if (unfenced and v.state.active
                                     and v.strategy is not Strategy.PINNED) else ""
        spark = self.engine.sparkline
        self.query_one("#vms", Listing).set_rows(
            [(v.uuid, vm_cells(v, now, pal, pending.get(v.uuid), seen, note(v),
                               spark=spark("vm", v.cluster, v.uuid))) for v in vms])
        c, name = self.cluster, h.name
        self._plan_heading = plan_heading(name, h.status.live, ha)
        self.planned("plan", lambda: self.engine.failover_plan(c, name), self._show_plan,
                     len(self.engine.vms(c)))
        self.query_one("#storage", Listing).set_rows(
            [(f"ds:{d.name}", datastore_cells(d, pal, h.status.live))
             for d in self.engine.datastores(self.cluster, h.name)]
            + [(f"net:{n.name}", network_cells(n, pal, h.status.live))
               for n in self.engine.networks(self.cluster, h.name)])
        self.set_history(self.engine.tasks(self.cluster, host=h.name))
        self.sync_vm_bindings()
        offered = fence_offered(self.app, h)
        if offered != self._fence_offered:      # F: Force off, or "I have powered it off"
            self._fence_offered = offered
            self.refresh_bindings()
        decom = (h.maintenance, self.engine.ceph_present(self.cluster))
        if decom != self._decom_state:          # D, in the footer once in maintenance
            self._decom_state = decom
            self.refresh_bindings()

    # -- its chart and its events ----------------------------------------------------------
    def chart_host(self) -> tuple[str, str]:
        return (self.cluster, self.host_name)

    def action_open_events(self) -> None:
        self.mvm.open_events(self.cluster, host=self.host_name)

    def _show_plan(self, plan: FailoverPlan | None, error: str) -> None:
        """If it dies now: where each VM restarts, or why not. While the definitions
        are read, the engine's words; the next tick asks again."""
        pal = self.palette
        self.query_one("#plan-title", Static).update(
            plan_title(self.host_name, plan, error, pal, self._plan_heading))
        if plan is not None:
            self.query_one("#plan", Listing).set_rows(plan_rows(plan, pal))

    @on(FastTable.RowSelected, "#plan-table")
    def _open_plan_vm(self, message: FastTable.RowSelected) -> None:
        self.mvm.open_vm(message.key)

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

    def apply_ha(self, statuses: dict[str, HaStatus]) -> None:
        """Who watches; what the watcher says of this host (its line, its VMs' notes, F)."""
        if self.cluster in statuses:
            self.query_one(WatchBanner).show()
            self.reload()

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
        if action == "fenced":
            return fence_offered(self.app, self.host)
        if action in ("decommission", "decommission_more"):
            return decommission_offered(self.app, self.host, action)
        return super().check_action(action, parameters)

    def vm_keys(self) -> tuple[str, ...]:
        """While F is "I have powered it off", no Force off: the host could not do it."""
        keys = super().vm_keys()
        return tuple(k for k in keys if k != "destroy") if fence_offered(self.app, self.host) \
            else keys

    def action_fenced(self) -> None:
        try:
            host = self.engine.host(self.cluster, self.host_name)
        except NotFound as exc:
            self.notify(str(exc), severity="error")
            return
        host_fenced(self.app, host)

    def on_ceph_update(self, message: CephUpdate) -> None:
        """D comes once the cluster is known to have Ceph."""
        if self.cluster in message.clusters and self.host is not None:
            decom = (self.host.maintenance, self.engine.ceph_present(self.cluster))
            if decom != self._decom_state:
                self._decom_state = decom
                self.refresh_bindings()

    def action_decommission(self) -> None:
        host_decommission(self.app, self.host)

    action_decommission_more = action_decommission

    def action_maintenance(self) -> None:
        try:
            host = self.engine.host(self.cluster, self.host_name)
        except NotFound as exc:
            self.notify(str(exc), severity="error")
            return
        host_maintenance(self.app, host)
