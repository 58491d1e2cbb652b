"""Command line: the console (default), the headless verbs, and the lab.

Exit codes (for scripts):
  0 ok · 1 the operation failed (e.g. libvirt refused; the task records why)
  2 usage error · 3 not found / ambiguous · 4 host not reachable
  5 inventory unusable · 6 read-only mode · 7 busy (locked by another task)
  8 lab error
"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import sqlite3
import sys
from dataclasses import asdict
from enum import Enum

from . import launch
from .engine import (VM_ACTIONS, Ambiguous, Busy, Engine, EngineError, HostDown,
                     InventoryError, NotFound, ReadOnly)
from .engine.errors import LabError
from .engine.model import Cluster, Host, HostStatus, TaskStatus

OK, FAILED, USAGE, NOT_FOUND, UNREACHABLE, INVENTORY, READONLY, BUSY, LAB = range(9)


class UsageError(EngineError):
    """Bad arguments: exit 2."""


def _inventory_path(args) -> str | None:
    return args.inventory or os.environ.get("MVMTUI_INVENTORY")


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


def _table(headers: list[str], rows: list[list]) -> None:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    print("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)).rstrip())
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _engine(args, *, online: bool) -> Engine:
    """A started engine; online, it contacts only the hosts of --cluster if given."""
    eng = Engine(_inventory_path(args), readonly=getattr(args, "readonly", False),
                 offline=not online or getattr(args, "offline", False))
    cluster = getattr(args, "cluster", None)
    if getattr(args, "ask_password", False) and not eng.offline:
        password = getpass.getpass("SSH password: ")
        for c in eng.clusters():
            if cluster in (None, c.name):
                eng.set_password(c.name, password)   # memory only, never written
    eng.start(clusters=[cluster] if cluster else None)
    if not eng.offline:
        eng.call(eng.wait_ready(timeout=getattr(args, "wait", 10.0)))
    return eng


def _pct(v) -> str:
    return "—" if v is None else f"{v:.0f}%"


# ---- verbs -----------------------------------------------------------------------
def cmd_cluster_list(args) -> int:
    with _engine(args, online=True) as eng:
        sums = eng.summaries()
        if args.json:
            _dump([{"name": s.cluster.name, "layout": s.cluster.layout,
                    "hosts_up": s.hosts_up, "hosts_total": s.hosts_total,
                    "vms_running": s.vms_running, "vms_total": s.vms_total,
                    "cpu_pct": s.cpu_pct, "memory_mib": s.memory_mib,
                    "memory_used_mib": s.memory_used_mib, "problems": list(s.problems)}
                   for s in sums])
        else:
            _table(["name", "layout", "hosts", "vms", "cpu", "memory"],
                   [[s.cluster.name, s.cluster.layout, f"{s.hosts_up}/{s.hosts_total}",
                     f"{s.vms_running}/{s.vms_total}", _pct(s.cpu_pct),
                     f"{(s.memory_used_mib or 0) // 1024}/{s.memory_mib // 1024} GiB"]
                    for s in sums])
    return OK


def _parse_host(spec: str) -> Host:
    """NAME=ADDRESS[:PORT], or just ADDRESS (then it is the name too)."""
    name, eq, addr = spec.partition("=")
    if not eq:
        addr, name = name, name.split(":")[0]
    port = 22
    if addr.count(":") == 1:
        addr, _, p = addr.partition(":")
        if not p.isdigit():
            raise UsageError(f"bad port in {spec!r}: write NAME=ADDRESS[:PORT]")
        port = int(p)
    if not name or not addr:
        raise UsageError(f"bad host {spec!r}: write NAME=ADDRESS[:PORT]")
    return Host(cluster="", name=name, address=addr, port=port)


def cmd_cluster_add(args) -> int:
    hosts = [_parse_host(h) for h in args.hosts]
    for what, values in (("name", [h.name for h in hosts]),
                         ("address", [(h.address, h.port) for h in hosts])):
        dup = sorted({str(v) for v in values if values.count(v) > 1})
        if dup:
            raise UsageError(f"the same host {what} is given twice: {', '.join(dup)}")
    # Stored absolute: the console may run from anywhere later.
    args.key = os.path.abspath(args.key) if args.key else None
    args.known_hosts = os.path.abspath(args.known_hosts) if args.known_hosts else None
    with Engine(_inventory_path(args), offline=True) as eng:
        if args.name in {c.name for c in eng.clusters()} and not args.replace:
            raise UsageError(f"cluster {args.name!r} exists; add --replace to redefine it")
        if args.key and not os.path.exists(args.key):
            raise UsageError(f"SSH key {args.key} does not exist")
        try:
            eng.add_cluster(Cluster(name=args.name, layout=args.layout, ssh_user=args.user,
                                    ssh_key=args.key, known_hosts=args.known_hosts), hosts)
        except ReadOnly:
            raise
        except EngineError as exc:   # e.g. a host already in another cluster: bad input
            raise UsageError(str(exc)) from exc
    print(f"cluster {args.name!r}: {len(hosts)} hosts registered. Unknown host keys are "
          f"shown for you to confirm when the console first connects.")
    return OK


def cmd_cluster_remove(args) -> int:
    with Engine(_inventory_path(args), offline=True) as eng:
        eng.cluster(args.name)
        eng.remove_cluster(args.name)
    print(f"cluster {args.name!r} removed from the inventory (hosts untouched)")
    return OK


def cmd_host_list(args) -> int:
    with _engine(args, online=True) as eng:
        if args.cluster:
            eng.cluster(args.cluster)
        hosts = eng.hosts(args.cluster)
        now = eng.now()
        if args.json:
            _dump(hosts)
        else:
            _table(["cluster", "name", "status", "address", "cpus", "memory", "problem"],
                   [[h.cluster, h.name, h.status.value, h.address, h.cpus,
                     f"{h.memory_mib // 1024} GiB", h.problem or (
                         "" if h.status is HostStatus.UP else _age(h.age(now)))]
                    for h in hosts])
        if eng.offline:
            return OK   # nothing was asked of the hosts
        return OK if all(h.status is HostStatus.UP for h in hosts) else UNREACHABLE


def _age(a) -> str:
    return "never seen" if a is None else f"data {a:.0f}s old"


def cmd_vm_list(args) -> int:
    with _engine(args, online=True) as eng:
        if args.cluster:
            eng.cluster(args.cluster)
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
        task = asyncio.run(eng.vm_action(vm.uuid, args.action))
        if args.json:
            _dump([task])
        else:
            print(f"task {task.id}: {task.title}: {task.status.value}"
                  + (f": {task.error}" if task.error else ""))
        if task.status is TaskStatus.SUCCEEDED:
            return OK
        host = eng.host(vm.cluster, vm.host)
        return FAILED if host.status is HostStatus.UP else UNREACHABLE


def cmd_task_list(args) -> int:
    with _engine(args, online=False) as eng:
        tasks = eng.tasks(args.cluster, limit=args.limit)
        if args.json:
            _dump(tasks)
        else:
            _table(["id", "task", "cluster", "target", "status", "error"],
                   [[t.id, t.title, t.cluster, t.target_name, t.status.value, t.error[:60]]
                    for t in tasks])
    return OK


def cmd_task_show(args) -> int:
    with _engine(args, online=False) as eng:
        t = eng.task(args.id)
        if args.json:
            _dump([t])
            return OK
        print(f"task {t.id}: {t.title} [{t.status.value}] on {t.cluster}/{t.host}")
        if t.error:
            print(f"error: {t.error}")
        for s in t.steps:
            print(f"  step {s.index + 1}: {s.name}: {s.status.value}")
        for line in t.logs:
            print(f"  {line.level:7} {line.message}")
    return OK


def cmd_console(args) -> int:
    from .app import run_console  # Textual is imported only for the console
    eng = Engine(_inventory_path(args), readonly=args.readonly, offline=args.offline)
    for cluster in args.ask_password or ():
        eng.set_password(cluster, getpass.getpass(f"SSH password for cluster {cluster}: "))
    try:  # run_console starts the engine once the app listens, so no question is lost
        run_console(eng, start_cluster=args.cluster)
    finally:
        eng.stop()
    return OK


def cmd_lab(args) -> int:
    from .engine.inventory import Inventory
    from .engine.lab import Lab
    lab = Lab(args.name, hosts=getattr(args, "hosts", 3))
    if args.lab_cmd == "prepare":
        from .engine import guest
        from .engine.lab import GUEST_ROOT
        try:
            kernel, initrd = guest.build(GUEST_ROOT / "image", GUEST_ROOT / "debs")
        except (RuntimeError, OSError) as exc:
            raise LabError(f"cannot build the lab's guest: {exc}") from exc
        print(f"lab guest ready: {kernel}, {initrd}")
    elif args.lab_cmd == "up":
        inv = Inventory(_inventory_path(args))
        lab.up(inv)
        inv.close()
        print(f"lab {args.name}: {args.hosts} hosts up on 10.{lab.subnet}.0.0/24; "
              f"cluster {args.name!r} registered. `mvmtui` opens the console.")
    elif args.lab_cmd == "down":
        lab.down()
        inv = Inventory(_inventory_path(args))
        if args.name in {c.name for c in inv.clusters()}:
            inv.delete_cluster(args.name)   # the cluster it registered goes too
        inv.close()
        print(f"lab {args.name}: down; cluster {args.name!r} removed from the inventory")
    elif args.lab_cmd == "status":
        st = lab.status()
        if args.json:
            _dump(st)
        elif not st:
            print(f"lab {args.name}: not running")
        else:
            _table(["host", "address", "running", "link", "pid"],
                   [[s["host"], s["address"], "yes" if s["running"] else "no", s["link"],
                     s["pid"] or ""] for s in st])
    elif args.lab_cmd == "crash":
        lab.crash(args.host)
        print(f"{args.host}: power cut (link down, then killed)")
    elif args.lab_cmd == "revive":
        lab.revive(args.host)
        print(f"{args.host}: powered on")
    return OK


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mvmtui", description=__doc__.split("\n")[0])
    p.add_argument("--inventory", help="inventory file (default: $MVMTUI_INVENTORY or "
                                       "~/.local/share/mvmtui/inventory.db)")
    p.add_argument("--debug-log", help="write a debug log to this file")
    sub = p.add_subparsers(dest="cmd")

    def common(sp, online=True):
        sp.add_argument("--json", action="store_true", help="machine-readable output")
        sp.add_argument("--readonly", action="store_true", help="refuse every change")
        if online:
            sp.add_argument("--offline", action="store_true",
                            help="do not contact hosts; show the inventory's last known state")
            sp.add_argument("--wait", type=float, default=10.0,
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
    x.set_defaults(func=cmd_cluster_add)
    x = cl.add_parser("remove", help="forget a cluster (its hosts are not touched)")
    x.add_argument("name")
    x.set_defaults(func=cmd_cluster_remove)

    hl = sub.add_parser("host", help="hosts").add_subparsers(dest="verb", required=True)
    x = hl.add_parser("list", help="list hosts (exit 4 if any is not up)")
    x.add_argument("--cluster")
    common(x)
    x.set_defaults(func=cmd_host_list)

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

    tk = sub.add_parser("task", help="the task journal").add_subparsers(dest="verb", required=True)
    x = tk.add_parser("list", help="recent tasks")
    x.add_argument("--cluster")
    x.add_argument("--limit", type=int, default=50)
    x.add_argument("--json", action="store_true")
    x.set_defaults(func=cmd_task_list)
    x = tk.add_parser("show", help="one task with its steps and log")
    x.add_argument("id", type=int)
    x.add_argument("--json", action="store_true")
    x.set_defaults(func=cmd_task_show)

    lab = sub.add_parser("lab", help="the built-in lab cluster (needs root)")
    lab.add_argument("--name", default="lab", help="lab (and cluster) name (default: lab)")
    ls = lab.add_subparsers(dest="lab_cmd", required=True)
    ls.add_parser("prepare", help="fetch and build the lab's guest image (no hosts)")
    x = ls.add_parser("up", help="start the lab and register it as a cluster")
    x.add_argument("--hosts", type=int, default=3)
    ls.add_parser("down", help="stop the lab and remove all it made")
    x = ls.add_parser("status", help="the lab's hosts")
    x.add_argument("--json", action="store_true")
    x = ls.add_parser("crash", help="power cut: link down, then kill the host")
    x.add_argument("host")
    x = ls.add_parser("revive", help="power a crashed host back on")
    x.add_argument("host")
    lab.set_defaults(func=cmd_lab)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(_default_console(argv))
    # Engine warnings go to --debug-log or nowhere: never onto the console's screen
    # or into a script's stderr (Python's last-resort handler would print them).
    logging.getLogger("mvmtui").addHandler(logging.NullHandler())
    if args.debug_log:
        logging.basicConfig(filename=args.debug_log, level=logging.DEBUG,
                            format="%(asctime)s %(threadName)s %(name)s %(message)s")
    if args.func is not cmd_console:
        launch.started()    # the console says so itself, once it is created
    try:
        return args.func(args)
    except UsageError as exc:
        return _fail(exc, USAGE)
    except (NotFound, Ambiguous) as exc:
        return _fail(exc, NOT_FOUND)
    except ReadOnly as exc:
        return _fail(exc, READONLY)
    except Busy as exc:
        return _fail(exc, BUSY)
    except HostDown as exc:
        return _fail(exc, UNREACHABLE)
    except InventoryError as exc:
        return _fail(exc, INVENTORY)
    except LabError as exc:
        return _fail(exc, LAB)
    except EngineError as exc:
        return _fail(exc, FAILED)
    except sqlite3.Error as exc:
        path = _inventory_path(args) or "the default inventory"
        return _fail(f"the inventory ({path}) failed: {exc}. Check that it is writable "
                     f"by you and not damaged; it was not changed.", INVENTORY)
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), FAILED)
    except KeyboardInterrupt:
        return 130


def _default_console(argv: list[str]) -> list[str]:
    """`mvmtui [--inventory F] [--readonly …]` with no verb opens the console."""
    verbs = {"console", "cluster", "host", "vm", "task", "lab"}
    i = 0
    while i < len(argv) and argv[i].split("=")[0] in ("--inventory", "--debug-log"):
        i += 1 if "=" in argv[i] else 2
    if i < len(argv) and (argv[i] in verbs or argv[i] in ("-h", "--help")):
        return argv
    return argv[:i] + ["console"] + argv[i:]


def _fail(exc: Exception | str, code: int) -> int:
    print(f"mvmtui: {exc}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
