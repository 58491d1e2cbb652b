"""The console: screen stack, global keys, command palette, engine events.

Engine events arrive on an engine thread. `_on_engine_event` only files them in a
dict under a lock (latest event per host / VM / task wins); a 10 Hz timer on the
UI loop swaps the dict out and posts one `EngineChanges` message to each console
screen on the stack, so a burst of 10,000 events costs one table update per row.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.css.query import NoMatches
from textual.keys import Keys, key_to_character
from textual.worker import Worker

from . import launch
from .engine.engine import VM_ACTIONS, Engine
from .engine.errors import Busy, EngineError, InventoryError, Offline, ReadOnly
from .engine.model import (CephChanged, Event, HaChanged, HostChanged, HostKeyQuestion,
                           MetricsChanged, Task, TaskChanged, TaskStatus, Vm, VmChanged,
                           VmRemoved)
from .screens.base import Changes, ConsoleScreen, EngineChanges, HaUpdate
from .screens.ceph import CephUpdate
from .screens.monitoring import DEFAULT_RANGE, MetricsUpdate
from .screens.rows import Palette
from .widgets.fast_table import FastTable
from .widgets.listing import plural
from .screens.vm_actions import BY_ACTION, confirmation

_HERE = Path(__file__).parent
FLUSH_INTERVAL = 0.1     # seconds between engine-event flushes (10 Hz)
TICK_INTERVAL = 5.0      # seconds between age refreshes of the visible screen
THEME = "textual-dark"


def unexpected(exc: Exception) -> str:
    """What an operator reads of an error nobody foresaw: its words, logged in full
    (--debug-log), never a Python class name or a traceback on screen."""
    logging.getLogger("mvmtui.console").error("unexpected error", exc_info=exc)
    return f"unexpected error: {exc or 'no details'} (mvmtui --debug-log FILE records it)"


@dataclass(frozen=True)
class Preferences:
    """The operator's own settings, from their settings file (the CLI reads it:
    Settings.console_options()). The console checks the theme and the keys: what it
    cannot use is said at start-up, and that one setting keeps its default."""

    theme: str = ""                                  # "" = THEME
    keys: tuple[tuple[str, str], ...] = ()           # (binding id, "key,key")
    path: str = ""                                   # the settings file
    problems: tuple[str, ...] = ()                   # what the file itself got wrong
    others: tuple[tuple[str, str, str, str], ...] = ()   # (setting, value, default, meaning)
    ha_watch: bool = False                           # [ha] watch: this console watches


MODIFIERS = ("ctrl", "alt", "shift", "super", "meta", "hyper")
_KEY_NAMES = {k.value.rpartition("+")[2] for k in Keys if not k.value.startswith("<")}


def key_name(key: str) -> str | None:
    """A key as Textual names it ("ctrl+s", "f2", "S", "question_mark"), or None
    when Textual has no such key."""
    *mods, name = key.split("+") if key != "+" else ["+"]
    mods = [m.lower() for m in mods]
    if not name or any(m not in MODIFIERS for m in mods):
        return None
    if len(name) > 1:
        name = name.lower()
        if name not in _KEY_NAMES and key_to_character(name) is None:
            return None
    elif not name.isprintable():
        return None
    return "+".join([*mods, name])


def console_bindings() -> list[tuple[type, Binding]]:
    """(class, binding) of every binding the console defines (app, screens, widgets)."""
    import importlib
    import pkgutil

    from textual.dom import DOMNode

    from . import screens, widgets
    for package in (screens, widgets):
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")
    out: list[tuple[type, Binding]] = []
    todo: list[type] = [DOMNode]
    seen: set[type] = set()
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls in seen or not cls.__module__.startswith("mvmtui."):
            continue
        seen.add(cls)
        out += [(cls, b) for b in cls.__dict__.get("BINDINGS", ()) if isinstance(b, Binding)]
    return out


def binding_ids() -> dict[str, Binding]:
    """Every binding id of the console: what [keys] may remap."""
    found: dict[str, Binding] = {}
    for _cls, b in console_bindings():
        if b.id:
            found.setdefault(b.id, b)
    return found


def _together(a: type, b: type) -> bool:
    """Can bindings of these two classes answer the same key press? The app's always
    can; a screen's with its own (and its bases'), or with a widget's on it."""
    from textual.screen import Screen
    if issubclass(a, b) or issubclass(b, a) or issubclass(a, App) or issubclass(b, App):
        return True
    return issubclass(a, Screen) != issubclass(b, Screen)


