"""Monitoring: the charts' data, the tables' sparklines and the event log.

Samples are taken by sync.py's stats pass (wherever an engine runs live: a console,
the headless watcher) and kept by history.py. Here they are read back for screens
and the CLI, from any thread (the inventory's per-thread read connections).
"""
from __future__ import annotations

from collections import deque

from .errors import NotFound
from .metrics import (CEPH_METRICS, CEPH_SERIES, HOST_METRICS, KIND_METRICS, METRICS, RANGES,
                      VM_METRICS)
from .model import OUTSIDE, Chart, EventRecord, MetricSeries

SPARK_POINTS = 24          # recent CPU figures kept in memory per host and VM


class Monitoring:
    """Mixin of Engine: reads of the metric history, and the events."""

    def _monitoring_init(self) -> None:
        from .history import History
        self.history = History(self.inv, self.clock)
        # (kind, cluster, key) → the last SPARK_POINTS CPU figures of this session:
        # the tables' sparklines, drawn for thousands of rows, never read SQLite.
        self._recent: dict[tuple[str, str, str], deque] = {}

    def _remember(self, key: tuple[str, str, str], cpu: float | None) -> None:
        ring = self._recent.get(key)
        if ring is None:
            ring = self._recent[key] = deque(maxlen=SPARK_POINTS)
        ring.append(cpu)

    # ---- sparklines ---------------------------------------------------------------
    def sparkline(self, kind: str, cluster: str, key: str) -> tuple[float | None, ...]:
        """A host's ("host", its name) or VM's ("vm", its uuid) recent CPU figures,
        oldest first, one per stats pass this session (None: not known that pass)."""
        ring = self._recent.get((kind, cluster, key))
        return tuple(ring) if ring else ()

    # ---- charts -------------------------------------------------------------------
    def _window(self, range_name: str, now: float | None) -> tuple[float, float, object]:
        if range_name not in RANGES:
            raise NotFound(f"no range {range_name!r}: use one of {', '.join(RANGES)}")
        seconds, tier = RANGES[range_name]
        end = self.clock() if now is None else now
        return end - seconds, end, tier

    def _chart(self, title: str, metric: str, range_name: str, start: float, end: float,
               tier, series: list[MetricSeries], sids: list[int],
               total: int | None = None) -> Chart:
        newest = None
        if any(s.points for s in series):
            # The newest sample, not an averaged window's start: how fresh it really is.
            newest = self.history.newest(sids) if tier.number else \
                max(s.points[-1][0] for s in series if s.points)
        return Chart(title=title, metric=metric, unit=METRICS[metric][1], range=range_name,
                     start=start, end=end, tier=tier.name, series=tuple(series),
                     as_of=newest,
                     total=sum(1 for s in series if s.points) if total is None else total)

    def host_chart(self, cluster: str, host: str, metric: str = "cpu_pct",
                   range_name: str = "1h", now: float | None = None) -> Chart:
        """One host's figure over a range."""
        if metric not in HOST_METRICS:
            raise NotFound(f"no host metric {metric!r}: use one of {', '.join(HOST_METRICS)}")
        start, end, tier = self._window(range_name, now)
        sid = self.history.find_series(cluster, "host", host)
        pts = tuple(self.history.points(sid, metric, tier, start, end)) if sid else ()
        return self._chart(f"{host} · {METRICS[metric][0]}", metric, range_name, start, end,
                           tier, [MetricSeries(host, metric, pts, _mean(pts))],
                           [sid] if sid else [])

    def vm_chart(self, uuid: str, metric: str = "cpu_pct", range_name: str = "1h",
                 now: float | None = None) -> Chart:
        """One VM's figure over a range (wherever it ran meanwhile)."""
        if metric not in VM_METRICS:
            raise NotFound(f"no VM metric {metric!r}: use one of {', '.join(VM_METRICS)}")
        vm = self.vm(uuid)
        start, end, tier = self._window(range_name, now)
        sid = self.history.find_series(vm.cluster, "vm", uuid)
        pts = tuple(self.history.points(sid, metric, tier, start, end)) if sid else ()
        return self._chart(f"{vm.name} · {METRICS[metric][0]}", metric, range_name, start,
                           end, tier, [MetricSeries(vm.name, metric, pts, _mean(pts))],
                           [sid] if sid else [])

    def ceph_chart(self, cluster: str, metric: str = "raw_used_pct", range_name: str = "1h",
                   now: float | None = None) -> Chart:
        """A cluster's Ceph figure over a range: sampled at each summary read (every
        CEPH_INTERVAL while a console or the watcher runs)."""
        if metric not in CEPH_METRICS:
            raise NotFound(f"no Ceph metric {metric!r}: use one of {', '.join(CEPH_METRICS)}")
        start, end, tier = self._window(range_name, now)
        sid = self.history.find_series(cluster, "ceph", CEPH_SERIES)
        pts = tuple(self.history.points(sid, metric, tier, start, end)) if sid else ()
        return self._chart(f"Ceph of {cluster} · {METRICS[metric][0]}", metric, range_name,
                           start, end, tier, [MetricSeries("ceph", metric, pts, _mean(pts))],
                           [sid] if sid else [])

    def _ceph_sample(self, cluster: str, summary) -> None:
        """A fresh Ceph reading into the history (raw used, client I/O)."""
        values = {"raw_used_pct": summary.raw_used_pct,
                  "raw_used_mib": None if summary.raw_used_bytes is None
                  else summary.raw_used_bytes / 2**20,
                  "client_rd_bps": summary.client_read_bytes_per_sec,
                  "client_wr_bps": summary.client_write_bytes_per_sec}
        if all(v is None for v in values.values()):
            return
        self._write_later(self.history.write, [(cluster, "ceph", CEPH_SERIES, cluster,
                                                summary.read_at, values)], self.clock())

    def hosts_chart(self, cluster: str, metric: str = "cpu_pct", range_name: str = "1h",
                    now: float | None = None, hosts: list[str] | None = None,
                    n: int | None = None) -> Chart:
        """Every host's figure over a range, a line each (the Monitoring tab); with n,
        only the n with the highest mean (ranked in SQL, so 200 hosts cost n reads),
        `total` saying how many had points."""
        start, end, tier = self._window(range_name, now)
        names = hosts if hosts is not None else [h.name for h in self.hosts(cluster)]
        ids = {key: sid for sid, (key, _) in self.history.series_of(cluster, "host").items()}
        total = None
        if n is not None:
            means = self.history.means([ids[h] for h in names if h in ids], metric,
                                       self._rank_tier(range_name), start)
            if not means:
                means = self.history.means([ids[h] for h in names if h in ids], metric,
                                           tier, start)
            total = len(means)
            if means:      # the n busiest, in the hosts' own order (a host keeps its colour)
                top = {sid for sid, _ in sorted(means.items(), key=lambda kv: -kv[1])[:n]}
                names = [h for h in names if ids.get(h) in top]
        series = []
        for name in names:
            pts = tuple(self.history.points(ids[name], metric, tier, start, end)) \
                if name in ids else ()
            series.append(MetricSeries(name, metric, pts, _mean(pts)))
        return self._chart(f"Hosts · {METRICS[metric][0]}", metric, range_name, start, end,
                           tier, series, [ids[h] for h in names if h in ids], total)

    @staticmethod
    def _rank_tier(range_name: str):
        from .metrics import MINUTE, QUARTER
        return MINUTE if RANGES[range_name][0] <= 3600 else QUARTER

    def top_vms_chart(self, cluster: str, metric: str = "cpu_pct", range_name: str = "1h",
                      n: int = 5, now: float | None = None) -> Chart:
        """The n VMs with the highest mean of a figure over the range, a line each."""
        return self.top_vms_charts(cluster, (metric,), range_name, n, now)[metric]

    def top_vms_charts(self, cluster: str, metrics: tuple[str, ...], range_name: str = "1h",
                       n: int = 5, now: float | None = None) -> dict[str, Chart]:
        """For each metric, the n VMs with the highest mean over the range. The
        ranking reads the coarsest tier with points in the range (minute averages up
        to an hour, 15-minute ones beyond), every metric in one pass, so it stays
        quick at 10,000 VMs."""
        start, end, tier = self._window(range_name, now)
        vms = self.history.series_of(cluster, "vm")
        ranked = self.history.means_of(list(vms), metrics, self._rank_tier(range_name), start)
        if not any(ranked.values()):   # nothing rolled up yet (the first minutes): raw
            ranked = self.history.means_of(list(vms), metrics, tier, start)
        charts = {}
        for metric in metrics:
            means = ranked[metric]
            top = sorted(means.items(), key=lambda kv: -kv[1])[:n]
            series = []
            for sid, mean in top:
                uuid, name = vms[sid]
                known = self._vms.get(uuid)
                pts = tuple(self.history.points(sid, metric, tier, start, end))
                series.append(MetricSeries(known.name if known else name, metric, pts, mean))
            charts[metric] = self._chart(f"Top VMs · {METRICS[metric][0]}", metric,
                                         range_name, start, end, tier, series,
                                         [sid for sid, _ in top], len(means))
        return charts

    def series_since(self, kind: str, cluster: str, key: str, seconds: float,
                     metrics: tuple[str, ...] | None = None, now: float | None = None
                     ) -> tuple[str, dict[str, list[tuple[float, float]]]]:
        """A host's or VM's figures over the last `seconds` (the CLI's --since), from
        the finest tier that still holds them all: (that tier's name, points by metric)."""
        from .metrics import TIERS
        names = metrics or KIND_METRICS[kind]
        tier = next((t for t in TIERS if t.keep >= seconds), TIERS[-1])
        end = self.clock() if now is None else now
        sid = self.history.find_series(cluster, kind, key)
        return tier.name, {m: self.history.points(sid, m, tier, end - seconds, end)
                           if sid else [] for m in names}

    def metric_names(self, kind: str) -> tuple[str, ...]:
        return KIND_METRICS[kind]

    # ---- events -------------------------------------------------------------------
    def event_log(self, cluster: str | None = None, *, host: str = "", vm: str = "",
                  since: float = 0.0, limit: int = 500) -> list[EventRecord]:
        """Recorded changes, newest first: a cluster's (all clusters' if None), a
        host's, or a VM's (its uuid)."""
        rows = self.inv.events(cluster, limit, host=host, target=vm, since=since)
        out = []
        for r in rows:
            known = self._vms.get(r["target"])
            out.append(EventRecord(
                at=r["at"], cluster=r["cluster"], host=r["host"] or "", target=r["target"] or "",
                target_name=known.name if known else (r["target"] or ""),
                kind=r["kind"] or "", message=r["message"] or "",
                source=r.get("source") or "", id=r["id"]))
        return out

    def _event_outside(self, kind: str) -> str:
        """Who an event is put down to when no task acted on its target: a VM's
        change that no task made was made outside; a change this engine saw itself
        (a host lost, a split) is put down to it."""
        return OUTSIDE if kind == "vm.state" else f"seen by {self.journal.started_by}"


def _mean(points) -> float | None:
    return sum(v for _, v in points) / len(points) if points else None
