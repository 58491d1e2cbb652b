"""The footer of every console screen: Textual's Footer, redrawn only when the keys
it shows change.

A screen announces "bindings updated" on every focus change and refresh_bindings()
(the VM keys appear and disappear with the cursor); the stock Footer then re-mounts
all its keys each time. At start-up that alone was several re-mounts before the
first complete frame.
"""
from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer


def shown_keys(screen: Screen) -> tuple:
    """What the footer would draw: each shown binding with its state."""
    return tuple((b.key, b.action, b.description, enabled, tooltip)
                 for _node, b, enabled, tooltip in screen.active_bindings.values()
                 if b.show)


class KeysFooter(Footer):
    _drawn: tuple | None = None     # shown_keys() of the last recompose

    def bindings_changed(self, screen: Screen) -> None:
        keys = shown_keys(screen)
        if keys == self._drawn and self._bindings_ready:
            return
        super().bindings_changed(screen)
        # The stock footer skips recomposing while the terminal is unfocused or for
        # another screen: remember only what it will really draw.
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            self._drawn = keys
