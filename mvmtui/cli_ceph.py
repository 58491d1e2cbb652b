"""The Ceph verbs of the command line (engine/ceph/):

    mvmtui ceph status [--cluster C] [--json]            health, daemons, PGs, pools, flags
    mvmtui ceph osd-tree [--cluster C] [--json]          OSDs by host, with usage
    mvmtui ceph decommission HOST [--cluster C] [--dry-run] [--yes] [--json]
    mvmtui ceph noout HOST on|off [--cluster C] [--minutes N]

`decommission` shows the plan, then runs the next step once you confirm it (each
step's exact commands first), and goes on step by step; `--yes` confirms every step
(needed without a terminal). Run it again to resume: the plan comes from what Ceph
shows, so it starts at the right step.
"""
from __future__ import annotations

import asyncio
import sys
from dataclasses import asdict

from .cli import FAILED, OK, UsageError, _dump_one, _engine, _follow, _table
from .cli_ha import _one_cluster
from .engine.errors import EngineError
from .engine.model import TaskStatus
from .widgets import format as fmt


def _summary(eng, args):
    cluster = _one_cluster(eng, args.cluster, getattr(args, "name", None))
    s = eng.call(eng.ceph_refresh(cluster), timeout=60)
    if s is None:
        raise EngineError(f"{cluster} has no Ceph (no host has /etc/ceph/ceph.conf), or "
                          f"none of its hosts answers")
    return cluster, s


def _flag_line(f, now: float) -> str:
    who = f"set by {f.who}" if f.who else "set outside mvmtui (who and when not known)"
    when = ""
    if f.since:
        when += f" {fmt.ago(now - f.since)}"
    if f.expires:
        when += (f", EXPIRED {fmt.ago(now - f.expires)}" if f.expired(now)
                 else f", expires in {fmt.duration(f.expires - now)}")
    return f"{f.name} on {f.scope}: {who}{when}" + (f" ({f.why})" if f.why else "")


def print_status(s, now: float) -> None:
    print(f"Ceph of {s.cluster}: {s.health or 'health not known'}   "
          f"(read {fmt.ago(max(0.0, now - s.read_at))} from {s.source or '?'})")
    for p in s.problems:
        print(f"  ! {p}")
    for c in s.checks:
        print(f"  {c.severity} {c.code}: {c.summary}" + (" (muted)" if c.muted else ""))
        for d in c.detail[:10]:
            print(f"      {d}")
        if len(c.detail) > 10:
            print(f"      … and {len(c.detail) - 10} more")
    for f in s.flags:
        print(f"  FLAG {_flag_line(f, now)}")
    q = s.quorum
    print(f"monitors: {len(s.mons)}, in quorum {len(q)}: {', '.join(q) or 'none'}")
    print("managers: " + (", ".join(f"{m.name} ({'active' if m.active else 'standby'})"
                                    for m in s.mgrs) or "none"))
    up = sum(o.up for o in s.osds)
    inn = sum(o.in_ for o in s.osds)
    print(f"OSDs: {len(s.osds)}, {up} up, {inn} in")
    print(f"PGs: {s.num_pgs if s.num_pgs is not None else '?'}: "
          + (", ".join(f"{p.count} {p.state}" for p in s.pgs) or "none"))
    r = s.recovery
    if r.active:
        parts = []
        if r.degraded_objects:
            parts.append(f"{r.degraded_objects}/{r.degraded_total or '?'} objects degraded")
        if r.misplaced_objects:
            parts.append(f"{r.misplaced_objects}/{r.misplaced_total or '?'} misplaced")
        if r.recovering_bytes_per_sec:
            parts.append(f"recovering {fmt.size_bytes(r.recovering_bytes_per_sec)}/s")
        print("recovery: " + ", ".join(parts))
    if s.raw_total_bytes:
        print(f"raw: {fmt.size_bytes(s.raw_used_bytes)} used of "
              f"{fmt.size_bytes(s.raw_total_bytes)} "
              f"({(s.raw_used_bytes or 0) / s.raw_total_bytes:.0%}), "
              f"{fmt.size_bytes(s.raw_avail_bytes)} free; nearfull at "
              f"{(s.nearfull_ratio or 0):.0%}, full at {(s.full_ratio or 0):.0%}")
    print(f"client I/O: {fmt.size_bytes(s.client_read_bytes_per_sec)}/s rd, "
          f"{fmt.size_bytes(s.client_write_bytes_per_sec)}/s wr")
    _table(["pool", "size", "min", "pgs", "stored", "used", "max avail", "apps"],
           [[p.name, p.size, p.min_size, p.pg_num, fmt.size_bytes(p.stored_bytes),
             fmt.size_bytes(p.used_bytes), fmt.size_bytes(p.max_avail_bytes),
             ",".join(p.applications)] for p in s.pools])


