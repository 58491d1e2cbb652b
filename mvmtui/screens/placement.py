"""Manage Placement (P on a VM): its strategy (Auto, Failover, Pinned), its restart
priority after a host loss (High, Medium, Low: high ones restart first, and when room
runs out it is the low ones that wait) and, if asked, a move to another host, with
every other host's fit or the reason it does not fit.

Nothing happens until Apply and a yes: the strategy and priority are changed first (a
pinned VM must stop being pinned before it may move), then the move starts as a task
and its screen opens (progress, cancel). A refusal is shown in the dialog; nothing
changes.
"""
from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Checkbox, OptionList, RadioButton, RadioSet, Static
from textual.widgets.option_list import Option

from ..engine.errors import Busy, EngineError, InventoryError, NotFound
from ..engine.model import PRIORITIES, HostFit, MoveRequest, Strategy, TaskStatus, Vm, VmState
from ..widgets import format as fmt
from ..widgets.footer import KeysBar
from .follow import follow_task
from .rows import Palette, placement_text

_HERE = Path(__file__).parent
STAY = "\0stay"        # the option id of "stay where it is"

STRATEGY_WORDS = {
    Strategy.AUTO: "moved by load, for maintenance and when its host is lost",
    Strategy.FAILOVER: "moved only when its host is lost, or for maintenance",
    Strategy.PINNED: "never moved from its home host",
}
PRIORITY_WORDS = {
    "high": "restarts first when its host is lost",
    "medium": "restarts after the high ones when its host is lost",
    "low": "restarts last when its host is lost: the first to wait when room runs out",
}


def manage_placement(app: App, vm: Vm | None) -> None:
    """P (or the palette) on a VM: the dialog, unless no change can be made here."""
    why = app.changes_refused("changing a VM's placement")  # type: ignore[attr-defined]
    if why:
        app.notify(why, severity="error")
        return
    if vm is None:
        return
    app.push_screen(PlacementScreen(vm))


def host_option(fit: HostFit, pal: Palette) -> Option:
    """"kvm-02  fits · best: kvm-02 has the most room", or why not (not selectable)."""
    if fit.fits:
        words = Text.assemble((f"{fit.host:<10}", pal.strong), "  ",
                              ("fits", pal.ok))
        if fit.best:
            words.append(" · best" + (f": {fit.reason}" if fit.reason else ""), style=pal.ok)
        return Option(words, id=fit.host)
    return Option(Text.assemble((f"{fit.host:<10}", pal.muted), "  ",
                                (f"no: {fit.why_not}", pal.muted)), id=fit.host, disabled=True)


