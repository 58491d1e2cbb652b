"""The console: screen stack, global keys, command palette, engine events.

Engine events arrive on an engine thread. `_on_engine_event` only files them in a
dict under a lock (latest event per host / VM / task wins); a 10 Hz timer on the
UI loop swaps the dict out and posts one `EngineChanges` message to each console
screen on the stack, so a burst of 10,000 events costs one table update per row.
"""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.worker import Worker

from . import launch
from .engine.engine import VM_ACTIONS, Engine
from .engine.errors import EngineError, InventoryError
from .engine.model import (Event, HostChanged, HostKeyQuestion, TaskChanged, TaskStatus,
                           VmChanged, VmRemoved)
from .engine.tasks import Busy
from .screens.base import Changes, ConsoleScreen, EngineChanges
from .screens.rows import Palette

_HERE = Path(__file__).parent
FLUSH_INTERVAL = 0.1     # seconds between engine-event flushes (10 Hz)
TICK_INTERVAL = 5.0      # seconds between age refreshes of the visible screen
THEME = "textual-dark"


class ConsoleCommands(Provider):
    """Every action by name: the current screen's keys, and open any cluster,
    host or VM."""

    def _commands(self, with_inventory: bool) -> list[tuple[str, str, object]]:
        app: MvmApp = self.app  # type: ignore[assignment]
        screen = self.screen
        out: list[tuple[str, str, object]] = []
        seen: set[tuple[str, str]] = set()
        for key, active in screen.active_bindings.items():
            b = active.binding
            if (b.system or not b.description or not active.enabled
                    or b.action in ("command_palette", "app.command_palette")):
                continue
            name = (b.description, b.action.removeprefix("app."))
            if name in seen:
                continue
            seen.add(name)

            async def run(action=b.action, node=active.node) -> None:
                await app.run_action(action, node)
            out.append((b.description, f"key {app.get_key_display(b)}", run))
        if with_inventory:
            engine = app.engine
            for c in engine.clusters():
                out.append((f"Open cluster {c.name}", c.layout,
                            lambda name=c.name: app.open_cluster(name)))
            for h in engine.hosts():
                out.append((f"Open host {h.name}", f"{h.cluster} · {h.address} · {h.status.value}",
                            lambda c=h.cluster, n=h.name: app.open_host(c, n)))
            for v in engine.vms():
                out.append((f"Open VM {v.name}",
                            f"{v.cluster} · {v.host} · {v.state.value}"
                            + (" (stale)" if v.stale else ""),
                            lambda u=v.uuid: app.open_vm(u)))
        return out

    async def startup(self) -> None:
        # Built once per palette opening: thousands of VMs are matched per keystroke,
        # not listed again.
        self._all = self._commands(with_inventory=True)

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands(with_inventory=False):
            yield DiscoveryHit(name, callback, help=help_text)
        for c in self.app.engine.clusters():  # type: ignore[attr-defined]
            yield DiscoveryHit(f"Open cluster {c.name}",
                               lambda name=c.name: self.app.open_cluster(name),  # type: ignore
                               help=c.layout)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for n, (name, help_text, callback) in enumerate(self._all):
            if n % 500 == 499:
                await asyncio.sleep(0)   # let keystrokes in on big inventories
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, text=name, help=help_text)


