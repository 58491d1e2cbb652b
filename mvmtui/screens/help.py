"""`?`: every key the screen underneath answers to right now, grouped by where it
works. Built from the live bindings, so it never disagrees with the footer.

The keys scroll (j/k, arrows, page keys, home/end) when they do not fit, with a hint
while there is more below; a narrow terminal gets one column instead of two."""
from __future__ import annotations

from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual import events
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from ..widgets.fast_table import FastTable
from ..widgets.footer import KeysBar

GROUP_ORDER = ("This screen", "VM actions", "Table", "Filter", "Everywhere")
TWO_COLUMNS = 100   # terminal width from which the groups sit side by side


class HelpBody(VerticalScroll, can_focus=True):
    """The keys, scrolled with the keys that scroll a table."""

    BINDINGS = [Binding("j", "scroll_down", "Down", show=False, id="help.down"),
                Binding("k", "scroll_up", "Up", show=False, id="help.up")]


def binding_groups(screen: Screen) -> dict[str, list[tuple[str, str]]]:
    """{group: [(keys, description)]} for the screen's active bindings."""
    app = screen.app
    merged: dict[tuple[str, str], tuple[list[str], str]] = {}
    for key, active in screen.active_bindings.items():
        b = active.binding
        if (b.system or not b.description
                or b.action in ("command_palette", "app.command_palette", "screen.copy_text")):
            continue
        node = active.node
        if (b.id or "").startswith("vm."):
            group = "VM actions"
        elif isinstance(node, App):
            group = "Everywhere"
        elif isinstance(node, Screen):
            group = "This screen"
        elif isinstance(node, FastTable):
            group = "Table"
        else:
            group = node.__class__.__name__
        keys, _ = merged.setdefault((group, b.action), ([], b.description))
        display = app.get_key_display(b)
        if display not in keys:
            keys.append(display)
    # The palette is an app binding too; list it where people look for it.
    groups: dict[str, list[tuple[str, str]]] = {}
    for (group, _action), (keys, description) in merged.items():
        groups.setdefault(group, []).append((" ".join(keys), description))
    groups.setdefault("Everywhere", []).append(
        (app.get_key_display(Binding(app.COMMAND_PALETTE_BINDING, "")),
         "Commands by name; open any cluster, host or VM"))
    rank = {g: i for i, g in enumerate(GROUP_ORDER)}
    return dict(sorted(groups.items(), key=lambda kv: (rank.get(kv[0], 2.5), kv[0])))


class HelpScreen(ModalScreen[None]):
    CSS_PATH = Path(__file__).with_name("dialogs.tcss")
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="help.close")]

    def __init__(self, screen: Screen, title: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.groups = binding_groups(screen)
        self.title_text = title
        self.readonly = bool(getattr(screen.app, "readonly", False))

    def _grid(self, groups: list[tuple[str, list[tuple[str, str]]]]) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(justify="right", style="bold", no_wrap=True, min_width=9)
        table.add_column()
        for n, (group, rows) in enumerate(groups):
            if n:
                table.add_row("", "")
            table.add_row("", Text(group, style="bold underline"))
            for keys, description in rows:
                table.add_row(Text(keys), Text(description))
        return table

    def compose(self) -> ComposeResult:
        # Two columns, split where the line counts balance.
        groups = list(self.groups.items())
        sizes = [len(rows) + 2 for _, rows in groups]
        half, acc, split = sum(sizes) / 2, 0, len(groups)
        for i, size in enumerate(sizes):
            if acc + size / 2 > half and i:
                split = i
                break
            acc += size
        with Vertical(classes="dialog help"):
            # Title and hint are docked: the keys take what height is left, and scroll.
            yield Static(f"Keys · {self.title_text}" if self.title_text else "Keys",
                         classes="dialog-title help-title", markup=False)
            yield Static(classes="dialog-hint help-hint", markup=False)
            with HelpBody(classes="help-body"):
                with Horizontal(classes="help-columns"):
                    yield Static(self._grid(groups[:split]), classes="help-column")
                    yield Static(self._grid(groups[split:]), classes="help-column")
        yield KeysBar()

    def on_mount(self) -> None:
        body = self.query_one(HelpBody)
        body.focus()
        self.watch(body, "scroll_y", self._update_hint, init=False)

    def on_resize(self, event: events.Resize) -> None:
        self.query_one(".help-columns").set_class(event.size.width < TWO_COLUMNS, "-narrow")
        self.call_after_refresh(self._update_hint)   # once the new layout is known

    def _update_hint(self) -> None:
        body = self.query_one(HelpBody)
        lines = ["Read-only mode: VM actions and other changes are off."] if self.readonly else []
        if body.scroll_y < body.max_scroll_y:
            lines.append("↓ more below · j/k or page keys scroll · escape closes")
        elif body.max_scroll_y:
            lines.append("j/k or page keys scroll · escape closes")
        else:
            lines.append("escape closes")
        self.query_one(".help-hint", Static).update("\n".join(lines))

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