class PlacementScreen(ModalScreen[None]):
    """One VM's placement. The operator picks a strategy, a restart priority, a host
    (or to stay) and the move's options; the plan line says what Apply will do, or
    why it cannot."""

    CSS_PATH = [_HERE / "dialogs.tcss", _HERE / "placement.tcss"]
    BINDINGS = [
        Binding("a", "apply", "Apply", id="placement.apply"),
        Binding("escape", "cancel", "Cancel", id="placement.cancel"),
        # A modal screen hides the app's keys: its help is its own.
        Binding("question_mark", "app.help", "Help", key_display="?", id="placement.help"),
    ]

    def __init__(self, vm: Vm) -> None:
        super().__init__(classes="dialog-screen")
        self.uuid = vm.uuid
        self.vm: Vm | None = vm
        self.strategy = Strategy.AUTO
        self.priority = vm.priority
        self.target = ""                  # "" = stay where it is
        self.fits: list[HostFit] = []
        self.busy = False                 # applying: keys wait

    @property
    def engine(self):
        return self.app.engine  # type: ignore[attr-defined]

    @property
    def palette(self) -> Palette:
        return self.app.palette  # type: ignore[attr-defined]

    # -- layout ---------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        try:
            self.vm = self.engine.vm(self.uuid)      # as it is now
        except NotFound:
            pass                                      # gone since: Apply says so
        vm = self.vm
        assert vm is not None
        self.strategy = vm.strategy
        self.priority = vm.priority
        running = vm.state.active
        with Vertical(classes="dialog placement"):
            yield Static(f"Manage placement: {vm.name}", classes="dialog-title", markup=False)
            yield Static(self._facts(vm), id="placement-facts", classes="dialog-facts")
            with Horizontal(id="strategy-row"):
                yield Static("Strategy", classes="placement-label")
                with RadioSet(id="strategy", compact=True):
                    for s in Strategy:
                        yield RadioButton(s.value.capitalize(), value=s is vm.strategy,
                                          id=f"strategy-{s.value}", compact=True)
            with Horizontal(id="priority-row"):
                yield Static("Priority", classes="placement-label")
                with RadioSet(id="priority", compact=True):
                    for p in PRIORITIES:
                        yield RadioButton(p.capitalize(), value=p == vm.priority,
                                          id=f"priority-{p}", compact=True)
            yield Static(id="strategy-means", classes="placement-means", markup=False)
            yield Static(f"Host (now {vm.host})", classes="placement-label")
            yield OptionList(id="hosts")
            with Vertical(id="move-options"):
                if self.engine.storage_issue(vm):     # else its disks are shared already
                    yield Checkbox(f"Copy its disks to the new host (only {vm.host} sees "
                                   f"them)", id="copy-storage", compact=True)
                if running:
                    yield Checkbox("Shut it down first, then move it offline",
                                   id="wait-shutdown", compact=True)
                yield Checkbox("Start it on the new host after an offline move",
                               id="start-after", compact=True, disabled=running)
            yield Static(id="plan", classes="placement-plan")
            yield Static(id="placement-error", classes="dialog-error", markup=False)
            yield Static("tab: strategy · priority · host · options — a applies · esc cancels",
                         classes="dialog-hint", markup=False)
        yield KeysBar()

    def _facts(self, vm: Vm) -> Text:
        state = vm.state.value + (" (stale)" if vm.stale else "")
        return Text(f"{vm.name} · {state} on {vm.host} · {vm.vcpus} vCPUs · "
                    f"{fmt.size_mib(vm.memory_mib)} · placement {placement_text(vm)}")

    def on_mount(self) -> None:
        # The arrows start from the choice in effect (RadioSet starts at its first).
        for radio in self.query(RadioSet):
            radio._selected = radio.pressed_index if radio.pressed_index >= 0 else 0
        self.query_one("#placement-error", Static).display = False
        self._load_hosts()
        self._update()
        self.query_one("#hosts", OptionList).focus()

    # -- choices ------------------------------------------------------------------------
    def _checked(self, name: str) -> bool:
        boxes = self.query(f"#{name}").results(Checkbox)
        box = next(boxes, None)
        return bool(box and box.value and not box.disabled)

    def _load_hosts(self) -> None:
        """The hosts as targets now (again after "copy storage" changes their fit)."""
        vm = self.vm
        assert vm is not None
        try:
            self.fits = self.engine.placement_options(vm.uuid, self._checked("copy-storage"))
        except EngineError as exc:
            self.fits = []
            self._say(str(exc))
        pal = self.palette
        hosts = self.query_one("#hosts", OptionList)
        keep = self.target
        hosts.clear_options()
        hosts.add_option(Option(Text.assemble((f"{vm.host:<10}", pal.strong), "  ",
                                              ("stay here (no move)", pal.muted)), id=STAY))
        hosts.add_options([host_option(f, pal) for f in self.fits])
        ids = [STAY] + [f.host for f in self.fits]
        fitting = {f.host for f in self.fits if f.fits}
        self.target = keep if keep in fitting else ""
        hosts.highlighted = ids.index(self.target or STAY)

    @on(RadioSet.Changed, "#strategy")
    def _strategy_changed(self, event: RadioSet.Changed) -> None:
        self.strategy = Strategy(event.pressed.id.removeprefix("strategy-"))
        self._update()

    @on(RadioSet.Changed, "#priority")
    def _priority_changed(self, event: RadioSet.Changed) -> None:
        self.priority = event.pressed.id.removeprefix("priority-")
        self._update()

    @on(OptionList.OptionHighlighted, "#hosts")
    def _host_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.target = "" if event.option.id == STAY else (event.option.id or "")
        self._update()

    @on(OptionList.OptionSelected, "#hosts")
    def _host_selected(self, event: OptionList.OptionSelected) -> None:
        self.action_apply()

    @on(Checkbox.Changed)
    def _option_changed(self, event: Checkbox.Changed) -> None:
        if event.checkbox.id == "copy-storage":
            self._load_hosts()
        elif event.checkbox.id == "wait-shutdown":
            self.query_one("#start-after", Checkbox).disabled = not event.value
        self._update()

    # -- what Apply would do ---------------------------------------------------------------
    def request(self) -> MoveRequest | None:
        vm = self.vm
        if vm is None or not self.target:
            return None
        wait = self._checked("wait-shutdown")
        offline = wait or not vm.state.active
        return MoveRequest(vm=vm.uuid, target=self.target, offline=offline,
                           wait_shutdown=wait,
                           start_after=offline and self._checked("start-after"),
                           copy_storage=self._checked("copy-storage"))

    def plan(self) -> tuple[list[str], str]:
        """(what Apply does, step by step; why it cannot, or "")."""
        vm = self.vm
        assert vm is not None
        steps: list[str] = []
        if self.strategy is not vm.strategy:
            home = f" (home {vm.home or vm.host})" if self.strategy is Strategy.PINNED else ""
            steps.append(f"Placement {vm.strategy.value} → {self.strategy.value}{home}.")
        if self.priority != vm.priority:
            steps.append(f"Restart priority {vm.priority} → {self.priority}: "
                         f"{PRIORITY_WORDS[self.priority]}.")
        req = self.request()
        if req is None:
            return steps, "" if steps else ("Nothing to change: pick a strategy, a priority "
                                            "or a host.")
        if self.strategy is Strategy.PINNED:
            return steps, (f"A pinned VM never moves: choose Auto or Failover to move "
                           f"{vm.name} (then pin it on its new host).")
        if vm.strategy is Strategy.PINNED:
            method = "offline" if req.offline else "live"     # checked once unpinned
        else:
            try:
                _vm, method = self.engine.check_move(req)
            except EngineError as exc:
                return steps, str(exc)
        steps.append(self.move_words(vm, req, method))
        return steps, ""

    @staticmethod
    def move_words(vm: Vm, req: MoveRequest, method: str) -> str:
        disks = " and its disks" if req.copy_storage else ""
        if method == "live":
            return (f"Migrate {vm.name} live from {vm.host} to {req.target}: it keeps "
                    f"running while its memory{disks} is copied, then pauses briefly to "
                    f"switch over.")
        first = (f"Shut {vm.name} down (ACPI; it waits for the guest), then move"
                 if req.wait_shutdown else f"Move {vm.name} ({vm.state.value})")
        after = f", then start it on {req.target}" if req.start_after else \
            f"; it stays shut off on {req.target}"
        return f"{first} offline from {vm.host} to {req.target}{after}."

    def _update(self) -> None:
        if self.vm is None or not self.is_mounted:
            return
        pal = self.palette
        self.query_one("#strategy-means", Static).update(
            f"{self.strategy.value.capitalize()}: {STRATEGY_WORDS[self.strategy]}")
        steps, why = self.plan()
        plan = Text()
        for n, step in enumerate(steps, 1):
            plan.append(f"{n}. " if len(steps) > 1 else "", style=pal.muted)
            plan.append(step + ("\n" if n < len(steps) else ""))
        if why:
            if steps:
                plan.append("\n")
            plan.append(why, style=pal.warn)
        self.query_one("#plan", Static).update(plan)
        self._say("")

    def _say(self, error: str, unchanged: bool = True) -> None:
        """A refusal in the dialog; `unchanged`: it says that nothing was changed
        (unless the engine's words say so already)."""
        box = self.query_one("#placement-error", Static)
        if error and unchanged and "changed" not in error:
            error += " Nothing was changed."
        box.update(error)
        box.display = bool(error)

    # -- applying ---------------------------------------------------------------------------
    def action_cancel(self) -> None:
        if not self.busy:
            self.dismiss(None)

    def action_apply(self) -> None:
        if self.busy or self.vm is None:
            return
        steps, why = self.plan()
        if why:
            self._say(why)
            return
        vm = self.vm
        from .confirm import ConfirmScreen

        def decided(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._apply(), exclusive=True, exit_on_error=False)

        body = "\n".join(f"{n}. {s}" if len(steps) > 1 else s for n, s in enumerate(steps, 1))
        shutdown = (req := self.request()) is not None and req.wait_shutdown
        self.app.push_screen(ConfirmScreen(
            f"Apply the placement of {vm.name}?", body, question="Go ahead? (y/N)",
            yes_label="Apply", kind="confirm" if shutdown else "move",
            yes_variant="error" if shutdown else "primary"), decided)

    async def _apply(self) -> None:
        vm = self.vm
        assert vm is not None
        self.busy = True
        self.query_one("#plan", Static).update(Text("Applying…", style=self.palette.busy))
        try:
            await self._do(vm)
        finally:
            self.busy = False
            if self.is_attached:
                self._update_after_refusal()

    def _update_after_refusal(self) -> None:
        error = self.query_one("#placement-error", Static)
        shown = error.display, str(error.render())
        self._update()
        if shown[0]:                  # _update() clears it: keep the refusal in view
            error.update(shown[1])
            error.display = True

    async def _do(self, vm: Vm) -> None:
        engine, req = self.engine, self.request()
        changed = ""
        strategy = self.strategy.value if self.strategy is not vm.strategy else None
        priority = self.priority if self.priority != vm.priority else None
        if strategy or priority:
            try:
                task = await engine.set_placement(vm.uuid, strategy, None, priority)
            except (EngineError, Busy, InventoryError) as exc:
                self._say(str(exc))
                return
            if task.status is not TaskStatus.SUCCEEDED:
                self._say(f"The placement was not changed: {task.error or task.status.value} "
                          f"(task {task.id}).")
                return
            changed = ", ".join(w for w in (strategy, priority and f"priority {priority}") if w)
            try:
                self.vm = vm = engine.vm(vm.uuid)
            except NotFound:
                pass
            self.query_one("#placement-facts", Static).update(self._facts(vm))
        if req is None:
            now = placement_text(vm) + (f", restart priority {vm.priority}" if priority else "")
            self.app.notify(f"Placement of {vm.name}: now {now}.")
            self.dismiss(None)
            return
        try:
            task = await engine.migrate_vm(req)
        except (EngineError, Busy, InventoryError) as exc:
            if changed:
                self._say(f"The placement is now {changed}, but the move was refused: {exc}",
                          unchanged=False)
            else:
                self._say(str(exc))
            return
        self.dismiss(None)
        target = req.target
        follow_task(self.app, task, lambda end: _where_now(self.app, vm.uuid, target))
        self.app.open_task(task.id)  # type: ignore[attr-defined]


def _where_now(app: App, uuid: str, target: str) -> str:
    vm = app.engine.vm(uuid)  # type: ignore[attr-defined]
    state = "runs" if vm.state is VmState.RUNNING else f"is {vm.state.value}"
    return f"{vm.name} {state} on {vm.host}"
