"""The guided decommission of a Ceph host (D on a host): the procedure's eleven steps as
the engine plans them from what Ceph shows now, one confirmed step at a time.

Checks 1–3 (health, room without the host, its OSDs) gate the start; a refusal is
shown in Ceph's own words and with the numbers. Steps 4–11 are listed done / next /
pending; the step under the cursor shows its exact commands and where each runs (a
monitor host, or the host itself). enter on the next step asks first, with those
commands, then runs it as a task and follows it: its log as it comes and, while the
data moves (step 5), a line of progress. After every step the plan is read again from
Ceph: what Ceph shows decides what is done, never what this screen ran. Opened on a
host half-way through (a console died, another admin box), it resumes at the right
step, and follows a step still running.
"""
from __future__ import annotations

import time
from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, Static

from ..engine.errors import Busy, EngineError, InventoryError, NotFound
from ..engine.model import IN_MAINTENANCE, Action, DecomPlan, Host, Task, TaskStatus
from ..widgets import format as fmt
from ..widgets.fast_table import Column, FastTable
from ..widgets.gauge import Gauge
from ..widgets.listing import Listing
from .base import Changes, ConsoleScreen
from .ceph import CephUpdate
from .follow import follow_task
from .rows import Palette, log_level_text, task_status_text


_HERE = Path(__file__).parent
KIND = "ceph.decommission"      # the engine's task kind of one step
STEPS = 11
LOG_TAIL = 4                    # the followed task's last log lines shown
REREAD_IDLE = 15.0              # seconds between re-reads of the plan while idle
METHOD_WORDS = {"reweight": "CRUSH weight 0 first, marked out once empty",
                "out": "`ceph osd out`, one OSD at a time"}

STEP_COLUMNS = [
    Column("mark", "", 1),
    Column("step", "Step", 4, align="right"),
    Column("title", "What", 30, flex=True, min_width=20, max_width=44),
    Column("state", "State", 8),
    Column("runs", "Runs", 34, flex=True, priority=1, min_width=20),
]


# ---- the host action ---------------------------------------------------------------------
def decommission_bindings() -> list[Binding]:
    """D, in the footer for a host in maintenance (where a decommission can start), a
    key without a footer entry for the others (the wizard says why it cannot start):
    the host screen's footer has no room for it at 80 columns beside the VM keys."""
    return [Binding("D", "decommission", "Decommission", id="host.decommission"),
            Binding("D", "decommission_more", "Decommission", show=False,
                    id="host.decommission.more")]


def decommission_offered(app: App, host: Host | None, action: str = "") -> bool:
    """D is offered where changes can be made, on a cluster the engine has seen Ceph on
    (the wizard then says what of Ceph the host has, if anything). `action`: the
    binding asked about (decommission: shown, for a host in maintenance)."""
    if (host is None or app.changes_refused("decommissioning a host")  # type: ignore[attr-defined]
            or app.engine.ceph_present(host.cluster) is not True):  # type: ignore[attr-defined]
        return False
    if action:
        return (host.maintenance == IN_MAINTENANCE) == (action == "decommission")
    return True


def host_decommission(app: App, host: Host | None) -> None:
    if host is not None:
        app.open_decommission(host.cluster, host.name)  # type: ignore[attr-defined]


# ---- how a plan reads ----------------------------------------------------------------------
def where(a: "Action", host: str) -> list[tuple[str, str]]:
    """(command, where it runs) in the order the step runs them."""
    return ([(c, "on a monitor host") for c in a.commands]
            + [(c, f"on {host}") for c in a.on_host])


def state_text(a: "Action", pal: Palette) -> Text:
    if a.state == "done":
        return Text("done", style=pal.ok)
    if a.state == "next":
        return Text("blocked" if a.blocked else "next",
                    style=f"bold {pal.warn}" if a.blocked else pal.busy)
    return Text("pending", style=pal.muted)


