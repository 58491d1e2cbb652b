"""Command line: the console (default), the headless verbs, and the lab.

Exit codes (for scripts):
  0 ok · 1 the operation failed (e.g. libvirt refused; the task records why)
  2 usage error · 3 not found / ambiguous · 4 host not reachable
  5 inventory unusable · 6 read-only or offline mode · 7 busy (locked by another task)
  8 lab error
With --json, an error is also printed on stdout as
  {"error": {"code": 3, "kind": "not-found", "message": "..."}}
"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import ipaddress
import json
import logging
import os
import re
import shutil
import sqlite3
import sys
import time
from dataclasses import asdict
from enum import Enum

from . import launch
from .engine import (VM_ACTIONS, Ambiguous, Busy, Engine, EngineError, HostDown,
                     InventoryError, NotFound, ReadOnly)
from .engine.errors import LabError, Offline
from .engine.model import Cluster, Host, HostStatus, MoveRequest, TaskStatus

OK, FAILED, USAGE, NOT_FOUND, UNREACHABLE, INVENTORY, READONLY, BUSY, LAB = range(9)
KINDS = {FAILED: "failed", USAGE: "usage", NOT_FOUND: "not-found",
         UNREACHABLE: "unreachable", INVENTORY: "inventory", READONLY: "read-only",
         BUSY: "busy", LAB: "lab"}
VERBS = {"console", "cluster", "host", "vm", "task", "lab", "demo", "watch", "ceph",
         "metrics", "events"}


class UsageError(EngineError):
    """Bad arguments: exit 2."""


class _Parser(argparse.ArgumentParser):
    """Usage errors are returned as exit 2 with one line, not a usage dump and
    SystemExit (main() is called by tests and scripts, and --json wants an object)."""

    def error(self, message: str):
        raise UsageError(f"{message} (`{self.prog} --help` shows the usage)")


# ---- shared helpers ------------------------------------------------------------------
def _inventory_path(args) -> str | None:
    return args.inventory or os.environ.get("MVMTUI_INVENTORY") or None


def _check_inventory(path: str | None, create: bool) -> None:
    """A named inventory that does not exist is a typo until shown otherwise: only the
    verbs that register a cluster create one. The default path is always fine."""
    if path and not create and not os.path.exists(path):
        raise InventoryError(
            f"No inventory at {path}. Create it with `mvmtui --inventory {path} cluster "
            f"add …` or `mvmtui lab up`, or check the path.")


def _new_engine(args, *, offline: bool, create: bool = False, actor: str = "cli") -> Engine:
    """An engine (not started) on the inventory the arguments name; `actor` says who
    starts its tasks in History (the CLI, or the console)."""
    path = _inventory_path(args)
    _check_inventory(path, create)
    s = _settings(args)
    if actor != "console":   # the console shows them as a notification
        for problem in s.problems:
            print(f"mvmtui: {s.path}: {problem}", file=sys.stderr)
    # Only the console recovers interrupted moves: a CLI verb would start them and cut
    # them off when it exits.
    return Engine(path, readonly=getattr(args, "readonly", False), offline=offline,
                  actor=actor, recover=actor == "console", **s.engine_options())


def _settings(args):
    """The settings file, read once per command (a bad value is a problem it names,
    with that setting at its default: never an error)."""
    s = getattr(args, "_settings", None)
    if s is None:
        from .engine import settings
        s = args._settings = settings.load()
    return s


def _preferences(args):
    """The console's part of the settings: theme, keys, and what the file got wrong."""
    from .app import Preferences
    return Preferences(**_settings(args).console_options())


def _jsonable(obj):
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _dump(rows) -> None:
    print(json.dumps(_jsonable([asdict(r) if not isinstance(r, dict) else r for r in rows]),
                     indent=1))


def _dump_one(obj) -> None:
    print(json.dumps(_jsonable(obj), indent=1))


def _table(headers: list[str], rows: list[list]) -> None:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    print("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)).rstrip())
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _listing(names: list[str], most: int = 20) -> str:
    if not names:
        return "none"
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most
                                      else "")


def _ask_password(prompt: str) -> str:
    """A password typed on the terminal; never read from a pipe (it would echo, or
    read the next line of a script)."""
    if not sys.stdin.isatty():
        raise UsageError("--ask-password needs a terminal to type the password on; "
                         "for scripts, use an SSH key (cluster add --key)")
    try:
        password = getpass.getpass(prompt)
    except EOFError:
        password = ""
    if not password:
        raise UsageError("no password given")
    return password


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):   # also refuses nan
        raise argparse.ArgumentTypeError(f"give a number of seconds, 0 or more (not {text})")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"give a whole number, 1 or more (not {text})")
    return int(text)


