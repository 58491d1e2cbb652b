"""`S` on a cluster (or "Settings of cluster …" in the palette): the cluster's policy,
each value with its default and meaning, changed with enter; below it, the
operator's own preferences in effect and the file they come from (read-only here).

A change goes through the engine as `mvmtui cluster set` does: a bad value is shown
in the dialog and nothing is changed. Read-only mode shows the values and says why
they cannot be changed."""
from __future__ import annotations

from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from ..engine import policy as policies
from ..engine.errors import EngineError, InventoryError, NotFound, ReadOnly
from ..engine.model import ClusterPolicy
from ..widgets.fast_table import Column, FastTable
from ..widgets.format import DASH
from ..widgets.footer import KeysBar
from ..widgets.listing import Listing
from .base import Changes, ConsoleScreen

POLICY_COLUMNS = [
    Column("key", "Setting", 22, min_width=18),
    Column("value", "Value", 14, min_width=8),
    Column("default", "Default", 8, priority=2),
    Column("means", "Meaning", 40, flex=True, priority=1, min_width=20),
]
CHANGING = "changing a cluster's policy"


class SettingsScreen(ConsoleScreen):
    CSS_PATH = Path(__file__).with_name("settings.tcss")
    BINDINGS = [Binding("e", "edit", "Change value", id="settings.edit")]

    def __init__(self, cluster: str) -> None:
        super().__init__()
        self.cluster = cluster
        self._values: dict[str, tuple[str, str, str]] = {}   # key -> (value, default, means)

    @property
    def TITLE_TEXT(self) -> str:  # type: ignore[override]
        return f"Settings of cluster {self.cluster}"

    def crumbs(self) -> list[str]:
        return ["mvmtui", self.cluster, "settings"]

    def compose_body(self) -> ComposeResult:
        with Vertical(id="policy-panel", classes="panel") as panel:
            panel.border_title = f"Policy of cluster {self.cluster}"
            yield Static(id="policy-note", markup=False)
            yield Listing(POLICY_COLUMNS, "setting", id="policy")
        prefs = Static(id="preferences", classes="panel")
        prefs.border_title = "Your preferences"
        yield prefs

    # -- data -------------------------------------------------------------------------
    def reload(self) -> None:
        pal = self.palette
        note = self.query_one("#policy-note", Static)
        try:
            rows = policies.explain(self.engine.policy(self.cluster))
        except NotFound:
            note.update(Text(f"Cluster {self.cluster} is no longer in the inventory.",
                             style=pal.bad))
            self.query_one("#policy", Listing).set_rows([])
            self._values = {}
            return
        self._values = {key: (value, default, means) for key, value, default, means in rows}
        if self.engine.readonly:
            note.update(Text(str(ReadOnly(CHANGING)), style=pal.warn))
        else:
            note.update(Text(f"enter (or e) changes a value, as "
                             f"`mvmtui cluster set {self.cluster} KEY=VALUE` does",
                             style=pal.muted))
        self.query_one("#policy", Listing).set_rows(
            [(key, (key, value or DASH, default or DASH, Text(means, style=pal.muted)))
             for key, value, default, means in rows])
        self.query_one("#preferences", Static).update(self._preferences())

    def apply_changes(self, changes: Changes) -> None:
        """Engine events carry no policy: the tick re-reads it (another process's
        `cluster set` shows within seconds)."""

    def _preferences(self):
        """The file, then its settings as in effect, then what of it was not used."""
        from ..app import THEME, binding_ids

        app, pal = self.mvm, self.palette
        prefs = app.preferences
        head = Text.assemble(
            ("Read from ", pal.muted), (prefs.path or "no settings file", pal.strong),
            (" when mvmtui started. Shown only: edit that file, then start mvmtui again.",
             pal.muted))
        table = Table.grid(padding=(0, 2), expand=True)
        table.add_column(no_wrap=True, min_width=20)
        table.add_column(no_wrap=True, min_width=12)
        table.add_column(no_wrap=True, style=pal.muted, min_width=8)
        table.add_column(ratio=1, style=pal.muted)
        table.add_row(*(Text(h, style="bold") for h in ("Setting", "Value", "Default",
                                                         "Meaning")))

        def row(*cells: str) -> None:      # Text: "[keys]" is not markup
            table.add_row(*map(Text, cells))
        row("theme", app.theme, THEME, "the console's colours (ctrl+p “Theme” tries them)")
        if app.keys_remapped:
            known = binding_ids()
            for binding_id, keys in sorted(app.keys_remapped.items()):
                b = known[binding_id]
                shown = ", ".join(app.get_key_display(b.with_key(k, key_display=None))
                                  for k in keys.split(","))
                row(f"[keys] {binding_id}", shown, app.get_key_display(b),
                    b.description or b.action)
        else:
            row("[keys]", "none remapped", "",
                '"binding id" = "key", e.g. "app.help" = "f1" (the README lists the ids)')
        for setting, value, default, means in prefs.others:
            row(setting, value, default, means)
        parts = [head, Text(""), table]
        if app.settings_problems:
            parts += [Text(""), Text("Not used from the file (their defaults apply):",
                                     style=pal.warn)]
            parts += [Text(f"• {p}", style=pal.warn) for p in app.settings_problems]
        return Group(*parts)

    # -- changing a value ---------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "edit":
            return not self.engine.readonly and bool(self._values)
        return super().check_action(action, parameters)

    @on(FastTable.RowSelected, "#policy-table")
    def _row_selected(self, message: FastTable.RowSelected) -> None:
        self.edit(message.key)

    def action_edit(self) -> None:
        key = self.query_one("#policy", Listing).table.cursor_key
        if key is not None:
            self.edit(key)

    def edit(self, key: str) -> None:
        if self.engine.readonly:
            self.notify(str(ReadOnly(CHANGING)), severity="error")
            return
        if key not in self._values:
            return
        value, default, means = self._values[key]

        def done(new: ClusterPolicy | None) -> None:
            if new is None:
                return
            self.reload()
            now = dict(policies.describe(new))[key]
            self.notify(f"Cluster {self.cluster}: {key} is now {now or 'none'} "
                        f"(was {value or 'none'}).")

        self.app.push_screen(PolicyValueScreen(self.cluster, key, value, default, means),
                             done)