# Moving around is for keys, not for the palette: its list starts with what to do.
NAVIGATION = {"focus_next", "focus_previous", "app.focus_next", "app.focus_previous",
              "screen.copy_text", "copy_text"}
KEPT_TABLE_KEYS = {"table.sort", "table.reverse"}     # a table's other keys move about
ACTION_VERBS = tuple(verb.lower() for verb, _, _ in VM_ACTIONS.values())   # "shut down"…


class ConsoleCommands(Provider):
    """Every action by name: the current screen's keys (VM actions name their VM),
    open any cluster, host or VM, and run any VM's power actions ("Start web-02")."""

    def _commands(self) -> list[tuple[str, str, object]]:
        """The current screen's keys, by name."""
        app: MvmApp = self.app  # type: ignore[assignment]
        screen = self.screen
        vm = screen.selected_vm() if isinstance(screen, ConsoleScreen) else None
        out: list[tuple[str, str, object]] = []
        seen: set[tuple[str, str]] = set()
        for key, active in screen.active_bindings.items():
            b = active.binding
            if (b.system or not b.description or not active.enabled
                    or b.action in ("command_palette", "app.command_palette")
                    or b.action in NAVIGATION
                    or (isinstance(active.node, FastTable) and b.id not in KEPT_TABLE_KEYS)):
                continue
            name = (b.description, b.action.removeprefix("app."))
            if name in seen:
                continue
            seen.add(name)
            description = b.description
            if b.action.startswith("vm_action") and vm is not None:
                description = f"{description} {vm.name}"

            async def run(action=b.action, node=active.node) -> None:
                await app.run_action(action, node)
            out.append((description, f"key {app.get_key_display(b)}", run))
        return out

    def _inventory(self, taken: set[str]):
        """Commands for every cluster, host and VM (a generator: 10,000 VMs give some
        50,000, built a slice at a time, see _build)."""
        app: MvmApp = self.app  # type: ignore[assignment]
        engine = app.engine
        for c in engine.clusters():
            yield (f"Open cluster {c.name}", c.layout,
                   lambda name=c.name: app.open_cluster(name))
            yield (f"Settings of cluster {c.name}", "its policy; your preferences",
                   lambda name=c.name: app.open_settings(name))
            yield (f"HA of cluster {c.name}", "who watches; if any one host died now (N−1)",
                   lambda name=c.name: app.open_cluster(name, "ha"))
            yield (f"Rebalance cluster {c.name}", "DRS: the moves that even the load, "
                   "previewed", lambda name=c.name: app.open_rebalance(name))
            if engine.ceph_present(c.name) is not False:
                yield (f"Ceph of cluster {c.name}", "health, flags, OSDs, PGs, pools",
                       lambda name=c.name: app.open_ceph(name))
        for h in engine.hosts():
            yield (f"Open host {h.name}", f"{h.cluster} · {h.address} · {h.status.value}",
                   lambda c=h.cluster, n=h.name: app.open_host(c, n))
        changes = not (engine.readonly or engine.offline)
        for v in engine.vms():
            where = f"{v.cluster} · {v.host} · {v.state.value}" + (" (stale)" if v.stale else "")
            yield (f"Open VM {v.name}", where, lambda u=v.uuid: app.open_vm(u))
            if not changes:
                continue
            for action in engine.vm_actions(v):
                name = f"{VM_ACTIONS[action][0]} {v.name}"
                if name not in taken:     # the current VM's is there already, with its key
                    yield (name, where,
                           lambda u=v.uuid, a=action: app.palette_vm_action(u, a))

    async def startup(self) -> None:
        # The screen's own commands now; the inventory's (thousands of VMs) on the
        # first keystroke, a slice at a time: the palette opens at once at any size.
        self._screen_commands = self._commands()
        self._actions: dict[str, list[tuple[str, str, object]]] = {}
        self._all: list[tuple[str, str, object]] = []
        self._built = False

    async def _build(self) -> None:
        """Sort every command once per palette opening: thousands of VMs are matched
        per keystroke, not listed again. The power actions of every VM (four or five
        times as many commands) are matched only once the query names their verb
        ("st", "force"), so a big inventory costs per keystroke what its "Open VM"
        commands cost."""
        if self._built:
            return
        self._built = True
        commands = list(self._screen_commands)
        taken = {name for name, _, _ in commands}
        for n, command in enumerate(self._inventory(taken), 1):
            commands.append(command)
            if n % 1000 == 0:
                await asyncio.sleep(0)      # keystrokes and frames go on meanwhile
        for command in commands:
            verb = command[0].lower()
            verb = next((v for v in ACTION_VERBS if verb.startswith(v + " ")), "")
            if verb and command[1].startswith("key "):
                verb = ""           # the current VM's, from the screen's keys: always listed
            (self._actions.setdefault(verb, []) if verb else self._all).append(command)

    def _searched(self, query: str) -> list[list[tuple[str, str, object]]]:
        q = query.lower().lstrip()
        lists = [self._all]
        if len(q) >= 2:
            lists += [cmds for verb, cmds in self._actions.items()
                      if verb.startswith(q[:len(verb)])]
        return lists

    async def discover(self) -> Hits:
        for name, help_text, callback in self._screen_commands:
            yield DiscoveryHit(name, callback, help=help_text)
        for c in self.app.engine.clusters():  # type: ignore[attr-defined]
            yield DiscoveryHit(f"Open cluster {c.name}",
                               lambda name=c.name: self.app.open_cluster(name),  # type: ignore
                               help=c.layout)

    async def search(self, query: str) -> Hits:
        await self._build()
        matcher = self.matcher(query)
        n = 0
        for commands in self._searched(query):
            for name, help_text, callback in commands:
                n += 1
                if n % 500 == 0:
                    await asyncio.sleep(0)   # let keystrokes in on big inventories
                score = matcher.match(name)
                if score > 0:
                    yield Hit(score, matcher.highlight(name), callback, text=name,
                              help=help_text)


