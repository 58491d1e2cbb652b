"""A FastTable with a caption line that says how many rows there are and whether a
filter hides some ("3 of 12 VMs match “web” · esc clears"): rows hidden by a
filter are never silently missing."""
from __future__ import annotations

from typing import Iterable

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from .fast_table import Column, FastTable


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class Listing(Vertical):
    """Screens change rows through the listing so the caption stays true."""

    def __init__(self, columns: list[Column], noun: str, *, sort: str | None = None,
                 reverse: bool = False, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.noun = noun
        self.table = FastTable(columns, id=f"{id}-table" if id else None)
        self._sort = (sort, reverse)

    def compose(self) -> ComposeResult:
        yield self.table
        yield Static(classes="caption", markup=False)

    def on_mount(self) -> None:
        # Ages are drawn with the screen's clock (a console screen's is its engine's:
        # fixed in tests), so this table and the screen's dialogs tell the same age.
        if self.table.clock is None:
            self.table.clock = getattr(self.screen, "now", None)
        sort, reverse = self._sort
        if sort:
            self.table.sort_by(sort, reverse=reverse)
        self.refresh_caption()

    # -- data --------------------------------------------------------------------
    def set_rows(self, rows: list[tuple[str, tuple]]) -> None:
        self.table.set_rows(rows)
        self.refresh_caption()

    def update(self, upserts: Iterable[tuple[str, tuple]] = (),
               removes: Iterable[str] = ()) -> None:
        """A batch of changes, then one caption update."""
        table = self.table
        for key in removes:
            table.remove_row(key)
        for key, cells in upserts:
            table.upsert_row(key, cells)
        self.refresh_caption()

    def set_filter(self, text: str) -> None:
        self.table.set_filter(text)
        self.refresh_caption()

    @property
    def filter_text(self) -> str:
        return self.table.filter_text

    def refresh_caption(self) -> None:
        table = self.table
        total, shown = table.total_count, table.row_count
        if table.filter_text:
            text = (f"{shown} of {plural(total, self.noun)} match "
                    f"“{table.filter_text}” · / edits · esc clears")
        else:
            text = plural(total, self.noun)
        # One fixed-height line: no layout pass needed (it would repaint the screen).
        self.query_one(".caption", Static).update(text, layout=False)
