"""Trust on first use: a host offered an SSH key we have never seen. Show what it
is and let the operator decide; default No (the host stays unconnected)."""
from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static

from ..engine.model import HostKeyQuestion


class HostKeyScreen(ModalScreen[bool]):
    CSS_PATH = Path(__file__).with_name("dialogs.tcss")
    BINDINGS = [
        Binding("y", "answer(True)", "Trust", id="hostkey.yes"),
        Binding("n,escape,q", "answer(False)", "Don't trust", id="hostkey.no"),
    ]

    def __init__(self, question: HostKeyQuestion, readonly: bool = False) -> None:
        super().__init__(classes="dialog-screen")
        self.question = question
        self.readonly = readonly

    def compose(self) -> ComposeResult:
        q, h = self.question, self.question.host
        address = h.address if h.port == 22 else f"{h.address}:{h.port}"
        facts = (f"Host         {h.name} (cluster {h.cluster})\n"
                 f"Address      {address}\n"
                 f"Key type     {q.key_type or '—'}\n"
                 f"Fingerprint  {q.fingerprint}")
        with Vertical(classes="dialog host-key"):
            yield Static("Unknown SSH host key", classes="dialog-title")
            yield Static(facts, classes="dialog-facts", markup=False)
            yield Static("Compare the fingerprint with the host's own "
                         "(ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on its console). "
                         "Trusting adds it to known_hosts; the console then connects.",
                         classes="dialog-body", markup=False)
            if self.readonly:
                yield Static("Read-only mode: keys cannot be trusted in this session.",
                             classes="dialog-warning")
            yield Static("Trust this key? (y/N)", classes="dialog-question")
            with Horizontal(classes="dialog-buttons"):
                yield Button("No (n)", id="no", variant="primary", compact=True)
                yield Button("Trust (y)", id="yes", variant="warning", compact=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
