"""Maintenance mode (m on a host): the preview of what entering (or leaving) does, VM
by VM, then the task.

Entering is refused while any VM is blocked; the row of a blocked VM offers the ways
out (d shuts it down, P manages its placement) and the preview follows what they
change. A host with Ceph OSDs shows Ceph's ok-to-stop for them, and n offers noout on
them until the host leaves (with the cluster's expiry). Confirming asks for the
host's name, typed. The host's row then says
"entering maintenance 2/3" and, once it runs no VM, "maintenance". Leaving shows the
VMs that left the host and can come back (b: bring them back or not). A host left
entering by a move that failed offers both: m enters again, M leaves instead.
"""
from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from ..engine.errors import Busy, EngineError, InventoryError, NotFound
from ..engine.model import (ENTERING, IN_MAINTENANCE, Host, HostStatus, MaintenancePreview,
                            MoveRow, Task, Vm)
from ..widgets.fast_table import Column, FastTable
from ..widgets.footer import KeysBar
from ..widgets.listing import Listing, plural
from .base import Changes, ConsoleScreen
from .confirm import TypedConfirmScreen
from .follow import follow_task
from .rows import Palette, vm_state_text
from .vm_actions import PLACEMENT, PLACEMENT_KEY, vm_action_bindings

_HERE = Path(__file__).parent

MOVE_COLUMNS = [
    Column("name", "VM", 14, min_width=10, max_width=24, flex=True),
    Column("state", "State", 10, priority=3, min_width=8),
    Column("target", "Goes to", 10, priority=1, min_width=8),
    Column("method", "How", 8, priority=1),
    Column("reason", "Why", 30, flex=True, priority=2, min_width=16),
]


# ---- the host's row while it enters ------------------------------------------------
def host_maintenance(app: App, host: Host | None) -> None:
    """m on a host: the preview of entering or leaving maintenance; while the host is
    entering, the task that does it."""
    engine = app.engine  # type: ignore[attr-defined]
    if host is None:
        return
    why = app.changes_refused("maintenance")  # type: ignore[attr-defined]
    if why:
        app.notify(why, severity="error")
        return
    if host.maintenance == ENTERING:
        task = engine.maintenance_task(host.cluster, host.name)
        if task is not None:
            app.open_task(task.id)  # type: ignore[attr-defined]
            return
    leaving = host.maintenance == IN_MAINTENANCE
    app.push_screen(MaintenanceScreen(host.cluster, host.name, leaving=leaving))


def maintenance_binding(key: str = "m") -> Binding:
    return Binding(key, "maintenance", "Maintenance", id="host.maintenance")


# ---- the preview ----------------------------------------------------------------------
def how_text(row: MoveRow, pal: Palette) -> Text:
    if row.blocked:
        return Text("BLOCKED", style=pal.alarm)
    if row.method == "stays":
        return Text("stays", style=pal.muted)
    return Text(row.method, style=pal.ok if row.method == "live" else pal.warn)


def ways_out(row: MoveRow) -> list[str]:
    """The engine's ways out of a block, with the key that takes each here."""
    out = []
    for way in row.ways_out:
        if way == "shut it down":
            out.append(f"{way} (d)")
        elif "Manage Placement" in way:
            out.append(way.replace("(Manage Placement)", f"({PLACEMENT_KEY} Placement)"))
        else:
            out.append(way)
    return out


def noout_words(on: bool, osds: tuple[int, ...], host: str, minutes: int,
                pal: Palette) -> Text:
    """Whether noout goes on the host's OSDs for its maintenance, and what n does."""
    names = ", ".join(f"osd.{i}" for i in osds)
    if on:
        return Text.assemble(("noout: on", f"bold {pal.warn}"),
                             f" — set on {names} until {host} leaves maintenance (expires "
                             f"in {minutes} min): Ceph moves none of their data meanwhile"
                             f" · n: off", )
    return Text.assemble(("noout: off", pal.strong),
                         f" — if {host} stays down long, Ceph rebuilds its data elsewhere"
                         f" · n sets noout on {names} until it leaves (expires in "
                         f"{minutes} min)")


