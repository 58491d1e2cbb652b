"""A virtualised table for big inventories (thousands of VMs).

The stock `DataTable` re-measures every cell on each reload, which costs ~1.8 s
at 10,000 rows. `FastTable` keeps rows in plain Python lists, gives columns fixed
widths, and draws only the lines on screen through the Line API, so a filter
keystroke or a sort is a list operation plus one screenful of drawing.

Columns never run off the right edge: when the table is narrow, the least important
ones (highest `priority`) are hidden, never cut to "He" or "2s ag". Data ages are
`Age` cells, formatted when a line is drawn with the table's `clock`, and repainted
once a second: every view of an age agrees with the clock, whenever it was loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence, Union

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from .format import Age

Cell = Union[str, Text, int, float, Age, None]
SORT_ARROW = 2   # " ▲": a sorted column is widened by this, so the arrow never hides its label


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int = 10         # what it gets when there is room
    align: str = "left"     # or "right"
    flex: bool = False      # grows into spare width, up to max_width
    priority: int = 0       # lower = more important; the highest are hidden first
    min_width: int = 0      # narrowest before it is hidden (0: width); never below the label
    max_width: int = 0      # how far a flex column grows (0: no limit)

    def floor(self, sorted_: bool = False) -> int:
        """The narrowest this column is drawn: its label (and sort arrow) always fit."""
        label = cell_len(self.label) + (SORT_ARROW if sorted_ else 0)
        return max(self.min_width or self.width, label)


def plan_columns(columns: Sequence[Column], width: int,
                 sort_index: int | None = None) -> list[tuple[int, int]]:
    """(column index, cell width) of the columns shown in `width` cells, in column order.

    Most important first, a column is shown if it fits at its narrowest beside the
    ones already shown at their preferred widths (so a minor column never squeezes a
    major one to its minimum). Then each grows to its preferred width, most important
    first; flex columns share what is left, up to their max_width; the rest stays
    blank at the right (a 45-cell Name at 160 columns helps nobody).
    """
    floors = [c.floor(i == sort_index) for i, c in enumerate(columns)]
    # Which columns show does not depend on the sort: sorting never hides a column.
    wants = [max(c.width, c.floor()) for c in columns]
    order = sorted(range(len(columns)), key=lambda i: (columns[i].priority, i))
    shown: set[int] = set()
    wanted = -1   # n columns take n - 1 separators
    for i in order:
        if wanted + 1 + floors[i] <= width or not shown:
            shown.add(i)
            wanted += 1 + wants[i]
    used = sum(floors[i] for i in shown) + len(shown) - 1
    while used > width and len(shown) > 1:   # a sort arrow took the last cells
        drop = max(shown, key=lambda i: (columns[i].priority, i))
        shown.discard(drop)
        used -= floors[drop] + 1
    widths = {i: floors[i] for i in shown}
    spare = width - used
    for i in order:
        if i in shown and spare > 0:
            grow = min(spare, max(wants[i], floors[i]) - widths[i])
            if grow > 0:
                widths[i] += grow
                spare -= grow
    flex = [i for i in order if i in shown and columns[i].flex]
    while spare > 0 and flex:
        share = max(1, spare // len(flex))
        for i in list(flex):
            cap = columns[i].max_width
            grow = max(0, min(share, spare, cap - widths[i] if cap else share))
            widths[i] += grow
            spare -= grow
            if (cap and widths[i] >= cap) or not spare:
                flex.remove(i)
    if used > width:   # not even the most important column fits: it takes the whole line
        widths = {i: max(1, width) for i in shown}
    return [(i, widths[i]) for i in sorted(shown)]


@dataclass(eq=False, slots=True)
class Row:
    """One row. Mutable so an upsert that keeps its place is seen by every list."""

    key: str
    cells: tuple
    search: str  # lowercase plain text of all cells, built once per set/upsert


def _plain(cell: Cell) -> str:
    if type(cell) is str:
        return cell
    if cell is None:
        return ""
    return cell.plain if isinstance(cell, Text) else str(cell)


def make_row(key: str, cells: tuple) -> Row:
    return Row(key, tuple(cells), "\0".join(map(_plain, cells)).lower())


def _sort_value(cell: Cell) -> tuple:
    # Numbers before text so mixed columns still compare; text case-insensitively.
    if isinstance(cell, (int, float)):
        return (0, cell, "")
    if isinstance(cell, Age):   # youngest first, whatever the clock says now
        return (0, cell.sort_value, "")
    return (1, 0, _plain(cell).casefold())


def _sort_cell(row: Row, index: int) -> tuple:
    cell = row.cells[index] if index < len(row.cells) else None
    return (cell is None, _sort_value(cell))


def sort_rows(rows: Iterable[Row], index: int | None, reverse: bool = False,
              by_first: bool = False) -> list[Row]:
    """Sort by raw cell value; ties in the first column's order (the name), ascending
    in both directions; None (or a missing cell) stays last either way. `by_first`:
    the rows are in first-column order already."""
    if index is None:
        return list(rows)
    rows = list(rows)
    if index and not by_first:   # Python's sort is stable, reverse=True too
        rows.sort(key=lambda r: _sort_cell(r, 0))
    present, missing = [], []
    for row in rows:
        cells = row.cells
        (present if index < len(cells) and cells[index] is not None else missing).append(row)
    present.sort(key=lambda r: _sort_value(r.cells[index]), reverse=reverse)
    return present + missing


def filter_rows(rows: Sequence[Row], text: str) -> list[Row]:
    needle = text.lower()
    return [r for r in rows if needle in r.search] if needle else list(rows)


def apply_view(rows: Sequence[Row], filter_text: str, sort_index: int | None, reverse: bool) -> list[Row]:
    """What the table shows. The widget does the same in two steps, caching the sort."""
    return filter_rows(sort_rows(rows, sort_index, reverse), filter_text)


def _age_texts(cells: tuple, now: float | None) -> tuple:
    """What a row's ages read at `now`: its line is drawn again when this changes."""
    return tuple(c.text(c.now if now is None else now) for c in cells if type(c) is Age)


