"""A yes/no question that says exactly what will happen. The answer is No unless
the operator presses y (or picks the yes button): enter on the default is No.

For what cannot be taken back (a host into maintenance, a host declared powered off),
TypedConfirmScreen: the host's name, typed."""
from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from ..engine.errors import Busy, EngineError, InventoryError
from ..engine.model import Task
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


class TypedConfirmScreen(ModalScreen["Task | None"]):
    """A change confirmed by typing a name. A subclass composes its words, ending with
    `typed_field()`, and says what enter does (`submit`). The engine checks the name;
    every refusal stays in the dialog, and escape leaves everything as it is."""

    INPUT_ID = "typed-name"
    ERROR_ID = "typed-error"

    def typed_field(self, name: str, hint: str) -> ComposeResult:
        typed = Input(placeholder=name, id=self.INPUT_ID, select_on_focus=False, compact=True)
        typed.cursor_blink = False
        yield typed
        yield Static(id=self.ERROR_ID, classes="dialog-error", markup=False)
        yield Static(hint, classes="dialog-hint", markup=False)

    def on_mount(self) -> None:
        self.query_one(f"#{self.ERROR_ID}", Static).display = False
        self.query_one(f"#{self.INPUT_ID}", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.run_worker(self._submit(event.value), exclusive=True, exit_on_error=False)

    async def submit(self, typed: str) -> Task | None:
        """Ask the engine; the task it started, or None once refuse() said why not."""
        raise NotImplementedError

    async def _submit(self, typed: str) -> None:
        try:
            task = await self.submit(typed)
        except (EngineError, Busy, InventoryError) as exc:
            self.refuse(str(exc))
            return
        except Exception as exc:  # never a traceback on screen
            from ..app import unexpected
            self.refuse(unexpected(exc))
            return
        if task is not None:
            self.dismiss(task)

    def refuse(self, why: str) -> None:
        error = self.query_one(f"#{self.ERROR_ID}", Static)
        error.update(why)
        error.display = True

    def action_cancel(self) -> None:
        self.dismiss(None)