def move_cells(row: MoveRow, vm: Vm | None, pal: Palette) -> tuple:
    state = vm_state_text(vm, pal) if vm is not None else Text(row.state.value)
    reason = row.reason
    if row.blocked and row.ways_out:
        reason += " · ways out: " + "; ".join(ways_out(row))
    return (row.name, state, row.target or "—", how_text(row, pal),
            Text(reason, style=pal.bad if row.blocked else ""))


class MaintenanceScreen(ConsoleScreen):
    """The preview: one row per VM of the host (entering), or per VM that left it and
    may come back (leaving)."""

    CSS_PATH = _HERE / "maintenance.tcss"
    BINDINGS = [
        Binding("m", "go('enter')", "Enter maintenance", id="maintenance.enter"),
        Binding("m", "go('leave')", "Leave maintenance", id="maintenance.leave"),
        # (l is a table's select key: shift+m leaves instead.)
        Binding("M", "switch", "Leave instead", id="maintenance.switch"),
        Binding("b", "bring_back", "Bring back", id="maintenance.bring_back"),
        Binding("n", "noout", "noout", id="maintenance.noout"),
        *vm_action_bindings(),
    ]

    def __init__(self, cluster: str, host: str, leaving: bool = False) -> None:
        super().__init__()
        self.cluster = cluster
        self.host_name = host
        self.leaving = leaving
        self.bring_back = True
        self.preview: MaintenancePreview | None = None
        self.host: Host | None = None
        self._rows: dict[str, MoveRow] = {}
        # Ceph: the host's OSDs and ok-to-stop (None: not asked yet, or no Ceph), and
        # whether to set noout on them until the host leaves.
        self.osds: tuple[int, ...] = ()
        self.ok_to_stop = None
        self.ceph_error = ""
        self.noout = False

    @property
    def TITLE_TEXT(self) -> str:  # type: ignore[override]
        verb = "Leave" if self.leaving else "Enter"
        return f"{verb} maintenance: {self.host_name} ({self.cluster})"

    def crumbs(self) -> list[str]:
        return ["mvmtui", self.cluster, self.host_name,
                "leave maintenance" if self.leaving else "maintenance"]

    def compose_body(self) -> ComposeResult:
        with Vertical(id="maint-top", classes="panel") as top:
            top.border_title = self.TITLE_TEXT
            yield Static(id="maint-summary")
        yield Listing(MOVE_COLUMNS, "VM", sort="name", id="moves")
        detail = Static(id="move-detail", classes="panel")
        detail.border_title = "Selected VM"
        yield detail

    def on_mount(self) -> None:
        # (ConsoleScreen's on_mount runs after this one: reload, focus.)
        if not self.leaving:
            self.run_worker(self._ask_ceph(), group="ceph-ok-to-stop", exit_on_error=False)

    async def _ask_ceph(self) -> None:
        """Ceph's ok-to-stop for the host's OSDs (nothing shown for a host without any)."""
        try:
            self.osds, self.ok_to_stop = await self.engine.ceph_maintenance_check(
                self.cluster, self.host_name)
        except (EngineError, InventoryError) as exc:
            self.ceph_error = str(exc)
        except Exception as exc:  # never a traceback on screen
            from ..app import unexpected
            self.ceph_error = unexpected(exc)
        if self.is_attached and (self.osds or self.ceph_error):
            self.reload()

    # -- data ---------------------------------------------------------------------------
    def reload(self) -> None:
        engine, pal = self.engine, self.palette
        summary = self.query_one("#maint-summary", Static)
        try:
            self.host = engine.host(self.cluster, self.host_name)
            self.preview = (engine.return_preview(self.cluster, self.host_name) if self.leaving
                            else engine.maintenance_preview(self.cluster, self.host_name))
        except EngineError as exc:
            self.preview = None
            summary.update(Text(str(exc), style=pal.bad))
            self.query_one("#moves", Listing).set_rows([])
            self._show_detail()
            return
        first = not self._rows
        self._rows = {r.vm: r for r in self.preview.rows}
        vms = {}
        for uuid in self._rows:
            try:
                vms[uuid] = engine.vm(uuid)
            except NotFound:
                pass
        moves = self.query_one("#moves", Listing)
        moves.set_rows([(r.vm, move_cells(r, vms.get(r.vm), pal)) for r in self.preview.rows])
        if first and self.preview.blocked:      # what stops it, in view at once
            moves.table.move_cursor_to_key(self.preview.blocked[0].vm)
        summary.update(self._summary())
        self._show_detail()
        self.sync_vm_bindings()
        self.refresh_bindings()

    def _summary(self) -> Text:
        pal, p, h = self.palette, self.preview, self.host
        assert p is not None and h is not None
        name = self.host_name
        moves = p.moves
        live = sum(r.method == "live" for r in moves)
        stays = [r for r in p.rows if r.method == "stays"]
        text = Text()
        if self.leaving:
            text.append(f"{name} returns to the placement pool: new VMs may be placed on "
                        f"it again.\n")
            if moves:
                text.append(f"Bring back: {'yes' if self.bring_back else 'no'} ",
                            style=pal.strong)
                text.append(f"(b toggles) — {plural(len(moves), 'VM')} that left {name} "
                            f"for maintenance " + ("come back" if self.bring_back else
                                                   "stay where they are")
                            + f" ({live} live, {len(moves) - live} offline).\n")
            else:
                text.append(f"No VM that left {name} for maintenance can come back now.\n",
                            style=pal.muted)
            text.append("m leaves maintenance (asks first).", style=pal.muted)
            return text
        text.append(f"{name} leaves the placement pool at once; its VMs move as below, "
                    f"{self.engine.policy(self.cluster).migration_concurrency} at a time, "
                    f"each a task of its own; {name} is in maintenance once it runs no VM.\n")
        counts = [f"{plural(len(moves), 'VM')} move ({live} live, {len(moves) - live} offline)"]
        if stays:
            counts.append(f"{len(stays)} stay{'s' if len(stays) == 1 else ''}")
        if p.blocked:
            counts.append(f"{len(p.blocked)} blocked")
        text.append(" · ".join(counts) + "\n", style=pal.strong)
        if h.status is not HostStatus.UP:
            text.append(f"{name} is {h.status.value}: its VMs cannot be moved.",
                        style=pal.alarm)
        elif p.blocked:
            text.append(f"Entering is refused while {plural(len(p.blocked), 'VM')} "
                        f"{'is' if len(p.blocked) == 1 else 'are'} blocked: "
                        f"shut {'it' if len(p.blocked) == 1 else 'them'} down (d) or "
                        f"change the placement ({PLACEMENT_KEY}).", style=pal.alarm)
        else:
            text.append("m enters maintenance: you type the host's name to confirm.",
                        style=pal.ok)
        ceph = self._ceph_text()
        if ceph is not None:
            text.append("\n")
            text.append_text(ceph)
        if h.maintenance == ENTERING:
            text.append(f"\n{name} is out of the pool already (an entry that did not "
                        f"finish): m enters again, M leaves maintenance instead.",
                        style=pal.warn)
        return text

    def _ceph_text(self) -> Text | None:
        """"Ceph: ok-to-stop for osd.3: yes" (or NO, in Ceph's words), then noout."""
        pal = self.palette
        if self.ceph_error:
            return Text(f"Ceph: ok-to-stop could not be asked: {self.ceph_error}",
                        style=pal.warn)
        if not self.osds:
            return None
        names = ", ".join(f"osd.{i}" for i in self.osds)
        ok = self.ok_to_stop
        text = Text.assemble(("Ceph: ", pal.strong), f"ok-to-stop for {names}: ")
        if ok is None:
            text.append("not known", style=pal.warn)
        elif ok.ok:
            text.append("yes", style=pal.ok)
            text.append(" (no PG goes offline while they are stopped)", style=pal.muted)
        else:
            text.append("NO", style=pal.alarm)
            text.append(f" — {ok.reason or 'Ceph gave no reason'}. Do not power "
                        f"{self.host_name} off until Ceph is HEALTH_OK.")
        text.append("\n")
        text.append_text(noout_words(self.noout, self.osds, self.host_name,
                                     self._noout_minutes(), pal))
        return text

    def _noout_minutes(self) -> int:
        try:
            return self.engine.policy(self.cluster).ceph_noout_expiry // 60
        except EngineError:
            return 0

    def _show_detail(self) -> None:
        """The whole reason (and ways out) of the VM under the cursor."""
        pal = self.palette
        detail = self.query_one("#move-detail", Static)
        row = self._rows.get(self.query_one("#moves", Listing).table.cursor_key or "")
        if row is None:
            detail.update(Text("No VM here." if self.preview else "", style=pal.muted))
            return
        text = Text.assemble((row.name, pal.strong), f" ({row.state.value}) · ")
        if row.blocked:
            text.append("BLOCKED", style=pal.alarm)
            text.append(f": {row.reason}")
            if row.ways_out:
                text.append("\nWays out: ", style=pal.strong)
                text.append("; ".join(ways_out(row)) + ".")
        elif row.method == "stays":
            text.append(f"stays: {row.reason}")
        else:
            text.append(f"{row.method} to {row.target}", style=pal.ok)
            if row.reason:
                text.append(f": {row.reason}")
        detail.update(text)

    @on(FastTable.CursorMoved, "#moves-table")
    def _row_moved(self, message: FastTable.CursorMoved) -> None:
        self._show_detail()
        self.sync_vm_bindings()

    @on(FastTable.RowSelected, "#moves-table")
    def _open_row(self, message: FastTable.RowSelected) -> None:
        self.mvm.open_vm(message.key)

    def apply_changes(self, ch: Changes) -> None:
        mine = ((self.cluster, self.host_name) in ch.hosts
                or any(u in self._rows or v.host == self.host_name for u, v in ch.vms.items()
                       if v.cluster == self.cluster)
                or any(u in self._rows for u in ch.removed)
                or any(t.target in self._rows for t in ch.tasks.values()))
        if mine or any(k[0] == self.cluster for k in ch.hosts):
            self.throttle("preview", self.reload)

    # -- keys ---------------------------------------------------------------------------
    def selected_vm(self) -> Vm | None:
        if not self.is_mounted:
            return None
        key = self.query_one("#moves", Listing).table.cursor_key
        try:
            return self.engine.vm(key) if key else None
        except NotFound:
            return None

    def vm_keys(self) -> tuple[str, ...]:
        """A row offers the ways out of a block: shut it down, manage its placement."""
        keys = super().vm_keys()
        return tuple(k for k in keys if k in ("shutdown", PLACEMENT))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "go":
            return (self.preview is not None and bool(parameters)
                    and parameters[0] == ("leave" if self.leaving else "enter"))
        if action == "switch":
            return (not self.leaving and self.host is not None
                    and self.host.maintenance == ENTERING)
        if action == "bring_back":
            return self.leaving and self.preview is not None and bool(self.preview.moves)
        if action == "noout":
            return not self.leaving and bool(self.osds)
        return super().check_action(action, parameters)

    def action_switch(self) -> None:
        self.leaving = True
        self.set_crumbs()
        self.query_one("#maint-top").border_title = self.TITLE_TEXT
        self.reload()

    def action_bring_back(self) -> None:
        self.bring_back = not self.bring_back
        self.reload()

    def action_noout(self) -> None:
        self.noout = not self.noout
        self.reload()

    def action_go(self, what: str = "enter") -> None:
        p = self.preview
        if p is None:
            return
        if self.leaving:
            self._ask_leave(p)
            return
        if p.blocked:
            self.notify(f"{self.host_name} cannot enter maintenance: "
                        + "; ".join(f"{r.name} is blocked ({r.reason})" for r in p.blocked)
                        + ". Nothing was changed.", severity="error", timeout=15)
            return

        def entered(task: Task | None) -> None:
            if task is None:
                return
            self._started(task, lambda end: self._host_words())

        noout = (self.osds, self._noout_minutes()) if self.noout and self.osds else None
        self.app.push_screen(TypeNameScreen(self.cluster, self.host_name, p, noout=noout),
                             entered)

    def _ask_leave(self, p: MaintenancePreview) -> None:
        from .confirm import ConfirmScreen
        back = p.moves if self.bring_back else ()
        body = f"{self.host_name} returns to the placement pool."
        if back:
            body += (f" {plural(len(back), 'VM')} come back to it, each a task of its own: "
                     + ", ".join(f"{r.name} ({r.method})" for r in back) + ".")
        elif p.moves:
            body += " The VMs that left it stay where they are (b brings them back)."

        def decided(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._leave(bool(back)), exclusive=True, exit_on_error=False)

        self.app.push_screen(ConfirmScreen(
            f"Leave maintenance: {self.host_name}?", body, question="Leave now? (y/N)",
            yes_label="Leave maintenance", kind="move", yes_variant="primary"), decided)

    async def _leave(self, bring_back: bool) -> None:
        try:
            task = await self.engine.leave_maintenance(self.cluster, self.host_name,
                                                       bring_back=bring_back)
        except (EngineError, Busy, InventoryError) as exc:
            self.notify(f"Leave maintenance: {self.host_name}: {exc}", severity="error",
                        timeout=15)
            return
        self._started(task, lambda end: self._host_words())

    def _host_words(self) -> str:
        h = self.engine.host(self.cluster, self.host_name)
        if h.maintenance == IN_MAINTENANCE:
            return f"{h.name} is in maintenance"
        if h.maintenance == ENTERING:
            return f"{h.name} is entering maintenance"
        return f"{h.name} is back in the placement pool"

    def _started(self, task: Task, done) -> None:
        """Back where the operator came from, where the host's row shows the progress."""
        follow_task(self.app, task, done)
        if self.app.screen is self:
            self.app.pop_screen()


