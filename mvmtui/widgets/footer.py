"""The footer of every screen: the keys that work here, drawn as one line by one
widget.

Textual's Footer mounts a widget per key and re-mounts them all whenever a screen
announces "bindings updated" (every focus change, every refresh_bindings(); the VM
keys come and go with the cursor). Its keys also arrive a frame or two after the
first paint. Here the keys are text in a single widget, drawn with the screen's
first frame and redrawn only when what they say changes. A click on a key presses it.
"""
from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widget import Widget


def shown_keys(screen: Screen) -> list[tuple[str, str, str, bool]]:
    """(key, shown as, description, enabled) per action, in binding order; the
    command palette's key is left out (it is drawn at the right edge)."""
    app = screen.app
    out: dict[str, tuple[str, str, str, bool]] = {}
    for key, (_node, binding, enabled, _tooltip) in screen.active_bindings.items():
        if binding.show and key != app.COMMAND_PALETTE_BINDING and binding.action not in out:
            out[binding.action] = (key, app.get_key_display(binding), binding.description,
                                   enabled)
    return list(out.values())


class KeysBar(Widget):
    COMPONENT_CLASSES = {"keys-bar--key", "keys-bar--description", "keys-bar--edge"}

    def __init__(self) -> None:
        super().__init__()
        self.drawn: list | None = None       # shown_keys() of the last render
        self._spans: list[tuple[int, int, str]] = []   # (from x, to x, key) as drawn

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def _bindings_changed(self, screen: Screen) -> None:
        if screen is self.screen and shown_keys(screen) != self.drawn:
            self.refresh()

    def _palette_key(self) -> tuple[str, str] | None:
        app = self.app
        active = self.screen.active_bindings.get(app.COMMAND_PALETTE_BINDING)
        if not app.ENABLE_COMMAND_PALETTE or active is None:
            return None
        return app.get_key_display(active.binding), active.binding.description

    def render(self) -> Text:
        keys = shown_keys(self.screen)
        self.drawn = keys
        key_style = self.get_component_rich_style("keys-bar--key", partial=True)
        text_style = self.get_component_rich_style("keys-bar--description", partial=True)
        dim = Style(dim=True)
        line = Text(no_wrap=True, overflow="crop")
        spans = []
        for key, shown, description, enabled in keys:
            start = line.cell_len
            line.append(shown, key_style + dim if not enabled else key_style)
            line.append(f" {description}", text_style + dim if not enabled else text_style)
            spans.append((start, line.cell_len, key))
            line.append(" ")
        palette = self._palette_key()
        if palette is not None:
            shown, description = palette
            right = Text.assemble(("▏", self.get_component_rich_style("keys-bar--edge")),
                                  (shown, key_style), (f" {description} ", text_style))
            gap = self.size.width - line.cell_len - right.cell_len
            if gap >= 1:        # on a narrow terminal the screen's own keys come first
                line.append(" " * gap)
                spans.append((line.cell_len, line.cell_len + right.cell_len,
                              self.app.COMMAND_PALETTE_BINDING))
                line.append_text(right)
        self._spans = spans
        return line

    def on_click(self, event: events.Click) -> None:
        """A click on a key presses it, as Textual's footer does."""
        offset = event.get_content_offset(self)
        if offset is None:
            return
        for start, end, key in self._spans:
            if start <= offset.x < end:
                event.stop()
                self.app.simulate_key(key)
                return