def print_tree(s) -> None:
    rows = []
    hosts = {h.name for h in s.hosts}
    for h in s.hosts:
        rows.append([h.name, "host", "", "", f"{h.crush_weight:.5f}" if h.crush_weight
                     is not None else "?", "", fmt.size_bytes(h.size_bytes),
                     fmt.size_bytes(h.used_bytes), ""])
        for o in s.osds_on(h.name):
            rows.append(_osd_row(o))
    for o in s.osds:
        if o.host not in hosts:
            rows.append(_osd_row(o, stray=True))
    _table(["name", "kind", "up", "in", "weight", "reweight", "size", "used", "use%"], rows)
    if s.nearfull_ratio is not None:
        near = [o.name for o in s.osds if o.utilization is not None
                and o.utilization >= s.nearfull_ratio * 100]
        if near:
            print(f"NEARFULL (≥ {s.nearfull_ratio:.0%}): {', '.join(near)}")


def _osd_row(o, stray: bool = False) -> list:
    return ["  " + o.name + (" (stray)" if stray else ""), o.device_class or "osd",
            "up" if o.up else "DOWN", "in" if o.in_ else "OUT",
            "?" if o.crush_weight is None else f"{o.crush_weight:.5f}",
            "?" if o.reweight is None else f"{o.reweight:.2f}", fmt.size_bytes(o.size_bytes),
            fmt.size_bytes(o.used_bytes),
            "?" if o.utilization is None else f"{o.utilization:.0f}%"]


def cmd_ceph_status(args) -> int:
    with _engine(args, online=True) as eng:
        _cluster, s = _summary(eng, args)
        if args.json:
            _dump_one(asdict(s))
        else:
            print_status(s, eng.clock())
        return OK if s.health == "HEALTH_OK" else FAILED


def cmd_ceph_tree(args) -> int:
    with _engine(args, online=True) as eng:
        _cluster, s = _summary(eng, args)
        if args.json:
            _dump_one({"hosts": [asdict(h) for h in s.hosts],
                       "osds": [asdict(o) for o in s.osds], "read_at": s.read_at})
        else:
            print_tree(s)
        return OK


def print_plan(p, first: bool = True) -> None:
    if p.absent:
        print(f"{p.host} has no OSD, monitor, manager or CRUSH bucket: it is not part of "
              f"Ceph (any more).")
        return
    print(f"Decommission {p.host}"
          + (" (resumed: some steps are done)" if p.started and first else ""))
    for c in p.checks:
        print(f"  {'ok ' if c.ok else 'NO '} {c.step:>2}. {c.title}: {c.message}")
    if p.method_why:
        print(f"      way: {p.method_why}")
    for a in p.actions:
        mark = {"done": "done", "next": "NEXT", "pending": "    "}.get(a.state, a.state)
        print(f"  {mark:4} {a.step:>2}. {a.title}")
        if a.state != "done":
            for cmd in a.commands:
                print(f"           $ {cmd}")
            for cmd in a.on_host:
                print(f"           $ {cmd}   (on {p.host})")
        if a.blocked:
            print(f"           BLOCKED: {a.blocked}")
    if p.refusal:
        print(f"REFUSED: {p.refusal}")
    elif p.finished:
        print(f"{p.host} is no longer part of Ceph.")


