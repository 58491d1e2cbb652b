"""Ask for a cluster's SSH password. It goes to the engine's memory for this session
only (never to disk); enter uses it, escape cancels."""
from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from ..widgets.footer import KeysBar


class PasswordScreen(ModalScreen[str | None]):
    CSS_PATH = Path(__file__).with_name("dialogs.tcss")
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="password.cancel")]

    def __init__(self, cluster: str) -> None:
        super().__init__(classes="dialog-screen")
        self.cluster = cluster

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog password"):
            yield Static(f"SSH password for cluster {self.cluster}", classes="dialog-title",
                         markup=False)
            yield Static("Used for every host of the cluster that the SSH key or agent "
                         "does not get into. Kept in memory for this session only; never "
                         "written to disk.", classes="dialog-body", markup=False)
            yield Input(password=True, placeholder="password", id="password")
        yield KeysBar()

    def on_mount(self) -> None:
        self.query_one("#password", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