def mark_text(a: "Action", pal: Palette) -> Text:
    if a.state == "done":
        return Text("✓", style=pal.ok)
    if a.state == "next":
        return Text("▶", style=f"bold {pal.warn}" if a.blocked else pal.busy)
    return Text("·", style=pal.muted)


def runs_text(a: "Action", host: str) -> str:
    runs = where(a, host)
    if not runs:
        return "nothing: it waits, reading Ceph"
    first = runs[0][0]
    more = len(runs) - 1
    return first + (f"  (+{more})" if more else "")


def step_rows(p: "DecomPlan", pal: Palette) -> list[tuple[str, tuple]]:
    return [(a.key, (mark_text(a, pal), str(a.step), a.title, state_text(a, pal),
                     runs_text(a, p.host))) for a in p.actions]


def checks_text(p: "DecomPlan", pal: Palette, short: bool = False) -> Table:
    """Steps 1–3, each ok or NO with its message (wrapped under it); then the method.
    `short`: a line each (once started they gate nothing: mid-way health is not OK
    while data moves, and says so)."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, min_width=3)
    grid.add_column(ratio=1, no_wrap=short, overflow="ellipsis" if short else "fold")
    # Mid-way a check that fails stops nothing: it is said, not raised as an alarm.
    bad = pal.warn if short else pal.alarm
    for c in p.checks:
        line = Text.assemble((f"{c.title}: ", pal.strong))
        if not c.ok:
            line.append("NO — ", style=bad)
        line.append(c.message, style=pal.muted if short else "")
        grid.add_row(Text(f"{'✓' if c.ok else '✗'} {c.step}", style=pal.ok if c.ok
                          else bad), line)
    if p.method:
        grid.add_row("", Text.assemble(("Method: ", pal.strong),
                                       METHOD_WORDS.get(p.method, p.method),
                                       (" — why: step 4" if any(a.step == 4 for a in p.actions)
                                        else "", pal.muted)))
    return grid


def progress_text(cp: dict, pal: Palette) -> Text | None:
    """Step 5 while the data moves, from the task's checkpoint: "PGs clean 18/33 ·
    degraded 33 · misplaced 0 · 2.0 MiB/s · ETA 1m 2s · clean for 7 s of 15 s ·
    safe to destroy: no"; None for another step."""
    if "pgs_total" not in cp:
        return None

    def num(v) -> str:
        return fmt.DASH if v is None else str(v)
    text = Text.assemble(("PGs clean ", pal.strong),
                         f"{num(cp.get('pgs_clean'))}/{num(cp.get('pgs_total'))}",
                         " · degraded ", num(cp.get("degraded")),
                         " · misplaced ", num(cp.get("misplaced")))
    rate = cp.get("bytes_per_sec")
    text.append(f" · {rate / (1 << 20):.1f} MiB/s" if rate is not None else " · speed —")
    eta = cp.get("eta_seconds")
    text.append(f" · ETA {fmt.duration(eta)}" if eta is not None else " · ETA —")
    settle = cp.get("settle") or 0
    clean = cp.get("clean_for") or 0
    text.append(f" · clean for {clean:.0f} s of {settle:.0f} s",
                style=pal.ok if settle and clean >= settle else "")
    safe = cp.get("safe")
    text.append(" · safe to destroy: ")
    text.append(fmt.yes_no(safe), style=pal.ok if safe else pal.warn)
    if safe is False and cp.get("safe_reason"):
        text.append(f" ({cp['safe_reason']})", style=pal.muted)
    return text


def action_detail(a: "Action", p: "DecomPlan", pal: Palette, can_run: bool) -> Text:
    """The step under the cursor: where it is in the procedure, its exact commands and
    where each runs, why it is done so, and what stops it."""
    text = Text.assemble((f"Step {a.step} of {STEPS}: {a.title}", pal.strong), "  ",
                         state_text(a, pal))
    runs = where(a, p.host)
    if not runs:
        text.append("\nRuns no command: it reads Ceph until the data has moved.",
                    style=pal.muted)
    for cmd, at in runs:
        text.append("\n$ ", style=pal.muted)
        text.append(cmd, style=pal.strong)
        text.append(f"   ({at})", style=pal.muted)
    if a.note:
        text.append(f"\nWhy: {a.note}", style=pal.muted)
    if a.blocked:
        text.append("\nBlocked: ", style=f"bold {pal.warn}")
        text.append(a.blocked)
    elif a.state == "next" and can_run:
        text.append("\nenter runs it (asks first, showing these commands)", style=pal.ok)
    return text


