"""What an operator sees at 80×24 (the standard SSH session) and 160×48: the columns
that matter stay, none is cut to "He" or "2s ag", wide terminals do not stretch Name;
the help scrolls; gauges keep their numbers; typed filter text is never lost."""
from __future__ import annotations

from textual import events

from conftest import FIXED, make_app, run_app, svg_text, uuid_of
from mvmtui.screens.base import FilterBar
from mvmtui.screens.help import HelpBody
from mvmtui.widgets.fast_table import FastTable
from mvmtui.widgets.gauge import Gauge
from mvmtui.widgets.listing import Listing

SMALL, LARGE = (80, 24), (160, 48)


def table(app, listing_id: str) -> FastTable:
    return app.screen.query_one(f"#{listing_id}", Listing).table


def labels(app, listing_id: str) -> list[str]:
    return [c.label for c in table(app, listing_id).visible_columns]


def lines(t: FastTable) -> list[str]:
    return ["".join(s.text for s in t.render_line(y)) for y in range(t.size.height)]


def assert_fits(t: FastTable) -> None:
    """Every header label is whole, and no line runs past the table's edge."""
    header = lines(t)[0]
    for column in t.visible_columns:
        assert column.label in header, (column.label, header)
    assert all(t.render_line(y).cell_length == t.size.width for y in range(t.size.height))


def test_hosts_tab_at_80x24_keeps_what_a_down_host_needs(mixed_engine):
    async def check(pilot):
        await pilot.press("2")
        assert labels(pilot.app, "hosts") == ["Name", "Status", "VMs", "Data age", "Problem"]
        t = table(pilot.app, "hosts")
        assert_fits(t)
        text = "\n".join(lines(t))
        problem = mixed_engine.host("prod", "kvm-03").problem
        assert "unreachable" in text and problem[:25] in text    # enough to act on
        assert "2m 5s ago" in text and "ag\n" not in text   # whole ages, never "2s ag"

    run_app(make_app(mixed_engine, "prod"), check, size=SMALL)


def test_vms_and_history_tabs_at_80x24(mixed_engine):
    async def check(pilot):
        await pilot.press("3")
        assert labels(pilot.app, "vms") == ["Name", "State", "Host", "vCPUs", "Memory",
                                            "Data age"]
        assert_fits(table(pilot.app, "vms"))
        await pilot.press("o", "o", "o")               # sorted by vCPUs: "vCPUs ▲", whole
        t = table(pilot.app, "vms")
        assert t.sort_key == "vcpus" and "vCPUs ▲" in lines(t)[0]
        assert "Data age" in labels(pilot.app, "vms")   # sorting hides nothing
        await pilot.press("4")
        assert labels(pilot.app, "history")[:6] == ["ID", "Task", "Target", "Status",
                                                   "Started", "Error"]
        assert_fits(table(pilot.app, "history"))

    run_app(make_app(mixed_engine, "prod"), check, size=SMALL)


def test_cluster_list_at_80x24_reads_health_whole(mixed_engine):
    async def check(pilot):
        t = pilot.app.screen.query_one(FastTable)
        assert "Health" in [c.label for c in t.visible_columns]
        assert_fits(t)

    run_app(make_app(mixed_engine), check, size=SMALL)


def test_160_columns_show_everything_without_a_stretched_name(mixed_engine):
    async def check(pilot):
        await pilot.press("3")
        t = table(pilot.app, "vms")
        assert [c.key for c in t.visible_columns] == [c.key for c in t.columns]
        header = lines(t)[0]
        # Name stops growing at its cap; State and Host stay near it, not at the far right.
        assert header.index("State") <= 34 and header.index("Host") <= 64
        await pilot.press("2")
        assert [c.key for c in table(pilot.app, "hosts").visible_columns] == \
            [c.key for c in table(pilot.app, "hosts").columns]
        assert_fits(table(pilot.app, "hosts"))

    run_app(make_app(mixed_engine, "prod"), check, size=LARGE)


def test_host_gauges_keep_their_numbers_at_80x24(mixed_engine):
    async def check(pilot):
        await pilot.press("2", "enter")                 # kvm-01, live
        await pilot.pause()
        for gauge in pilot.app.screen.query(Gauge):
            text = gauge.render().plain
            assert "%" in text or "—" in text, text
            if gauge.detail:
                assert gauge.detail in text, (gauge.detail, text)   # never cut
            assert all(len(line) <= gauge.content_size.width for line in text.split("\n"))

    run_app(make_app(mixed_engine, "prod"), check, size=SMALL)


def test_gauge_drops_the_bar_before_the_numbers():
    g = Gauge("Memory used", label_width=14, detail_width=18)
    g.set_reactive(Gauge.detail, "148.2 / 256.0 GiB")
    assert g._plan(80) == (14, 80 - 14 - 7 - 20, False)         # one line, bar and all
    label, bar, wrapped = g._plan(28)                          # the detail goes under it
    assert (label, wrapped) == (14, True) and bar >= 4
    assert g._plan(20) == (12, 0, True)                         # no room for a bar at all