def _fit(text: str, width: int, align: str) -> str:
    """Crop with an ellipsis or pad to exactly `width` cells."""
    n = cell_len(text)
    if n > width:
        return set_cell_size(text, width - 1) + "…" if width > 1 else "…"[:width]
    pad = " " * (width - n)
    return pad + text if align == "right" else text + pad


class FastTable(ScrollView, can_focus=True, inherit_bindings=False):
    """Sticky header on line 0, rows below; only visible lines are drawn."""

    COMPONENT_CLASSES = {"fast-table--header", "fast-table--cursor", "fast-table--even",
                         "fast-table--empty", "fast-table--track", "fast-table--thumb"}
    # The vertical scroll position is drawn by the table itself, in its last column:
    # Textual's ScrollBar widget is a second 44-line widget to restyle and redraw on
    # every filter keystroke and page scroll, and costs as much as the rows do.
    DEFAULT_CSS = """
    FastTable {
        background: $surface;
        color: $foreground;
        scrollbar-size-vertical: 0;
        overflow-x: hidden;   /* columns that do not fit are hidden, never scrolled to */
        & > .fast-table--track { background: $scrollbar-background; }
        & > .fast-table--thumb { background: $scrollbar; }
        & > .fast-table--header { background: $panel; color: $foreground; text-style: bold; }
        & > .fast-table--even { background: $surface-lighten-1 50%; }
        & > .fast-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus > .fast-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        & > .fast-table--empty { color: $text-muted; text-style: italic; }
    }
    """
    # Not ScrollView's bindings: nothing scrolls sideways (hidden columns do not fit,
    # so they are not scrolled to), and its page keys move the view, not the cursor.
    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False, id="table.up"),
        Binding("down,j", "cursor(1)", "Down", show=False, id="table.down"),
        Binding("pageup,ctrl+b", "page(-1)", "Page up", show=False, id="table.page_up"),
        Binding("pagedown,ctrl+f", "page(1)", "Page down", show=False, id="table.page_down"),
        Binding("ctrl+u", "page(-0.5)", "Half page up", show=False, id="table.half_page_up"),
        Binding("ctrl+d", "page(0.5)", "Half page down", show=False, id="table.half_page_down"),
        Binding("home,g", "first", "First", show=False, id="table.first"),
        Binding("end,G", "last", "Last", show=False, id="table.last"),
        Binding("enter,l", "select", "Select", show=False, id="table.select"),
        Binding("o", "cycle_sort", "Sort", id="table.sort"),
        # Shown in help, not the footer: at 80 columns the footer must keep "? Help".
        Binding("O", "reverse_sort", "Reverse", show=False, id="table.reverse"),
    ]

    class _TableMessage(Message):
        def __init__(self, table: FastTable, key: str | None) -> None:
            super().__init__()
            self.table, self.key = table, key

        @property
        def control(self) -> FastTable:  # lets `@on(FastTable.RowSelected, "#vms")` match
            return self.table

    # Siblings, not parent and child: `@on` also matches subclasses of the message.
    class RowSelected(_TableMessage):
        """Enter, `l` or a double click on a row."""

    class CursorMoved(_TableMessage):
        """The cursor is on another row (key is None when the view is empty)."""

    def __init__(self, columns: list[Column], *, name=None, id=None, classes=None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._rows: dict[str, Row] = {}  # insertion order is the unsorted order
        self._sorted: list[Row] | None = []  # all rows in sort order; None = stale
        self._by_name: list[Row] | None = None  # by first column: the ties' order
        self._view: list[Row] = []  # sorted rows that pass the filter
        self._view_stale = False
        self._filter = ""  # as typed, for filter_text and the empty-state line
        self._needle = ""  # lowercased once per keystroke
        self._sort_index: int | None = None
        self._reverse = False
        self._cursor = 0
        self._last_key: str | None = None
        self._styles_memo: dict[str, Style] = {}    # within one drawing pass
        self._text_cache: dict[tuple, tuple] = {}   # rich cells' segments (_row_segments)
        self._painted_ages: dict[int, tuple | None] = {}   # virtual y -> age texts drawn
        # The cursor follows its row through re-sorts and new rows only once the
        # operator has moved it: until then it stays on the first row (rows arriving
        # in any order must not leave a table opening scrolled to where one landed).
        self._chosen = False
        self._pass: tuple | None = None   # set while render_lines draws
        #: what Age cells are measured against; the screen sets its engine's clock
        self.clock: Callable[[], float] | None = None
        self._age_timer = None
        self._has_ages = False
        self.columns = columns

    # -- read-only state -------------------------------------------------------
    @property
    def columns(self) -> list[Column]:
        return self._columns

    @columns.setter
    def columns(self, columns: list[Column]) -> None:
        """Replace the columns (rows must match them); drops the sort."""
        self._columns = list(columns)
        self._column_layout: tuple = (None, [])
        self._layout_version = 0
        # Rendered rows, keyed by (id(cells), width, row style): filtering and sorting
        # mostly re-show rows already drawn, and drawing rich Text cells is the slow part.
        self._line_cache: dict[tuple, tuple[tuple, Strip]] = {}
        self._sort_index = None
        self._sorted = self._by_name = None
        self._rebuild()

    filter_text = property(lambda self: self._filter)
    sort_reverse = property(lambda self: self._reverse)
    total_count = property(lambda self: len(self._rows))

    @property
    def visible_columns(self) -> list[Column]:
        """The columns drawn at the table's present width, in order."""
        return [column for column, *_ in self._layout(self._rows_width())]

    @property
    def sort_key(self) -> str | None:
        return None if self._sort_index is None else self.columns[self._sort_index].key

    @property
    def row_count(self) -> int:
        self._ensure_view()
        return len(self._view)

    @property
    def cursor_row(self) -> int:
        self._ensure_view()
        return self._cursor

    @property
    def cursor_key(self) -> str | None:
        self._ensure_view()
        return self._view[self._cursor].key if self._view else None

    # -- data ------------------------------------------------------------------
    def set_rows(self, rows: list[tuple[str, tuple]]) -> None:
        self._rows = {key: make_row(key, cells) for key, cells in rows}
        self._sorted = self._by_name = None
        if rows:
            self._watch_ages(rows[0][1])
        self._rebuild()

    def upsert_row(self, key: str, cells: tuple) -> None:
        new = make_row(key, cells)
        self._watch_ages(cells)
        old = self._rows.get(key)
        i, needle = self._sort_index, self._needle
        keeps_place = (
            old is not None and not self._view_stale
            and (i is None or _sort_cell(old, i) == _sort_cell(new, i))
            and (needle in old.search) == (needle in new.search)
        )
        if old is None:
            self._rows[key] = new
            self._by_name = None
        else:
            if _sort_cell(old, 0) != _sort_cell(new, 0):
                self._by_name = None
            old.cells, old.search = new.cells, new.search  # same object sits in every list
        if not keeps_place:
            # Order or membership changes: re-sort once for a whole burst of upserts.
            self._sorted = None
            if not self._view_stale:
                self._view_stale = True
                self.call_later(self._ensure_view)
            return
        top = int(self.scroll_y)
        for n, row in enumerate(self._view[top : top + self._page_height()]):
            if row is old:  # on screen: repaint that line only (virtual y; header is 0)
                self.refresh_line(top + n + 1)

    def remove_row(self, key: str) -> None:
        row = self._rows.pop(key, None)
        if row is not None:
            for rows in (self._sorted, self._by_name):
                if rows is not None:
                    rows.remove(row)  # identity compare in C; no re-sort needed
            self._rebuild()

    def set_filter(self, text: str) -> None:
        self._filter, self._needle = text, text.lower()
        self._rebuild()

    def sort_by(self, column_key: str, reverse: bool | None = None) -> None:
        index = [c.key for c in self.columns].index(column_key)  # ValueError if unknown
        if reverse is None:
            reverse = not self._reverse if index == self._sort_index else False
        self._sort_index, self._reverse, self._sorted = index, reverse, None
        self._rebuild()

    def cycle_sort(self) -> None:
        i = -1 if self._sort_index is None else self._sort_index
        self.sort_by(self.columns[(i + 1) % len(self.columns)].key, reverse=False)

    def reverse_sort(self) -> None:
        self.sort_by(self.columns[self._sort_index or 0].key, reverse=not self._reverse)

    def move_cursor_to_key(self, key: str) -> bool:
        index = self._index_of(key)
        if index is not None:
            self._chosen = True
            self._move_cursor(index)
        return index is not None

    def visible_keys(self) -> list[str]:
        """Keys of the rows on screen now."""
        if not self.is_on_screen:
            return []
        self._ensure_view()
        top = int(self.scroll_y)
        return [r.key for r in self._view[top:top + self._page_height()]]

    # -- view upkeep -----------------------------------------------------------
    def _ensure_view(self) -> None:
        if self._view_stale:
            self._rebuild()

    def _rebuild(self) -> None:
        """Recompute the visible list, keeping the cursor on the same key if it survives."""
        key = self._last_key if self._chosen else None
        if self._sorted is None:
            index = self._sort_index
            if index and self._by_name is None:
                self._by_name = sort_rows(self._rows.values(), 0)
            rows = self._by_name if index else self._rows.values()
            self._sorted = sort_rows(rows, index, self._reverse, by_first=True)
        self._view = filter_rows(self._sorted, self._needle)
        self._view_stale = False
        # No wider than the table: what does not fit is hidden, not scrolled to.
        # Without the reactive's layout pass: the table's own size does not depend on
        # how many rows it has, and a whole-screen layout per filter keystroke cost
        # more than drawing the table (it draws its own scroll indicator).
        size = Size(1, len(self._view) + 1)
        if size != self.virtual_size:
            self.set_reactive(FastTable.virtual_size, size)
        index = self._index_of(key)
        self._move_cursor((self._cursor if self._chosen else 0) if index is None else index,
                          force=True)
        self.refresh()

    def _index_of(self, key: str | None) -> int | None:
        self._ensure_view()
        try:  # list.index compares by identity in C: cheaper than keeping a key map
            return self._view.index(self._rows[key])
        except (KeyError, ValueError):
            return None

    def _page_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _rows_width(self) -> int:
        """Cells for the columns: the last one is the scroll indicator's."""
        return max(0, self.scrollable_content_region.width - 1)

    def _move_cursor(self, index: int, force: bool = False) -> None:
        old = self._cursor
        self._cursor = max(0, min(index, len(self._view) - 1))
        top, height = int(self.scroll_y), self._page_height()
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=False, force=True)
        elif self._cursor >= top + height:
            self.scroll_to(y=self._cursor - height + 1, animate=False, force=True)
        if not force and old != self._cursor:
            # Repaint just the two lines the cursor left and entered.
            for row in (old, self._cursor):
                if 0 <= row - top < height:
                    self.refresh_line(row + 1)
        key = self._view[self._cursor].key if self._view else None
        if key != self._last_key:
            self._last_key = key
            self.post_message(self.CursorMoved(self, key))

    # -- actions and mouse -----------------------------------------------------
    def action_cursor(self, delta: int) -> None:
        self._chosen = True
        self._move_cursor(self.cursor_row + delta)

    def action_page(self, pages: float) -> None:
        self._chosen = True
        self._move_cursor(self.cursor_row + int(pages * self._page_height()))

    def action_first(self) -> None:
        self._chosen = True
        self._move_cursor(0)

    def action_last(self) -> None:
        self._chosen = True
        self._move_cursor(self.row_count - 1)

    def action_select(self) -> None:
        if (key := self.cursor_key) is not None:
            self.post_message(self.RowSelected(self, key))

    def action_cycle_sort(self) -> None:
        self._chosen = True     # the row the operator looks at stays under the cursor
        self.cycle_sort()

    def action_reverse_sort(self) -> None:
        self._chosen = True
        self.reverse_sort()

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        event.stop()
        if offset.x >= self._rows_width():  # the scroll indicator (its thumb is not dragged)
            top, height = int(self.scroll_y), self._page_height()
            if offset.y > 0 and self.row_count > height:  # above the thumb: page up; below: down
                start, size = self._thumb(top, height)
                if offset.y - 1 < start:
                    self.action_page(-1)
                elif offset.y - 1 >= start + size:
                    self.action_page(1)
            return
        if offset.y == 0:  # header: sort by the column under the mouse
            x = offset.x
            for column, _, start, width in self._layout(self._rows_width()):
                if start <= x < start + width + 1:
                    self._chosen = True
                    self.sort_by(column.key)
                    break
            return
        index = int(self.scroll_y) + offset.y - 1
        if index < self.row_count:
            self._chosen = True
            self._move_cursor(index)
            if event.chain >= 2:
                self.action_select()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self.refresh()  # focus changes the cursor colour

    # -- ages ------------------------------------------------------------------
    def _watch_ages(self, cells: tuple) -> None:
        if not self._has_ages and any(type(c) is Age for c in cells):
            self._has_ages = True
            self.refresh()   # the next drawing pass starts the clock

    def _start_age_timer(self) -> None:
        """Rows with Age cells and a clock: repaint the visible lines once a second,
        so an age on screen is never more than a second behind the clock."""
        self._age_timer = self.set_interval(1.0, self._age_tick)

    def _age_tick(self) -> None:
        """Repaint the lines whose age text moved on since they were drawn (a page of
        lines drawn again every second was most of an idle console's CPU)."""
        if not (self.is_on_screen and self._view):
            return
        now = self.clock()
        top = int(self.scroll_y)
        for n, row in enumerate(self._view[top:top + self._page_height()]):
            y = top + n + 1       # virtual y; the header is 0
            if self._painted_ages.get(y) != _age_texts(row.cells, now):
                self.refresh_line(y)

    # -- drawing ---------------------------------------------------------------
    def _layout(self, width: int) -> list[tuple[Column, int, int, int]]:
        """(column, cell index, start x, width) per column shown."""
        key = (width, self._sort_index)
        if self._column_layout[0] != key:
            out, x = [], 0
            for i, w in plan_columns(self.columns, width, self._sort_index):
                out.append((self.columns[i], i, x, w))
                x += w + 1
            self._column_layout = (key, out)
            self._layout_version += 1   # cached lines of the old layout are not reused
        return self._column_layout[1]

    def _thumb(self, top: int, height: int) -> tuple[int, int]:
        """(first line, line count) of the thumb within `height` lines of rows."""
        total = len(self._view)
        size = max(1, height * height // total)
        start = min(height - size, round(top * (height - size) / max(1, total - height)))
        return start, size

    def _prepare_pass(self) -> tuple:
        """What every line of a drawing pass shares."""
        self._ensure_view()
        width = self._rows_width()
        top, height = int(self.scroll_y), self._page_height()
        thumb = self._thumb(top, height) if len(self._view) > height else None
        now = self.clock() if self.clock is not None else None   # None: as built
        if now is not None and self._has_ages and self._age_timer is None:
            self._start_age_timer()
        return width, self._layout(width), self.rich_style, thumb, now

    def _component_style(self, name: str) -> Style:
        """A component class's style, looked up once per drawing pass (each look-up
        walks every ancestor's styles; a page of lines asked for it per line)."""
        memo = self._styles_memo
        style = memo.get(name)
        if style is None:
            style = memo[name] = self.get_component_rich_style(name)
        return style

    def render_lines(self, crop):
        # Computed once per pass, not per line: rich_style walks every ancestor's styles.
        self._styles_memo = {}
        self._pass = self._prepare_pass()
        try:
            return super().render_lines(crop)
        finally:
            self._pass = None
            self._styles_memo = {}

    def render_line(self, y: int) -> Strip:
        width, layout, base, thumb, now = self._pass or self._prepare_pass()
        strip = self._render_row_line(y, width, layout, base, now)
        if y == 0:
            bar = self._component_style("fast-table--header")
        elif thumb is None:
            bar = base
        else:
            start, size = thumb
            bar = self._component_style(
                "fast-table--thumb" if start <= y - 1 < start + size else "fast-table--track")
        return Strip([*strip, Segment(" ", bar)], width + 1)

    def _render_row_line(self, y: int, width: int, layout, base: Style,
                         now: float | None) -> Strip:
        """Line y (0 is the header) of the columns, `width` cells wide."""
        scroll_y = self.scroll_offset.y
        if y == 0:
            style = self._component_style("fast-table--header")
            cells = []
            for column, i, _, w in layout:
                label = column.label
                if i == self._sort_index:   # the column is wide enough for both
                    label += " ▼" if self._reverse else " ▲"
                cells.append(_fit(label, w, column.align))
            return self._fit_strip([Segment(" ".join(cells), style)], width, style)
        elif not self._view:
            if y != max(1, self.scrollable_content_region.height // 2):
                return Strip.blank(width, base)
            text = f"No rows match “{self._filter}”" if self._rows else "Nothing here yet"
            style = self._component_style("fast-table--empty")
            return Strip([Segment(_fit(text, width, "left").strip().center(width), style)], width)
        else:
            index = scroll_y + y - 1
            if index >= len(self._view):
                return Strip.blank(width, base)
            if index == self._cursor:
                style = self._component_style("fast-table--cursor")
            elif index % 2:
                style = self._component_style("fast-table--even")
            else:
                style = base
            cells = self._view[index].cells
            # style covers cursor, stripe, focus and theme; the finished Strip is cached.
            # Ages move on: a line whose age texts changed is drawn again.
            ages = _age_texts(cells, now) if now is not None and self._has_ages else None
            self._painted_ages[scroll_y + y] = ages
            ckey = (id(cells), width, style, self._layout_version, ages)
            hit = self._line_cache.get(ckey)
            if hit is not None and hit[0] is cells:   # `is`: an id may be reused
                return hit[1]
            strip = self._fit_strip(self._row_segments(cells, layout, style, now), width,
                                    style)
            if len(self._line_cache) > 2000:
                self._line_cache.clear()
            self._line_cache[ckey] = (cells, strip)
            return strip

    @staticmethod
    def _fit_strip(segments: list[Segment], width: int, style: Style) -> Strip:
        """Exactly `width` cells: what the columns leave at the right stays blank."""
        used = sum(cell_len(s.text) for s in segments)
        if used < width:
            segments.append(Segment(" " * (width - used), style))
        elif used > width:
            return Strip(segments).crop(0, width)
        return Strip(segments, width)

    def _row_segments(self, cells: tuple, layout, style: Style,
                      now: float | None) -> list[Segment]:
        # Plain cells are joined into one string; only rich Text cells add segments.
        segments: list[Segment] = []
        plain: list[str] = []
        for n, (column, i, _, w) in enumerate(layout):
            if n:
                plain.append(" ")
            cell = cells[i] if i < len(cells) else None
            if type(cell) is Age:
                plain.append(_fit(cell.text(cell.now if now is None else now, w), w,
                                  column.align))
                continue
            if not isinstance(cell, Text):
                plain.append(_fit(_plain(cell), w, column.align))
                continue
            # A rich cell's segments are kept: lines with ages are drawn again every
            # second, and rendering Text is most of a line's cost.
            tkey = (id(cell), w, style, column.align)
            hit = self._text_cache.get(tkey)
            if hit is None or hit[0] is not cell:
                text = cell.copy()
                text.truncate(w, overflow="ellipsis")
                pad = " " * (w - text.cell_len)
                console = self.app.console
                # Text.render leaves out the Text's own base style; add it under the spans.
                base = style + console.get_style(text.style) if text.style else style
                hit = (cell, [Segment(s.text, base + s.style if s.style else base)
                              for s in text.render(console)], pad)
                if len(self._text_cache) > 4000:
                    self._text_cache.clear()
                self._text_cache[tkey] = hit
            _, rendered, pad = hit
            if column.align == "right":
                plain.append(pad)
                pad = ""
            segments.append(Segment("".join(plain), style))
            segments.extend(rendered)
            plain = [pad]
        segments.append(Segment("".join(plain), style))
        return segments