class MvmApp(App):
    # Absolute, so subclasses elsewhere (benchmarks, tests) find the styles too.
    CSS_PATH = [_HERE / "app.tcss", _HERE / "widgets" / "widgets.tcss"]
    TITLE = "mvmtui"
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
        Binding("q", "back", "Back", id="app.back"),
        Binding("escape", "back", "Back", show=False, id="app.escape"),
        Binding("ctrl+r", "refresh", "Refresh", show=False, id="app.refresh"),
        Binding("L", "ask_password", "SSH password…", show=False, id="app.password"),
        Binding("ctrl+p", "command_palette", "Commands", show=False, priority=True,
                id="app.palette"),
    ]

    def __init__(self, engine: Engine, start_cluster: str | None = None) -> None:
        # Imports and the inventory are done: freeze them, collect again. Screens are
        # built with collection on, so a screen left later is collected in full.
        launch.started()
        super().__init__()
        self.engine = engine
        self.readonly = engine.readonly
        self.start_cluster = start_cluster
        self.theme = THEME
        self._palette: tuple[dict, Palette] | None = None
        self._pending: dict[tuple, Event] = {}
        self._pending_lock = threading.Lock()
        self._asked_keys: set[tuple[str, str]] = set()              # dialog open
        # (cluster, host, fingerprint) the operator said No to (or, read-only, could
        # not say yes to): not asked again until ctrl+r.
        self._declined_keys: set[tuple[str, str, str]] = set()
        # Subscribe before the engine connects (run_console starts it after this),
        # so no host-key question is lost; events wait in the dict until mount.
        self._unsubscribe = engine.subscribe(self._on_engine_event)

    # -- life cycle -------------------------------------------------------------------
    def get_default_screen(self):
        """The clusters screen is the bottom of the stack (no empty screen under it)."""
        from .screens.clusters import ClustersScreen

        return ClustersScreen()

    def on_mount(self) -> None:
        if self.start_cluster:
            self.open_cluster(self.start_cluster)
        self.set_interval(FLUSH_INTERVAL, self._flush)
        self.set_interval(TICK_INTERVAL, self._tick)
        # Questions asked before we subscribed: the host still waits with its fingerprint.
        for question in self.engine.pending_host_keys():
            self._on_engine_event(question)

    def on_unmount(self) -> None:
        self._unsubscribe()

    def notify(self, message: str, *, title: str = "", severity="information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Messages carry libvirt's and the engine's text: never parse it as markup."""
        super().notify(message, title=title, severity=severity, timeout=timeout,
                       markup=markup)

    @property
    def palette(self) -> Palette:
        """Status colours from the current theme (ok / warn / bad / accent)."""
        # theme_variables is what the stylesheet was last built with: a new dict after
        # each theme change (generating the theme's colours again costs a few ms).
        variables = self.theme_variables or self.get_css_variables()
        if self._palette is None or self._palette[0] is not variables:
            self._palette = (variables, Palette.from_variables(variables))
        return self._palette[1]

    # -- engine events (engine thread → dict → UI loop) -------------------------------
    def _on_engine_event(self, event: Event) -> None:
        """Called on an engine thread: file the event, never block, touch no widget."""
        if isinstance(event, HostChanged):
            key: tuple = ("host", event.host.cluster, event.host.name)
        elif isinstance(event, (VmChanged, VmRemoved)):
            key = ("vm", event.vm.uuid if isinstance(event, VmChanged) else event.uuid)
        elif isinstance(event, TaskChanged):
            key = ("task", event.task.id)
        elif isinstance(event, HostKeyQuestion):
            key = ("hostkey", event.host.cluster, event.host.name)
        else:
            return
        with self._pending_lock:
            self._pending[key] = event

    def _flush(self) -> None:
        with self._pending_lock:
            if not self._pending:
                return
            pending, self._pending = self._pending, {}
        changes = Changes()
        questions: list[HostKeyQuestion] = []
        for event in pending.values():
            if isinstance(event, HostChanged):
                changes.hosts[(event.host.cluster, event.host.name)] = event.host
            elif isinstance(event, VmChanged):
                changes.vms[event.vm.uuid] = event.vm
            elif isinstance(event, VmRemoved):
                changes.removed[event.uuid] = event.cluster
            elif isinstance(event, TaskChanged):
                changes.tasks[event.task.id] = event.task
            elif isinstance(event, HostKeyQuestion):
                questions.append(event)
        if changes:
            for screen in self.screen_stack:
                if isinstance(screen, ConsoleScreen):
                    screen.post_message(EngineChanges(changes))
        for question in questions:
            self._ask_host_key(question)

    def _tick(self) -> None:
        screen = self.top_console_screen()
        if screen is not None:
            screen.tick()

    def top_console_screen(self) -> ConsoleScreen | None:
        for screen in reversed(self.screen_stack):
            if isinstance(screen, ConsoleScreen):
                return screen
        return None

    # -- host keys ----------------------------------------------------------------------
    def _ask_host_key(self, question: HostKeyQuestion) -> None:
        from .screens.host_key import HostKeyScreen

        h = question.host
        key = (h.cluster, h.name)
        answer = (h.cluster, h.name, question.fingerprint)
        if key in self._asked_keys or answer in self._declined_keys:
            return
        if self.readonly:
            self._declined_keys.add(answer)
            self.notify(f"{h.name} (cluster {h.cluster}) offered an unknown SSH host key, "
                        f"fingerprint {question.fingerprint}. It stays unconnected: "
                        f"start without --readonly to trust it.",
                        title="Unknown host key", severity="error", timeout=30)
            return
        self._asked_keys.add(key)

        def answered(yes: bool | None) -> None:
            self._asked_keys.discard(key)
            if yes:
                self.trust_host_key(question)
            else:
                self._declined_keys.add(answer)
                self.notify(f"{h.name}: key not trusted; the host stays unconnected. "
                            f"ctrl+r on its screen asks again.", severity="warning")

        self.push_screen(HostKeyScreen(question), answered)

    @work(exclusive=False, exit_on_error=False, group="host-key")
    async def trust_host_key(self, question: HostKeyQuestion) -> None:
        h = question.host
        try:
            await self.engine.trust_host_key(h.cluster, h.name, question.fingerprint)
        except EngineError as exc:
            self.notify(str(exc), title=f"Trust key of {h.name}", severity="error",
                        timeout=15)
        except Exception as exc:  # never a traceback on screen
            self.notify(f"{type(exc).__name__}: {exc}", title=f"Trust key of {h.name}",
                        severity="error", timeout=15)
        else:
            self.notify(f"{h.name}: key trusted; connecting.", title="Host key")

    # -- navigation -------------------------------------------------------------------------
    def _open(self, check, make_screen) -> None:
        """Push a detail screen if what it shows still exists; else say why."""
        try:
            check()
        except EngineError as exc:
            self.notify(str(exc), severity="error")
            return
        self.push_screen(make_screen())

    def open_cluster(self, name: str, tab: str = "summary") -> None:
        from .screens.cluster import ClusterScreen
        self._open(lambda: self.engine.cluster(name), lambda: ClusterScreen(name, tab))

    def open_host(self, cluster: str, name: str) -> None:
        from .screens.host import HostScreen
        self._open(lambda: self.engine.host(cluster, name), lambda: HostScreen(cluster, name))

    def open_vm(self, uuid: str) -> None:
        from .screens.vm import VmScreen
        self._open(lambda: self.engine.vm(uuid), lambda: VmScreen(uuid))

    def open_task(self, task_id: int) -> None:
        from .screens.task import TaskScreen
        self._open(lambda: self.engine.task(task_id), lambda: TaskScreen(task_id))

    # -- global actions -------------------------------------------------------------------
    def running_actions(self) -> list[Worker]:
        """VM actions started from this console that have not finished yet."""
        return [w for w in self.workers
                if w.group == "vm-action" and not w.is_finished]

    async def action_quit(self) -> None:
        """q on the clusters screen, ctrl+q anywhere: asks first while VM actions
        started here are still running (default No)."""
        from .screens.confirm import ConfirmScreen

        running = self.running_actions()
        if not running:
            self.exit()
            return
        if isinstance(self.screen, ConfirmScreen) and self.screen.kind == "quit":
            return
        n = len(running)
        tasks = f"{n} task{'s are' if n != 1 else ' is'} still running"
        names = ", ".join(w.description for w in running)

        def decided(yes: bool | None) -> None:
            if yes:
                self.exit()

        self.push_screen(ConfirmScreen(
            "Quit mvmtui?",
            f"{tasks}: quit anyway? Their outcome will be unknown; the next start shows "
            f"{'them' if n != 1 else 'it'} as interrupted.\n\n{names}",
            question="Quit now? (y/N)", yes_label="Quit", kind="quit"), decided)

    def action_back(self) -> None:
        screen = self.screen
        if isinstance(screen, ConsoleScreen):
            screen.go_back()

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        screen = self.screen
        title = getattr(screen, "TITLE_TEXT", "") if isinstance(screen, ConsoleScreen) else ""
        self.push_screen(HelpScreen(screen, title))

    def action_ask_password(self) -> None:
        """Give the current cluster an SSH password (memory only), then retry its hosts."""
        screen = self.top_console_screen()
        cluster = getattr(screen, "cluster", None)
        if not isinstance(cluster, str):
            self.notify("Open a cluster first: the password is for its hosts.",
                        severity="warning")
            return
        from .screens.password import PasswordScreen

        def answered(password: str | None) -> None:
            if password:
                self.use_password(cluster, password)
        self.push_screen(PasswordScreen(cluster), answered)

    @work(exclusive=False, exit_on_error=False, group="password")
    async def use_password(self, cluster: str, password: str) -> None:
        self.engine.set_password(cluster, password)
        retried = [h for h in self.engine.hosts(cluster) if not h.status.live]
        for h in retried:
            await self.engine.retry_host(h.cluster, h.name)
        self.notify(f"Cluster {cluster}: password kept for this session; "
                    f"retrying {len(retried)} host(s) that are not up.", title="SSH password")

    def action_refresh(self) -> None:
        screen = self.top_console_screen()
        cluster = getattr(screen, "cluster", None)
        cluster = cluster if isinstance(cluster, str) else None
        # Declined host keys in scope are asked again when their hosts are retried.
        self._declined_keys = {k for k in self._declined_keys
                               if cluster is not None and k[0] != cluster}
        self.refresh_inventory(cluster)

    @work(exclusive=True, exit_on_error=False, group="refresh")
    async def refresh_inventory(self, cluster: str | None) -> None:
        engine = self.engine
        where = f"cluster {cluster}" if cluster else "all clusters"
        if engine.offline:
            self.notify("Offline: showing the inventory as last seen; no host is asked.",
                        severity="warning")
            return
        try:
            down = [h for h in engine.hosts(cluster) if not h.status.live]
            for h in down:   # don't wait for their next retry
                await engine.retry_host(h.cluster, h.name)
            await engine.refresh(cluster)
        except (EngineError, InventoryError) as exc:
            self.notify(str(exc), title="Refresh", severity="error", timeout=15)
            return
        except Exception as exc:
            self.notify(f"{type(exc).__name__}: {exc}", title="Refresh", severity="error",
                        timeout=15)
            return
        screen = self.top_console_screen()
        if screen is not None:
            screen.reload()
        note = f"; retrying {len(down)} host{'s' if len(down) != 1 else ''} not up" if down else ""
        self.notify(f"Refreshed {where}{note}.")

    # -- VM actions -----------------------------------------------------------------------
    def run_vm_action(self, uuid: str, action: str, name: str = "") -> Worker:
        """Run one VM action as an engine task; report start and outcome. Lives on the
        app so leaving the screen does not lose the outcome."""
        what = f"{VM_ACTIONS[action][0]} {name or uuid}"
        return self.run_worker(self._vm_action(uuid, action, what), name=what,
                               group="vm-action", description=what, exit_on_error=False)

    async def _vm_action(self, uuid: str, action: str, what: str) -> None:
        self.notify(f"{what}: started")
        try:
            task = await self.engine.vm_action(uuid, action)
        except (EngineError, Busy, InventoryError) as exc:
            self.notify(f"{what}: {exc}", severity="error", timeout=15)
            return
        except Exception as exc:  # never a traceback on screen
            self.notify(f"{what}: {type(exc).__name__}: {exc}", severity="error", timeout=15)
            return
        if task.status is TaskStatus.SUCCEEDED:
            self.notify(f"{what}: succeeded")
        else:
            self.notify(f"{what} failed: {task.error or task.status.value} (task {task.id})",
                        severity="error", timeout=15)


def run_console(engine: Engine, start_cluster: str | None = None) -> None:
    """Run the console on this terminal. Starts the engine if it is not running
    (start() is idempotent); the caller stops it."""
    app = MvmApp(engine, start_cluster=start_cluster)
    engine.start()
    app.run()


__all__ = ["MvmApp", "run_console", "ConsoleCommands"]
