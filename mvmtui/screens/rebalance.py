"""Rebalance (R on a cluster, DRS): the preview — the threshold, the balance before and
after, each host's load before and after, every move with its reason and what was
left out — then Apply (a, asks first): one task whose parts are the live moves.

What was shown is what runs: the engine refuses if the plan changed since (VMs or
load moved meanwhile), and the preview is read again.
"""
from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from ..engine.errors import Busy, EngineError, InventoryError, NotFound
from ..engine.model import RebalancePreview, Task, TaskStatus
from ..widgets import format as fmt
from ..widgets.fast_table import Column, FastTable
from ..widgets.listing import Listing, plural
from .base import Changes, ConsoleScreen
from .follow import follow_task
from .ha import WatchBanner
from .maintenance import MOVE_COLUMNS, move_cells
from .rows import Palette

_HERE = Path(__file__).parent
LEVELS = {1: ("one", "conservative: only a clear imbalance"), 2: ("two", ""),
          3: ("three", "moderate"), 4: ("four", ""),
          5: ("five", "aggressive: even small differences")}
BAR = 10            # cells of a load bar

LOAD_COLUMNS = [
    Column("host", "Host", 12, min_width=10),
    Column("before", "Load now", 18, min_width=16),
    Column("after", "After the moves", 18, priority=1, min_width=16),
]


def load_text(load: float, pal: Palette) -> Text:
    """A small bar and the load: "━━━━━━━━━━  53%" (over 100 % the bar is full)."""
    pct = load * 100
    filled = round(min(pct, 100.0) / 100 * BAR)
    style = pal.bad if pct >= 90 else pal.warn if pct >= 75 else pal.ok
    return Text.assemble(("━" * filled, style), ("━" * (BAR - filled), pal.muted),
                         f" {fmt.percent(pct):>5}")


def load_rows(p: RebalancePreview, pal: Palette) -> list[tuple[str, tuple]]:
    after = dict(p.loads_after)
    return [(host, (host, load_text(before, pal),
                    load_text(after[host], pal) if host in after else fmt.DASH))
            for host, before in p.loads_before]


