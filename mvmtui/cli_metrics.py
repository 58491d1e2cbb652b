"""Monitoring on the command line (engine/monitoring.py), from the inventory alone:
no host is contacted, so it answers at once, even when hosts do not.

    mvmtui metrics host|vm NAME [--cluster C] [--since 1h] [--metric M …] [--json]
    mvmtui metrics ceph CLUSTER [--since 1h] [--metric M …] [--json]
    mvmtui events [--cluster C] [--host H] [--vm NAME] [--since 1d] [--limit N] [--json]

Samples are taken wherever an engine runs live (an open console, `mvmtui watch`);
`--since` accepts 90s, 15m, 1h, 2h30m, 1d, 1w (up to the month the history keeps).
"""
from __future__ import annotations

import json
import re

from .cli import OK, UsageError, _engine, _table
from .cli_ha import _one_cluster
from .engine.model import CEPH_SERIES, KIND_METRICS, METRICS
from .widgets import format as fmt

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SINCE = re.compile(r"(\d+)([smhdw])")
MAX_SINCE = 30 * 86400


def parse_since(text: str) -> float:
    """'1h', '2h30m', '90s', '1w' → seconds; UsageError that says what is accepted."""
    t = text.strip().lower()
    parts = _SINCE.findall(t)
    if not parts or "".join(n + u for n, u in parts) != t:
        raise UsageError(f"--since {text!r}: give a duration such as 90s, 15m, 1h, 2h30m, "
                         f"1d or 1w")
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if not 0 < seconds <= MAX_SINCE:
        raise UsageError(f"--since {text!r}: between 1s and 30d (the history keeps a month)")
    return float(seconds)


def _value(metric: str, v: float | None) -> str:
    if v is None:
        return "—"
    unit = METRICS[metric][1]
    if unit == "%":
        return f"{v:.1f}%"
    if unit == "MiB":
        return fmt.size_mib(v)
    if unit == "B/s":
        return fmt.size_bytes(v) + "/s"
    return f"{v:.2f}"


def cmd_metrics(args) -> int:
    seconds = parse_since(args.since)
    known = KIND_METRICS[args.kind]
    for m in args.metric or ():
        if m not in known:
            raise UsageError(f"no {args.kind} metric {m!r}: use one of {', '.join(known)}")
    eng = _engine(args, online=False)
    try:
        if args.kind == "host":
            cluster = _one_cluster(eng, args.cluster, args.name)
            eng.host(cluster, args.name)          # NotFound names it
            key, label = args.name, args.name
        elif args.kind == "ceph":
            cluster = args.name
            eng.cluster(cluster)                  # NotFound names it
            key, label = CEPH_SERIES, cluster
        else:
            vm = eng.find_vm(args.name, args.cluster)
            cluster, key, label = vm.cluster, vm.uuid, vm.name
        tier, data = eng.series_since(args.kind, cluster, key, seconds,
                                      tuple(args.metric) if args.metric else None)
        now = eng.clock()
    finally:
        eng.stop()
    newest = max((pts[-1][0] for pts in data.values() if pts), default=None)
    what = f"ceph of {cluster}" if args.kind == "ceph" else f"{args.kind} {label} ({cluster})"
    if args.json:
        print(json.dumps({"kind": args.kind, "cluster": cluster, "name": label, "key": key,
                          "tier": tier, "since": now - seconds, "until": now,
                          "as_of": newest,
                          "metrics": {m: [[t, v] for t, v in pts] for m, pts in data.items()}},
                         indent=1))
        return OK
    if newest is None:
        print(f"{what}: no samples in the last {args.since}. Samples "
              f"are taken while a console or `mvmtui watch` runs.")
        return OK
    print(f"{what}, last {args.since}: {tier}, newest "
          f"{fmt.ago(max(0.0, now - newest))}")
    rows = []
    for m, pts in data.items():
        vals = [v for _, v in pts]
        if not vals:
            rows.append([METRICS[m][0], "—", "—", "—", "—", "0"])
            continue
        rows.append([METRICS[m][0], _value(m, vals[-1]), _value(m, min(vals)),
                     _value(m, sum(vals) / len(vals)), _value(m, max(vals)), str(len(vals))])
    _table(["metric", "last", "min", "mean", "max", "points"], rows)
    return OK


def cmd_events(args) -> int:
    seconds = parse_since(args.since)
    eng = _engine(args, online=False)
    try:
        vm_uuid, cluster = "", args.cluster
        if args.cluster:
            eng.cluster(args.cluster)       # NotFound names it
        if args.vm:
            vm = eng.find_vm(args.vm, args.cluster)
            vm_uuid, cluster = vm.uuid, vm.cluster
        now = eng.clock()
        events = eng.event_log(cluster, host=args.host or "", vm=vm_uuid,
                               since=now - seconds, limit=args.limit)
    finally:
        eng.stop()
    if args.json:
        from .cli import _dump
        _dump(events)
        return OK
    if not events:
        print(f"no events in the last {args.since}")
        return OK
    _table(["when", "cluster", "host", "kind", "target", "what", "by"],
           [[fmt.clock(e.at, now), e.cluster, e.host, e.kind, e.target_name, e.message,
             e.source or "—"] for e in events])
    return OK


def add_parsers(sub, common) -> None:
    x = sub.add_parser("metrics", help="a host's, VM's or Ceph's sampled figures over a "
                                       "time (from the inventory; no host contacted)")
    x.add_argument("kind", choices=tuple(KIND_METRICS))
    x.add_argument("name", help="host name, VM name or UUID, or (ceph) the cluster")
    x.add_argument("--cluster")
    x.add_argument("--since", default="1h", help="how far back: 15m, 1h, 1d, 1w … "
                                                 "(default 1h)")
    x.add_argument("--metric", action="append", metavar="M",
                   help="only these (repeat): " + "; ".join(
                       f"{k}: {', '.join(v)}" for k, v in KIND_METRICS.items()))
    common(x, online=False)
    x.set_defaults(func=cmd_metrics)
    x = sub.add_parser("events", help="recorded changes of hosts and VMs, newest first, "
                                      "with who made them")
    x.add_argument("--cluster")
    x.add_argument("--host", help="only this host's")
    x.add_argument("--vm", help="only this VM's (name or UUID)")
    x.add_argument("--since", default="1d", help="how far back (default 1d)")
    x.add_argument("--limit", type=int, default=200, help="at most this many (default 200)")
    common(x, online=False)
    x.set_defaults(func=cmd_events)

