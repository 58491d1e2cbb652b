"""One VM: its configuration, its state (live or last known), its chart (CPU, memory,
disks, network: M steps through them; `[` / `]` the range), disks, NICs, history,
and the power actions; E opens its events."""
from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from ..engine.errors import NotFound
from ..engine.model import Vm
from ..widgets import format as fmt
from ..widgets.listing import Listing
from ..widgets.listing import plural
from .base import Changes, ConsoleScreen
from .monitoring import (ChartScreen, DetailChart, events_binding, metric_binding,
                         range_bindings)
from .rows import (DISK_COLUMNS, NIC_COLUMNS, TASK_COLUMNS, disk_cells, facts_table,
                   host_state_text, nic_cells, placement_words, vm_state_with_task)
from .vm_actions import vm_action_bindings


class VmScreen(ChartScreen, ConsoleScreen):
    CSS_PATH = [Path(__file__).with_name("vm.tcss"), Path(__file__).with_name("monitoring.tcss")]
    BINDINGS = [*vm_action_bindings(), events_binding(), metric_binding(),
                # In the range bar above the chart, not the footer (80 columns).
                *range_bindings(show=False)]

    def __init__(self, uuid: str) -> None:
        super().__init__()
        self.uuid = uuid
        self.vm: Vm | None = None          # last known, kept if the VM disappears
        self.gone_at: float | None = None

    def _lookup(self) -> Vm | None:
        try:
            vm = self.engine.vm(self.uuid)
        except NotFound:
            if self.vm is not None and self.gone_at is None:
                self.gone_at = self.now()
            return None
        self.vm, self.gone_at = vm, None
        return vm

    @property
    def cluster(self) -> str | None:
        return self.vm.cluster if self.vm else None

    @property
    def TITLE_TEXT(self) -> str:  # type: ignore[override]
        return f"VM {self.vm.name}" if self.vm else "VM"

    def vms_on_screen(self) -> list[str]:
        return [self.uuid]

    def crumbs(self) -> list[str]:
        vm = self.vm or self._lookup()
        if vm is None:
            return ["mvmtui", self.uuid]
        return ["mvmtui", vm.cluster, vm.host, vm.name]

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="vm-top"):
            config = Static(id="config", classes="panel")
            config.border_title = "Configuration"
            yield config
            state = Static(id="state", classes="panel")
            state.border_title = "State"
            yield state
        vm = self.vm or self._lookup()
        yield DetailChart("vm", vm.cluster if vm else "", self.uuid, id="chart")
        yield Listing(DISK_COLUMNS, "disk", id="disks")
        yield Listing(NIC_COLUMNS, "NIC", id="nics")
        yield Listing(TASK_COLUMNS, "task", sort="id", reverse=True, id="history")

    def focus_first(self) -> None:
        self.query_one("#history", Listing).table.focus(scroll_visible=False)   # opens at the top

    def reload(self) -> None:
        now, pal = self.now(), self.palette
        vm = self._lookup() or self.vm
        if vm is None:
            self.query_one("#state", Static).update(
                Text(f"No VM with UUID {self.uuid}.", style=pal.bad))
            return
        self.set_crumbs()
        memory = fmt.size_mib(vm.memory_mib)
        if vm.max_memory_mib and vm.max_memory_mib != vm.memory_mib:
            memory += f" (max {fmt.size_mib(vm.max_memory_mib)})"
        self.query_one("#config", Static).update(facts_table([
            ("Name", vm.name),
            ("UUID", vm.uuid),
            ("Cluster", vm.cluster),
            ("Host", vm.host),
            ("vCPUs", str(vm.vcpus)),
            ("Memory", memory),
            ("Autostart", fmt.yes_no(vm.autostart)),
            ("Persistent", fmt.yes_no(vm.persistent)),
            ("Placement", placement_words(vm)),
        ], pal))
        if self.gone_at is not None:
            state = Text.assemble(
                ("gone", pal.alarm),
                f" — not defined on {vm.host} any more (noticed {fmt.clock(self.gone_at, now)}); "
                f"last known state: {vm.state.value}")
        else:
            state = vm_state_with_task(vm, pal, self.engine.pending_task(vm.uuid))
        try:
            host = host_state_text(self.engine.host(vm.cluster, vm.host), now, pal)
        except NotFound:
            host = Text(f"{vm.host} is not in the inventory", style=pal.bad)
        live = not vm.stale and self.gone_at is None
        age = self.engine.vm_seen_at(vm.uuid)
        age = None if age is None else max(0.0, now - age)
        self.query_one("#state", Static).update(facts_table([
            ("State", state),
            ("Data age", fmt.ago(age) if live else Text(fmt.stale(age), style=pal.warn)),
            # The definition (disks, NICs, autostart) is read on events and by the
            # reconciliation: it may be older than the state.
            ("Definition read", fmt.ago(None if vm.config_at is None
                                        else max(0.0, now - vm.config_at))),
            # A share of its own vCPUs, as a host's CPU % is of all its CPUs.
            (f"CPU use (of {plural(vm.vcpus, 'vCPU')})",
             fmt.percent(vm.cpu_pct) if live and vm.state.active else fmt.DASH),
            ("Guest memory", fmt.mib_of(vm.mem_used_mib, vm.memory_mib)
             if live and vm.mem_used_mib is not None else fmt.DASH),
            ("Host", host),
        ], pal))
        self.query_one("#disks", Listing).set_rows(
            [(d.target, disk_cells(d)) for d in vm.disks])
        self.query_one("#nics", Listing).set_rows([(n.mac, nic_cells(n)) for n in vm.nics])
        self.set_history(self.engine.tasks(vm.cluster, target=vm.uuid))
        self.sync_vm_bindings()

    def apply_changes(self, ch: Changes) -> None:
        vm = self.vm
        if (self.uuid in ch.vms or self.uuid in ch.removed
                or (vm is not None and (vm.cluster, vm.host) in ch.hosts)):
            self.reload()
            return
        if any(t.target == self.uuid for t in ch.tasks.values()):
            self.reload()    # the State line says what the running task is doing

    def selected_vm(self) -> Vm | None:
        return self.vm if self.gone_at is None else None

    # -- its chart and its events ----------------------------------------------------------
    def chart_host(self) -> tuple[str, str] | None:
        vm = self.vm
        return None if vm is None else (vm.cluster, vm.host)

    def action_open_events(self) -> None:
        vm = self.vm
        if vm is not None:
            self.mvm.open_events(vm.cluster, vm=self.uuid)
