"""Metric history in SQLite: samples written in batches, rolled up, pruned, read back.

One row per series (a host or a VM) per point, in one WITHOUT ROWID table keyed
(tier, series, at): a chart reads one series' points as one index range. Values are
stored as small integers (metrics.METRICS gives each column's scale), which SQLite
keeps in 1–4 bytes. Rollups are computed in SQL from the tier below once a window has
closed (ROLL_GRACE after its end), and re-computing one gives the same row, so a
second process writing the same cluster (a console beside the watcher) or a restart
never counts a window twice. Pruning drops each tier's points past its keep.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .metrics import MINUTE, QUARTER, RAW, TIERS, METRICS, Tier, bucket, from_stored, to_stored

if TYPE_CHECKING:
    from .inventory import Inventory

COLUMNS = tuple(dict.fromkeys(spec[2] for spec in METRICS.values()))
ROLL_GRACE = 10.0       # seconds after a window's end before it is rolled up (late writes)
PRUNE_EVERY = 60.0      # seconds between prunes
CHUNK = 1000            # series per transaction when rolling up or pruning
_SOURCE = {MINUTE.number: RAW, QUARTER.number: MINUTE}


class History:
    def __init__(self, inv: Inventory, clock=time.time):
        self.inv = inv
        self.clock = clock
        self._ids: dict[tuple[str, str, str], int] = {}
        self._rolled: dict[int, int] = {}      # tier → windows before this are rolled
        self._pruned = 0.0

    # ---- series ---------------------------------------------------------------
    def series_id(self, cluster: str, kind: str, key: str, name: str = "") -> int:
        """The id of a host's ("host", its name) or VM's ("vm", its uuid) series; made
        on first use. A VM keeps one series wherever it runs."""
        k = (cluster, kind, key)
        sid = self._ids.get(k)
        if sid is None:
            with self.inv.transaction():
                self.inv.conn.execute(
                    "INSERT INTO metric_series (cluster, kind, key, name) VALUES (?,?,?,?) "
                    "ON CONFLICT (cluster, kind, key) DO UPDATE SET name=excluded.name",
                    [cluster, kind, key, name])
                sid = self.inv.conn.execute(
                    "SELECT id FROM metric_series WHERE cluster=? AND kind=? AND key=?",
                    k).fetchone()[0]
            self._ids[k] = sid
        return sid

    def forget(self, cluster: str) -> None:
        """The cluster is being deleted (its series with it): ids made later are new."""
        self._ids = {k: v for k, v in self._ids.items() if k[0] != cluster}

    def find_series(self, cluster: str, kind: str, key: str) -> int | None:
        row = self.inv._rows("SELECT id FROM metric_series WHERE cluster=? AND kind=? AND "
                             "key=?", [cluster, kind, key])
        return row[0]["id"] if row else None

    # ---- writing ----------------------------------------------------------------
    def write(self, samples: list[tuple[str, str, str, str, float, dict]],
              now: float | None = None) -> None:
        """One batch of raw samples, (cluster, kind, key, name, at, {metric: value}),
        in one transaction; then roll up the windows that have closed, and prune. A
        sample with no figure known (a host or VM that reports none) is no point: it
        would make a chart's "as of" fresh while nothing on it moved."""
        now = self.clock() if now is None else now
        with self.inv.transaction():
            rows = []
            for cluster, kind, key, name, at, values in samples:
                stored = {METRICS[m][2]: to_stored(m, v) for m, v in values.items()
                          if m in METRICS and v is not None}
                if not stored:
                    continue
                rows.append([self.series_id(cluster, kind, key, name), int(at),
                             *(stored.get(c) for c in COLUMNS)])
            if rows:
                self.inv.conn.executemany(
                    f"INSERT OR REPLACE INTO metric_points (tier, series, at, "
                    f"{', '.join(COLUMNS)}, n) VALUES (0, ?, ?, "
                    f"{', '.join('?' * len(COLUMNS))}, 1)", rows)
        self.roll_up(now)
        if now - self._pruned >= PRUNE_EVERY:
            self.prune(now)

    def roll_up(self, now: float) -> None:
        """Average every closed window not yet rolled, minute windows from the raw
        samples, 15-minute windows from the minute averages (weighted by their count),
        for every series at once."""
        for tier in (MINUTE, QUARTER):
            closed = bucket(now - ROLL_GRACE, tier.step)     # windows before this are closed
            start = self._rolled.get(tier.number)
            if start is None:   # first roll of this process: redo the last two windows
                start = closed - 2 * int(tier.step)
            if closed <= start:
                continue
            self._roll(tier, start, closed)
            self._rolled[tier.number] = closed

    def _chunks(self) -> list[tuple[int, int]]:
        """Series ids in ranges of CHUNK: rollups and prunes go a range per
        transaction, so the inventory's lock is never held long (10,000 VMs: a
        minute's rollup is about 0.4 s of work in all)."""
        top = self.inv._tx_conn().execute("SELECT max(id) FROM metric_series").fetchone()[0]
        return [(lo, lo + CHUNK - 1) for lo in range(1, (top or 0) + 1, CHUNK)]

    def _roll(self, tier: Tier, start: int, end: int) -> None:
        src, step = _SOURCE[tier.number], int(tier.step)
        avgs = ", ".join(f"round(sum({c} * n) * 1.0 / nullif(sum(CASE WHEN {c} IS NULL "
                         f"THEN 0 ELSE n END), 0))" for c in COLUMNS)
        for lo, hi in self._chunks():
            with self.inv.transaction():
                self.inv.conn.execute(
                    f"INSERT OR REPLACE INTO metric_points (tier, series, at, "
                    f"{', '.join(COLUMNS)}, n) SELECT ?, series, (at / {step}) * {step}, "
                    f"{avgs}, sum(n) FROM metric_points WHERE tier = ? AND series IN "
                    f"(SELECT id FROM metric_series WHERE id BETWEEN ? AND ?) "
                    f"AND at >= ? AND at < ? GROUP BY series, at / {step}",
                    [tier.number, src.number, lo, hi, start, end])

    def prune(self, now: float) -> None:
        """Drop each tier's points older than its keep (one index range per series)."""
        self._pruned = now
        for lo, hi in self._chunks():
            with self.inv.transaction():
                for tier in TIERS:
                    self.inv.conn.execute(
                        "DELETE FROM metric_points WHERE tier = ? AND series IN "
                        "(SELECT id FROM metric_series WHERE id BETWEEN ? AND ?) AND at < ?",
                        [tier.number, lo, hi, int(now - tier.keep)])

    # ---- reading ----------------------------------------------------------------
    def points(self, sid: int, metric: str, tier: Tier, since: float,
               until: float) -> list[tuple[float, float]]:
        """One series' points in [since, until], oldest first, at the tier's step. The
        newest part its tier has not rolled up yet (the current window; at most a
        quarter of an hour, well inside the raw hour) is averaged from the raw samples
        on the fly, so a chart never ends early."""
        col = METRICS[metric][2]
        rows = self.inv._tx_conn().execute(
            f"SELECT at, {col} FROM metric_points WHERE tier=? AND series=? AND at>=? "
            f"AND at<=? ORDER BY at", [tier.number, sid, int(since), int(until)]).fetchall()
        out = [(float(at), from_stored(metric, v)) for at, v in rows if v is not None]
        if not tier.number:
            return out
        edge = max(since, rows[-1][0] + tier.step) if rows else since
        s = int(tier.step)
        late = self.inv._tx_conn().execute(
            f"SELECT (at / {s}) * {s} AS w, avg({col}) FROM metric_points WHERE tier=0 AND "
            f"series=? AND at>=? AND at<=? GROUP BY w ORDER BY w",
            [sid, int(edge), int(until)]).fetchall()
        return out + [(float(w), from_stored(metric, v)) for w, v in late if v is not None]

    def newest(self, sids: list[int]) -> float | None:
        """The newest raw sample's time among these series (a chart's freshness: an
        averaged tier's last point is its window's start, not its newest sample)."""
        best = None
        for sid in sids:
            at = self.inv._tx_conn().execute(
                "SELECT max(at) FROM metric_points WHERE tier=0 AND series=?", [sid]).fetchone()[0]
            if at is not None and (best is None or at > best):
                best = at
        return None if best is None else float(best)

    def means(self, sids: list[int], metric: str, tier: Tier, since: float) -> dict[int, float]:
        """Each series' mean over [since, now) in one tier (the top VMs)."""
        return self.means_of(sids, (metric,), tier, since)[metric]

    def means_of(self, sids: list[int], metrics: tuple[str, ...], tier: Tier,
                 since: float) -> dict[str, dict[int, float]]:
        """Each series' mean of each metric over [since, now) in one tier, in one pass
        over the points (the Monitoring tab ranks 10,000 VMs by four figures)."""
        cols = [METRICS[m][2] for m in metrics]
        means = ", ".join(f"sum({c} * n) * 1.0 / nullif(sum(CASE WHEN {c} IS NULL THEN 0 "
                          f"ELSE n END), 0)" for c in cols)
        out: dict[str, dict[int, float]] = {m: {} for m in metrics}
        for i in range(0, len(sids), 500):
            chunk = sids[i:i + 500]
            rows = self.inv._tx_conn().execute(
                f"SELECT series, {means} FROM metric_points WHERE tier=? AND series IN "
                f"({','.join('?' * len(chunk))}) AND at>=? GROUP BY series",
                [tier.number, *chunk, int(since)]).fetchall()
            for row in rows:
                for m, v in zip(metrics, row[1:]):
                    if v is not None:
                        out[m][row[0]] = from_stored(m, v)
        return out

    def series_of(self, cluster: str, kind: str) -> dict[int, tuple[str, str]]:
        """id → (key, name) of a cluster's host or VM series."""
        return {r["id"]: (r["key"], r["name"]) for r in self.inv._rows(
            "SELECT id, key, name FROM metric_series WHERE cluster=? AND kind=?",
            [cluster, kind])}

    def size(self) -> dict[int, int]:
        """Points held per tier."""
        return {t: n for t, n in self.inv._tx_conn().execute(
            "SELECT tier, count(*) FROM metric_points GROUP BY tier").fetchall()}