def _check_scope(eng: Engine, cluster: str | None, host: str | None) -> list[str] | None:
    """Refuse an unknown --cluster or --host (a typo must not read as "nothing there");
    returns the clusters to contact (None: all)."""
    if cluster:
        eng.cluster(cluster)
    if not host:
        return [cluster] if cluster else None
    hits = sorted({h.cluster for h in eng.hosts(cluster) if h.name == host})
    if hits:
        return hits
    names = sorted({c.name for c in eng.clusters()})
    where = cluster or (names[0] if len(names) == 1 else None)
    if where:
        known = [h.name for h in eng.hosts(where)]
        raise NotFound(f"No host '{host}' in cluster '{where}'. Hosts: {_listing(known)}.")
    known = [f"{h.cluster}/{h.name}" for h in eng.hosts()]
    raise NotFound(f"No host '{host}' in any cluster. Hosts: {_listing(known)}.")


def _engine(args, *, online: bool) -> Engine:
    """A started engine; online, it contacts only the hosts of --cluster (or of
    --host) if given."""
    eng = _new_engine(args, offline=not online or getattr(args, "offline", False))
    try:
        clusters = _check_scope(eng, getattr(args, "cluster", None),
                                getattr(args, "host", None))
        if getattr(args, "ask_password", False) and not eng.offline:
            password = _ask_password("SSH password: ")
            for name in clusters or [c.name for c in eng.clusters()]:
                eng.set_password(name, password)   # memory only, never written
    except BaseException:
        eng.inv.close()      # never started: stop() would not close it
        raise
    eng.start(clusters=clusters)
    try:
        if not eng.offline:
            eng.call(eng.wait_ready(timeout=getattr(args, "wait", 10.0), complete=True))
    except BaseException:
        eng.stop()
        raise
    return eng


def _pct(v) -> str:
    return "—" if v is None else f"{v:.0f}%"


# ---- clusters ------------------------------------------------------------------------
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
NAME_RULE = ("letters, digits, '-', '_' and '.', 1–63 characters, starting with a "
             "letter or digit")


def _check_name(what: str, name: str, hint: str = "") -> str:
    if not NAME.fullmatch(name):
        raise UsageError(f"bad {what} '{name}': use {NAME_RULE}{hint}")
    return name


def _check_address(addr: str, spec: str) -> str:
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        pass
    labels = addr.removesuffix(".").split(".")
    if (len(addr) <= 253 and all(LABEL.fullmatch(x) for x in labels)
            and not all(x.isdigit() for x in labels)):   # 10.1.2.300 is no hostname
        return addr
    raise UsageError(f"bad address '{addr}' in '{spec}': write a hostname or an IP "
                     f"address (NAME=ADDRESS[:PORT])")


