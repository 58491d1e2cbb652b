"""Formatting helpers: exact strings for the cases operators read, properties for the rest."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mvmtui.widgets import format as fmt
from mvmtui.widgets.fast_table import make_row, sort_rows
from mvmtui.widgets.format import DASH, Age, Num

from conftest import FIXED


def test_durations_and_ages():
    assert fmt.duration(0) == "0s"
    assert fmt.duration(12.9) == "12s"
    assert fmt.duration(184) == "3m 4s"
    assert fmt.duration(7500) == "2h 5m"
    assert fmt.duration(93600) == "1d 2h"
    assert fmt.duration(-5) == "0s"
    assert fmt.duration(None) == DASH
    assert fmt.ago(125) == "2m 5s ago"
    assert fmt.ago(None) == "never"
    assert fmt.stale(125) == "stale · 2m 5s ago"
    assert fmt.stale(None) == "stale · never seen"


def test_sizes():
    assert fmt.size_bytes(None) == DASH
    assert fmt.size_bytes(0) == "0 B"
    assert fmt.size_bytes(1023) == "1023 B"
    assert fmt.size_bytes(1536) == "1.5 KiB"
    assert fmt.size_bytes(20 * 1024 ** 3) == "20.0 GiB"
    assert fmt.size_mib(512) == "512 MiB"
    assert fmt.size_mib(4096) == "4.0 GiB"
    assert fmt.size_mib(3 * 1024 * 1024) == "3.0 TiB"
    assert fmt.size_mib(1023.7) == "1.0 GiB"            # never "1024 MiB"
    assert fmt.size_bytes(1_099_457_940_685) == "1.0 TiB"   # never "1024.0 GiB"
    assert fmt.size_mib(None) == DASH
    assert fmt.mib_of(63_000, 262_144) == "61.5 / 256.0 GiB"
    assert fmt.mib_of(None, 131_072) == "— / 128.0 GiB"
    assert fmt.mib_of(300, 512) == "300 / 512 MiB"
    assert fmt.mib_of(5, None) == "5 MiB / —"


def test_percent_ratio_and_flags():
    assert fmt.percent(None) == DASH
    assert fmt.percent(42.4) == "42%"
    assert fmt.percent(3.42) == "3.4%"
    assert fmt.percent(100) == "100%"
    assert fmt.ratio(2, 3) == "2/3"
    assert fmt.ratio(None, 3) == DASH
    assert fmt.yes_no(True) == "yes" and fmt.yes_no(False) == "no" and fmt.yes_no(None) == DASH
    assert fmt.or_dash("") == DASH and fmt.or_dash(None) == DASH and fmt.or_dash("x") == "x"


def test_clock_times_are_relative_to_the_injected_now():
    # conftest pins TZ=UTC; FIXED is 2025-06-15 15:06:40 UTC.
    assert fmt.clock(FIXED - 3600, FIXED) == "14:06:40"
    assert fmt.clock(FIXED - 2 * 86400, FIXED) == "Jun 13 15:06"
    assert fmt.clock(FIXED - 400 * 86400, FIXED) == "2024-05-11"
    assert fmt.clock(None, FIXED) == DASH
    assert fmt.timestamp(FIXED) == "2025-06-15 15:06:40"


def test_num_shows_text_and_sorts_as_a_number():
    cells = [Num(16384, "16.0 GiB"), Num(512, "512 MiB"), Num(2048, "2.0 GiB")]
    rows = [make_row(str(i), (c,)) for i, c in enumerate(cells)]
    assert [str(r.cells[0]) for r in sort_rows(rows, 0)] == ["512 MiB", "2.0 GiB", "16.0 GiB"]
    assert rows[0].search == "16.0 gib"          # the filter sees what is shown
    assert repr(cells[1]) == "Num(512.0, '512 MiB')"


@given(st.floats(min_value=0, max_value=999 * 86400, allow_nan=False))
def test_duration_is_short_and_never_negative(seconds):
    text = fmt.duration(seconds)
    assert 2 <= len(text) <= 9 and "-" not in text


@given(st.integers(min_value=0, max_value=10 ** 15))
def test_sizes_always_have_a_unit_and_under_1024_of_it(n):
    for text in (fmt.size_bytes(n), fmt.size_mib(n / 1024)):
        assert text.split()[-1] in ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
        assert float(text.split()[0]) < 1024 or text.endswith("PiB")


@given(st.floats(min_value=0, max_value=10 ** 4, allow_nan=False),
       st.floats(min_value=0, max_value=10 ** 4, allow_nan=False))
def test_percent_keeps_order_visible(a, b):
    # Whatever the values, the shown text ends in % and parses back close to the value.
    for v in (a, b):
        shown = fmt.percent(v)
        assert shown.endswith("%")
        assert abs(float(shown[:-1]) - v) <= 0.5 + 1e-9


def test_gauge_fraction_is_unknown_without_data():
    from mvmtui.widgets.gauge import gauge_fraction

    assert gauge_fraction(None, 100) is None
    assert gauge_fraction(5, 0) is None and gauge_fraction(5, None) is None
    assert gauge_fraction(25, 100) == 0.25
    assert gauge_fraction(150, 100) == 1.5      # overcommit is shown, not clipped


def test_age_reads_with_the_clock_it_is_drawn_with():
    live, down, never = Age(100.0, True, 105.0), Age(100.0, False, 105.0), Age(None, False, 0)
    assert str(live) == "5s ago" and live.text(225.0) == "2m 5s ago"   # as built; as drawn
    assert down.text(225.0) == "stale · 2m 5s ago"
    assert down.text(225.0, width=11) == "2m 5s ago"    # narrow: the marker goes, not the age
    assert str(never) == "stale · never seen" and never.text(0, width=11) == "never"
    assert Age(None, True, 0).text(0) == "—"
    # Youngest first; never seen is oldest of all.
    ages = [Age(50.0, True, 0), Age(None, False, 0), Age(90.0, True, 0)]
    assert [a.at for a in sorted(ages, key=lambda a: a.sort_value)] == [90.0, 50.0, None]
    assert Age(1.0, True, 5.0) == Age(1.0, True, 9.0)   # the same fact, whenever it was built


def test_a_live_age_under_five_seconds_reads_under_5s():
    """What each stats pass keeps confirming reads "<5s ago" (so its line need not be
    drawn every second); older, or stale, it reads to the second."""
    from mvmtui.widgets.format import Age
    live = Age(100.0, True, 100.0)
    assert live.text(100.0) == live.text(104.9) == "<5s ago"
    assert live.text(105.0) == "5s ago"
    assert Age(100.0, False, 100.0).text(101.0) == "stale · 1s ago"