class RebalanceScreen(ConsoleScreen):
    CSS_PATH = [_HERE / "rebalance.tcss", _HERE / "ha.tcss"]
    BINDINGS = [
        Binding("a", "apply", "Apply", id="rebalance.apply"),
        *[Binding(str(n), f"threshold({n})", f"Threshold {n}"
                  + (f" ({words.split(':')[0]})" if words else ""), show=False,
                  id=f"rebalance.threshold_{name}")
          for n, (name, words) in LEVELS.items()],
    ]

    def __init__(self, cluster: str) -> None:
        super().__init__()
        self.cluster = cluster
        self.threshold: int | None = None     # None: the cluster's drs-threshold
        self.preview: RebalancePreview | None = None
        self._busy = False                    # applying: a waits

    @property
    def TITLE_TEXT(self) -> str:  # type: ignore[override]
        return f"Rebalance {self.cluster}"

    def crumbs(self) -> list[str]:
        return ["mvmtui", self.cluster, "rebalance"]

    def compose_body(self) -> ComposeResult:
        yield WatchBanner(self.cluster)
        with Vertical(id="drs-top", classes="panel") as top:
            top.border_title = f"Rebalance (DRS): {self.cluster}"
            yield Static(id="drs-summary")
        yield Listing(LOAD_COLUMNS, "host", id="loads")
        yield Listing(MOVE_COLUMNS, "move", id="drs-moves")
        yield Static(id="drs-skipped")

    def focus_first(self) -> None:
        self.query_one("#drs-moves", Listing).table.focus(scroll_visible=False)

    # -- data ---------------------------------------------------------------------------
    def reload(self) -> None:
        c, engine = self.cluster, self.engine
        try:
            threshold = self.threshold or engine.policy(c).drs_threshold
        except NotFound as exc:
            self._show(None, str(exc))
            return
        self.planned("drs", lambda: engine.rebalance_preview(c, threshold), self._show,
                     len(engine.vms(c)))

    def _show(self, p: RebalancePreview | None, error: str) -> None:
        pal = self.palette
        summary = self.query_one("#drs-summary", Static)
        self.preview = p
        if p is None:
            summary.update(Text(error, style=pal.bad))
            self.query_one("#drs-moves", Listing).set_rows([])
            self.refresh_bindings()
            return
        self.query_one("#loads", Listing).set_rows(load_rows(p, pal))
        vms = {}
        for r in p.moves:
            try:
                vms[r.vm] = self.engine.vm(r.vm)
            except NotFound:
                pass
        self.query_one("#drs-moves", Listing).set_rows(
            [(r.vm, move_cells(r, vms.get(r.vm), pal)) for r in p.moves])
        summary.update(self._summary(p))
        skipped = self.query_one("#drs-skipped", Static)
        skipped.display = bool(p.skipped)
        skipped.update(Text("Left out: " + "; ".join(p.skipped) + ".", style=pal.muted))
        self.refresh_bindings()

    def _summary(self, p: RebalancePreview) -> Text:
        pal = self.palette
        words = LEVELS.get(p.threshold, ("", ""))[1]
        text = Text.assemble(("Threshold ", pal.strong), (f"{p.threshold} of 5", pal.strong),
                             (f" ({words})" if words else ""),
                             ("  ·  keys 1–5 change it: 1 moves least, 5 most\n", pal.muted))
        text.append(f"Imbalance {p.before:.3f} → {p.after:.3f} ", style=pal.strong)
        text.append("(the spread of the hosts' loads; 0 is even)\n", style=pal.muted)
        if not p.moves:
            text.append(f"Nothing to move: {self.cluster} is balanced enough at threshold "
                        f"{p.threshold}.", style=pal.ok)
            return text
        at_once = self.engine.policy(self.cluster).migration_concurrency
        text.append(f"{plural(len(p.moves), 'move')}, each a live migration, {at_once} at "
                    f"a time, as one task. ", style=pal.strong)
        why = self.mvm.changes_refused("rebalancing")
        if why:
            text.append(why, style=pal.warn)
        else:
            text.append("a applies (asks first).", style=pal.ok)
        return text

    def apply_changes(self, ch: Changes) -> None:
        c = self.cluster
        if (any(k[0] == c for k in ch.hosts) or any(v.cluster == c for v in ch.vms.values())
                or c in ch.removed.values()):
            self.throttle("preview", self.reload, 2.0)

    @on(FastTable.RowSelected, "#drs-moves-table")
    def _open_row(self, message: FastTable.RowSelected) -> None:
        self.mvm.open_vm(message.key)

    # -- keys ---------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "apply":
            return (self.preview is not None and bool(self.preview.moves) and not self._busy
                    and not self.mvm.changes_refused("rebalancing"))
        return super().check_action(action, parameters)

    def action_threshold(self, n: int) -> None:
        self.threshold = n
        self.reload()

    def action_apply(self) -> None:
        p = self.preview
        if p is None or not p.moves or self._busy:
            return
        from .confirm import ConfirmScreen

        def decided(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._apply(p), exclusive=True, exit_on_error=False)

        body = (f"{plural(len(p.moves), 'VM')} move live, each a migration of its own: "
                + ", ".join(f"{r.name} → {r.target}" for r in p.moves)
                + f". Imbalance {p.before:.3f} → {p.after:.3f} expected.")
        self.app.push_screen(ConfirmScreen(
            f"Rebalance {self.cluster}?", body, question="Move them now? (y/N)",
            yes_label="Rebalance", kind="move", yes_variant="primary"), decided)

    async def _apply(self, p: RebalancePreview) -> None:
        self._busy = True
        try:
            task = await self.engine.rebalance(self.cluster, expect=p, threshold=p.threshold)
        except (EngineError, Busy, InventoryError) as exc:
            self.notify(f"Rebalance {self.cluster}: {exc}", severity="error", timeout=15)
            self.reload()
            return
        finally:
            self._busy = False
        engine = self.engine
        follow_task(self.app, task, lambda end: moved_words(engine, end))
        if self.app.screen is self:
            self.app.pop_screen()
        self.mvm.open_task(task.id)



def moved_words(engine, end: Task) -> str:
    """"2 of 2 VMs moved": the rebalance's parts that succeeded."""
    parts = engine.task_children(end.id)
    done = sum(t.status is TaskStatus.SUCCEEDED for t in parts)
    return f"{done} of {plural(len(parts), 'VM')} moved"