def _check_port(text: str, spec: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise UsageError(f"bad port '{text}' in '{spec}': a port is a number from 1 to "
                         f"65535; write NAME=ADDRESS[:PORT]")
    return int(text)


def _parse_host(spec: str) -> Host:
    """NAME=ADDRESS[:PORT], or just ADDRESS[:PORT] (then the address is the name too).
    An IPv6 address with a port is written [ADDRESS]:PORT."""
    name, eq, addr = spec.partition("=")
    if not eq:
        addr, name = name, ""
    port = 22
    if addr.startswith("["):                         # [v6]:port
        inner, close, rest = addr[1:].partition("]")
        if not close or (rest and not rest.startswith(":")):
            raise UsageError(f"bad host '{spec}': write NAME=[ADDRESS]:PORT for IPv6")
        addr = inner
        if rest:
            port = _check_port(rest[1:], spec)
    elif addr.count(":") == 1:
        addr, _, p = addr.partition(":")
        port = _check_port(p, spec)
    if not addr or (eq and not name):
        raise UsageError(f"bad host '{spec}': write NAME=ADDRESS[:PORT]")
    addr = _check_address(addr, spec)
    name = _check_name("host name", name or addr, "; write NAME=ADDRESS[:PORT]")
    return Host(cluster="", name=name, address=addr, port=port)


def _twice(values: list[str], what: str) -> None:
    dup = sorted({v for v in values if values.count(v) > 1})
    if dup:
        raise UsageError(f"{what} {', '.join(dup)} {'is' if len(dup) == 1 else 'are'} "
                         f"given twice")


def cmd_cluster_add(args) -> int:
    _check_name("cluster name", args.name)
    hosts = [_parse_host(h) for h in args.hosts]
    _twice([h.name for h in hosts], "host")
    _twice([f"[{h.address}]:{h.port}" if ":" in h.address else f"{h.address}:{h.port}"
            for h in hosts], "address")
    # Stored absolute: the console may run from anywhere later.
    args.key = os.path.abspath(args.key) if args.key else None
    args.known_hosts = os.path.abspath(args.known_hosts) if args.known_hosts else None
    if args.key and not os.path.exists(args.key):
        raise UsageError(f"SSH key {args.key} does not exist")
    with _new_engine(args, offline=True, create=True) as eng:
        if args.name in {c.name for c in eng.clusters()} and not args.replace:
            raise UsageError(f"cluster '{args.name}' exists; add --replace to redefine it")
        try:
            eng.add_cluster(Cluster(name=args.name, layout=args.layout, ssh_user=args.user,
                                    ssh_key=args.key, known_hosts=args.known_hosts), hosts)
        except (ReadOnly, Offline):
            raise
        except EngineError as exc:   # e.g. a host already in another cluster: bad input
            raise UsageError(str(exc)) from exc
    if args.json:
        _dump_one({"cluster": args.name, "hosts": [
            {"name": h.name, "address": h.address, "port": h.port} for h in hosts]})
    else:
        print(f"cluster '{args.name}': {len(hosts)} hosts registered. Unknown host keys "
              f"are shown for you to confirm when the console first connects.")
    return OK


def cmd_cluster_show(args) -> int:
    """A cluster's policy (and, with set, a change to it)."""
    from .engine import policy
    with _new_engine(args, offline=True) as eng:
        if getattr(args, "settings", None):
            current = eng.set_policy(args.name, args.settings)
        else:
            current = eng.policy(args.name)
    if args.json:
        _dump_one({"cluster": args.name, **policy.to_stored(current)})
    else:
        _table(["setting", "value"], [list(kv) for kv in policy.describe(current)])
    return OK


def cmd_cluster_remove(args) -> int:
    with _new_engine(args, offline=True) as eng:
        eng.cluster(args.name)
        tasks = eng.remove_cluster(args.name)
    if args.json:
        _dump_one({"cluster": args.name, "removed": True,
                   "tasks_removed": tasks if isinstance(tasks, int) else None})
    else:
        history = f" with its {tasks} tasks of history" if isinstance(tasks, int) else ""
        print(f"cluster '{args.name}' removed from the inventory{history} (hosts untouched)")
    return OK


def cmd_cluster_list(args) -> int:
    with _engine(args, online=True) as eng:
        sums = eng.summaries()
        caps = [getattr(s, "capacity", s) for s in sums]   # Capacity, or older summaries
        if args.json:
            _dump([{"name": s.cluster.name, "layout": s.cluster.layout,
                    "hosts_up": s.hosts_up, "hosts_total": s.hosts_total,
                    "vms_running": s.vms_running, "vms_total": s.vms_total,
                    "cpu_pct": c.cpu_pct, "memory_mib": c.memory_mib,
                    "memory_used_mib": c.memory_used_mib, "problems": list(s.problems)}
                   for s, c in zip(sums, caps)])
        else:
            _table(["name", "layout", "hosts", "vms", "cpu", "memory"],
                   [[s.cluster.name, s.cluster.layout, f"{s.hosts_up}/{s.hosts_total}",
                     f"{s.vms_running}/{s.vms_total}", _pct(c.cpu_pct),
                     f"{(c.memory_used_mib or 0) // 1024}/{c.memory_mib // 1024} GiB"]
                    for s, c in zip(sums, caps)])
    return OK


# ---- hosts and VMs -------------------------------------------------------------------
def cmd_host_list(args) -> int:
    with _engine(args, online=True) as eng:
        hosts = eng.hosts(args.cluster)
        now = eng.now()
        if args.json:
            _dump(hosts)
        else:
            _table(["cluster", "name", "status", "address", "cpus", "memory", "problem"],
                   [[h.cluster, h.name, h.status.value + _maintenance(h), h.address, h.cpus,
                     f"{h.memory_mib // 1024} GiB", h.problem or (
                         "" if h.status is HostStatus.UP else _age(h.age(now)))]
                    for h in hosts])
        if eng.offline:
            return OK   # nothing was asked of the hosts
        return OK if all(h.status is HostStatus.UP for h in hosts) else UNREACHABLE


def _maintenance(h: Host) -> str:
    return {"": "", "entering": " · entering maintenance"}.get(h.maintenance,
                                                             " · maintenance")


def _age(a) -> str:
    return "never seen" if a is None else f"data {a:.0f}s old"


def cmd_vm_list(args) -> int:
    with _engine(args, online=True) as eng:
        vms = sorted(eng.vms(args.cluster, args.host), key=lambda v: (v.cluster, v.name))
        if args.json:
            _dump(vms)
        else:
            _table(["cluster", "name", "state", "host", "vcpus", "memory", "uuid"],
                   [[v.cluster, v.name, v.state.value + (" (stale)" if v.stale else ""),
                     v.host, v.vcpus, f"{v.memory_mib} MiB", v.uuid] for v in vms])
    return OK


def cmd_vm_action(args) -> int:
    with _engine(args, online=True) as eng:
        vm = eng.find_vm(args.name, args.cluster)
        return _task_outcome(args, eng, vm, asyncio.run(eng.vm_action(vm.uuid, args.action)))


def _task_outcome(args, eng: Engine, vm, task) -> int:
    """Print a finished task on a VM; its exit code (4 when the host was not up)."""
    if args.json:
        _dump([task])
    else:
        print(f"task {task.id}: {task.title}: {task.status.value}"
              + (f": {task.error}" if task.error else ""))
    if task.status is TaskStatus.SUCCEEDED:
        return OK
    return FAILED if eng.host(vm.cluster, vm.host).status is HostStatus.UP else UNREACHABLE


def cmd_vm_placement(args) -> int:
    """Show a VM's placement, or change it (a task that writes it into the VM's own
    definition on its host)."""
    with _engine(args, online=True) as eng:
        vm = eng.find_vm(args.name, args.cluster)
        if args.strategy is None and args.home is None and args.priority is None:
            if args.json:
                _dump([{"name": vm.name, "uuid": vm.uuid, "host": vm.host,
                        "strategy": vm.strategy.value, "home": vm.home,
                        "priority": vm.priority, "failed_from": vm.failed_from}])
            else:
                print(f"{vm.name}: {vm.strategy.value}"
                      + (f", home {vm.home}" if vm.home else "")
                      + f", restart priority {vm.priority}" + f" (on {vm.host})"
                      + (f"; failed over from {vm.failed_from}" if vm.failed_from else ""))
            return OK
        return _task_outcome(args, eng, vm, asyncio.run(
            eng.set_placement(vm.uuid, args.strategy, args.home, args.priority)))


def _follow(args, eng: Engine, task):
    """Wait for a task; on a terminal, show its progress on one line meanwhile."""
    live = sys.stdout.isatty() and not args.json
    while True:
        t = eng.task(task.id)
        if t.status.finished:
            if live:
                print("\r\033[K", end="")
            return t
        if live:
            line = f"task {t.id}: {t.title}: {t.progress * 100:3.0f}%"
            prog = eng.migration_progress(t)
            if prog is not None and prog.total:
                line += (f"  {prog.processed >> 20}/{prog.total >> 20} MiB"
                         + (f", {prog.bytes_per_s / (1 << 20):.0f} MiB/s" if prog.bytes_per_s
                            else "")
                         + (f", downtime ~{prog.downtime_ms} ms" if prog.downtime_ms else "")
                         + (f", ETA {prog.eta_s:.0f} s" if prog.eta_s is not None else ""))
            step = next((s.name for s in t.steps if s.status is TaskStatus.RUNNING), "")
            line += f"  [{step}]" if step else ""
            width = shutil.get_terminal_size().columns - 1     # one line, never wrapped
            print(f"\r\033[K{line[:width]}", end="", flush=True)
        time.sleep(0.5)


def cmd_vm_migrate(args) -> int:
    """Move a VM to another host: live if it runs, offline if it is stopped (or after
    --wait-shutdown). Without --to, the planner's best fit."""
    with _engine(args, online=True) as eng:
        vm = eng.find_vm(args.name, args.cluster)
        target = args.to
        if target is None:
            fits = [f for f in eng.placement_options(vm.uuid, args.copy_storage) if f.best]
            if not fits:
                why = "; ".join(f"{f.host}: {f.why_not}"
                                for f in eng.placement_options(vm.uuid, args.copy_storage))
                raise EngineError(f"No host can take {vm.name} now ({why or 'no other host'}).")
            target = fits[0].host
        req = MoveRequest(vm.uuid, target, offline=args.offline_move,
                          wait_shutdown=args.wait_shutdown, start_after=args.start_after,
                          copy_storage=args.copy_storage)
        if args.dry_run:
            _vm, method = eng.check_move(req)     # EngineError says why not
            fits = eng.placement_options(vm.uuid, args.copy_storage)
            if args.json:
                _dump_one({"vm": vm.name, "from": vm.host, "to": target, "method": method,
                           "hosts": [asdict(f) for f in fits]})
            else:
                print(f"would move {vm.name} {method} from {vm.host} to {target}")
                for f in fits:
                    print(f"  {f.host}: " + ("fits" + (" (best: " + f.reason + ")" if f.best
                                                       else "") if f.fits else f.why_not))
            return OK
        task = asyncio.run(eng.migrate_vm(req))
        return _task_outcome(args, eng, vm, _follow(args, eng, task))


def cmd_host_maintenance(args) -> int:
    with _engine(args, online=True) as eng:
        clusters = _check_scope(eng, args.cluster, args.name)
        cluster = clusters[0] if clusters else args.cluster
        if clusters and len(clusters) > 1:
            raise Ambiguous(f"{args.name} is a host of {', '.join(clusters)}; name the "
                            f"cluster with --cluster.")
        h = eng.host(cluster, args.name)
        if args.verb2 == "enter":
            preview = eng.maintenance_preview(cluster, h.name)
        else:
            preview = eng.return_preview(cluster, h.name)
        counts = args.verb2 == "enter" or args.bring_back   # a plan that would run
        if args.dry_run or not args.json:
            if counts:
                _print_preview(args, preview, args.verb2)
            if args.verb2 == "enter" and not args.json:
                ids, ok = asyncio.run(eng.ceph_maintenance_check(cluster, h.name))
                if ok is not None:
                    names = ", ".join(f"osd.{i}" for i in ids)
                    print(f"Ceph: {names} " + ("may stop (ok-to-stop)" if ok.ok else
                                               f"may NOT stop now: {ok.reason}"))
            elif not args.json:
                print(f"Leaving maintenance: {h.name} returns to the placement pool; the "
                      f"{len(preview.moves)} VMs that left it stay where they are "
                      f"(--bring-back moves them back)")
        if args.dry_run:
            return OK if not (counts and preview.blocked) else FAILED
        if args.verb2 == "enter":
            confirm = args.yes and h.name
            if not confirm:
                if not sys.stdin.isatty():
                    raise UsageError(f"entering maintenance moves every VM off {h.name}: "
                                     f"add --yes to confirm without a terminal")
                confirm = input(f"Type the host's name ({h.name}) to confirm: ").strip()
            task = asyncio.run(eng.enter_maintenance(cluster, h.name, confirm, expect=preview,
                                                     noout=args.noout))
        else:
            task = asyncio.run(eng.leave_maintenance(cluster, h.name, args.bring_back))
        t = _follow(args, eng, task)
        _print_tree(args, eng, t)
        return OK if t.status is TaskStatus.SUCCEEDED else FAILED


def _print_tree(args, eng: Engine, t) -> None:
    """A finished parent task and its children (an evacuation's moves): JSON, or a line
    each."""
    if args.json:
        _dump([t, *eng.task_children(t.id)])
        return
    for c in eng.task_children(t.id):
        print(f"  task {c.id}: {c.title}: {c.status.value}" + (f": {c.error}" if c.error else ""))
    print(f"task {t.id}: {t.title}: {t.status.value}" + (f": {t.error}" if t.error else ""))


def _print_preview(args, preview, verb: str) -> None:
    if args.json:
        _dump_one({"host": preview.host, "blocked": bool(preview.blocked),
                   "rows": [asdict(r) for r in preview.rows]})
        return
    what = "Entering maintenance" if verb == "enter" else "Bringing back"
    print(f"{what}: {preview.host}" + (" — BLOCKED" if preview.blocked else ""))
    _table(["vm", "state", "goes to", "how", "why"],
           [[r.name, r.state.value, r.target or "—",
             "BLOCKED" if r.blocked else r.method,
             r.reason + (f" (ways out: {'; '.join(r.ways_out)})" if r.ways_out else "")]
            for r in preview.rows])
    if not preview.rows:
        print("  (nothing to move)")


# ---- tasks ---------------------------------------------------------------------------
def _tasks_in_full(eng: Engine, cluster: str | None, limit: int):
    """Tasks with their steps and logs (the journal lists them without)."""
    return eng.tasks(cluster, limit=limit, details=True)


def cmd_task_list(args) -> int:
    with _engine(args, online=False) as eng:
        if args.json:
            _dump(_tasks_in_full(eng, args.cluster, args.limit))
        else:
            _table(["id", "task", "cluster", "target", "status", "error"],
                   [[t.id, t.title, t.cluster, t.target_name, t.status.value, t.error[:60]]
                    for t in eng.tasks(args.cluster, limit=args.limit)])
    return OK


def cmd_task_show(args) -> int:
    with _engine(args, online=False) as eng:
        t = eng.task(args.id)
        if args.json:
            _dump([t])
            return OK
        print(f"task {t.id}: {t.title} [{t.status.value}] on {t.cluster}/{t.host}"
              + (f" (part of task {t.parent})" if t.parent else ""))
        if t.error:
            print(f"error: {t.error}")
        if t.params:
            print("asked: " + ", ".join(f"{k}={v}" for k, v in t.params.items()))
        shown = {k: v for k, v in t.checkpoint.items() if k not in ("progress", "moved")}
        if shown:
            print("checkpoint: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
        for c in eng.task_children(t.id):
            print(f"  task {c.id}: {c.title}: {c.status.value}")
        for s in t.steps:
            print(f"  step {s.index + 1}: {s.name}: {s.status.value}")
        for line in t.logs:
            print(f"  {line.level:7} {line.message}")
    return OK


def cmd_task_cancel(args) -> int:
    """Ask a running task to stop. The process that runs it does the stopping (within
    about a second), so no host is contacted from here."""
    eng = _new_engine(args, offline=False)
    eng.start(clusters=[])
    try:
        eng.task(args.id)                       # unknown: exit 3
        task = eng.call(eng.cancel_task(args.id))
    finally:
        eng.stop()
    if args.json:
        _dump([task])
    else:
        print(f"task {task.id}: cancel asked; the process running it stops it within "
              f"a few seconds. `mvmtui task show {task.id}` shows how it ends.")
    return OK


# ---- the console ---------------------------------------------------------------------
def _has_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def cmd_console(args) -> int:
    if not _has_terminal():   # a script would hang on a full-screen app
        raise UsageError("The console needs a terminal; for scripts use a verb, e.g. "
                         "`mvmtui vm list --json`.")
    from .app import run_console  # Textual is imported only for the console
    eng = _new_engine(args, offline=args.offline, actor="console")
    try:
        if args.cluster:
            eng.cluster(args.cluster)
        for cluster in args.ask_password or ():
            eng.cluster(cluster)
            eng.set_password(cluster, _ask_password(f"SSH password for cluster {cluster}: "))
    except BaseException:
        eng.inv.close()
        raise
    try:  # run_console starts the engine once the app listens, so no question is lost
        run_console(eng, start_cluster=args.cluster, preferences=_preferences(args))
    finally:
        eng.stop()
    return OK


# ---- arguments -----------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    from . import cli_ceph, cli_ha, cli_lab, cli_metrics
    p = _Parser(prog="mvmtui", description=__doc__.split("\n")[0])
    p.add_argument("--inventory", help="inventory file (default: $MVMTUI_INVENTORY or "
                                       "~/.local/share/mvmtui/inventory.db)")
    p.add_argument("--debug-log", help="write a debug log to this file")
    sub = p.add_subparsers(dest="cmd")

    def common(sp, online=True, offline_flag=True):
        sp.add_argument("--json", action="store_true", help="machine-readable output")
        sp.add_argument("--readonly", action="store_true", help="refuse every change")
        if online and offline_flag:
            sp.add_argument("--offline", action="store_true",
                            help="do not contact hosts; show the inventory's last known state")
        if online:
            sp.add_argument("--wait", type=_seconds, default=10.0,
                            help="seconds to wait for hosts to answer (default 10)")
            sp.add_argument("--ask-password", action="store_true",
                            help="prompt for the SSH password (kept in memory only)")

    c = sub.add_parser("console", help="open the console (the default)")
    c.add_argument("--readonly", action="store_true", help="hide and refuse every change")
    c.add_argument("--offline", action="store_true", help="do not contact hosts")
    c.add_argument("--cluster", help="open this cluster directly")
    c.add_argument("--ask-password", action="append", metavar="CLUSTER",
                   help="prompt for this cluster's SSH password (kept in memory only)")
    c.set_defaults(func=cmd_console)

    cl = sub.add_parser("cluster", help="clusters").add_subparsers(dest="verb", required=True)
    x = cl.add_parser("list", help="list clusters")
    common(x)
    x.set_defaults(func=cmd_cluster_list)
    x = cl.add_parser("add", help="register a cluster and its hosts")
    x.add_argument("name")
    x.add_argument("hosts", nargs="+", metavar="NAME=ADDRESS[:PORT]")
    x.add_argument("--user", default="root", help="SSH user (default root)")
    x.add_argument("--key", help="SSH private key (default: agent / ~/.ssh keys)")
    x.add_argument("--known-hosts", help="known_hosts file (default ~/.ssh/known_hosts)")
    x.add_argument("--layout", default="kvm", help="e.g. kvm, kvm+ceph")
    x.add_argument("--replace", action="store_true", help="redefine an existing cluster")
    common(x, online=False)
    x.set_defaults(func=cmd_cluster_add)
    x = cl.add_parser("show", help="a cluster's policy: overcommit, reserve, migrations")
    x.add_argument("name")
    common(x, online=False)
    x.set_defaults(func=cmd_cluster_show)
    x = cl.add_parser("set", help="change a cluster's policy: KEY=VALUE … (see cluster show)")
    x.add_argument("name")
    x.add_argument("settings", nargs="+", metavar="KEY=VALUE")
    common(x, online=False)
    x.set_defaults(func=cmd_cluster_show)
    x = cl.add_parser("remove", help="forget a cluster (its hosts are not touched)")
    x.add_argument("name")
    common(x, online=False)
    x.set_defaults(func=cmd_cluster_remove)

    hl = sub.add_parser("host", help="hosts").add_subparsers(dest="verb", required=True)
    x = hl.add_parser("list", help="list hosts (exit 4 if any is not up)")
    x.add_argument("--cluster")
    common(x)
    x.set_defaults(func=cmd_host_list)
    mt = hl.add_parser("maintenance", help="enter or leave maintenance (preview with --dry-run)"
                       ).add_subparsers(dest="verb2", required=True)
    for verb, what in (("enter", "move every VM off the host and take it out of the pool"),
                       ("leave", "return the host to the pool")):
        x = mt.add_parser(verb, help=what)
        x.add_argument("name", help="host name")
        x.add_argument("--cluster")
        x.add_argument("--dry-run", action="store_true",
                       help="show the preview, VM by VM; change nothing")
        if verb == "enter":
            x.add_argument("--yes", action="store_true",
                           help="confirm without typing the host's name")
            x.add_argument("--noout", action="store_true",
                           help="set Ceph's noout on the host's OSDs until it leaves "
                                "(or the cluster's ceph-noout-expiry)")
        else:
            x.add_argument("--bring-back", action="store_true",
                           help="move back the VMs that left it for maintenance")
        common(x, offline_flag=False)
        x.set_defaults(func=cmd_host_maintenance, bring_back=False, noout=False)

    vm = sub.add_parser("vm", help="virtual machines").add_subparsers(dest="verb", required=True)
    x = vm.add_parser("list", help="list VMs")
    x.add_argument("--cluster")
    x.add_argument("--host")
    common(x)
    x.set_defaults(func=cmd_vm_list)
    for action in VM_ACTIONS:
        x = vm.add_parser(action, help=f"{VM_ACTIONS[action][0].lower()} a VM "
                                       f"(a journaled task)")
        x.add_argument("name", help="VM name or UUID")
        x.add_argument("--cluster")
        common(x)
        x.set_defaults(func=cmd_vm_action, action=action)

    x = vm.add_parser("placement", help="show or set a VM's placement strategy and home host")
    x.add_argument("name", help="VM name or UUID")
    x.add_argument("--cluster")
    x.add_argument("--strategy", choices=["auto", "failover", "pinned"],
                   help="auto: moved by load; failover: only when its host is lost; "
                        "pinned: never moved")
    x.add_argument("--home", "--host", dest="home", metavar="HOST",
                   help="the host it belongs on")
    x.add_argument("--priority", choices=["high", "medium", "low"],
                   help="restart priority when its host is lost (high restarts first)")
    common(x)
    x.set_defaults(func=cmd_vm_placement)

    x = vm.add_parser("migrate", help="move a VM to another host: live if it runs, offline "
                                      "if it is stopped")
    x.add_argument("name", help="VM name or UUID")
    x.add_argument("--to", metavar="HOST", help="target host (default: the best fit)")
    x.add_argument("--cluster")
    x.add_argument("--offline", dest="offline_move", action="store_true",
                   help="move it stopped")
    x.add_argument("--wait-shutdown", action="store_true",
                   help="shut a running VM down first and wait, then move it offline")
    x.add_argument("--start-after", action="store_true",
                   help="start it on the target after an offline move")
    x.add_argument("--copy-storage", action="store_true",
                   help="copy disks the target cannot see (live only)")
    x.add_argument("--dry-run", action="store_true", help="say what would happen, change nothing")
    common(x, offline_flag=False)
    x.set_defaults(func=cmd_vm_migrate)

    tk = sub.add_parser("task", help="the task journal").add_subparsers(dest="verb", required=True)
    x = tk.add_parser("list", help="recent tasks")
    x.add_argument("--cluster")
    x.add_argument("--limit", type=_count, default=50)
    x.add_argument("--json", action="store_true")
    x.set_defaults(func=cmd_task_list)
    x = tk.add_parser("show", help="one task with its steps and log")
    x.add_argument("id", type=int)
    x.add_argument("--json", action="store_true")
    x.set_defaults(func=cmd_task_show)
    x = tk.add_parser("cancel", help="ask a running task to stop (where that is safe)")
    x.add_argument("id", type=int)
    x.add_argument("--json", action="store_true")
    x.add_argument("--readonly", action="store_true", help="refuse every change")
    x.set_defaults(func=cmd_task_cancel)

    cli_lab.add_parsers(sub)
    cli_ha.add_parsers(sub, cl, hl, common)
    cli_ceph.add_parsers(sub, common)
    cli_metrics.add_parsers(sub, common)
    return p


# ---- main ----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv
    try:
        args = parser().parse_args(_default_console(argv))
    except UsageError as exc:
        return _fail(exc, USAGE, as_json)
    as_json = getattr(args, "json", False)
    # Engine warnings go to --debug-log or nowhere: never onto the console's screen
    # or into a script's stderr (Python's last-resort handler would print them).
    logging.getLogger("mvmtui").addHandler(logging.NullHandler())
    if args.debug_log:
        logging.basicConfig(filename=args.debug_log, level=logging.DEBUG,
                            format="%(asctime)s %(threadName)s %(name)s %(message)s")
    if args.func is not cmd_console:
        launch.started()    # the console says so itself, once it is created
    try:
        try:
            code = args.func(args)
            sys.stdout.flush()      # a closed pipe shows here, not at exit
            return code
        except BrokenPipeError:
            raise
        except OSError as exc:
            return _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
                         FAILED, as_json)
        except sqlite3.Error as exc:
            path = _inventory_path(args) or "the default inventory"
            return _fail(f"the inventory ({path}) failed: {exc}. Check that it is writable "
                         f"by you and not damaged; it was not changed.", INVENTORY, as_json)
        except (EngineError, InventoryError, LabError) as exc:
            return _fail(exc, _code(exc), as_json)
        except KeyboardInterrupt:
            return 130
    except BrokenPipeError:
        # `mvmtui task list | head -1`: the reader has what it wanted. Python's docs:
        # point stdout at devnull so the flush at exit does not fail again.
        _quiet_stdout()
        return OK


def _code(exc: Exception) -> int:
    from .engine.errors import BadSetting
    for kind, code in (((UsageError, BadSetting), USAGE), ((NotFound, Ambiguous), NOT_FOUND),
                       ((ReadOnly, Offline), READONLY), (Busy, BUSY), (HostDown, UNREACHABLE),
                       (InventoryError, INVENTORY), (LabError, LAB)):
        if isinstance(exc, kind):
            return code
    return FAILED


def _kind(exc: Exception | str, code: int) -> str:
    if isinstance(exc, Ambiguous):
        return "ambiguous"
    if isinstance(exc, Offline):
        return "offline"
    return KINDS.get(code, "failed")


def _quiet_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):    # no real file descriptor (e.g. under a test)
        pass


def _default_console(argv: list[str]) -> list[str]:
    """`mvmtui [--inventory F] [--readonly …]` with no verb opens the console."""
    i = 0
    while i < len(argv) and argv[i].split("=")[0] in ("--inventory", "--debug-log"):
        i += 1 if "=" in argv[i] else 2
    if i < len(argv) and (argv[i] in VERBS or argv[i] in ("-h", "--help")):
        return argv
    return argv[:i] + ["console"] + argv[i:]


def _fail(exc: Exception | str, code: int, as_json: bool = False) -> int:
    print(f"mvmtui: {exc}", file=sys.stderr)
    if as_json:
        try:
            _dump_one({"error": {"code": code, "kind": _kind(exc, code),
                                 "message": str(exc)}})
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_stdout()
    return code


if __name__ == "__main__":
    sys.exit(main())