class TypeNameScreen(TypedConfirmScreen):
    """Entering maintenance moves every VM off a host: the host's name, typed,
    confirms it. The engine checks the name and every refusal stays in the dialog."""

    CSS_PATH = [_HERE / "dialogs.tcss", _HERE / "maintenance.tcss"]
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="typename.cancel")]
    INPUT_ID, ERROR_ID = "host-name", "type-name-error"

    def __init__(self, cluster: str, host: str, preview: MaintenancePreview,
                 noout: tuple[tuple[int, ...], int] | None = None) -> None:
        """`noout`: (the host's OSDs, minutes until it expires) to set noout on them."""
        super().__init__(classes="dialog-screen")
        self.cluster, self.host = cluster, host
        self.preview = preview
        self.noout = noout

    def compose(self) -> ComposeResult:
        p, host = self.preview, self.host
        moves = p.moves
        stays = [r for r in p.rows if r.method == "stays"]
        facts = (f"{plural(len(moves), 'VM')} move off {host}"
                 + (": " + ", ".join(f"{r.name} → {r.target} ({r.method})" for r in moves)
                    if moves else "") + ".")
        if stays:
            facts += f" {len(stays)} stay{'s' if len(stays) == 1 else ''}: " + \
                ", ".join(r.name for r in stays) + "."
        if self.noout:
            osds, minutes = self.noout
            facts += (f"\nCeph: noout on {', '.join(f'osd.{i}' for i in osds)} until {host} "
                      f"leaves maintenance (expires in {minutes} min).")
        with Vertical(classes="dialog type-name"):
            yield Static(f"Enter maintenance: {host}?", classes="dialog-title", markup=False)
            yield Static(facts, classes="dialog-facts", markup=False)
            yield Static(f"{host} leaves the placement pool now. If a move fails, it stays "
                         f"out of the pool (entering maintenance) until you enter again or "
                         f"leave maintenance; the VMs already moved stay where they went.",
                         classes="dialog-body", markup=False)
            yield Static(f"Type {host} to confirm:", classes="dialog-question", markup=False)
            yield from self.typed_field(host, "enter confirms · escape leaves everything "
                                              "as it is")
        yield KeysBar()

    async def submit(self, typed: str) -> Task | None:
        engine = self.app.engine  # type: ignore[attr-defined]
        # What was shown is what runs: the engine refuses if the plan changed since.
        return await engine.enter_maintenance(self.cluster, self.host, confirm=typed,
                                              expect=self.preview,
                                              noout=self.noout is not None)
