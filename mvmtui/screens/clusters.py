"""Home: every cluster the inventory knows, with its health and who watches it for
host loss at a glance."""
from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding

from ..engine.model import HaStatus
from ..widgets.fast_table import FastTable
from ..widgets.listing import Listing
from .base import Changes, ConsoleScreen
from .ha import watch_cell
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
        pal, engine = self.palette, self.engine
        self.query_one("#clusters", Listing).set_rows(
            [(s.cluster.name, cluster_cells(s, pal, watch_cell(engine.ha_status(s.cluster.name),
                                                                pal)))
             for s in engine.summaries()])

    def apply_changes(self, changes: Changes) -> None:
        if changes.hosts or changes.vms or changes.removed:
            self.throttle("summaries", self.reload)

    def apply_ha(self, statuses: dict[str, HaStatus]) -> None:
        self.throttle("summaries", self.reload)      # who watches each cluster

    @on(FastTable.RowSelected, "#clusters-table")
    def _open_row(self, message: FastTable.RowSelected) -> None:
        self.mvm.open_cluster(message.key)