def test_help_scrolls_and_says_there_is_more(mixed_engine):
    async def check(pilot):
        await pilot.press("3", "question_mark")
        await pilot.pause()
        body = pilot.app.screen.query_one(HelpBody)
        hint = str(pilot.app.screen.query_one(".help-hint").render())
        assert pilot.app.focused is body and body.max_scroll_y > 0
        assert "more below" in hint
        assert pilot.app.screen.query_one(".help-columns").has_class("-narrow")   # one column
        await pilot.press("j", "j")
        assert body.scroll_y == 2
        await pilot.press("k")
        assert body.scroll_y == 1
        await pilot.press("end")
        await pilot.pause()
        assert body.scroll_y == body.max_scroll_y
        assert "more below" not in str(pilot.app.screen.query_one(".help-hint").render())
        screen = "\n".join(svg_text(pilot.app.export_screenshot()))
        assert "Commands by name" in screen   # the last line of the last group

    run_app(make_app(mixed_engine, "prod"), check, size=(60, 15))
    run_app(make_app(mixed_engine, "prod"), check, size=SMALL)


def test_two_help_columns_on_a_wide_terminal(mixed_engine):
    async def check(pilot):
        await pilot.press("3", "question_mark")
        await pilot.pause()
        assert not pilot.app.screen.query_one(".help-columns").has_class("-narrow")

    run_app(make_app(mixed_engine, "prod"), check, size=LARGE)


# ---- ages agree ------------------------------------------------------------------------
def test_the_table_and_a_dialog_tell_the_same_age(mixed_engine):
    """Ages are drawn with the clock, once a second: 47 s later (and no reload of the
    rows) the table and the Force off dialog both say mon-01 was seen 2m 52s ago."""
    clock = [FIXED]
    mixed_engine.clock = lambda: clock[0]

    async def check(pilot):
        await pilot.press("3")
        vms = table(pilot.app, "vms")
        assert vms.move_cursor_to_key(uuid_of(7))        # mon-01, stale on kvm-03
        clock[0] += 47
        await pilot.pause(1.3)                           # the table's own repaint
        row = next(line for line in lines(vms) if line.startswith("mon-01"))
        assert row.rstrip().endswith("2m 52s ago")
        await pilot.press("F")
        await pilot.pause()
        assert "seen 2m 52s ago" in pilot.app.screen.body      # the Force off dialog

    run_app(make_app(mixed_engine, "prod"), check, size=(120, 36))


# ---- typed text is never lost --------------------------------------------------------
def burst(app, keys: list[tuple[str, str | None]]) -> None:
    """Keys as the terminal driver posts them in one read: all queued at once."""
    for key, char in keys:
        app.post_message(events.Key(key, char))


def typed(word: str) -> list[tuple[str, str | None]]:
    return [(c, c) for c in word]


BURST = [("slash", "/"), *typed("web"), ("ctrl+u", None), *[("backspace", None)] * 4,
         *typed("db")]


def test_a_burst_of_edits_in_the_filter_keeps_the_last_word(mixed_engine):
    """tmux send-keys '/' 'web' C-u BSpace×4 'db': the filter must read "db". Before the
    fix ctrl+u and the backspaces ran after "db" (they bubbled up to the App first)."""
    async def check(pilot):
        await pilot.press("3")
        for _ in range(3):
            burst(pilot.app, BURST)
            await pilot.pause(0.2)
            bar = pilot.app.screen.query_one(FilterBar)
            assert bar.value == "db"
            assert table(pilot.app, "vms").filter_text == "db"
            await pilot.press("escape")
            assert not bar.display and table(pilot.app, "vms").filter_text == ""
        burst(pilot.app, [("slash", "/"), *typed("webx"), ("backspace", None),
                          *typed("-01"), ("slash", "/"), ("z", "z")])
        await pilot.pause(0.2)
        assert pilot.app.screen.query_one(FilterBar).value == "web-01/z"   # in order

    run_app(make_app(mixed_engine, "prod"), check, size=SMALL)


def test_the_filter_bar_runs_its_editing_keys_where_it_receives_them(mixed_engine):
    """The cause, pinned: the bar handles its own bindings in its own queue, in turn
    with the letters, instead of letting them bubble to the App first."""
    async def check(pilot):
        await pilot.press("3", "slash", *"web")
        bar = pilot.app.screen.query_one(FilterBar)
        key = events.Key("ctrl+u", None)
        await bar._on_key(key)
        assert bar.value == "" and key._stop_propagation     # done here, not bubbled
        await bar._on_key(events.Key("d", "d"))              # letters: Input's own path
        assert bar.value == ""

    run_app(make_app(mixed_engine, "prod"), check, size=SMALL)


# ---- what 80×24 looks like -----------------------------------------------------------
def test_hosts_tab_80x24(snap_compare, mixed_engine):
    assert snap_compare(make_app(mixed_engine, "prod"), terminal_size=SMALL, press=["2"])


def test_vms_tab_80x24(snap_compare, mixed_engine):
    assert snap_compare(make_app(mixed_engine, "prod"), terminal_size=SMALL, press=["3"])