def _plan_json(p) -> dict:
    d = asdict(p)
    d["next"] = p.next.key if p.next else None
    d["finished"] = p.finished
    return d


def cmd_ceph_decommission(args) -> int:
    with _engine(args, online=True) as eng:
        cluster = _one_cluster(eng, args.cluster, args.name)
        eng.host(cluster, args.name)
        first = True
        while True:
            p = asyncio.run(eng.decommission_plan(cluster, args.name))
            if args.json and args.dry_run:
                _dump_one(_plan_json(p))
            elif not args.json:
                print_plan(p, first)
            first = False
            if args.dry_run or p.refusal or p.finished:
                return OK if (p.finished or not p.refusal) and not (
                    p.next and p.next.blocked) else FAILED
            a = p.next
            if a is None or a.blocked:
                return FAILED
            if not args.yes:
                if not sys.stdin.isatty():
                    raise UsageError("each step of a decommission is confirmed: add --yes "
                                     "to confirm them without a terminal")
                if input(f"Run step {a.step}, {a.title}? [y/N] ").strip().lower() != "y":
                    print("Stopped; run the same command again to go on from here.")
                    return OK
            task = asyncio.run(eng.decommission_step(cluster, args.name, a.key))
            t = _follow(args, eng, task)
            for line in eng.task(t.id).logs:
                if not args.json and "started by" not in line.message:
                    print(f"    {line.message}")
            print(f"task {t.id}: {t.title}: {t.status.value}"
                  + (f": {t.error}" if t.error else ""))
            if t.status is not TaskStatus.SUCCEEDED:
                return FAILED


def cmd_ceph_noout(args) -> int:
    with _engine(args, online=True) as eng:
        cluster = _one_cluster(eng, args.cluster, args.name)
        eng.host(cluster, args.name)
        if args.state == "on":
            said = asyncio.run(eng.ceph_set_noout(cluster, args.name, args.minutes * 60,
                                                  why="mvmtui ceph noout"))
        else:
            said = asyncio.run(eng.ceph_clear_noout(cluster, args.name))
        print(said)
        return OK


def add_parsers(sub, common) -> None:
    cp = sub.add_parser("ceph", help="the cluster's Ceph: status, OSD tree, decommission, "
                                     "noout").add_subparsers(dest="verb", required=True)
    x = cp.add_parser("status", help="health with every check, daemons, PGs, pools, flags "
                                     "(exit 1 unless HEALTH_OK)")
    x.add_argument("--cluster")
    common(x, offline_flag=False)
    x.set_defaults(func=cmd_ceph_status)
    x = cp.add_parser("osd-tree", help="OSDs by CRUSH host, with usage")
    x.add_argument("--cluster")
    common(x, offline_flag=False)
    x.set_defaults(func=cmd_ceph_tree)
    x = cp.add_parser("decommission", help="take a host out of Ceph, step by step, each "
                                           "confirmed (preview with --dry-run)")
    x.add_argument("name", help="host name")
    x.add_argument("--cluster")
    x.add_argument("--dry-run", action="store_true", help="show the plan; change nothing")
    x.add_argument("--yes", action="store_true", help="confirm every step without asking")
    common(x, offline_flag=False)
    x.set_defaults(func=cmd_ceph_decommission)
    x = cp.add_parser("noout", help="set or clear noout on a host's OSDs (kept with who "
                                    "and until when)")
    x.add_argument("name", help="host name")
    x.add_argument("state", choices=("on", "off"))
    x.add_argument("--cluster")
    x.add_argument("--minutes", type=int, default=120, help="expiry when set (default 120)")
    common(x, offline_flag=False)
    x.set_defaults(func=cmd_ceph_noout)
