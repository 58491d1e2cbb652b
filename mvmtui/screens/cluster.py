"""One cluster: Summary, Hosts, VMs, History, HA, Ceph, Monitoring and Events tabs
(keys 1–8), under the line that says who watches it for host loss. The Ceph tab is
hidden once the engine knows the cluster has no Ceph; c (or enter) there opens the
Ceph screen. Monitoring: CPU and memory per host and the top VMs over a range
(`[` / `]`); Events: what changed in the cluster, when, and who made it so."""
from __future__ import annotations

import itertools
import time
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static, TabbedContent, TabPane, Tabs

from ..engine.errors import NotFound
from ..engine.model import (ClusterSummary, HaStatus, Host, HostLossCheck, HostStatus, Task,
                            Vm, VmState)
from ..widgets import format as fmt
from ..widgets.fast_table import FastTable
from ..widgets.gauge import Gauge
from ..widgets.listing import Listing
from .base import Changes, ConsoleScreen, capacity_note, show_capacity
from .ceph import CephUpdate, absent_text, compact_text, show_raw
from .decommission import decommission_bindings, decommission_offered, host_decommission
from .events import (EVENT_COLUMNS, EVENT_WRITE_DELAY, EVENTS_SHOWN, event_rows,
                     open_event_target, refresh_binding, scope_text)
from .fence import fence_offered, fenced_binding, host_fenced
from .ha import (LOSS_COLUMNS, PLAN_COLUMNS, WatchBanner, host_ha_text, loss_cells,
                 n_minus_one_text, plan_rows, plan_title, watcher_policy_text)
from .maintenance import host_maintenance, maintenance_binding
from .monitoring import (MetricsUpdate, MonitoringPanel, chart_range, range_bindings,
                         set_chart_range, step_range)
from .rows import HOST_COLUMNS, TASK_COLUMNS, VM_COLUMNS, host_cells, vm_cells
from .vm_actions import vm_action_bindings

TABS = {"summary": "Summary", "hosts": "Hosts", "vms": "VMs", "history": "History",
        "ha": "HA", "ceph": "Ceph", "monitoring": "Monitoring", "events": "Events"}
TAB_LISTINGS = {"hosts": "hosts", "vms": "vms", "history": "history", "ha": "loss",
                "events": "events"}
ROWS_PER_FRAME = 500    # VM rows drawn per frame when thousands change at once


