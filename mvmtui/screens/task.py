"""One task from the journal: what it did to what, step by step, with its log.
Follows a running task live (TaskChanged)."""
from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from ..engine.errors import NotFound
from ..engine.model import Task, TaskStatus
from ..widgets import format as fmt
from ..widgets.fast_table import FastTable
from ..widgets.format import DASH, Num
from ..widgets.gauge import Gauge
from ..widgets.listing import Listing
from .base import Changes, ConsoleScreen
from .rows import (LOG_COLUMNS, STEP_COLUMNS, TASK_COLUMNS, facts_table, log_level_text,
                   migration_words, step_cells, task_refused, task_rows, task_status_style,
                   task_status_text)


class TaskScreen(ConsoleScreen):
    CSS_PATH = Path(__file__).with_name("task.tcss")
    BINDINGS = [Binding("t", "open_target", "Open target", id="task.open_target")]

    def __init__(self, task_id: int) -> None:
        super().__init__()
        self.task_id = task_id
        self.entry: Task | None = None
        self._log_lines = 0

    def _lookup(self) -> Task | None:
        try:
            self.entry = self.engine.task(self.task_id)
        except NotFound:
            pass
        return self.entry

    @property
    def cluster(self) -> str | None:
        return self.entry.cluster if self.entry else None

    @property
    def TITLE_TEXT(self) -> str:  # type: ignore[override]
        return f"Task {self.task_id}"

    def crumbs(self) -> list[str]:
        t = self.entry or self._lookup()
        return ["mvmtui", t.cluster if t else "?", "history", f"task {self.task_id}"]

    def compose_body(self) -> ComposeResult:
        with Vertical(id="task-top", classes="panel") as top:
            top.border_title = f"Task {self.task_id}"
            yield Static(id="task-facts")
            yield Gauge("Progress", label_width=14, warn=None, bad=None, id="g-progress")
            # A live migration: libvirt's figures (memory or disks copied, speed,
            # expected downtime, time left); shown only for such a task.
            yield Gauge("Copied", label_width=14, warn=None, bad=None, id="g-migration")
        yield Listing(STEP_COLUMNS, "step", id="steps")
        # A parent task's parts (an evacuation's moves, one task per VM).
        yield Listing(TASK_COLUMNS, "part", sort="id", id="children")
        yield Listing(LOG_COLUMNS, "log line", id="log")

    def focus_first(self) -> None:
        self.query_one("#log", Listing).table.focus(scroll_visible=False)

    def reload(self) -> None:
        now, pal = self.now(), self.palette
        was = self.cancellable_task_id()
        t = self._lookup()
        if self.cancellable_task_id() != was:
            self.refresh_bindings()     # `c` comes and goes with "safe to cancel now"
        if t is None:
            self.query_one("#task-facts", Static).update(
                Text(f"No task {self.task_id} in the journal.", style=pal.bad))
            return
        target = t.target_name or t.target
        if t.target_kind == "vm" and t.target != t.target_name:
            target += f"  ({t.target})"
        rows: list[tuple[str, str | Text]] = [
            ("Task", Text(t.title, style=pal.strong)),
            ("Status", Text(self.progress_words(t), style=task_status_style(t.status, pal))
             if t.status.finished and t.status is not TaskStatus.SUCCEEDED
             else task_status_text(t, pal)),
            ("Target", f"{t.target_kind} {target}"),
            ("Host", t.host or DASH),
            ("Started by", t.started_by or DASH),
            ("Created", fmt.timestamp(t.created_at)),
            ("Started", fmt.timestamp(t.started_at)),
            ("Finished", fmt.timestamp(t.finished_at) if t.finished_at else
             ("not yet" if not t.status.finished else DASH)),
            ("Duration", fmt.duration(t.duration(now))
             + (" so far" if t.status is TaskStatus.RUNNING else "")),
        ]
        if t.error:
            rows.append(("Error", Text(t.error, style=pal.alarm)))
        self.query_one("#task-facts", Static).update(facts_table(rows, pal))
        gauge = self.query_one("#g-progress", Gauge)
        ended_badly = t.status.finished and t.status is not TaskStatus.SUCCEEDED
        # A task that ended short of its goal shows where it stopped, not a percentage.
        gauge.show(None if ended_badly else t.progress, 1.0, self.progress_words(t))
        self._show_migration(t)
        self._show_children(t)
        self.query_one("#steps", Listing).set_rows(
            [(str(s.index), step_cells(s, now, pal, t.status.finished)) for s in t.steps])
        log = self.query_one("#log", Listing)
        at_end = log.table.cursor_row >= max(0, log.table.row_count - 1)
        log.set_rows([(str(i), (Num(line.at, fmt.clock(line.at, now)),
                                log_level_text(line.level, pal), line.message))
                      for i, line in enumerate(t.logs)])
        if at_end and len(t.logs) > self._log_lines:   # follow the log while at its end
            log.table.action_last()
        self._log_lines = len(t.logs)

    def _show_migration(self, t: Task) -> None:
        gauge = self.query_one("#g-migration", Gauge)
        progress = self.engine.migration_progress(t) if t.kind == "vm.migrate" else None
        gauge.display = progress is not None
        if progress is None:
            return
        gauge.label = "Disks copied" if progress.phase == "disk" else "Memory copied"
        gauge.show(progress.processed, progress.total, migration_words(progress))

    def _show_children(self, t: Task) -> None:
        children = self.engine.task_children(t.id)
        listing = self.query_one("#children", Listing)
        listing.display = bool(children)
        if children:
            listing.set_rows(task_rows(children, self.now(), self.palette))

    @on(FastTable.RowSelected, "#children-table")
    def _open_child(self, message: FastTable.RowSelected) -> None:
        self.mvm.open_task(int(message.key))

    @staticmethod
    def _current_step(t: Task) -> int:
        """1-based number of the step running now, else of the last one that ran."""
        ran = [s.index for s in t.steps
               if s.status not in (TaskStatus.QUEUED, TaskStatus.SKIPPED)]
        return (ran or [-1])[-1] + 1

    @classmethod
    def progress_words(cls, t: Task) -> str:
        """"step 2 of 3", "failed at step 2 of 3", "refused before it started"."""
        if task_refused(t):
            return "refused before it started"
        if not t.steps:
            return t.status.value if t.status.finished else ""
        of = f"step {cls._current_step(t)} of {len(t.steps)}"
        if t.status is TaskStatus.RUNNING:
            return f"stopping at {of}" if t.cancel_requested else of
        if t.status is TaskStatus.SUCCEEDED:
            return f"all {len(t.steps)} steps done"
        if t.status is TaskStatus.QUEUED:
            return "queued"
        return f"{t.status.value} at {of}"

    def cancellable_task_id(self) -> int | None:
        """`c` here cancels this task, while it runs and stopping it is safe."""
        t = self.entry
        return t.id if t is not None and t.cancellable and not t.status.finished else None

    def apply_changes(self, changes: Changes) -> None:
        if self.task_id in changes.tasks or any(
                t.parent == self.task_id for t in changes.tasks.values()):
            self.reload()

    def tick(self) -> None:
        if self.entry is None or not self.entry.status.finished:
            self.reload()

    def action_open_target(self) -> None:
        t = self.entry
        if t is None:
            return
        if t.target_kind == "vm":
            self.mvm.open_vm(t.target)
        elif t.target_kind == "host":
            self.mvm.open_host(t.cluster, t.target)
        else:
            self.mvm.open_cluster(t.cluster)
