"""FastTable: rendering, filter, sort, updates, keys and mouse; plus the pure view helper."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.text import Text
from textual import on
from textual.app import App, ComposeResult

from mvmtui.widgets.fast_table import Column, FastTable, apply_view, make_row, plan_columns
from mvmtui.widgets.format import Age

COLUMNS = [
    Column("name", "Name", 10),
    Column("state", "State", 8),
    Column("cpu", "CPU", 6, align="right"),
    Column("note", "Note", 8, flex=True),
]


def vm_rows(n: int) -> list[tuple[str, tuple]]:
    states = ["running", "stopped", "paused"]
    return [(f"vm{i}", (f"vm-{i:03d}", states[i % 3], i * 1.5, f"n{i}")) for i in range(n)]


class TableApp(App):
    def __init__(self, rows: list[tuple[str, tuple]]) -> None:
        super().__init__()
        self.rows = rows
        self.selected: list[str] = []
        self.moved: list[str | None] = []

    def compose(self) -> ComposeResult:
        yield FastTable(COLUMNS, id="table")

    def on_mount(self) -> None:
        table = self.query_one(FastTable)
        table.set_rows(self.rows)
        table.focus()

    @on(FastTable.RowSelected, "#table")  # `control` lets selectors match
    def record_selected(self, message: FastTable.RowSelected) -> None:
        self.selected.append(message.key)

    def on_fast_table_cursor_moved(self, message: FastTable.CursorMoved) -> None:
        self.moved.append(message.key)


def screen_lines(table: FastTable) -> list[str]:
    return ["".join(s.text for s in table.render_line(y)) for y in range(table.size.height)]


def run(rows, check, size=(60, 12)) -> None:
    """Run `check(pilot, app, table)` inside a headless app."""

    async def go() -> None:
        app = TableApp(rows)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await check(pilot, app, app.query_one(FastTable))

    asyncio.run(go())


def test_render_shows_header_and_rows():
    async def check(pilot, app, table):
        lines = screen_lines(table)
        assert lines[0].startswith("Name") and "CPU" in lines[0]
        assert lines[1].startswith("vm-000") and lines[2].startswith("vm-001")
        assert table.row_count == table.total_count == 40
        assert table.cursor_key == "vm0"
        table.set_rows([("a", ("a" * 30, Text("ok", style="green"), None, "x"))])
        await pilot.pause()
        assert screen_lines(table)[1].startswith("a" * 9 + "… ok")  # cropped with ellipsis
        ok = next(seg for seg in table.render_line(1) if seg.text == "ok")
        assert ok.style.color.name == "green"  # a Text cell keeps its own style

    run(vm_rows(40), check)


def test_empty_state_messages():
    async def check(pilot, app, table):
        assert any("Nothing here yet" in line for line in screen_lines(table))
        table.set_rows(vm_rows(3))
        table.set_filter("xyz")
        await pilot.pause()
        assert table.row_count == 0 and table.cursor_key is None
        assert any("No rows match “xyz”" in line for line in screen_lines(table))

    run([], check)


def test_filter_narrows_rows_and_keeps_cursor_key():
    async def check(pilot, app, table):
        assert table.move_cursor_to_key("vm12")
        table.set_filter("PAUSED")  # case-insensitive; vm12 is "running"
        assert table.filter_text == "PAUSED"
        assert table.row_count == 10 and table.total_count == 30
        table.set_filter("")
        table.move_cursor_to_key("vm14")  # paused
        table.set_filter("paus")
        assert table.cursor_key == "vm14"
        assert all("paused" in line for line in screen_lines(table)[1:11])
        table.set_filter("vm-02")
        assert [table.cursor_key, table.row_count] == ["vm24", 10]  # vm14 gone: same index
        assert not table.move_cursor_to_key("vm14")

    run(vm_rows(30), check)


def test_sort_numeric_text_reverse_and_none_last():
    rows = [("a", ("10", 10)), ("b", ("9", 9)), ("c", ("100", None)), ("d", ("Apple", 100))]
    columns = [Column("text", "Text", 8), Column("num", "Num", 6, align="right")]

    async def check(pilot, app, table):
        table.columns = columns
        table.set_rows(rows)
        table.sort_by("num")
        assert [r.key for r in table._view] == ["b", "a", "d", "c"]
        assert "Num ▲" in screen_lines(table)[0]
        table.sort_by("num")  # same column toggles
        assert table.sort_reverse and [r.key for r in table._view] == ["d", "a", "b", "c"]
        assert "Num ▼" in screen_lines(table)[0]
        table.sort_by("text")  # new column: ascending, text compares as text
        assert table.sort_key == "text" and not table.sort_reverse
        assert [r.key for r in table._view] == ["a", "c", "b", "d"]
        table.cycle_sort()
        assert table.sort_key == "num"
        table.reverse_sort()
        assert table.sort_reverse

    run([], check)


def test_upsert_and_remove():
    async def check(pilot, app, table):
        table.sort_by("cpu")
        table.move_cursor_to_key("vm2")
        table.upsert_row("vm1", ("vm-001", "paused", 1.5, "same place"))
        assert table.row_count == 5 and "same place" in screen_lines(table)[2]
        table.upsert_row("vm0", ("vm-000", "running", 99.0, "moved"))  # sort value changed
        table.upsert_row("new", ("vm-new", "running", 50.0, "added"))
        await pilot.pause()
        assert [r.key for r in table._view] == ["vm1", "vm2", "vm3", "vm4", "new", "vm0"]
        assert table.cursor_key == "vm2" and table.total_count == 6
        table.set_filter("running")
        table.upsert_row("vm1", ("vm-001", "running", 1.5, "now matches"))
        assert table.row_count == 4  # membership change is seen at once by readers
        table.remove_row("vm2")
        table.remove_row("missing")
        assert "vm2" not in [r.key for r in table._view] and table.total_count == 5

    run(vm_rows(5), check)


def test_keyboard_navigation_and_cursor_messages():
    async def check(pilot, app, table):
        await pilot.press("j", "j", "j", "k")
        assert table.cursor_row == 2
        await pilot.press("G")
        assert table.cursor_key == "vm99" and table.scroll_y > 0
        assert screen_lines(table)[-1].startswith("vm-099")
        await pilot.press("g")
        assert table.cursor_row == 0 and table.scroll_y == 0
        await pilot.press("pagedown")
        assert table.cursor_row == 11  # 12 lines minus the header
        await pilot.press("ctrl+u")
        assert table.cursor_row == 6
        await pilot.press("end", "k", "home")
        await pilot.pause()
        assert app.moved[-4:] == ["vm6", "vm99", "vm98", "vm0"]

    run(vm_rows(100), check)


def test_scroll_indicator_shows_position_and_pages_on_click():
    """The table draws its own scroll position in its last column: the thumb is at
    the top, then at the bottom after G; a click on the track pages."""
    def bar(table) -> list[str]:
        thumb = table.get_component_rich_style("fast-table--thumb")
        track = table.get_component_rich_style("fast-table--track")
        out = []
        for y in range(1, table.size.height):
            style = list(table.render_line(y))[-1].style
            out.append("#" if style == thumb else "." if style == track else "?")
        return out

    async def check(pilot, app, table):
        width = table.size.width
        assert all(table.render_line(y).cell_length == width for y in range(table.size.height))
        assert bar(table) == ["#"] + ["."] * 10       # 11 of 100 rows: a 1-line thumb
        await pilot.click(FastTable, offset=(width - 1, 8))    # the track, below the thumb
        assert table.cursor_row == 11 and table.scroll_y > 0
        await pilot.click(FastTable, offset=(width - 1, 1))    # the thumb: nothing
        assert table.cursor_row == 11
        await pilot.press("G")
        assert bar(table)[-1] == "#" and bar(table).count("#") == 1
        await pilot.click(FastTable, offset=(width - 1, 1))    # above the thumb
        assert table.cursor_row == 99 - 11

    run(vm_rows(100), check)


def test_mouse_wheel_scrolls_without_a_scrollbar_widget():
    from textual import events

    async def check(pilot, app, table):
        table.post_message(events.MouseScrollDown(table, 5, 5, 0, 0, 0, False, False, False))
        await pilot.pause()
        assert table.scroll_y > 0

    run(vm_rows(100), check)


def test_no_scroll_indicator_when_every_row_fits():
    async def check(pilot, app, table):
        base = table.rich_style
        assert all(list(table.render_line(y))[-1].style == base
                   for y in range(1, table.size.height))

    run(vm_rows(5), check)


def test_enter_and_l_post_row_selected():
    async def check(pilot, app, table):
        await pilot.press("j", "enter", "j", "l")
        await pilot.pause()
        assert app.selected == ["vm1", "vm2"]

    run(vm_rows(10), check)


def test_mouse_header_click_sorts_and_row_click_moves_cursor():
    async def check(pilot, app, table):
        await pilot.click(FastTable, offset=(22, 0))  # "CPU" header cell (x 20..25)
        assert table.sort_key == "cpu" and not table.sort_reverse
        await pilot.click(FastTable, offset=(22, 0))
        assert table.sort_reverse and table.cursor_key == "vm0"
        await pilot.click(FastTable, offset=(2, 3))
        assert table.cursor_key == "vm7"  # third row of the reversed view
        await pilot.double_click(FastTable, offset=(2, 1))
        await pilot.pause()
        assert app.selected == ["vm9"]

    run(vm_rows(10), check)


# -- columns that fit ------------------------------------------------------------
PLAN = [
    Column("name", "Name", 16, flex=True, min_width=10, max_width=24),
    Column("state", "State", 12, priority=1),
    Column("cpu", "CPU %", 6, align="right", priority=3),
    Column("age", "Data age", 14, priority=2, min_width=10),
    Column("note", "Note", 20, flex=True, priority=4, min_width=8),
]


def test_plan_shows_the_important_columns_that_fit_and_caps_flex():
    keys = lambda plan: [PLAN[i].key for i, _ in plan]   # noqa: E731
    wide = plan_columns(PLAN, 200)
    assert keys(wide) == ["name", "state", "cpu", "age", "note"]
    assert dict(wide)[0] == 24                       # Name stops at its max_width
    assert sum(w for _, w in wide) + 4 == 200        # Note has no cap: it takes the rest
    assert plan_columns(PLAN[:4], 200)[-1] == (3, 14)  # without it, the rest stays blank
    # Data age fits beside Name and State at their widths; CPU % needs 6 more cells
    # beside all three; Note, the least important, needs more still.
    assert keys(plan_columns(PLAN, 50)) == ["name", "state", "age"]
    assert keys(plan_columns(PLAN, 51)) == ["name", "state", "cpu", "age"]
    assert keys(plan_columns(PLAN, 30)) == ["name", "state"]
    assert keys(plan_columns(PLAN, 5)) == ["name"] and plan_columns(PLAN, 5) == [(0, 5)]
    for width in range(5, 120):
        plan = plan_columns(PLAN, width)
        assert sum(w for _, w in plan) + len(plan) - 1 <= width
        assert all(w >= len(PLAN[i].label) for i, w in plan) or len(plan) == 1


def test_a_sorted_column_is_widened_for_its_arrow_and_hides_nothing():
    columns = [Column("n", "Name", 8), Column("v", "vCPUs", 5, align="right"),
               Column("m", "Memory", 8, priority=1)]
    assert plan_columns(columns, 25) == [(0, 8), (1, 5), (2, 8)]
    assert plan_columns(columns, 25, sort_index=1) == [(0, 8), (1, 7), (2, 8)]

    async def check(pilot, app, table):
        table.columns = columns
        table.set_rows([("a", ("x", 2, "1 GiB"))])
        table.sort_by("v")
        await pilot.pause()
        assert "vCPUs ▲" in screen_lines(table)[0]

    run([], check, size=(25, 5))


def test_narrow_table_hides_columns_instead_of_running_off_the_edge():
    async def check(pilot, app, table):
        assert [c.key for c in table.visible_columns] == ["name", "state", "cpu"]
        assert all(table.render_line(y).cell_length == table.size.width
                   for y in range(table.size.height))
        assert "Note" not in screen_lines(table)[0] and "CPU" in screen_lines(table)[0]
        assert table.virtual_size.width <= table.size.width   # nothing to scroll sideways

    run(vm_rows(5), check, size=(30, 8))


def test_ties_are_ordered_by_the_first_column_in_both_directions():
    rows = [("c", ("carol", "up")), ("a", ("alice", "down")), ("b", ("bob", "up")),
            ("d", ("dave", "down"))]
    columns = [Column("name", "Name", 8), Column("state", "State", 8)]

    async def check(pilot, app, table):
        table.columns = columns
        table.set_rows(rows)
        table.sort_by("state")
        assert [r.key for r in table._view] == ["a", "d", "b", "c"]
        table.sort_by("state", reverse=True)
        assert [r.key for r in table._view] == ["b", "c", "a", "d"]

    run([], check)


def test_age_cells_draw_with_the_clock_sort_by_age_and_repaint_each_second():
    columns = [Column("name", "Name", 8), Column("age", "Data age", 18)]
    clock = [1000.0]
    rows = [("a", ("old", Age(900.0, True, 1000.0))), ("b", ("new", Age(995.0, True, 1000.0))),
            ("c", ("gone", Age(None, False, 1000.0))), ("d", ("down", Age(880.0, False, 1000.0)))]

    async def check(pilot, app, table):
        table.columns = columns
        table.clock = lambda: clock[0]
        table.set_rows(rows)
        table.sort_by("age")
        await pilot.pause()
        assert [r.key for r in table._view] == ["b", "a", "d", "c"]   # youngest first
        assert [line[9:].rstrip() for line in screen_lines(table)[1:5]] == [
            "5s ago", "1m 40s ago", "stale · 2m 0s ago", "stale · never seen"]
        clock[0] = 1003.0
        await pilot.pause(1.3)            # the table's own once-a-second repaint
        assert screen_lines(table)[1][9:].rstrip() == "8s ago"
        assert app.screen._compositor.render_update(full=True) is not None

    run([], check)


# -- the pure helper ---------------------------------------------------------

cell = st.one_of(st.none(), st.integers(-50, 50), st.text("abcAB ", max_size=4))
row_cells = st.tuples(cell, cell)


@settings(max_examples=150, deadline=None)
@given(cells=st.lists(row_cells, max_size=25), needle=st.text("abAB", max_size=2),
       index=st.sampled_from([None, 0, 1]), reverse=st.booleans())
def test_apply_view_properties(cells, needle, index, reverse):
    rows = [make_row(f"k{i}", c) for i, c in enumerate(cells)]
    view = apply_view(rows, needle, index, reverse)
    assert len({id(r) for r in view}) == len(view) and set(map(id, view)) <= set(map(id, rows))
    assert all(needle.lower() in r.search for r in view)
    assert len(view) == sum(needle.lower() in r.search for r in rows)  # nothing lost
    if index is None:
        assert view == [r for r in rows if r in view]  # original order kept
        return
    values = [r.cells[index] for r in view]
    present = [v for v in values if v is not None]
    assert values == present + [None] * (len(values) - len(present))  # None last
    keys = [(0, v, "") if isinstance(v, int) else (1, 0, v.casefold()) for v in present]
    assert keys == sorted(keys, reverse=reverse)


# -- the incremental path, against the pure helper -----------------------------

op = st.one_of(
    st.tuples(st.just("upsert"), st.integers(0, 7), row_cells),
    st.tuples(st.just("remove"), st.integers(0, 7)),
    st.tuples(st.just("filter"), st.text("abAB", max_size=2)),
    st.tuples(st.just("sort"), st.sampled_from(["text", "num"]), st.sampled_from([None, True, False])),
)


def test_incremental_updates_match_apply_view():
    """Any mix of upsert_row / remove_row / set_filter / sort_by on a mounted table
    ends with the same visible keys, in the same order, as apply_view over the final
    rows: the in-place upsert, the burst re-sort and remove's list surgery agree."""
    columns = [Column("text", "Text", 8), Column("num", "Num", 6, align="right")]

    async def check(pilot, app, table):
        @settings(max_examples=50, deadline=None)
        @given(initial=st.lists(row_cells, max_size=6), ops=st.lists(op, max_size=25))
        def run_ops(initial, ops):
            model = {f"k{i}": c for i, c in enumerate(initial)}   # dict order = table's
            table.columns = columns                                  # unsorted again
            table.set_filter("")
            table.set_rows(list(model.items()))
            for name, *args in ops:
                if name == "upsert":
                    key, cells = f"k{args[0]}", args[1]
                    model[key] = cells
                    table.upsert_row(key, cells)
                elif name == "remove":
                    model.pop(f"k{args[0]}", None)
                    table.remove_row(f"k{args[0]}")
                elif name == "filter":
                    table.set_filter(args[0])
                else:
                    table.sort_by(args[0], reverse=args[1])
            expected = apply_view([make_row(k, c) for k, c in model.items()],
                                  table.filter_text,
                                  None if table.sort_key is None
                                  else [c.key for c in columns].index(table.sort_key),
                                  table.sort_reverse)
            table.row_count                                          # settle a pending re-sort
            assert [r.key for r in table._view] == [r.key for r in expected]
            assert [r.cells for r in table._view] == [r.cells for r in expected]

        run_ops()

    run([], check)


