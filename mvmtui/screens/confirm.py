"""A yes/no question that says exactly what will happen. The answer is No unless
the operator presses y (or picks the yes button): enter on the default is No."""
from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from ..widgets.footer import KeysBar


class ConfirmScreen(ModalScreen[bool]):
    """Title, optional facts (bold), what will happen, the question, No / Yes.
    `kind` is the dialog's class in dialogs.tcss (its border, its width)."""

    CSS_PATH = Path(__file__).with_name("dialogs.tcss")
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape,q", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, title: str, body: str, *, yes_label: str = "Yes",
                 question: str = "Are you sure? (y/N)", facts: str = "",
                 kind: str = "confirm", yes_variant: str = "error") -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.facts = facts
        self.body = body
        self.prompt = question
        self.yes_label = yes_label
        self.kind = kind
        self.yes_variant = yes_variant

    def compose(self) -> ComposeResult:
        with Vertical(classes=f"dialog {self.kind}"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            if self.facts:
                yield Static(self.facts, classes="dialog-facts", markup=False)
            yield Static(self.body, classes="dialog-body", markup=False)
            yield Static(self.prompt, classes="dialog-question", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("No (n)", id="no", variant="primary", compact=True)
                yield Button(f"{self.yes_label} (y)", id="yes",
                             variant=self.yes_variant, compact=True)  # type: ignore[arg-type]
        yield KeysBar()

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
