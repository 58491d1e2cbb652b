"""Events: what changed on a cluster, a host or a VM, when, and who made it so.

The engine records the libvirt lifecycle events and host state changes it sees
(engine.event_log, newest first): a VM started, paused, crashed; a host lost or
back. Each says whom it is put down to: the task that acted on its target ("task 12
(Start web-01) · console · root@admin"), or nobody ("outside the console (virsh, the
guest, another tool)", in warning colours: it happened behind the console's back),
or what the console itself saw ("seen by …": a host that stopped answering).

The cluster's Events tab (8) and the Events screen of a host or a VM (E on its
screen) show the same table; `/` filters it like every table, enter opens the VM or
host an event is about, `r` reads it again. It follows changes (host, VM and task
changes of the cluster, at most once a second) and the screen's tick.
"""
from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from ..engine.errors import NotFound
from ..engine.model import OUTSIDE, EventRecord
from ..widgets import format as fmt
from ..widgets.fast_table import Column, FastTable
from ..widgets.listing import Listing
from .base import Changes, ConsoleScreen
from .rows import Palette

EVENTS_SHOWN = 500      # the newest recorded events a view reads
EVENT_WRITE_DELAY = 0.3     # seconds after a change before its event is read

EVENT_COLUMNS = [
    Column("at", "Time", 12),
    Column("kind", "What", 11, priority=2),
    Column("target", "Target", 14, priority=1, min_width=10),
    Column("host", "Host", 10, priority=4, min_width=8),
    Column("message", "Message", 30, flex=True, min_width=16),
    Column("source", "By", 30, flex=True, priority=3, min_width=14),
]

KIND_WORDS = {"vm.state": "VM state", "host.status": "host state",
              "vm.defined": "VM defined", "vm.undefined": "VM removed"}


def kind_words(kind: str) -> str:
    return KIND_WORDS.get(kind, kind)


def source_text(source: str, pal: Palette) -> Text | str:
    """Who an event is put down to; what no one in the console did, in warning colours."""
    if not source:
        return fmt.DASH
    if source == OUTSIDE or source.startswith("outside"):
        return Text(source, style=pal.warn)
    if source.startswith("seen by"):
        return Text(source, style=pal.muted)
    return source


def event_cells(e: EventRecord, now: float, pal: Palette) -> tuple:
    target = e.target_name or e.target or fmt.DASH
    return (fmt.Num(e.at, fmt.clock(e.at, now)), kind_words(e.kind), target,
            e.host or fmt.DASH, e.message, source_text(e.source, pal))


def event_rows(records: list[EventRecord], now: float,
               pal: Palette) -> tuple[list[tuple[str, tuple]], dict[str, EventRecord]]:
    """Rows keyed so that the same event keeps its key from one read to the next (the
    cursor stays on it), and the records by key (enter opens their target)."""
    rows, by_key = [], {}
    for e in records:
        key = str(e.id)
        by_key[key] = e
        rows.append((key, event_cells(e, now, pal)))
    return rows, by_key


def scope_text(cluster: str | None, host: str, vm_name: str, shown: int, pal: Palette) -> Text:
    what = (f"VM {vm_name}" if vm_name else f"host {host}" if host
            else f"cluster {cluster}" if cluster else "every cluster")
    text = Text.assemble(("Events of ", pal.muted), (what, pal.strong), (
        "  ·  newest first"
        + (f" · the last {EVENTS_SHOWN}" if shown >= EVENTS_SHOWN else "")
        + "  ·  / filters · enter opens the VM or host · r reads again", pal.muted))
    return text


def open_event_target(app, record: EventRecord | None) -> None:
    """Enter on an event: its VM's screen, or its host's."""
    if record is None:
        return
    engine = app.engine
    if record.target:
        try:
            engine.vm(record.target)
        except NotFound:
            pass
        else:
            app.open_vm(record.target)
            return
    host = record.host or (record.target if record.kind.startswith("host.") else "")
    if host:
        app.open_host(record.cluster, host)
    else:
        app.notify(f"{record.target_name or record.target} is no longer in the inventory.",
                   severity="warning")


def refresh_binding() -> Binding:
    return Binding("r", "refresh_events", "Read again", id="events.refresh")


class EventsScreen(ConsoleScreen):
    """The events of one host or one VM (E on its screen)."""

    CSS_PATH = Path(__file__).with_name("events.tcss")
    BINDINGS = [refresh_binding()]

    def __init__(self, cluster: str, host: str = "", vm: str = "", vm_name: str = "") -> None:
        super().__init__()
        self.cluster, self.host, self.vm, self.vm_name = cluster, host, vm, vm_name
        self.reads = 0
        self._records: dict[str, EventRecord] = {}

    @property
    def TITLE_TEXT(self) -> str:  # type: ignore[override]
        return f"Events of {'VM ' + self.vm_name if self.vm else 'host ' + self.host}"

    def crumbs(self) -> list[str]:
        return ["mvmtui", self.cluster, self.host or self.vm_name, "events"] \
            if self.host else ["mvmtui", self.cluster, self.vm_name, "events"]

    def compose_body(self) -> ComposeResult:
        yield Static(id="events-scope", classes="events-scope")
        yield Listing(EVENT_COLUMNS, "event", id="events")

    def reload(self) -> None:
        records = self.engine.event_log(self.cluster, host="" if self.vm else self.host,
                                        vm=self.vm, limit=EVENTS_SHOWN)
        self.reads += 1
        rows, self._records = event_rows(records, self.now(), self.palette)
        self.query_one("#events", Listing).set_rows(rows)
        self.query_one("#events-scope", Static).update(
            scope_text(self.cluster, self.host, self.vm_name, len(records), self.palette))

    def apply_changes(self, ch: Changes) -> None:
        """A change on this host or VM (its event is recorded with it): read again,
        at most once a second."""
        if self.vm:
            mine = (self.vm in ch.vms or self.vm in ch.removed
                    or any(t.target == self.vm for t in ch.tasks.values()))
        else:
            mine = ((self.cluster, self.host) in ch.hosts
                    or any(v.host == self.host and v.cluster == self.cluster
                           for v in ch.vms.values())
                    or any(t.host == self.host for t in ch.tasks.values())
                    or bool(ch.removed))
        if mine:
            # The event is written by the engine's writer thread just after the change
            # is announced: read a moment later, at most once a second.
            self.throttle("events", lambda: self.set_timer(EVENT_WRITE_DELAY, self.reload))

    def action_refresh_events(self) -> None:
        self.reload()

    @on(FastTable.RowSelected, "#events-table")
    def _open_event(self, message: FastTable.RowSelected) -> None:
        open_event_target(self.app, self._records.get(message.key))
