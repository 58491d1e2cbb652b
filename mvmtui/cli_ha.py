"""The host-loss verbs of the command line (engine/ha.py):

    mvmtui watch [--cluster C]                     the HA watcher, headless, logging
    mvmtui cluster failover-plan C [--host H]      "what if this host dies now?"
    mvmtui cluster rebalance C [--dry-run] [--threshold N]
    mvmtui host fenced HOST [--cluster C] [--yes]  "I have powered it off"
"""
from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
from dataclasses import asdict

from .cli import (FAILED, OK, UsageError, _check_scope, _dump_one, _engine, _follow,
                  _new_engine, _print_tree, _table)
from .engine.errors import Ambiguous
from .engine.model import HaChanged, TaskChanged, TaskStatus


def _one_cluster(eng, name: str | None, host: str | None = None) -> str:
    clusters = _check_scope(eng, name, host) or [c.name for c in eng.clusters()]
    if len(clusters) != 1:
        raise Ambiguous(f"name the cluster with --cluster (one of {', '.join(clusters)})"
                        if clusters else "no cluster is registered")
    return clusters[0]


def cmd_watch(args) -> int:
    """Run until SIGTERM / SIGINT, logging what it sees and does on stdout."""
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", force=True)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    log = logging.getLogger("mvmtui.watch")
    eng = _new_engine(args, offline=False, actor="watcher")
    eng.recover = True            # a watcher stays up: it finishes what a dead one left
    clusters = [args.cluster] if args.cluster else None
    if args.cluster:
        eng.cluster(args.cluster)

    seen: dict[int, str] = {}

    def on_event(ev) -> None:      # tasks (ours and others'), and who watches
        if isinstance(ev, TaskChanged):
            t = ev.task
            if seen.get(t.id) != t.status.value and t.kind.startswith(("host.", "vm.restart",
                                                                       "cluster.")):
                seen[t.id] = t.status.value
                log.info("task %d %s: %s%s", t.id, t.title, t.status.value,
                         f": {t.error}" if t.error else "")
        elif isinstance(ev, HaChanged):
            st = ev.status
            for h in st.hosts:
                log.info("%s/%s: %s %s", st.cluster, h.host, h.state or "fine", h.note)
            if st.message:
                log.info("%s: %s", st.cluster, st.message)
    eng.subscribe(on_event)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    eng.start(clusters=clusters)
    try:
        eng.start_watching(clusters)
        log.info("watching %s as %s", ", ".join(clusters or [c.name for c in eng.clusters()]),
                 eng.journal.started_by)
        stop.wait()
        log.info("stopping: releasing the watcher lease")
    finally:
        eng.stop()
    return OK


def _plan_rows(plan) -> list[list[str]]:
    return [[r.name, r.strategy.value, r.priority, r.state.value,
             r.target or "—", r.outcome, r.reason] for r in plan.rows]


def cmd_failover_plan(args) -> int:
    with _engine(args, online=True) as eng:
        cluster = _one_cluster(eng, args.name, args.host)
        if args.host:
            plans = [eng.failover_plan(cluster, args.host)]
            check = None
        else:
            check = eng.host_loss_check(cluster)
            plans = list(check.plans)
        if args.json:
            _dump_one({"cluster": cluster,
                       "n_minus_one": None if check is None else {
                           "ok": check.ok, "short_mib": check.short_mib,
                           "short_vcpus": check.short_vcpus},
                       "plans": [{"host": p.host, "complete": not p.blocked,
                                  "rows": [asdict(r) for r in p.rows]} for p in plans]})
            return OK if all(not p.blocked for p in plans) else FAILED
        if check is not None:
            print(f"{cluster}: " + ("can lose any one host and restart every Auto and "
                                    "Failover VM (N−1)" if check.ok else
                                    f"cannot lose every host (N−1): the worst, "
                                    f"{check.worst.host}, leaves {len(check.worst.blocked)} VMs "
                                    f"down, short by {check.short_mib} MiB and "
                                    f"{check.short_vcpus} vCPUs"))
        for p in plans:
            print(f"\nIf {p.host} died now: {len(p.restarts)} restart elsewhere"
                  + (f", {len(p.blocked)} could not" if p.blocked else ""))
            if p.rows:
                _table(["vm", "strategy", "priority", "state", "restarts on", "outcome",
                        "why"], _plan_rows(p))
            else:
                print("  (no VM on it)")
        return OK if all(not p.blocked for p in plans) else FAILED


