"""The top line of every screen: where you are, and the modes that change what
keys do ("mvmtui › prod › kvm-01 › web-01      OFFLINE  READ-ONLY")."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

SEPARATOR = " › "


class TitleBar(Horizontal):
    def __init__(self, crumbs: list[str], *, readonly: bool = False,
                 offline: bool = False) -> None:
        super().__init__(classes="title-bar")
        self._crumbs = list(crumbs)
        self._readonly = readonly
        self._offline = offline

    def compose(self) -> ComposeResult:
        yield Static(SEPARATOR.join(self._crumbs), classes="crumbs", markup=False)
        if self._offline:
            yield Static("OFFLINE · last known data", classes="badge offline", markup=False)
        if self._readonly:
            yield Static("READ-ONLY", classes="badge readonly", markup=False)

    @property
    def crumbs(self) -> list[str]:
        return list(self._crumbs)

    def set_crumbs(self, crumbs: list[str]) -> None:
        if crumbs != self._crumbs:
            self._crumbs = list(crumbs)
            self.query_one(".crumbs", Static).update(SEPARATOR.join(crumbs))