class PolicyValueScreen(ModalScreen[ClusterPolicy | None]):
    """One policy value: typed, then set by the engine; its refusal stays here."""

    CSS_PATH = Path(__file__).with_name("dialogs.tcss")
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="policy.cancel")]

    def __init__(self, cluster: str, key: str, value: str, default: str,
                 means: str) -> None:
        super().__init__(classes="dialog-screen")
        self.cluster, self.key, self.value = cluster, key, value
        self.default, self.means = default, means

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog policy"):
            yield Static(f"{self.key} of cluster {self.cluster}", classes="dialog-title",
                         markup=False)
            yield Static(f"{self.key}: {self.means}.\n"
                         f"Now {self.value or 'none'} · default {self.default or 'none'}",
                         classes="dialog-body", markup=False)
            value = Input(self.value, placeholder=self.key, id="value", select_on_focus=False)
            value.cursor_blink = False      # still screens in tests; no traffic over SSH
            yield value
            yield Static(id="policy-error", classes="dialog-error", markup=False)
            yield Static("enter sets it · escape leaves it as it is",
                         classes="dialog-hint", markup=False)
        yield KeysBar()

    def on_mount(self) -> None:
        self.query_one("#value", Input).focus()
        self.query_one("#policy-error", Static).display = False

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            new = self.app.engine.set_policy(  # type: ignore[attr-defined]
                self.cluster, [f"{self.key}={event.value}"])
        except (EngineError, InventoryError) as exc:
            self.refuse(str(exc))
            return
        except Exception as exc:  # never a traceback on screen
            from ..app import unexpected
            self.refuse(unexpected(exc))
            return
        self.dismiss(new)

    def refuse(self, why: str) -> None:
        error = self.query_one("#policy-error", Static)
        error.update(f"{why} Nothing was changed.")
        error.display = True

    def action_cancel(self) -> None:
        self.dismiss(None)