def test_rows_arriving_in_any_order_leave_the_cursor_on_the_first_row():
    """Issue 8: a table filled while hidden, rows in any order (as hosts answer), opens
    at its top, not scrolled to where the first row to arrive was sorted; once the
    operator moves the cursor, it follows its row."""
    async def check(pilot, app, table):
        table.display = False
        table.sort_by("name")
        for batch in ((42,), (7, 99), range(100)):     # hosts answer in any order
            for i in batch:
                table.upsert_row(f"vm{i}", (f"vm-{i:03d}", "running", 1.0, ""))
            await pilot.pause()
        table.display = True
        await pilot.pause()
        assert table.cursor_key == "vm0" and table.cursor_row == 0 and table.scroll_y == 0
        assert screen_lines(table)[1].startswith("vm-000")
        table.focus()
        await pilot.press("down", "down")               # the operator picks vm-002
        table.upsert_row("vm100", ("vm-000a", "running", 1.0, ""))   # sorts above it
        await pilot.pause()
        assert table.cursor_key == "vm2"

    run([], check)


def test_the_age_repaint_draws_only_lines_whose_age_text_moved():
    """Once a second, lines are drawn again only where an age reads otherwise: a page
    of fresh ("<5s ago") rows costs nothing while they stay fresh."""
    columns = [Column("name", "Name", 8), Column("age", "Data age", 18)]
    clock = [1000.0]
    rows = [("a", ("fresh", Age(999.0, True, 1000.0))), ("b", ("old", Age(900.0, True, 1000.0)))]

    async def check(pilot, app, table):
        table.columns = columns
        table.clock = lambda: clock[0]
        table.set_rows(rows)
        await pilot.pause()
        drawn: list[int] = []
        original = table.refresh_line
        table.refresh_line = lambda y: (drawn.append(y), original(y))
        clock[0] = 1001.0
        table._age_tick()
        assert drawn == [2]                       # "old" moved on; "fresh" still <5s
        await pilot.pause()
        assert [line[9:].rstrip() for line in screen_lines(table)[1:3]] == [
            "<5s ago", "1m 41s ago"]

    run([], check)
