"""Metric history (engine/history.py) on synthetic series: what is kept, for how long,
and that the averages and the edges of their windows are right."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from mvmtui.engine.history import ROLL_GRACE, History
from mvmtui.engine.inventory import Inventory
from mvmtui.engine.metrics import MINUTE, QUARTER, RAW, RANGES

T0 = 1_800_000_000 - 1_800_000_000 % 900      # a quarter-hour boundary


def _history(tmp_path) -> History:
    return History(Inventory(tmp_path / "i.db"))


def _feed(h: History, start: float, seconds: int, step: int, value, key="u1") -> None:
    """Samples every `step` s over [start, start+seconds), each written as a stats
    pass would (one batch, `now` its own time)."""
    for i in range(0, seconds, step):
        at = start + i
        h.write([("c", "vm", key, "web-01", at, {"cpu_pct": value(at), "mem_used_mib": 512})],
                now=at)


def _sid(h, key="u1"):
    return h.find_series("c", "vm", key)


def test_minute_averages_are_the_mean_of_their_window_and_its_edges(tmp_path):
    h = _history(tmp_path)
    # CPU = the second within its minute: every window averages (0+5+…+55)/12 = 27.5.
    _feed(h, T0, 600, 5, lambda at: float(at % 60))
    pts = h.points(_sid(h), "cpu_pct", MINUTE, T0, T0 + 600)
    assert [at for at, _ in pts] == [T0 + 60 * i for i in range(10)]
    assert all(v == 27.5 for _, v in pts)
    # A sample at exactly a window's start belongs to that window, not the one before.
    (tmp_path / "b").mkdir()
    h2 = _history(tmp_path / "b")
    _feed(h2, T0 + 59, 2, 1, lambda at: 10.0 if at < T0 + 60 else 90.0)
    h2.write([], now=T0 + 200)
    p2 = dict(h2.points(_sid(h2), "cpu_pct", MINUTE, T0, T0 + 200))
    assert p2 == {T0: 10.0, T0 + 60: 90.0}


def test_windows_roll_up_only_once_closed_and_quarters_weight_by_count(tmp_path):
    h = _history(tmp_path)
    # First half of the quarter at 20 % (every 5 s), second half at 80 % (every 15 s:
    # fewer samples). The 15-minute average is the mean of the samples, 20·90+80·30
    # over 120 = 35, not the mean of the minute averages (50).
    _feed(h, T0, 450, 5, lambda at: 20.0)
    _feed(h, T0 + 450, 450, 15, lambda at: 80.0)
    stored = h.inv.conn.execute("SELECT count(*) FROM metric_points WHERE tier=2").fetchone()[0]
    assert stored == 0                        # its window has not closed yet
    h.write([], now=T0 + 900 + ROLL_GRACE)    # now it has
    rows = h.inv.conn.execute("SELECT at, cpu10, n FROM metric_points WHERE tier=2").fetchall()
    assert rows == [(T0, 350, 120)]
    assert h.points(_sid(h), "cpu_pct", QUARTER, T0, T0 + 900) == [(float(T0), 35.0)]


def test_rolling_up_again_changes_nothing(tmp_path):
    """A second writer (a console beside the watcher) or a restart re-rolls windows:
    the rows come out the same, never counted twice."""
    h = _history(tmp_path)
    _feed(h, T0, 1200, 5, lambda at: float(at % 7))
    before = h.inv.conn.execute("SELECT * FROM metric_points WHERE tier>0 ORDER BY 1,2,3").fetchall()
    other = History(h.inv)                    # another process: knows nothing rolled
    other.write([], now=T0 + 1200)
    h.roll_up(T0 + 1200)
    after = h.inv.conn.execute("SELECT * FROM metric_points WHERE tier>0 ORDER BY 1,2,3").fetchall()
    assert after == before


def test_nothing_is_kept_past_its_tier(tmp_path):
    h = _history(tmp_path)
    # Two days of a sample a minute, then prune as of the end.
    _feed(h, T0, 2 * 86400, 60, lambda at: 50.0)
    end = T0 + 2 * 86400
    h.prune(end)
    oldest = dict(h.inv.conn.execute("SELECT tier, min(at) FROM metric_points GROUP BY tier"))
    assert oldest[RAW.number] >= end - RAW.keep
    assert oldest[MINUTE.number] >= end - MINUTE.keep
    assert oldest[QUARTER.number] == T0       # a month: all of it still
    h.prune(end + 31 * 86400)
    assert h.size() == {}


def test_a_chart_never_ends_early_the_newest_part_comes_from_raw(tmp_path):
    """The 1-day chart reads minute averages; the current minute, not rolled yet, is
    averaged from the raw samples on the fly."""
    h = _history(tmp_path)
    _feed(h, T0, 185, 5, lambda at: 40.0)
    pts = h.points(_sid(h), "cpu_pct", MINUTE, T0 - 86400, T0 + 185)
    assert [at for at, _ in pts] == [T0, T0 + 60, T0 + 120, T0 + 180]
    assert all(v == 40.0 for _, v in pts)


def test_a_vm_keeps_one_series_and_values_keep_their_precision(tmp_path):
    h = _history(tmp_path)
    h.write([("c", "vm", "u1", "web-01", T0, {"cpu_pct": 12.34, "net_rx_bps": 1234.6})], T0)
    h.write([("c", "vm", "u1", "web-01", T0 + 5, {"cpu_pct": None})], T0 + 5)
    assert h.points(_sid(h), "cpu_pct", RAW, T0, T0 + 5) == [(float(T0), 12.3)]
    assert h.points(_sid(h), "net_rx_bps", RAW, T0, T0 + 5) == [(float(T0), 1235.0)]
    assert len(h.series_of("c", "vm")) == 1
    assert set(RANGES) == {"15m", "1h", "1d", "1w"}


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3599), st.floats(0, 100)), min_size=1, max_size=60,
                unique_by=lambda t: t[0]))
def test_minute_averages_match_a_direct_computation(tmp_path_factory, samples):
    h = _history(tmp_path_factory.mktemp("h"))
    for off, v in sorted(samples):
        h.write([("c", "host", "kvm-01", "kvm-01", T0 + off, {"cpu_pct": v})], T0 + off)
    h.write([], now=T0 + 3600 + ROLL_GRACE)
    want: dict[int, list[float]] = {}
    for off, v in samples:
        want.setdefault(T0 + off // 60 * 60, []).append(round(v * 10))
    got = dict(h.points(h.find_series("c", "host", "kvm-01"), "cpu_pct", MINUTE, T0, T0 + 3600))
    assert set(got) == set(want)
    for at, vals in want.items():     # stored in 0.1 % steps, the mean rounded once
        assert abs(got[at] - sum(vals) / len(vals) / 10) <= 0.05 + 1e-9


def test_a_console_that_stops_rolls_its_open_windows(tmp_path):
    """Stopping, a long-running engine averages the windows still open, so a restart
    hours later does not leave a hole in the minute and 15-minute tiers."""
    from mvmtui.engine import Engine
    inv = Inventory(tmp_path / "i.db")
    clock = [float(T0 + 30)]
    eng = Engine(inv, clock=lambda: clock[0], recover=True)
    eng.start()
    for i in range(6):
        eng.history.write([("c", "host", "kvm-01", "kvm-01", T0 + 5 * i, {"cpu_pct": 40.0})],
                          now=T0 + 5 * i)
    eng.stop()
    inv = Inventory(tmp_path / "i.db")
    rows = dict(inv.conn.execute("SELECT tier, cpu10 FROM metric_points WHERE tier > 0"))
    assert rows == {1: 400, 2: 400}


def test_a_sample_with_no_figure_known_is_no_point(tmp_path):
    # A host or VM that reports nothing (libvirt's test driver) must not make a chart
    # look fresh: its newest point stays the last one that had a figure.
    h = _history(tmp_path)
    h.write([("c", "vm", "u1", "web", 1000.0, {"cpu_pct": 12.0})], now=1000.0)
    h.write([("c", "vm", "u1", "web", 1005.0, {"cpu_pct": None, "mem_used_mib": None})],
            now=1005.0)
    h.write([("c", "vm", "u2", "db", 1005.0, {"cpu_pct": None})], now=1005.0)
    assert h.newest([_sid(h)]) == 1000.0
    assert h.points(_sid(h), "cpu_pct", RAW, 0, 2000) == [(1000.0, 12.0)]
    assert h.find_series("c", "vm", "u2") is None