# ---- the screen ------------------------------------------------------------------------------
class DecommissionScreen(ConsoleScreen):
    CSS_PATH = _HERE / "decommission.tcss"
    BINDINGS = [
        # Priority: enter runs the next step wherever the cursor is (the dialog names it);
        # when it cannot run, enter falls through to the table.
        Binding("enter", "run_next", "Run next step", priority=True,
                id="decommission.run"),
        Binding("r", "read_again", "Read Ceph again", id="decommission.read"),
        Binding("t", "open_task", "Open task", id="decommission.task"),
    ]

    def __init__(self, cluster: str, host: str) -> None:
        super().__init__()
        self.cluster = cluster
        self.host_name = host
        self.plan: DecomPlan | None = None
        self.error = ""                 # why the plan could not be read
        self.refused = ""               # the engine's refusal of the last step asked
        self.resumed = False            # the first plan showed steps done already
        self.task_id: int | None = None  # the step followed here
        self._first = True              # no plan read yet
        self._fetching = False
        self._fetched_at = 0.0          # monotonic: when the plan was last read
        self._step_running = False      # a step is being asked for, or runs
        self._finished_here = False     # the last step ran in this screen
        self._task_done: set[int] = set()   # followed tasks whose end was handled
        self._shown_next = ""           # the next step when the plan was last drawn
        self._watching = False

    @property
    def TITLE_TEXT(self) -> str:  # type: ignore[override]
        return f"Decommission {self.host_name} ({self.cluster})"

    def crumbs(self) -> list[str]:
        return ["mvmtui", self.cluster, self.host_name, "decommission"]

    def compose_body(self) -> ComposeResult:
        with Vertical(id="decom-top", classes="panel") as top:
            top.border_title = f"Decommission {self.host_name} from Ceph ({self.cluster})"
            yield Static(id="decom-status", markup=False)
            yield Static(id="decom-checks", markup=False)
        with Vertical(id="decom-task", classes="panel") as task:
            task.border_title = "Step running"
            yield Static(id="decom-task-head", markup=False)
            yield Gauge("Progress", label_width=10, warn=None, bad=None, id="g-decom")
            yield Static(id="decom-progress", markup=False)
            yield Static(id="decom-log", markup=False)
        yield Listing(STEP_COLUMNS, "step", id="decom-steps")
        detail = Static(id="decom-detail", classes="panel", markup=False)
        detail.border_title = "Selected step"
        yield detail

    def on_mount(self) -> None:
        # (ConsoleScreen's on_mount runs after this one: reload, focus.)
        self.engine.ceph_watch(self.cluster, True)
        self._watching = True
        self.query_one("#decom-task").display = False
        running = [t for t in self.engine.tasks(self.cluster, target=self.host_name,
                                                unfinished=True, limit=20)
                   if t.kind == KIND]
        if running:                 # a step still runs (started here before, or elsewhere)
            self.task_id = running[0].id
            self._step_running = True
        self.fetch()

    def on_unmount(self) -> None:
        if self._watching:
            self._watching = False
            self.engine.ceph_watch(self.cluster, False)

    def focus_first(self) -> None:
        self.query_one("#decom-steps", Listing).table.focus(scroll_visible=False)

    # -- reading the plan ------------------------------------------------------------------
    def fetch(self) -> None:
        self._fetching = True
        self.run_worker(self._fetch(), exclusive=True, group="decom-plan",
                        exit_on_error=False)

    async def _fetch(self) -> None:
        try:
            plan = await self.engine.decommission_plan(self.cluster, self.host_name)
        except (EngineError, InventoryError) as exc:
            self.plan, self.error = None, str(exc)
        except Exception as exc:  # never a traceback on screen
            from ..app import unexpected
            self.plan, self.error = None, unexpected(exc)
        else:
            self.plan, self.error = plan, ""
            if self._first:     # the first plan read: did a decommission start before?
                self._first = False
                self.resumed = plan.started and not plan.absent
        finally:
            self._fetching = False
            self._fetched_at = time.monotonic()
        if self.is_attached:
            self.show_plan()

    # -- drawing -------------------------------------------------------------------------------
    def reload(self) -> None:
        self.show_plan()
        self.show_task()

    def tick(self) -> None:
        """Ages move on; an idle wizard reads Ceph again now and then (another admin
        box may have moved on meanwhile)."""
        self.show_task()
        self._show_age()
        if (not self._step_running and not self._fetching
                and time.monotonic() - self._fetched_at >= REREAD_IDLE):
            self.fetch()

    def show_plan(self) -> None:
        pal, p = self.palette, self.plan
        status = self.query_one("#decom-status", Static)
        checks = self.query_one("#decom-checks", Static)
        steps = self.query_one("#decom-steps", Listing)
        if p is None:
            checks.display = False
            steps.display = True
            steps.set_rows([])
            status.update(Text(self.error, style=pal.bad) if self.error else
                          Text(f"Reading Ceph for {self.host_name}…", style=pal.muted))
            self._show_detail()
            self.refresh_bindings()
            return
        self._show_age()
        checks.display = bool(p.checks) and not p.absent
        checks.update(checks_text(p, pal, short=p.started and not p.refusal))
        status.update(self._status_text(p))
        steps.display = not p.absent        # nothing of Ceph left: no step to list
        steps.set_rows(step_rows(p, pal))
        nxt = p.next
        if nxt is not None and nxt.key != self._shown_next:
            steps.table.move_cursor_to_key(nxt.key)     # a new next step: in view
        self._shown_next = nxt.key if nxt is not None else ""
        self._show_detail()
        self.refresh_bindings()

    def _show_age(self) -> None:
        """How old the plan's reading of Ceph is, on the panel's edge."""
        p = self.plan
        self.query_one("#decom-top").border_subtitle = (
            "" if p is None else f"Ceph read {fmt.ago(max(0.0, self.now() - p.read_at))}")

    def _status_text(self, p: "DecomPlan") -> Text:
        pal, host = self.palette, self.host_name
        text = Text()
        if self.refused:
            text.append("Not run: ", style=pal.alarm)
            text.append(self.refused + "\n")
        if p.absent:
            if self._finished_here:
                text.append(f"Finished: {host} is no longer part of Ceph.", style=f"bold {pal.ok}")
                text.append(f"\nCeph shows no OSD, monitor, manager or CRUSH bucket of {host}; "
                            f"History has every step, with its commands and Ceph's answers.",
                            style=pal.muted)
            else:
                text.append(f"{host} has nothing of Ceph: no OSD, monitor, manager or CRUSH "
                            f"bucket (any more). Nothing to do.", style=pal.ok)
            return text
        if self.resumed:
            text.append("Resumed: ", style=f"bold {pal.accent}")
            text.append("Ceph shows steps done already (a decommission started before); "
                        "it goes on at the next step. Checks 1–3 gate the start only.\n")
        if p.refusal:
            text.append("REFUSED: ", style=pal.alarm)
            text.append(p.refusal)
            return text
        if self._step_running:
            text.append("A step runs: ", style=pal.busy)
            text.append("the plan is read again from Ceph once it ends.")
            return text
        nxt = p.next
        if p.finished or nxt is None:
            text.append("Every step is done." if p.finished else
                        "No step can run now: read Ceph again (r).",
                        style=pal.ok if p.finished else pal.warn)
            return text
        text.append(f"Next: step {nxt.step} of {STEPS}, {nxt.title}", style=pal.strong)
        if nxt.blocked:
            text.append(" — blocked: ", style=f"bold {pal.warn}")
            text.append(nxt.blocked)
        else:
            why = self.mvm.changes_refused("decommissioning a host")
            text.append(f" · {why}" if why else " · enter runs it (asks first)",
                        style=pal.warn if why else pal.ok)
        return text

    def _cursor_action(self) -> "Action | None":
        p = self.plan
        key = self.query_one("#decom-steps", Listing).table.cursor_key
        if p is None or key is None:
            return None
        return next((a for a in p.actions if a.key == key), None)

    def _show_detail(self) -> None:
        pal = self.palette
        detail = self.query_one("#decom-detail", Static)
        a, p = self._cursor_action(), self.plan
        detail.display = a is not None
        if a is not None and p is not None:
            detail.update(action_detail(a, p, pal, self._can_run()))

    @on(FastTable.CursorMoved, "#decom-steps-table")
    def _row_moved(self, message: FastTable.CursorMoved) -> None:
        self._show_detail()

    @on(FastTable.RowSelected, "#decom-steps-table")
    def _row_selected(self, message: FastTable.RowSelected) -> None:
        """enter on a step that cannot run now: why not (the next one runs with enter)."""
        p = self.plan
        if p is None:
            return
        a = next((x for x in p.actions if x.key == message.key), None)
        if a is None:
            return
        if a.state == "done":
            self.notify(f"Step {a.step}, {a.title}: Ceph shows it done already.")
        elif p.refusal:
            self.notify(f"Refused: {p.refusal}", severity="error", timeout=15)
        elif a.blocked:
            self.notify(f"{a.title}: {a.blocked}", severity="warning", timeout=15)
        elif self._step_running:
            self.notify("A step runs now: the next one can run once it ends.",
                        severity="warning")
        elif a.state == "pending" and p.next is not None:
            self.notify(f"Steps run in order: {p.next.title} (step {p.next.step}) comes "
                        f"first.", severity="warning")

    # -- the followed step ----------------------------------------------------------------------
    def show_task(self) -> None:
        panel = self.query_one("#decom-task")
        if self.task_id is None:
            panel.display = False
            return
        try:
            t = self.engine.task(self.task_id)
        except EngineError:
            panel.display = False
            return
        pal, now = self.palette, self.now()
        panel.display = True
        panel.border_title = f"Step running · task {t.id}" if not t.status.finished \
            else f"Last step · task {t.id}"
        head = Text.assemble((t.title.removeprefix(f"Decommission {self.host_name}: "),
                              pal.strong), "  ", task_status_text(t, pal))
        if t.error:
            head.append(f"\n{t.error}", style=pal.alarm)
        self.query_one("#decom-task-head", Static).update(head)
        gauge = self.query_one("#g-decom", Gauge)
        ended_badly = t.status.finished and t.status is not TaskStatus.SUCCEEDED
        gauge.show(None if ended_badly else t.progress, 1.0,
                   t.status.value if t.status.finished else "")
        progress = progress_text(t.checkpoint, pal) if not t.status.finished else None
        line = self.query_one("#decom-progress", Static)
        line.display = progress is not None
        if progress is not None:
            line.update(progress)
        # A line each (t opens the task, with its whole log).
        logs = Table.grid(padding=(0, 1))
        logs.add_column(no_wrap=True, style=pal.muted, min_width=8)
        logs.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        for entry in t.logs[-LOG_TAIL:]:
            logs.add_row(fmt.clock(entry.at, now), Text.assemble(
                log_level_text(entry.level, pal) if entry.level != "info" else "",
                " " if entry.level != "info" else "", entry.message))
        self.query_one("#decom-log", Static).update(logs)
        self._show_detail()
        if t.status.finished and t.id not in self._task_done:
            self._task_done.add(t.id)
            self._step_ended(t)

    def _step_ended(self, t: Task) -> None:
        """What Ceph shows decides: read the plan again."""
        self._step_running = False
        self._show_detail()
        if t.status is TaskStatus.SUCCEEDED:
            self._finished_here = True       # "Finished" if Ceph now shows nothing left
        self.refresh_bindings()
        self.fetch()

    def apply_changes(self, changes: Changes) -> None:
        if self.task_id is not None and self.task_id in changes.tasks:
            self.show_task()
            if self.plan is not None:
                self.query_one("#decom-status", Static).update(self._status_text(self.plan))
            return
        # A step started elsewhere (another console on this inventory): follow it.
        started = [t for t in changes.tasks.values()
                   if t.kind == KIND and t.cluster == self.cluster
                   and t.target == self.host_name and not t.status.finished]
        if started:
            self.task_id, self._step_running = started[0].id, True
            self.show_task()
            self.refresh_bindings()

    def on_ceph_update(self, message: CephUpdate) -> None:
        """A fresh summary says nothing the plan's own reading did not; the plan is read
        on its own (reading it again here would read Ceph on every reading)."""

    # -- running a step ----------------------------------------------------------------------
    def _can_run(self) -> bool:
        p = self.plan
        return (p is not None and not p.refusal and p.next is not None and not p.next.blocked
                and not self._step_running and not self._fetching
                and not self.mvm.changes_refused("decommissioning a host"))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "run_next":
            # enter in the steps' filter bar keeps the filter; it runs nothing.
            return self._can_run() and not isinstance(self.focused, Input)
        if action == "open_task":
            return self.task_id is not None
        return super().check_action(action, parameters)

    def action_read_again(self) -> None:
        self.refused = ""
        self.fetch()

    def action_open_task(self) -> None:
        if self.task_id is not None:
            self.mvm.open_task(self.task_id)

    def action_run_next(self) -> None:
        p = self.plan
        if not self._can_run() or p is None or p.next is None:
            return
        a = p.next
        from .confirm import ConfirmScreen
        runs = where(a, p.host)
        facts = "\n".join(f"$ {cmd}   ({at})" for cmd, at in runs) if runs else \
            "No command: the step reads Ceph until the data has moved."
        if a.key.startswith("wait:"):
            body = ("Every PG must be active+clean, nothing degraded or misplaced, for the "
                    "cluster's settle time without a break, and `ceph osd safe-to-destroy` "
                    "must agree. You can cancel the wait (c on its task).")
        else:
            body = ("The commands run in this order; the first that Ceph refuses stops the "
                    "step, with Ceph's answer. The step is done once Ceph shows it done.")
        if a.note:
            body += f"\n\nWhy: {a.note}"

        def decided(yes: bool | None) -> None:
            if yes:
                self._step_running = True
                self._show_detail()
                self.refresh_bindings()
                self.run_worker(self._run(a.key), exclusive=True, group="decom-step",
                                exit_on_error=False)

        self.app.push_screen(ConfirmScreen(
            f"Step {a.step} of {STEPS} on {p.host}: {a.title}?", body, facts=facts,
            question="Run it now? (y/N)", yes_label=f"Run step {a.step}",
            kind="confirm" if runs else "move", yes_variant="error" if runs else "primary"),
            decided)

    async def _run(self, key: str) -> None:
        self.refused = ""
        try:
            # The engine refuses if the plan changed since it was shown (nothing runs).
            task = await self.engine.decommission_step(self.cluster, self.host_name, key)
        except (EngineError, Busy, InventoryError, NotFound) as exc:
            self._refused(str(exc))
            return
        except Exception as exc:  # never a traceback on screen
            from ..app import unexpected
            self._refused(unexpected(exc))
            return
        self.task_id = task.id
        follow_task(self.app, task)
        if self.is_attached:
            self.show_task()
            if self.plan is not None:
                self.query_one("#decom-status", Static).update(self._status_text(self.plan))

    def _refused(self, why: str) -> None:
        self._step_running = False
        self.refused = why
        self.notify(why, title="Decommission", severity="error", timeout=15)
        if self.is_attached:
            self.fetch()
