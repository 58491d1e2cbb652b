"""The top line of every screen: where you are, and the modes that change what
keys do ("mvmtui › prod › kvm-01 › web-01      OFFLINE  READ-ONLY").

One widget drawing one line: every screen has a title bar, and at start-up each
extra widget costs styling, layout and a mount before the first frame.
"""
from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from rich.text import Text
from textual.widget import Widget

SEPARATOR = " › "
OFFLINE = "OFFLINE · last known data"
READONLY = "READ-ONLY"


class TitleBar(Widget):
    COMPONENT_CLASSES = {"title-bar--crumbs", "title-bar--offline", "title-bar--readonly"}

    def __init__(self, crumbs: list[str], *, readonly: bool = False,
                 offline: bool = False) -> None:
        super().__init__(classes="title-bar")
        self._crumbs = list(crumbs)
        self.badges = [name for name, on in ((OFFLINE, offline), (READONLY, readonly)) if on]

    @property
    def crumbs(self) -> list[str]:
        return list(self._crumbs)

    def set_crumbs(self, crumbs: list[str]) -> None:
        if crumbs != self._crumbs:
            self._crumbs = list(crumbs)
            self.refresh()

    def render(self) -> Text:
        width = self.size.width
        badges = Text()
        for name in self.badges:   # " " margin, then the badge padded by one cell
            style = "title-bar--offline" if name == OFFLINE else "title-bar--readonly"
            badges.append(" ")
            badges.append(f" {name} ", self.get_component_rich_style(style, partial=True))
        room = max(0, width - badges.cell_len)
        crumbs = " " + SEPARATOR.join(self._crumbs)
        if cell_len(crumbs) > room - 1:       # keep the badges; shorten the path
            crumbs = set_cell_size(crumbs, max(0, room - 2)) + "…" if room > 1 else ""
        line = Text(set_cell_size(crumbs, room),
                    self.get_component_rich_style("title-bar--crumbs", partial=True),
                    no_wrap=True, overflow="crop")   # one line, even on a narrow terminal
        line.append_text(badges)
        return line