class ClusterScreen(ConsoleScreen):
    CSS_PATH = [Path(__file__).with_name(name) for name in
                ("cluster.tcss", "ha.tcss", "monitoring.tcss", "events.tcss")]
    BINDINGS = [
        *[Binding(str(n), f"show_tab('{tab}')", label, show=False, id=f"cluster.tab_{tab}")
          for n, (tab, label) in enumerate(TABS.items(), 1)],
        Binding("S", "settings", "Settings", show=False, id="cluster.settings"),
        Binding("R", "rebalance", "Rebalance", show=False, id="cluster.rebalance"),
        *vm_action_bindings(),
        maintenance_binding(),
        fenced_binding(),      # Hosts tab: a host that does not answer
        *decommission_bindings(),    # Hosts tab: take the host out of Ceph
        # A screen's key replaces its base class's (Textual merges BINDINGS by key):
        # History's c (cancel a task) stays, beside the Ceph tab's c.
        *[b for b in ConsoleScreen.BINDINGS if b.key == "c"],
        Binding("c", "open_ceph", "Ceph screen", id="cluster.ceph"),     # Ceph tab
        Binding("enter", "open_ceph", "Ceph screen", show=False, id="cluster.ceph_enter"),
        *range_bindings(),      # Monitoring tab
        refresh_binding(),      # Events tab (r: a VM's Resume elsewhere)
    ]

    def __init__(self, cluster: str, tab: str = "summary") -> None:
        super().__init__()
        self.cluster = cluster
        self.initial_tab = tab
        self._host_live: dict[str, bool] = {}
        self._ticks = 0
        self._loaded = False    # the first reload done (reload)
        self._due: dict[str, None] = {}   # VM rows to draw again (_draw_due), in order
        self._due_scheduled = False
        self._history_day: tuple[int, ...] = ()    # the day the history was last read
        self._pending: dict[str, Task] = {}         # VM uuid -> its unfinished task
        self._loss: HostLossCheck | None = None     # N−1 as last computed
        self._ceph_tab = True       # the Ceph tab shown (hidden: the cluster has none)
        self._ceph_behind = False   # Ceph read again while another screen covered this
        self._metrics_behind = False    # new samples while another screen covered this
        self._events: dict = {}         # the Events tab's records by row key
        self.event_reads = 0

    @property
    def TITLE_TEXT(self) -> str:  # type: ignore[override]
        return f"Cluster {self.cluster}"

    def crumbs(self) -> list[str]:
        return ["mvmtui", self.cluster]

    # -- layout ---------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        yield WatchBanner(self.cluster, hosts=True)
        with TabbedContent(initial=f"tab-{self.initial_tab}", id="tabs"):
            with TabPane("1 Summary", id="tab-summary"):
                with VerticalScroll(id="summary"):
                    yield Static(id="counts")
                    yield Gauge("CPU use", detail_width=40, id="g-cpu")
                    yield Gauge("Memory used", detail_width=40, id="g-mem")
                    yield Gauge("vCPUs allocated", detail_width=40, warn=None, bad=None, id="g-vcpu")
                    yield Gauge("Memory allocated", detail_width=40, warn=90, bad=100, id="g-memalloc")
                    yield Static(id="capacity-note")
                    yield Static(id="n-minus-one")
                    yield Static("Health", classes="section-title")
                    yield Static(id="health")
            with TabPane("2 Hosts", id="tab-hosts"):
                yield Listing(HOST_COLUMNS, "host", sort="name", id="hosts")
            with TabPane("3 VMs", id="tab-vms"):
                yield Listing(VM_COLUMNS, "VM", sort="name", id="vms")
            with TabPane("4 History", id="tab-history"):
                yield Listing(TASK_COLUMNS, "task", sort="id", reverse=True, id="history")
            with TabPane("5 HA", id="tab-ha"):
                yield Static(id="ha-check")
                yield Listing(LOSS_COLUMNS, "host", sort="host", id="loss")
                yield Static(id="ha-plan-title", classes="plan-title")
                yield Listing(PLAN_COLUMNS, "VM", id="ha-plan")
            with TabPane("6 Ceph", id="tab-ceph"):
                with VerticalScroll(id="ceph-summary"):
                    yield Static(id="ceph-compact", markup=False)
                    yield Gauge("Raw used", detail_width=40, id="g-ceph-raw")
                    yield Static(id="ceph-hint", markup=False)
            with TabPane("7 Monitoring", id="tab-monitoring"):
                yield MonitoringPanel(self.cluster, id="monitoring")
            with TabPane("8 Events", id="tab-events"):
                yield Static(id="events-scope", classes="events-scope")
                yield Listing(EVENT_COLUMNS, "event", id="events")

    def focus_first(self) -> None:
        self._focus_tab(self.active_tab)

    def on_mount(self) -> None:
        # (ConsoleScreen's on_mount runs after this one: reload, focus.) The Ceph tab
        # shows the cluster's Ceph: the engine reads it every few seconds meanwhile.
        self.engine.ceph_watch(self.cluster, True)
        self._ceph_watched = True

    def on_unmount(self) -> None:
        if getattr(self, "_ceph_watched", False):
            self._ceph_watched = False
            self.engine.ceph_watch(self.cluster, False)

    def action_settings(self) -> None:
        self.mvm.open_settings(self.cluster)

    def action_rebalance(self) -> None:
        self.mvm.open_rebalance(self.cluster)

    @property
    def active_tab(self) -> str:
        return (self.query_one("#tabs", TabbedContent).active or "tab-summary")[4:]

    def action_show_tab(self, tab: str) -> None:
        if tab == "ceph" and self.engine.ceph_present(self.cluster) is False:
            self.notify(absent_text(False, self.cluster, self.palette).plain)
            return
        self.query_one("#tabs", TabbedContent).active = f"tab-{tab}"
        self._focus_tab(tab)

    @on(TabbedContent.TabActivated, "#tabs")
    def _tab_changed(self, event: TabbedContent.TabActivated) -> None:
        self._refresh(vm_rows="none")
        self._focus_tab(self.active_tab)
        if self.active_tab == "monitoring":
            self._metrics_behind = False
            self.query_one(MonitoringPanel).load()

    def _focus_tab(self, tab: str) -> None:
        if tab in TAB_LISTINGS:
            self.query_one(f"#{TAB_LISTINGS[tab]}", Listing).table.focus()
        else:   # Summary has no table: the tab strip takes the keys (←/→ switch tabs)
            self.query_one(Tabs).focus(scroll_visible=False)
        self.sync_vm_bindings(force=True)

    def main_listing(self) -> Listing | None:
        listing = TAB_LISTINGS.get(self.active_tab)
        return self.query_one(f"#{listing}", Listing) if listing else None

    # -- data -----------------------------------------------------------------------
    def reload(self) -> None:
        if not self._loaded and self.active_tab != "vms":
            # First load: the tab on screen first; the VM rows (10,000 of them on a
            # big cluster) and the history just after the first frame.
            self._refresh(vm_rows="none")
            self.call_after_refresh(self._refresh, "all")
        else:
            self._refresh(vm_rows="all")
        self._loaded = True

    def tick(self) -> None:
        """Ages move on: hosts and summary every tick; in the history the unfinished
        tasks (all of it when the day changes: start times then read as dates); VM rows
        only where their age is shown as stale (live VMs are refreshed by their stats),
        and a big stale list (offline, thousands of VMs) every sixth tick."""
        self._ticks += 1
        self._refresh(vm_rows="stale")
        if self.active_tab == "monitoring":
            self.query_one(MonitoringPanel).tick()

    def _refresh(self, vm_rows: str) -> None:
        """The one load path, one read of the cluster's hosts and VMs each time: summary
        or host rows (the tab shown; both on "all"); then VM rows "all" (and all the
        history), only the "stale" ones (and the unfinished tasks), or "none"
        (aggregates after engine changes)."""
        if not self.is_attached:
            return
        try:
            s = self.engine.summary(self.cluster)
        except NotFound:
            self.query_one("#health", Static).update(
                Text(f"Cluster {self.cluster} is no longer in the inventory.",
                     style=self.palette.bad))
            return
        hosts = self.engine.hosts(self.cluster)
        vms = self.engine.vms(self.cluster)
        # Aggregates are drawn for the tab on screen only (every tab on a full
        # reload); showing another tab draws its own (_tab_changed).
        tab = self.active_tab
        if vm_rows == "all" or tab == "summary":
            self._load_summary(s, hosts, vms)
        if vm_rows == "all" or tab == "hosts":
            self._load_hosts(hosts, vms)
        if vm_rows == "all" or tab in ("summary", "ha"):
            self._load_loss(len(vms))
        if vm_rows == "all" or tab == "ceph":
            self._load_ceph()
        if tab == "events":
            self._load_events()
        if vm_rows == "none":
            return
        now, pal, seen = self.now(), self.palette, self.engine.vm_seen_at
        spark, c = self.engine.sparkline, self.cluster
        # One read of the unfinished tasks per pass: the history's running rows, and
        # what each VM is going through ("running · rebooting…"), by target.
        unfinished = self.engine.tasks(self.cluster, unfinished=True)
        was_pending = self._pending
        self._pending = {t.target: t for t in reversed(unfinished) if t.target_kind == "vm"}
        if vm_rows == "all" or time.localtime(now)[:3] != self._history_day:
            self._load_history()
        else:
            self.update_history(unfinished)
        pending = self._pending
        if vm_rows == "all":
            # What the VM rows are drawn with: a host changing liveness later re-draws
            # its VMs (apply_changes).
            self._host_live = {h.name: h.status.live for h in hosts}
            self._due.clear()          # every row is drawn now
            self.query_one("#vms", Listing).set_rows(
                [(v.uuid, vm_cells(v, now, pal, pending.get(v.uuid), seen,
                                   spark=spark("vm", c, v.uuid))) for v in vms])
            self.sync_vm_bindings()
            return
        # Ticks: the stale rows (their ages), and rows whose task began or ended.
        moved = {u for u in was_pending.keys() ^ pending.keys()}
        moved |= {u for u, t in pending.items() if was_pending.get(u) != t}
        redo = [v for v in vms if v.uuid in moved]
        stale = [v for v in vms if v.stale]
        if not (stale and (len(stale) <= 2000 or self._ticks % 6 == 0)):
            stale = []
        if stale or redo:
            self.query_one("#vms", Listing).update(
                [(v.uuid, vm_cells(v, now, pal, pending.get(v.uuid), seen,
                                   spark=spark("vm", c, v.uuid))) for v in stale + redo])

    def _load_history(self) -> None:
        self._history_day = time.localtime(self.now())[:3]
        self.set_history(self.engine.tasks(self.cluster))

    def _load_hosts(self, hosts: list[Host], vms: list[Vm]) -> None:
        now, pal = self.now(), self.palette
        counts: dict[str, list[int]] = {}
        for v in vms:
            c = counts.setdefault(v.host, [0, 0])
            c[0] += v.state.active
            c[1] += 1
        ha = self.engine.ha_status(self.cluster)
        spark = self.engine.sparkline
        self.query_one("#hosts", Listing).set_rows(
            [(h.name, host_cells(h, now, pal, *counts.get(h.name, (0, 0)),
                                 moved=self.engine.maintenance_progress(h.cluster, h.name),
                                 ha=host_ha_text(ha.of(h.name), pal),
                                 spark=spark("host", h.cluster, h.name)))
             for h in hosts])
        if self.active_tab == "hosts":
            self.refresh_bindings()      # F: the host under the cursor may have gone down

    # -- Ceph (its tab) ------------------------------------------------------------------
    def _load_ceph(self) -> None:
        """The tab's compact summary; the tab itself hidden once the cluster is known to
        have no Ceph (shown again if it gets one)."""
        present = self.engine.ceph_present(self.cluster)
        if (present is not False) != self._ceph_tab:
            self._ceph_tab = present is not False
            tabs = self.query_one("#tabs", TabbedContent)
            if not self._ceph_tab:
                if self.active_tab == "ceph":
                    self.action_show_tab("summary")
                tabs.hide_tab("tab-ceph")
            else:
                tabs.show_tab("tab-ceph")
        pal, now = self.palette, self.now()
        s = self.engine.ceph_summary(self.cluster)
        gauge = self.query_one("#g-ceph-raw", Gauge)
        gauge.display = s is not None
        if s is None:
            self.query_one("#ceph-compact", Static).update(absent_text(present, self.cluster,
                                                                       pal))
            self.query_one("#ceph-hint", Static).update("")
            return
        self.query_one("#ceph-compact", Static).update(compact_text(s, now, pal))
        show_raw(gauge, s)
        self.query_one("#ceph-hint", Static).update(
            Text("c or enter: the Ceph screen (health detail, CRUSH tree, pools)",
                 style=pal.muted))

    def on_ceph_update(self, message: CephUpdate) -> None:
        if self.cluster not in message.clusters:
            return
        if self.mvm.top_console_screen() is not self:
            self._ceph_behind = True    # only the Ceph tab (and D) to catch up on
            return
        self._load_ceph()
        if self.active_tab == "hosts":
            self.refresh_bindings()     # D comes once the cluster is known to have Ceph

    def on_screen_resume(self) -> None:
        # (ConsoleScreen's runs too: a full reload if hosts or VMs changed meanwhile.)
        if self._ceph_behind:
            self._ceph_behind = False
            self._load_ceph()
            self.refresh_bindings()
        if self._metrics_behind:
            self._metrics_behind = False
            if self.is_attached and self.active_tab == "monitoring":
                self.query_one(MonitoringPanel).load()

    # -- Monitoring (its tab) and the sparklines -------------------------------------------
    def on_metrics_update(self, message: MetricsUpdate) -> None:
        """New samples: the charts of the Monitoring tab (at most every
        MonitoringPanel.reread_after() s), and the sparklines of the table on screen
        (at most once a second)."""
        if self.cluster not in message.clusters or not self.is_attached:
            return
        if self.mvm.top_console_screen() is not self:
            self._metrics_behind = True
            return
        tab = self.active_tab
        if tab == "monitoring":
            panel = self.query_one(MonitoringPanel)
            self.throttle("monitoring", panel.load, panel.reread_after())
        elif tab == "hosts":
            self.throttle("aggregates", lambda: self._refresh(vm_rows="none"))
        elif tab == "vms":
            self.throttle("sparks", self._redraw_visible_vms)

    def _redraw_visible_vms(self) -> None:
        """The VM rows on screen with their new sparklines (the others are drawn
        with theirs when they change, or when the table is loaded again)."""
        if not self.is_attached:
            return
        listing = self.query_one("#vms", Listing)
        keys = listing.table.visible_keys()
        if keys:
            self._due.update(dict.fromkeys(keys))
            self._draw_due()

    def action_chart_range(self, step: int) -> None:
        set_chart_range(self.app, step_range(chart_range(self.app), step))
        self.query_one(MonitoringPanel).load()

    # -- Events (its tab) -------------------------------------------------------------------
    def _load_events(self) -> None:
        if not self.is_attached:
            return
        records = self.engine.event_log(self.cluster, limit=EVENTS_SHOWN)
        self.event_reads += 1
        rows, self._events = event_rows(records, self.now(), self.palette)
        self.query_one("#events", Listing).set_rows(rows)
        self.query_one("#events-scope", Static).update(
            scope_text(self.cluster, "", "", len(records), self.palette))

    def action_refresh_events(self) -> None:
        self._load_events()

    @on(FastTable.RowSelected, "#events-table")
    def _open_event(self, message: FastTable.RowSelected) -> None:
        open_event_target(self.app, self._events.get(message.key))

    def action_open_ceph(self) -> None:
        self.mvm.open_ceph(self.cluster)

    # -- host loss: N−1 (Summary's line, the HA tab) ----------------------------------
    def _load_loss(self, vms: int) -> None:
        c = self.cluster
        self.planned("n-1", lambda: self.engine.host_loss_check(c), self._show_loss, vms)

    def _show_loss(self, check: HostLossCheck | None, error: str) -> None:
        """N−1 on the Summary; on the HA tab, with a row per host and the plan of the
        host under the cursor. While the definitions are read: the engine's words, and
        again on the next tick."""
        if not self.is_attached:
            return
        pal = self.palette
        if check is not None or self._loss is None:
            self._loss = check
        line = n_minus_one_text(check, error, pal)
        self.query_one("#n-minus-one", Static).update(line)
        text = line.copy()
        try:
            text.append("\n")
            text.append_text(watcher_policy_text(self.engine.policy(self.cluster), pal))
        except NotFound:
            pass
        self.query_one("#ha-check", Static).update(text)
        if check is None:
            return
        vms = {v.uuid: v for v in self.engine.vms(self.cluster)}
        ha = self.engine.ha_status(self.cluster)
        self.query_one("#loss", Listing).set_rows(
            [(p.host, loss_cells(p, vms, ha.of(p.host), pal)) for p in check.plans])
        self._show_ha_plan()

    def _show_ha_plan(self) -> None:
        check, pal = self._loss, self.palette
        key = self.query_one("#loss", Listing).table.cursor_key
        plan = next((p for p in check.plans if p.host == key), None) if check else None
        title = self.query_one("#ha-plan-title", Static)
        if plan is None:
            title.update(Text("No host is up to check." if check else "", style=pal.muted))
            self.query_one("#ha-plan", Listing).set_rows([])
            return
        title.update(plan_title(plan.host, plan, "", pal))
        self.query_one("#ha-plan", Listing).set_rows(plan_rows(plan, pal))

    @on(FastTable.CursorMoved, "#loss-table")
    def _loss_row_moved(self, message: FastTable.CursorMoved) -> None:
        self._show_ha_plan()

    @on(FastTable.RowSelected, "#loss-table")
    def _open_loss_host(self, message: FastTable.RowSelected) -> None:
        self.mvm.open_host(self.cluster, message.key)

    @on(FastTable.RowSelected, "#ha-plan-table")
    def _open_plan_vm(self, message: FastTable.RowSelected) -> None:
        self.mvm.open_vm(message.key)

    def _load_summary(self, s: ClusterSummary, hosts: list[Host], vms: list[Vm]) -> None:
        pal, cap = self.palette, s.capacity
        # CPUs and memory of the hosts the gauges count, so the line and the gauges agree;
        # with no host live, both are the last known state, and say so.
        running = f"{s.vms_running} of {s.vms_total} VMs running"
        if not cap.live and cap.hosts:
            last = sum(v.state is VmState.RUNNING for v in vms)
            running += f" ({last} last known)"
        counts = Text.assemble(
            (f"{s.cluster.name}", pal.strong), f"  ·  layout {s.cluster.layout}  ·  ",
            (f"{s.hosts_up} of {s.hosts_total} hosts up", pal.ok if s.hosts_up == s.hosts_total
             else pal.alarm),
            f"  ·  {running}  ·  {cap.cpus} CPUs  ·  {fmt.size_mib(cap.memory_mib)} memory")
        if s.cluster.description:
            counts.append(f"\n{s.cluster.description}", style=pal.muted)
        self.query_one("#counts", Static).update(counts)
        show_capacity(self, cap)
        note = capacity_note(cap) or (
            "" if cap.live or not cap.hosts else
            "No host answers: capacity as last known (stale), not today's load.")
        self.query_one("#capacity-note", Static).update(Text(note, style=pal.warn))
        self.query_one("#capacity-note", Static).display = bool(note)
        health = self.query_one("#health", Static)
        if s.problems:
            # A stale host (not contacted this session: offline, or not yet retried) is
            # a warning; anything else the engine lists is a problem.
            stale = {f"{h.name}: {h.status.value}" for h in hosts
                     if h.status is HostStatus.STALE}
            health.update(Text("\n").join(
                Text(f"• {p}", style=pal.warn if p.split(" — ")[0] in stale else pal.bad)
                for p in s.problems))
        elif s.hosts_connecting:
            health.update(Text(f"Connecting to {s.hosts_connecting} of {s.hosts_total} hosts…",
                               style=pal.warn))
        else:
            health.update(Text("All hosts up", style=pal.ok))

    def apply_changes(self, ch: Changes) -> None:
        c = self.cluster
        removed = [u for u, cl in ch.removed.items() if cl == c]
        changed: dict[str, Vm] = {}
        # A host going live or not live turns its VMs' data live or stale: re-read them.
        flipped = set()
        for (cl, name), h in ch.hosts.items():
            if cl == c and self._host_live.get(name) != h.status.live:
                self._host_live[name] = h.status.live
                flipped.add(name)
        if flipped:
            changed.update((v.uuid, v) for v in self.engine.vms(c) if v.host in flipped)
        for uuid, v in ch.vms.items():
            if v.cluster == c:
                try:
                    changed[uuid] = self.engine.vm(uuid)
                except NotFound:
                    removed.append(uuid)
        # A task that begins or ends on a VM changes what its row says it is doing.
        tasks = [t for t in ch.tasks.values() if t.cluster == c]
        for t in tasks:
            if t.target_kind != "vm":
                continue
            if not t.status.finished:
                self._pending[t.target] = t
            elif self._pending.get(t.target, t).id == t.id:
                self._pending.pop(t.target, None)
            else:
                continue
            if t.target not in changed:
                try:
                    changed[t.target] = self.engine.vm(t.target)
                except NotFound:
                    pass
        if changed or removed:
            for uuid in removed:
                self._due.pop(uuid, None)
            self._due.update(dict.fromkeys(changed))
            self._draw_due(removed)
        # A host entering maintenance counts its moves in its row ("2/3").
        if (changed or removed or any(k[0] == c for k in ch.hosts)
                or any(t.kind.startswith("host.maintenance") for t in tasks)):
            self.throttle("aggregates", lambda: self._refresh(vm_rows="none"))
        if self.active_tab == "events" and (changed or removed or tasks
                                            or any(k[0] == c for k in ch.hosts)):
            # The event is written just after the change is announced: read it a
            # moment later, at most once a second.
            self.throttle("events", lambda: self.set_timer(EVENT_WRITE_DELAY,
                                                           self._load_events))
        self.update_history(tasks)

    def apply_ha(self, statuses: dict[str, HaStatus]) -> None:
        """Who watches (the banner), what the watcher says of the hosts (their HA
        column, the banner's second line, the N−1 table's HA column)."""
        if self.cluster in statuses:
            self.query_one(WatchBanner).show()
            self.throttle("aggregates", lambda: self._refresh(vm_rows="none"))

    def _draw_due(self, removed: list[str] = ()) -> None:
        """Draw the VM rows due, ROWS_PER_FRAME of them, the next slice after the next
        frame: 10,000 rows changing at once (a host answering) never hold the screen
        for long. Each row is read from the engine as it is drawn, so a slice drawn
        later never puts back an older state."""
        self._due_scheduled = False
        if not self.is_attached:
            return
        batch = list(itertools.islice(self._due, ROWS_PER_FRAME))
        for uuid in batch:
            del self._due[uuid]
        now, pal, seen, pending = self.now(), self.palette, self.engine.vm_seen_at, self._pending
        spark = self.engine.sparkline
        rows, gone = [], list(removed)
        for uuid in batch:
            try:
                vm = self.engine.vm(uuid)
            except NotFound:
                gone.append(uuid)
                continue
            rows.append((uuid, vm_cells(vm, now, pal, pending.get(uuid), seen,
                                        spark=spark("vm", vm.cluster, uuid))))
        if rows or gone:
            self.query_one("#vms", Listing).update(rows, gone)
            self.sync_vm_bindings()
        if self._due and not self._due_scheduled:
            self._due_scheduled = True
            self.call_after_refresh(self._draw_due)

    # -- navigation -----------------------------------------------------------------
    @on(FastTable.RowSelected, "#hosts-table")
    def _open_host(self, message: FastTable.RowSelected) -> None:
        self.mvm.open_host(self.cluster, message.key)

    def selected_vm(self) -> Vm | None:
        if not self.is_mounted or self.active_tab != "vms":
            return None
        return self.vm_at_cursor()

    # -- maintenance (Hosts tab) -----------------------------------------------------
    def selected_host(self) -> Host | None:
        if not self.is_mounted or self.active_tab != "hosts":
            return None
        key = self.query_one("#hosts", Listing).table.cursor_key
        try:
            return self.engine.host(self.cluster, key) if key else None
        except NotFound:
            return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "maintenance":
            return (not (self.engine.readonly or self.engine.offline)
                    and self.selected_host() is not None)
        if action == "fenced":
            return fence_offered(self.app, self.selected_host())
        if action in ("decommission", "decommission_more"):
            return decommission_offered(self.app, self.selected_host(), action)
        if action == "open_ceph":
            return self.is_mounted and self.active_tab == "ceph"
        if action == "chart_range":
            return self.is_mounted and self.active_tab == "monitoring"
        if action == "refresh_events":
            return self.is_mounted and self.active_tab == "events"
        return super().check_action(action, parameters)

    def action_maintenance(self) -> None:
        host_maintenance(self.app, self.selected_host())

    def action_fenced(self) -> None:
        host_fenced(self.app, self.selected_host())

    def action_decommission(self) -> None:
        host_decommission(self.app, self.selected_host())

    action_decommission_more = action_decommission

    @on(FastTable.CursorMoved, "#hosts-table")
    def _host_row_moved(self, message: FastTable.CursorMoved) -> None:
        self.refresh_bindings()      # F comes and goes with the host under the cursor
