"""Home: every cluster the inventory knows, with its health at a glance."""
from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding

from ..widgets.fast_table import FastTable
from ..widgets.listing import Listing
from .base import Changes, ConsoleScreen
from .rows import CLUSTER_COLUMNS, cluster_cells


class ClustersScreen(ConsoleScreen):
    TITLE_TEXT = "Clusters"
    BINDINGS = [
        Binding("q", "app.quit", "Quit", id="clusters.quit"),
    ]

    def crumbs(self) -> list[str]:
        return ["mvmtui", "clusters"]

    def compose_body(self) -> ComposeResult:
        yield Listing(CLUSTER_COLUMNS, "cluster", sort="name", id="clusters")

    def reload(self) -> None:
        pal = self.palette
        self.query_one("#clusters", Listing).set_rows(
            [(s.cluster.name, cluster_cells(s, pal)) for s in self.engine.summaries()])

    def apply_changes(self, changes: Changes) -> None:
        if changes.hosts or changes.vms or changes.removed:
            self.throttle("summaries", self.reload)

    @on(FastTable.RowSelected, "#clusters-table")
    def _open_row(self, message: FastTable.RowSelected) -> None:
        self.mvm.open_cluster(message.key)
