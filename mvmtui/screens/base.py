"""What every console screen shares: the title bar, the footer, the `/` filter for
its tables, engine updates, and VM actions on "the current VM"."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import Reactive
from textual.screen import Screen
from textual.widgets import Input

from ..engine.errors import EngineError, NotFound
from ..engine.model import Capacity, HaStatus, Host, Task, Vm
from ..widgets.fast_table import FastTable
from ..widgets.footer import KeysBar
from ..widgets.listing import Listing, plural
from ..widgets.title_bar import TitleBar
from .rows import Palette, task_rows
from .vm_actions import FOOTER_VM_KEYS, PLACEMENT

if TYPE_CHECKING:
    from ..app import MvmApp
    from ..engine.engine import Engine


@dataclass(frozen=True)
class Changes:
    """One flush of engine events (latest per object wins)."""

    hosts: dict[tuple[str, str], Host] = field(default_factory=dict)
    vms: dict[str, Vm] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)    # VM uuid -> cluster
    tasks: dict[int, Task] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.hosts or self.vms or self.removed or self.tasks)


STALE_FIGURES = "last known (stale)"


def capacity_note(cap: Capacity) -> str:
    """What the figures leave out: hosts that do not answer, and their VMs."""
    if not cap.hosts_left_out:
        return ""
    return (f"{plural(cap.hosts_left_out, 'host')} not answering "
            f"({plural(cap.vms_left_out, 'VM')}) not counted")


def show_capacity(screen: Screen, cap: Capacity, short: bool = False) -> None:
    """The four capacity gauges (#g-cpu, #g-mem, #g-vcpu, #g-memalloc) from the one
    capacity model: numerators and denominators cover the same hosts. Figures that are
    not live (offline, every host down) say so; `short` details fit a narrow panel."""
    from ..widgets import format as fmt
    from ..widgets.gauge import Gauge

    mem = cap.memory_mib or None
    g = {name: screen.query_one(f"#g-{name}", Gauge)
         for name in ("cpu", "mem", "vcpu", "memalloc")}
    if short:   # the host screen: its facts panel has the sizes
        details = (f"of {cap.cpus} CPUs", fmt.mib_of(cap.memory_used_mib, mem),
                   f"{cap.vcpus_allocated} of {cap.cpus}",
                   fmt.mib_of(cap.memory_allocated_mib, mem))
        if not cap.live:   # the panel's note says "last known (stale)"
            details = ("stale", "stale", *details[2:])
    else:
        hosts = plural(cap.hosts, "live host") if cap.live else plural(cap.hosts, "host")
        details = (f"average of {hosts}" if cap.hosts else "no host to ask",
                   f"{fmt.mib_of(cap.memory_used_mib, mem)} on {hosts}",
                   f"{cap.vcpus_allocated} vCPUs of active VMs on {cap.cpus} CPUs",
                   f"{fmt.mib_of(cap.memory_allocated_mib, mem)} to active VMs")
        if not cap.live:
            details = (STALE_FIGURES,
                       f"{fmt.mib_of(cap.memory_used_mib, mem)} · {STALE_FIGURES}",
                       f"{cap.vcpus_allocated} vCPUs on {cap.cpus} CPUs · {STALE_FIGURES}",
                       f"{fmt.mib_of(cap.memory_allocated_mib, mem)} · {STALE_FIGURES}")
    g["cpu"].show_percent(cap.cpu_pct, details[0])
    g["mem"].show(cap.memory_used_mib, mem, details[1])
    g["vcpu"].show(cap.vcpus_allocated, cap.cpus, details[2])
    g["memalloc"].show(cap.memory_allocated_mib, mem, details[3])


class EngineChanges(Message):
    """Posted by the app to each console screen at most 10 times a second."""

    def __init__(self, changes: Changes) -> None:
        super().__init__()
        self.changes = changes


class HaUpdate(Message):
    """What the HA watcher says changed (or who watches): cluster -> its HaStatus.
    Apart from EngineChanges: a few a minute, and no screen re-reads its VMs for it."""

    def __init__(self, statuses: dict[str, HaStatus]) -> None:
        super().__init__()
        self.statuses = statuses


# The planner's questions (a failover plan, N−1, a DRS preview) are answered on the
# UI loop for a cluster this small (a few ms), in a thread beyond: N−1 over 10,000
# VMs takes a second or two.
PLAN_INLINE_VMS = 500


class Planned(Message):
    """A planner answer computed in a thread (ConsoleScreen.planned)."""

    def __init__(self, name: str, generation: int, result: object, error: str) -> None:
        super().__init__()
        self.name, self.generation, self.result, self.error = name, generation, result, error


class FilterBar(Input):
    """`/` opens it for one table; typing narrows; enter keeps; escape clears."""

    BINDINGS = [Binding("escape", "clear", "Clear filter", id="filter.clear")]
    # Input sets its virtual size (the text's width) on every keystroke, and Widget's
    # reactive lays the whole screen out again for it: 20 ms a key at 200x50. The bar
    # is as wide as the screen whatever it holds, so a repaint is enough.
    virtual_size = Reactive(Size(0, 0), layout=False)

    def __init__(self) -> None:
        super().__init__(placeholder="Filter", compact=True, id="filter-bar",
                         select_on_focus=False)
        self.cursor_blink = False   # over SSH a blinking cursor is traffic; tests need stillness
        self.listing: Listing | None = None

    def open(self, listing: Listing) -> None:
        self.listing = listing
        self.placeholder = f"Filter {listing.noun}s: type to narrow · enter keeps · esc clears"
        with self.prevent(Input.Changed):
            self.value = listing.filter_text
        self.cursor_position = len(self.value)
        self.display = True
        # Focus now, not later (focus() waits its turn): keys typed right after `/`
        # must reach the bar, never the table, whose letters are VM actions.
        self.screen.set_focus(self)

    async def _on_key(self, event: events.Key) -> None:
        """Run the bar's own editing keys (backspace, ctrl+u, …) here, in turn.

        Textual runs a focused widget's bindings only when the key has bubbled up to
        the App (bar → screen → app, a queue each), but inserts printable keys here at
        once. In a burst ("web", ctrl+u, backspaces, "db" from tmux or a fast typist
        on a slow link) the backspaces and ctrl+u then ran after "db" and erased it."""
        for binding in self._bindings.key_to_bindings.get(event.key, ()):
            if not binding.priority:
                event.stop()
                event.prevent_default()   # not Input's handler as well
                await self.run_action(binding.action)
                return

    def insert_in_turn(self, text: str) -> None:
        """Insert after the keys already queued here (a priority binding runs before
        them: `/` typed into the filter must not jump ahead of the letters before it)."""
        self.call_later(self.insert_text_at_cursor, text)

    def watch_value(self, value: str) -> None:
        # Filter here, while the key is handled, not on the Changed message: the
        # table's repaint then joins the filter bar's in the same frame (one frame,
        # not two about 30 ms apart).
        if self.listing is not None and value != self.listing.filter_text:
            self.listing.set_filter(value)

    def close(self) -> None:
        listing, self.listing = self.listing, None
        self.display = False
        if listing is not None:
            self.screen.set_focus(listing.table)

    def action_clear(self) -> None:
        if self.listing is not None:
            self.listing.set_filter("")
        self.close()


class ConsoleScreen(Screen):
    """Subclasses give crumbs(), compose_body() and reload(); they may refine
    apply_changes() to update rows one by one."""

    # focus_first() chooses the focus without scrolling; Textual's auto-focus would
    # scroll a short terminal down to the first table, hiding the screen's top.
    AUTO_FOCUS = ""   # "" = none (None would fall back to the app's "*")

    # A priority binding runs before the keys typed after it are routed: they then
    # reach the filter bar, never the table (whose letters are VM actions).
    BINDINGS = [Binding("slash", "filter", "Filter", key_display="/", id="screen.filter",
                        priority=True),
                # Shown only on a running task that is safe to stop (check_action).
                Binding("c", "cancel_task", "Cancel task", id="screen.cancel_task")]
    #: the screen's name for help and the palette
    TITLE_TEXT = ""
    #: how many VM keys the footer shows (the rest: help and the palette)
    footer_vm_keys = FOOTER_VM_KEYS

    def __init__(self) -> None:
        super().__init__()
        self._throttled: dict[str, tuple[float, object]] = {}
        self._behind = False    # changes came while another screen covered this one
        self._vm_keys: tuple[str, ...] = ()     # the VM actions the footer shows now
        self._cancellable: set[int] = set()     # tasks shown here that can be cancelled
        # planned(): name -> (generation, show); the names asked again meanwhile
        self._planning: dict[str, tuple[int, object]] = {}
        self._plan_again: dict[str, tuple] = {}
        self._plan_generation = 0

    @property
    def engine(self) -> "Engine":
        return self.app.engine

    @property
    def mvm(self) -> "MvmApp":
        return self.app  # type: ignore[return-value]

    @property
    def palette(self) -> Palette:
        return self.mvm.palette

    def now(self) -> float:
        return self.engine.now()

    # -- structure --------------------------------------------------------------
    def crumbs(self) -> list[str]:
        return ["mvmtui"]

    def compose(self) -> ComposeResult:
        yield TitleBar(self.crumbs(), readonly=self.engine.readonly,
                       offline=self.engine.offline)
        yield from self.compose_body()
        # The filter bar is mounted on the first `/` (above the footer): one widget
        # less to style and lay out on every screen's first frame.
        yield KeysBar()

    def compose_body(self) -> ComposeResult:
        yield from ()

    # Textual calls a message handler in every class of the MRO: subclasses override
    # the hooks below (reload, focus_first, apply_changes), never on_mount or
    # on_engine_changes, so nothing runs twice.
    def on_mount(self) -> None:
        self.reload()
        self.focus_first()

    def focus_first(self) -> None:
        listing = self.main_listing()
        if listing is not None:
            listing.table.focus(scroll_visible=False)   # the screen opens at its top

    def reload(self) -> None:
        """Pull everything this screen shows from the engine (cheap, in memory)."""

    def set_crumbs(self) -> None:
        self.query_one(TitleBar).set_crumbs(self.crumbs())

    def tick(self) -> None:
        """Every few seconds while visible: ages move on even when nothing changes."""
        self.reload()

    def vms_on_screen(self) -> list[str]:
        """The VMs whose rows are on screen: the engine samples these every pass."""
        return [k for listing in self.query("Listing#vms") if listing.display
                for k in listing.table.visible_keys()]

    def on_engine_changes(self, message: EngineChanges) -> None:
        if self.mvm.top_console_screen() is not self:
            self._behind = True     # covered by another screen: catch up when back
            return
        self.apply_changes(message.changes)

    def on_ha_update(self, message: HaUpdate) -> None:
        if self.mvm.top_console_screen() is not self:
            self._behind = True
            return
        self.apply_ha(message.statuses)

    def on_screen_resume(self) -> None:
        if self._behind:
            self._behind = False
            self.reload()

    def apply_changes(self, changes: Changes) -> None:
        """Engine changes since the last flush; the default re-reads everything."""
        self.reload()

    def apply_ha(self, statuses: dict[str, HaStatus]) -> None:
        """What the watcher says changed: the default redraws who watches."""
        from .ha import WatchBanner
        for banner in self.query(WatchBanner):
            if banner.cluster in statuses:
                banner.show()

    def throttle(self, name: str, callback, interval: float = 1.0) -> None:
        """Run callback now if it has not run for `interval` seconds, else once at the
        end of the interval: aggregates (summaries, per-host counts) that cost a pass
        over every VM follow a stream of changes at most once a second."""
        timers = self._throttled
        last, pending = timers.get(name, (0.0, None))
        if pending is not None:
            return                      # already scheduled; it will see the latest state
        wait = last + interval - time.monotonic()
        if wait <= 0:
            timers[name] = (time.monotonic(), None)
            callback()
            return

        def fire() -> None:
            timers[name] = (time.monotonic(), None)
            callback()
        timers[name] = (last, self.set_timer(wait, fire))

    # -- the planner ----------------------------------------------------------------
    def planned(self, name: str, compute, show, vms: int) -> None:
        """Ask the planner (`compute()`, an engine call such as failover_plan) and
        `show(result, error)`: at once on a cluster of up to PLAN_INLINE_VMS VMs, else
        in a thread, one at a time per name (asked again meanwhile: once more after)."""
        if vms <= PLAN_INLINE_VMS:
            result, error = _ask(compute)
            show(result, error)
            return
        if name in self._planning:
            self._plan_again[name] = (compute, show, vms)
            return
        self._plan_generation += 1
        generation = self._plan_generation
        self._planning[name] = (generation, show)

        def work() -> None:
            result, error = _ask(compute)
            self.post_message(Planned(name, generation, result, error))
        self.run_worker(work, thread=True, group=f"plan-{name}", exit_on_error=False)

    def on_planned(self, message: Planned) -> None:
        generation, show = self._planning.get(message.name, (None, None))
        if generation != message.generation:
            return
        del self._planning[message.name]
        if self.is_attached:
            show(message.result, message.error)   # type: ignore[operator]
        again = self._plan_again.pop(message.name, None)
        if again is not None and self.is_attached:
            self.planned(message.name, *again)

    # -- filter -------------------------------------------------------------------
    def current_listing(self) -> Listing | None:
        """The table that `/` filters: the focused one, else the screen's main one."""
        focused = self.focused
        if isinstance(focused, FilterBar) and focused.listing is not None:
            return focused.listing
        if isinstance(focused, FastTable) and isinstance(focused.parent, Listing):
            return focused.parent
        return self.main_listing()

    def main_listing(self) -> Listing | None:
        listings = [l for l in self.query(Listing) if l.display]
        return listings[0] if listings else None

    async def action_filter(self) -> None:
        if isinstance(self.focused, FilterBar):     # "/" typed into the filter itself
            self.focused.insert_in_turn("/")
            return
        listing = self.current_listing()
        if listing is None:
            return
        bars = self.query(FilterBar)
        if bars:
            bar = bars.first()
        else:
            bar = FilterBar()
            await self.mount(bar, before=self.query_one(KeysBar))
        bar.open(listing)

    def on_input_changed(self, event: Input.Changed) -> None:
        if isinstance(event.input, FilterBar):
            event.stop()    # FilterBar.watch_value has filtered already

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if isinstance(event.input, FilterBar):
            event.stop()
            event.input.close()

    def go_back(self) -> None:
        """escape / q: first clear the current table's filter, then leave the screen."""
        listing = self.current_listing()
        if listing is not None and listing.filter_text:
            listing.set_filter("")
            return
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def update_history(self, tasks: list[Task]) -> None:
        """Task changes into this screen's #history table (new rows or new states)."""
        if tasks:
            self.query_one("#history", Listing).update(self.history_rows(tasks))

    def set_history(self, tasks: list[Task]) -> None:
        """The whole #history table."""
        self._cancellable.clear()
        self.query_one("#history", Listing).set_rows(self.history_rows(tasks))

    def history_rows(self, tasks: list[Task]) -> list[tuple[str, tuple]]:
        """Rows for the history table; notes which tasks `c` may cancel."""
        before = set(self._cancellable)
        for t in tasks:
            if t.cancellable and not t.status.finished:
                self._cancellable.add(t.id)
            else:
                self._cancellable.discard(t.id)
        if self._cancellable != before and self.is_mounted:
            self.refresh_bindings()
        return task_rows(tasks, self.now(), self.palette)

    # -- VM actions -----------------------------------------------------------------
    def selected_vm(self) -> Vm | None:
        """The VM the action keys act on, or None (then the keys are hidden)."""
        return None

    def vm_at_cursor(self) -> Vm | None:
        """The VM under the cursor of this screen's #vms table, as the engine has it."""
        key = self.query_one("#vms", Listing).table.cursor_key
        if key is None:
            return None
        try:
            return self.engine.vm(key)
        except NotFound:
            return None

    # Every screen's VM and history tables open the same way (ids by convention).
    @on(FastTable.RowSelected, "#vms-table")
    def _open_vm_row(self, message: FastTable.RowSelected) -> None:
        self.mvm.open_vm(message.key)

    @on(FastTable.RowSelected, "#history-table")
    def _open_task_row(self, message: FastTable.RowSelected) -> None:
        self.mvm.open_task(int(message.key))

    @on(FastTable.CursorMoved, "#vms-table")
    def _vm_row_moved(self, message: FastTable.CursorMoved) -> None:
        self.sync_vm_bindings()

    @on(FastTable.CursorMoved, "#history-table")
    def _history_row_moved(self, message: FastTable.CursorMoved) -> None:
        if self._cancellable:
            self.refresh_bindings()

    def vm_keys(self) -> tuple[str, ...]:
        """The VM actions that make sense here now: none read-only or offline (no change
        is possible), else those the current VM's last known state allows, then Manage
        Placement."""
        if self.engine.readonly or self.engine.offline:
            return ()
        vm = self.selected_vm()
        return () if vm is None else (*self.engine.vm_actions(vm), PLACEMENT)

    def sync_vm_bindings(self, force: bool = False) -> None:
        """Show or hide the VM action keys when the current VM, or what it allows, changes."""
        keys = self.vm_keys()
        if force or keys != self._vm_keys:
            self._vm_keys = keys
            self.refresh_bindings()

    def cancellable_task_id(self) -> int | None:
        """The task `c` would cancel: the history row under the cursor, when that table
        has the focus and its task can be cancelled now."""
        focused = self.focused
        if not self._cancellable or not isinstance(focused, FastTable) \
                or focused.id != "history-table" or focused.cursor_key is None:
            return None
        tid = int(focused.cursor_key)
        return tid if tid in self._cancellable else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("vm_action", "vm_action_more"):
            # Hidden and refused unless it makes sense for the VM under the cursor; the
            # footer shows the first few, the rest are keys without a footer entry.
            n = self.footer_vm_keys
            keys = self._vm_keys[:n] if action == "vm_action" else self._vm_keys[n:]
            return bool(parameters) and parameters[0] in keys
        if action == "filter":
            return self.current_listing() is not None
        if action == "cancel_task":
            return self.cancellable_task_id() is not None
        return True

    def action_vm_action(self, action: str) -> None:
        if action == PLACEMENT:
            from .placement import manage_placement
            manage_placement(self.app, self.selected_vm())
            return
        self.mvm.ask_vm_action(self.selected_vm(), action)

    action_vm_action_more = action_vm_action

    def action_cancel_task(self) -> None:
        tid = self.cancellable_task_id()
        if tid is not None:
            self.mvm.ask_cancel_task(tid)


def _ask(compute) -> tuple[object, str]:
    """(answer, "") or (None, the engine's refusal: "definitions are still being read")."""
    try:
        return compute(), ""
    except EngineError as exc:
        return None, str(exc)
    except Exception as exc:  # never a traceback on screen
        from ..app import unexpected
        return None, unexpected(exc)