def cmd_rebalance(args) -> int:
    with _engine(args, online=True) as eng:
        cluster = _one_cluster(eng, args.name)
        preview = eng.rebalance_preview(cluster, args.threshold)
        if args.json and args.dry_run:
            _dump_one(asdict(preview))
            return OK
        if not args.json:
            print(f"{cluster}: imbalance {preview.before:.3f} → {preview.after:.3f} with "
                  f"{len(preview.moves)} moves (threshold {preview.threshold})")
            after = dict(preview.loads_after)
            _table(["host", "load now", "after"],
                   [[h, f"{v * 100:.0f}%", f"{after.get(h, v) * 100:.0f}%"]
                    for h, v in preview.loads_before])
            if preview.moves:
                _table(["vm", "to", "why"], [[r.name, r.target, r.reason]
                                             for r in preview.moves])
            for s in preview.skipped:
                print(f"  left alone: {s}")
        if args.dry_run or not preview.moves:
            return OK
        task = asyncio.run(eng.rebalance(cluster, preview))
        t = _follow(args, eng, task)
        _print_tree(args, eng, t)
        return OK if t.status is TaskStatus.SUCCEEDED else FAILED


def cmd_host_fenced(args) -> int:
    """The operator says a lost host is powered off: its VMs may restart elsewhere."""
    with _engine(args, online=True) as eng:
        cluster = _one_cluster(eng, args.cluster, args.name)
        typed = args.name if args.yes else ""
        if not typed:
            if not sys.stdin.isatty():
                raise UsageError(f"confirming that {args.name} is powered off lets its VMs "
                                 f"start elsewhere: add --yes to confirm without a terminal")
            print(f"Only confirm if {args.name} is really powered off (or its power is cut): "
                  f"if it still runs its VMs, they would run twice and destroy their disks.")
            typed = input(f"Type the host's name ({args.name}) to confirm: ").strip()
        t = asyncio.run(eng.confirm_fenced(cluster, args.name, typed))
        if args.json:
            from .cli import _dump
            _dump([t])
        else:
            print(f"task {t.id}: {t.title}: {t.status.value}"
                  + (f": {t.error}" if t.error else ""))
            for line in t.logs[-1:]:
                print(f"  {line.message}")
        return OK if t.status is TaskStatus.SUCCEEDED else FAILED


def add_parsers(sub, cluster_sub, host_sub, common) -> None:
    x = sub.add_parser("watch", help="the HA watcher: fail over lost hosts, bring VMs home, "
                                     "rebalance (runs until stopped; logs to stdout)")
    x.add_argument("--cluster", help="watch only this cluster")
    x.set_defaults(func=cmd_watch)
    x = cluster_sub.add_parser("failover-plan",
                               help="what if a host died now: where each VM would restart "
                                    "(exit 1 if some could not)")
    x.add_argument("name", nargs="?", help="cluster (default: the only one)")
    x.add_argument("--host", help="only this host's plan")
    common(x, offline_flag=False)
    x.set_defaults(func=cmd_failover_plan)
    x = cluster_sub.add_parser("rebalance", help="DRS: even out the hosts' load by live "
                                                 "migration (preview with --dry-run)")
    x.add_argument("name", nargs="?", help="cluster (default: the only one)")
    x.add_argument("--threshold", type=int, choices=range(1, 6), metavar="1-5",
                   help="1 conservative … 5 aggressive (default: the cluster's drs-threshold)")
    x.add_argument("--dry-run", action="store_true", help="show the moves; change nothing")
    common(x, offline_flag=False)
    x.set_defaults(func=cmd_rebalance)
    x = host_sub.add_parser("fenced", help="confirm that a lost host is powered off, so that "
                                           "its VMs restart elsewhere")
    x.add_argument("name", help="host name")
    x.add_argument("--cluster")
    x.add_argument("--yes", action="store_true", help="confirm without typing the name")
    common(x, offline_flag=False)
    x.set_defaults(func=cmd_host_fenced)