class MvmApp(App):
    # Absolute, so subclasses elsewhere (benchmarks, tests) find the styles too.
    CSS_PATH = [_HERE / "app.tcss", _HERE / "widgets" / "widgets.tcss"]
    TITLE = "mvmtui"
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True, id="app.quit"),
        Binding("q", "back", "Back", id="app.back"),
        Binding("escape", "back", "Back", show=False, id="app.escape"),
        Binding("ctrl+r", "refresh", "Refresh", show=False, id="app.refresh"),
        Binding("L", "ask_password", "SSH password…", show=False, id="app.password"),
        Binding("ctrl+p", "command_palette", "Commands", show=False, priority=True,
                id="app.palette"),
    ]

    def __init__(self, engine: Engine, start_cluster: str | None = None,
                 lab_demo: str | None = None, preferences: Preferences | None = None) -> None:
        # Imports and the inventory are done: freeze them, collect again. Screens are
        # built with collection on, so a screen left later is collected in full.
        launch.started()
        super().__init__()
        self.engine = engine
        self.readonly = engine.readonly
        self._settled = False   # every host reached and its VMs read (engine.settled)
        self.start_engine = False   # run_console: start the engine after the first frame
        self.start_cluster = start_cluster
        self.lab_demo = lab_demo      # the lab cluster that quitting takes down
        self.preferences = preferences or Preferences()
        # What the settings file asked for that cannot be used: said once mounted.
        self.settings_problems: list[str] = list(self.preferences.problems)
        self._clashes: set[tuple[str, ...]] = set()
        self.theme = self._chosen_theme()
        self.chart_range = DEFAULT_RANGE    # every chart's range ([ and ] change it)
        self.keys_remapped = self._chosen_keys()   # binding id -> keys, as in effect
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
        if self.settings_problems:
            self.notify("\n".join(f"• {p}" for p in self.settings_problems),
                        title=f"Settings: {self.preferences.path or 'settings file'}",
                        severity="warning", timeout=30)
        self.set_interval(FLUSH_INTERVAL, self._flush_engine_events)
        self.set_interval(TICK_INTERVAL, self._tick)
        if self.start_engine:
            # After the first frame: on this machine's two vCPUs, a host's first
            # listing (libvirt parsing 10,000 domains) halved the speed of the UI's
            # start-up; the operator sees the screen first, the hosts connect after.
            self.call_after_refresh(self._start_engine)
        # Questions asked before we subscribed: the host still waits with its fingerprint.
        for question in self.engine.pending_host_keys():
            self._on_engine_event(question)

    def on_unmount(self) -> None:
        self._unsubscribe()

    def _start_engine(self) -> None:
        self.engine.start()
        if self.preferences.ha_watch:
            self.start_watching()

    def start_watching(self) -> None:
        """[ha] watch = true: this console is a watcher too (as `mvmtui watch` is): it
        competes for each cluster's watcher lease and, holding one, fails over, brings
        VMs home and rebalances there while it runs."""
        try:
            self.engine.start_watching()
        except EngineError as exc:
            self.notify(f"[ha] watch is on, but this console does not watch: {exc}",
                        title="Host loss", severity="warning", timeout=20)

    # -- preferences ------------------------------------------------------------------
    def _chosen_theme(self) -> str:
        wanted = self.preferences.theme
        if not wanted or wanted == THEME:
            return THEME
        if wanted in self.available_themes:
            return wanted
        import difflib
        close = difflib.get_close_matches(wanted, sorted(self.available_themes), n=1)
        self.settings_problems.append(
            f"theme {wanted!r} is not a theme here"
            + (f" (did you mean {close[0]!r}?)" if close else "")
            + f"; using {THEME}. ctrl+p “Theme” lists and tries them.")
        return THEME

    def _chosen_keys(self) -> dict[str, str]:
        """The [keys] that can be used, applied with set_keymap; the rest are named in
        settings_problems and keep their usual keys. A VM action's key is one binding
        shown in the footer and one that is not ("vm.start.more"): both move."""
        if not self.preferences.keys:
            return {}
        import difflib
        bindings = console_bindings()
        known = binding_ids()
        keymap: dict[str, str] = {}
        for binding_id, keys in self.preferences.keys:
            if binding_id not in known:
                public = [i for i in known if not i.endswith(".more")]
                close = difflib.get_close_matches(binding_id, public, n=1)
                self.settings_problems.append(
                    f"[keys] {binding_id}: no key has this id"
                    + (f" (did you mean {close[0]}?)" if close else "")
                    + "; the README lists them.")
                continue
            names = [key_name(k) for k in keys.split(",")]
            bad = [k for k, n in zip(keys.split(","), names) if n is None]
            if bad:
                self.settings_problems.append(
                    f"[keys] {binding_id} = {keys!r}: {', '.join(map(repr, bad))} is not a "
                    f"key name (e.g. \"f2\", \"ctrl+s\", \"S\"); it keeps its usual key.")
                continue
            keymap[binding_id] = ",".join(n for n in names if n)
        for binding_id, keys in list(keymap.items()):
            more = f"{binding_id}.more"
            if more in known and more not in keymap:
                keymap[more] = keys
        if keymap:
            self.set_keymap(keymap)
            if "app.palette" in keymap:   # the footer and help find the palette by it
                self.COMMAND_PALETTE_BINDING = self._keymap["app.palette"].split(",")[0]
            self.settings_problems += self._key_clashes(bindings)
        written = {binding_id for binding_id, _ in self.preferences.keys}
        return {i: k for i, k in keymap.items() if i in written}

    def _key_clashes(self, bindings: list[tuple[type, Binding]]) -> list[str]:
        """A remapped key that another binding also has where both apply: Textual
        then runs one of them only (it says nothing of bindings with ids)."""
        keymap = self._keymap

        def keys(b: Binding) -> set[str]:
            return set((keymap.get(b.id or "") or self._normalize_keymap({"": b.key})[""])
                       .split(","))

        said: dict[tuple[str, str], str] = {}
        for cls, b in bindings:
            if b.id not in keymap or b.id.endswith(".more"):
                continue
            for other_cls, other in bindings:
                other_id = other.id or other.action
                if (other.id or "").removesuffix(".more") == b.id or other_id.endswith(".more") \
                        or (other_id, b.id) in said or not _together(cls, other_cls):
                    continue
                both = keys(b) & keys(other)
                if both:
                    key = self.get_key_display(b.with_key(sorted(both)[0], key_display=None))
                    said.setdefault((b.id, other_id), (
                        f"[keys] {b.id}: {key} is also “{other.description or other.action}” "
                        f"({other_id}); where both apply, only one of them runs."))
        return sorted(said.values())

    def handle_bindings_clash(self, clashed_bindings: set[Binding], node) -> None:
        """A remapped key that another binding had: say once which one lost it. (A VM
        action's two bindings, moved to the same key together, are no clash.)"""
        keymap = self._keymap

        def pair(b: Binding) -> bool:
            i = b.id or ""
            return i.endswith(".more") or keymap.get(f"{i}.more", None) == keymap.get(i, "")

        lost = tuple(sorted(f"{self.get_key_display(b)} no longer runs "
                            f"“{b.description or b.action}”"
                            + (f" ({b.id})" if b.id else "")
                            for b in clashed_bindings if not pair(b)))
        if not lost or lost in self._clashes:
            return
        self._clashes.add(lost)
        self.notify("; ".join(lost) + ": [keys] gave the key to another binding.",
                    title=f"Settings: {self.preferences.path or 'settings file'}",
                    severity="warning", timeout=15)

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
        elif isinstance(event, HaChanged):
            key = ("ha", event.status.cluster)
        elif isinstance(event, CephChanged):
            key = ("ceph", event.cluster)
        elif isinstance(event, MetricsChanged):
            key = ("metrics", event.cluster, event.host)
        else:
            return
        with self._pending_lock:
            self._pending[key] = event

    def _flush_engine_events(self) -> None:
        with self._pending_lock:
            if not self._pending:
                return
            pending, self._pending = self._pending, {}
        changes = Changes()
        ha: dict = {}
        ceph: set[str] = set()
        metrics: set[tuple[str, str]] = set()
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
            elif isinstance(event, HaChanged):
                ha[event.status.cluster] = event.status
            elif isinstance(event, CephChanged):
                ceph.add(event.cluster)
            elif isinstance(event, MetricsChanged):
                metrics.add((event.cluster, event.host))
        if changes:
            for screen in self.screen_stack:
                if isinstance(screen, ConsoleScreen):
                    screen.post_message(EngineChanges(changes))
        if ha:
            for screen in self.screen_stack:
                if isinstance(screen, ConsoleScreen):
                    screen.post_message(HaUpdate(ha))
        if ceph:
            for screen in self.screen_stack:
                if isinstance(screen, ConsoleScreen):
                    screen.post_message(CephUpdate(ceph))
        if metrics:
            for screen in self.screen_stack:
                if isinstance(screen, ConsoleScreen):
                    screen.post_message(MetricsUpdate(metrics))
        for question in questions:
            self._ask_host_key(question)

    def _tick(self) -> None:
        settled = self.engine.settled()
        if settled and not self._settled:
            launch.settled()    # every host's VMs are in: keep the collector off them
        self._settled = settled
        screen = self.top_console_screen()
        if screen is not None and screen.is_attached:
            try:
                screen.tick()
                self.engine.watch_vms(screen.vms_on_screen())
            except NoMatches:    # torn down between the check and the query (load)
                pass

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
            self.notify(unexpected(exc), title=f"Trust key of {h.name}",
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

    def open_events(self, cluster: str, host: str = "", vm: str = "") -> None:
        """A host's or a VM's events (E on its screen)."""
        from .screens.events import EventsScreen
        if vm:
            def make():
                return EventsScreen(cluster, vm=vm, vm_name=self.engine.vm(vm).name)
            self._open(lambda: self.engine.vm(vm), make)
        else:
            self._open(lambda: self.engine.host(cluster, host),
                       lambda: EventsScreen(cluster, host=host))

    def open_task(self, task_id: int) -> None:
        from .screens.task import TaskScreen
        self._open(lambda: self.engine.task(task_id), lambda: TaskScreen(task_id))

    def open_settings(self, cluster: str) -> None:
        from .screens.settings import SettingsScreen
        self._open(lambda: self.engine.cluster(cluster), lambda: SettingsScreen(cluster))

    def open_rebalance(self, cluster: str) -> None:
        from .screens.rebalance import RebalanceScreen
        self._open(lambda: self.engine.cluster(cluster), lambda: RebalanceScreen(cluster))

    def open_ceph(self, cluster: str) -> None:
        from .screens.ceph import CephScreen
        self._open(lambda: self.engine.cluster(cluster), lambda: CephScreen(cluster))

    def open_decommission(self, cluster: str, host: str) -> None:
        """D on a host: the guided removal of the host from Ceph (asks before each step)."""
        why = self.changes_refused("decommissioning a host")
        if why:
            self.notify(why, severity="error")
            return
        from .screens.decommission import DecommissionScreen
        self._open(lambda: self.engine.host(cluster, host),
                   lambda: DecommissionScreen(cluster, host))

    # -- global actions -------------------------------------------------------------------
    def running_actions(self) -> list[Worker]:
        """VM actions started from this console that have not finished yet."""
        return [w for w in self.workers
                if w.group == "vm-action" and not w.is_finished]

    def quit_warnings(self) -> list[str]:
        """What quitting now would cost: the lab it takes down, the tasks it cuts off."""
        out = []
        if self.lab_demo:
            lab = self.lab_demo
            hosts, vms = len(self.engine.hosts(lab)), len(self.engine.vms(lab))
            out.append(f"Quitting takes the lab '{lab}' down: its {plural(hosts, 'host')} "
                       f"and {plural(vms, 'VM')} are destroyed.")
        running = self.running_actions()
        if running:
            n = len(running)
            names = ", ".join(w.description for w in running)
            if n == 1:
                out.append(f"1 task is still running: {names}. Quitting stops it where it "
                           f"is; History records it as interrupted.")
            else:
                out.append(f"{n} tasks are still running: {names}. Quitting stops them "
                           f"where they are; History records them as interrupted.")
        return out

    async def action_quit(self) -> None:
        """q on the clusters screen, ctrl+q anywhere: asks first (default No) when
        quitting takes a lab down or cuts off VM actions started here; else quits."""
        from .screens.confirm import ConfirmScreen

        warnings = self.quit_warnings()
        if not warnings:
            self.exit()
            return
        if isinstance(self.screen, ConfirmScreen) and self.screen.kind == "quit":
            return

        def decided(yes: bool | None) -> None:
            if yes:
                self.exit()

        self.push_screen(ConfirmScreen(
            "Quit mvmtui?", "\n\n".join(warnings),
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
            self.notify(unexpected(exc), title="Refresh", severity="error",
                        timeout=15)
            return
        screen = self.top_console_screen()
        if screen is not None:
            screen.reload()
        note = f"; retrying {len(down)} host{'s' if len(down) != 1 else ''} not up" if down else ""
        self.notify(f"Refreshed {where}{note}.")

    # -- VM actions -----------------------------------------------------------------------
    def changes_refused(self, what: str) -> str:
        """Why no change can be made in this session ("" when it can): read-only or
        offline, in the engine's words."""
        if self.engine.readonly:
            return str(ReadOnly(what))
        if self.engine.offline:
            return str(Offline(what))
        return ""

    def refusal(self, vm: Vm | None, action: str) -> str:
        """Why this action cannot be offered now ("" when it can)."""
        verb = VM_ACTIONS[action][0]
        why = self.changes_refused(f"{verb.lower()} of a VM")
        if why:
            return why
        if vm is None:
            return ""
        if action not in self.engine.vm_actions(vm):
            return f"{verb} does not apply to {vm.name}: it is {vm.state.value}."
        return ""

    def ask_vm_action(self, vm: Vm | None, action: str) -> None:
        """The one path of a VM action, from a key or the palette: refused when it
        makes no sense (read-only, offline, the VM's state); destructive ones ask first
        (default No)."""
        why = self.refusal(vm, action)
        if why:
            self.notify(why, severity="error")
            return
        if vm is None:
            return
        key = BY_ACTION[action]
        if not key.destructive:
            self.run_vm_action(vm.uuid, action, vm.name)
            return
        from .screens.confirm import ConfirmScreen
        try:
            host = self.engine.host(vm.cluster, vm.host)
        except EngineError:
            host = None
        pending = self.engine.pending_task(vm.uuid)

        def decided(yes: bool | None) -> None:
            if yes:
                self.run_vm_action(vm.uuid, action, vm.name)

        self.push_screen(
            ConfirmScreen(f"{key.verb} {vm.name}?",
                          confirmation(vm, host, action, self.engine.now(), pending,
                                       pending is not None
                                       and self.engine.would_supersede(pending, action)),
                          yes_label=f"{key.verb} {vm.name}"),
            decided)

    def palette_vm_action(self, uuid: str, action: str) -> None:
        """"Start web-02" from the palette: the VM as it is now, the keys' path."""
        try:
            vm = self.engine.vm(uuid)
        except EngineError as exc:
            self.notify(str(exc), severity="error")
            return
        self.ask_vm_action(vm, action)

    def run_vm_action(self, uuid: str, action: str, name: str = "") -> Worker:
        """Run one VM action as an engine task; report that it runs, then its outcome.
        Lives on the app so leaving the screen does not lose the outcome."""
        what = f"{VM_ACTIONS[action][0]} {name or uuid}"
        return self.run_worker(self._vm_action(uuid, action, what, name or uuid), name=what,
                               group="vm-action", description=what, exit_on_error=False)

    async def _vm_action(self, uuid: str, action: str, what: str, name: str) -> None:
        try:
            # Returns once the task is recorded and holds its lock; a refusal (busy,
            # read-only, offline, gone) raises before any task runs: only that is said.
            task = await self.engine.submit_vm_action(uuid, action)
        except (EngineError, Busy, InventoryError) as exc:
            self.notify(f"{what}: {exc}", severity="error", timeout=15)
            return
        except Exception as exc:  # never a traceback on screen
            self.notify(f"{what}: {unexpected(exc)}", severity="error", timeout=15)
            return
        self.notify(f"{what}: task {task.id} running…")
        try:
            task = await self.engine.wait_task(task.id)
        except (EngineError, InventoryError) as exc:
            self.notify(f"{what}: {exc} (task {task.id})", severity="error", timeout=15)
            return
        except Exception as exc:
            self.notify(f"{what}: {unexpected(exc)} (task {task.id})",
                        severity="error", timeout=15)
            return
        message, severity, timeout = self.outcome(task, what, uuid, name)
        self.notify(message, severity=severity, timeout=timeout)

    def outcome(self, task: Task, what: str, uuid: str, name: str) -> tuple:
        """(message, severity, timeout) of a finished VM task."""
        if task.status is TaskStatus.SUCCEEDED:
            try:
                state = f" — {name} is {self.engine.vm(uuid).state.value}"
            except EngineError:
                state = ""
            return f"{what}: done{state}", "information", None
        if task.status in (TaskStatus.CANCELLED, TaskStatus.SUPERSEDED):
            reason = task.error or task.status.value
            return f"{what}: {reason} (task {task.id})", "warning", 15
        return (f"{what} failed: {task.error or task.status.value} (task {task.id})",
                "error", 15)

    # -- cancelling a task ----------------------------------------------------------------
    def ask_cancel_task(self, task_id: int) -> None:
        """`c` on a running task (History, task screen): asks first, default No."""
        from .screens.confirm import ConfirmScreen
        try:
            task = self.engine.task(task_id)
        except EngineError as exc:
            self.notify(str(exc), severity="error")
            return

        def decided(yes: bool | None) -> None:
            if yes:
                self.cancel_task(task_id, task.title)

        if task.status.finished or not task.cancellable:
            self.cancel_task(task_id, task.title)   # no question: the engine says why not
            return
        by = f", started by {task.started_by}" if task.started_by else ""
        self.push_screen(ConfirmScreen(
            f"Cancel task {task_id}?",
            f"{task.title} (task {task_id}{by}) is waiting. Cancelling asks it to stop "
            f"within a second; what it has done so far stays done.",
            question="Cancel it? (y/N)", yes_label="Cancel task"), decided)

    @work(exclusive=False, exit_on_error=False, group="cancel-task")
    async def cancel_task(self, task_id: int, title: str) -> None:
        try:
            await self.engine.cancel_task(task_id)
        except (EngineError, InventoryError) as exc:
            self.notify(f"Cancel task {task_id}: {exc}", severity="error", timeout=15)
        except Exception as exc:  # never a traceback on screen
            self.notify(f"Cancel task {task_id}: {unexpected(exc)}",
                        severity="error", timeout=15)
        else:
            self.notify(f"{title} (task {task_id}): asked to stop.")


def run_console(engine: Engine, start_cluster: str | None = None,
                lab_demo: str | None = None, preferences: Preferences | None = None) -> None:
    """Run the console on this terminal. Starts the engine, if it is not running, once
    the first frame is drawn (start() is idempotent); the caller stops it.
    `lab_demo`: the lab cluster that quitting takes down (`make demo`), so quitting
    asks first. `preferences`: theme and keys from the settings file."""
    app = MvmApp(engine, start_cluster=start_cluster, lab_demo=lab_demo,
                 preferences=preferences)
    app.start_engine = True     # once the first frame is drawn (on_mount)
    app.run()


__all__ = ["MvmApp", "run_console", "ConsoleCommands", "Preferences"]
