"""The lab verbs of the command line: `mvmtui lab …` and `mvmtui demo`.

The lab (engine/lab.py) is a real multi-host KVM cluster on this machine; these verbs
bring it up and down, break it (crash, revive), reach its hosts by hand (ssh, virsh)
and run the demo: the console on a fresh lab, taken down when the console quits.
"""
from __future__ import annotations

import os
import shlex
import sys

from .cli import OK, _dump, _inventory_path, _table
from .engine.errors import LabError


def lab_ssh_argv(lab, host: str, cmd: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The ssh command line that reaches a lab host as root with the lab's own key,
    checking the host key against the lab's known_hosts (never trust-on-first-use).
    A command is passed as one shell-quoted string, so its arguments survive."""
    h = lab.host(host)          # LabError for a host the lab does not have
    argv = ["ssh", "-i", str(lab.ssh_key), "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={lab.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", f"root@{h.address}"]
    if cmd:
        argv += ["--", shlex.join(cmd)]
    return argv


def _lab(args):
    from .engine.lab import Lab
    return Lab(args.name, hosts=getattr(args, "hosts", None), ceph=getattr(args, "ceph", False))


def _inventory(args):
    from .engine.inventory import Inventory
    return Inventory(_inventory_path(args))


def _up(lab, args) -> None:
    inv = _inventory(args)        # `lab up` may create a new inventory
    try:
        lab.up(inv)
    finally:
        inv.close()
    print(f"lab {lab.name}: {lab.nhosts} hosts up on 10.{lab.subnet}.0.0/24; "
          f"cluster '{lab.name}' registered. `mvmtui` opens the console.")


def _down(lab, args) -> None:
    lab.down()
    path = _inventory_path(args)
    if path and not os.path.exists(path):
        print(f"lab {lab.name}: down (no inventory at {path} to update)")
        return
    inv = _inventory(args)
    try:
        if lab.name in {c.name for c in inv.clusters()}:
            inv.delete_cluster(lab.name)   # the cluster it registered goes too
    finally:
        inv.close()
    print(f"lab {lab.name}: down; cluster '{lab.name}' removed from the inventory")


def cmd_lab(args) -> int:
    lab = _lab(args)
    if args.lab_cmd == "prepare":
        from .engine import guest
        from .engine.lab import GUEST_ROOT
        try:
            kernel, initrd = guest.build(GUEST_ROOT / "image", GUEST_ROOT / "debs")
        except (RuntimeError, OSError) as exc:
            raise LabError(f"cannot build the lab's guest: {exc}") from exc
        print(f"lab guest ready: {kernel}, {initrd}")
    elif args.lab_cmd == "up":
        _up(lab, args)
    elif args.lab_cmd == "down":
        _down(lab, args)
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
    elif args.lab_cmd == "heal":
        if not lab.status():
            print(f"lab {args.name}: not running; `mvmtui lab up` starts it")
            return OK
        print("\n".join(lab.heal()) or f"lab {args.name}: whole, nothing to do")
    elif args.lab_cmd == "ssh":
        return cmd_lab_ssh(lab, args)
    elif args.lab_cmd == "virsh":
        return cmd_lab_virsh(lab, args)
    return OK


def cmd_lab_ssh(lab, args) -> int:
    lab.running_host(args.host)
    if not os.access(lab.ssh_key, os.R_OK):   # ssh would only say "Permission denied"
        raise LabError(f"cannot read the lab's SSH key {lab.ssh_key}; the lab is root's: "
                       f"run this as root (sudo)")
    argv = lab_ssh_argv(lab, args.host, args.command)
    sys.stdout.flush()
    os.execvp(argv[0], argv)      # ssh takes over this terminal; never returns
    return OK


def cmd_lab_virsh(lab, args) -> int:
    if not args.args:
        raise LabError("give virsh's arguments, e.g. `mvmtui lab virsh kvm-01 list --all`")
    h = lab.running_host(args.host)
    r = lab.exec(h, "virsh", "-c", "qemu:///system", *args.args, check=False)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    return r.returncode


def cmd_demo(args) -> int:
    """Lab up (unless it already runs), the console on it, lab down when it quits."""
    from .app import run_console
    from .cli import UsageError, _has_terminal, _new_engine, _preferences
    if not _has_terminal():
        raise UsageError("The demo opens the console, which needs a terminal.")
    lab = _lab(args)
    if lab.running_hosts() and len(lab.running_hosts()) == lab.nhosts \
            and bool(lab._state().get("ceph")) == bool(getattr(args, "ceph", False)):
        inv = _inventory(args)
        try:
            lab.register(inv)             # already up: make sure it is registered
        finally:
            inv.close()
    else:
        _up(lab, args)
    watcher = _demo_watcher(lab, args)
    try:
        eng = _new_engine(args, offline=False, create=True, actor="console")
        try:   # lab_demo: quitting asks first, since it takes the lab down
            rc = run_console(eng, start_cluster=lab.name, lab_demo=lab.name,
                             preferences=_preferences(args))
        finally:
            eng.stop()
    finally:
        _stop(watcher)
        _down(lab, args)
    return rc if isinstance(rc, int) else OK


def _demo_watcher(lab, args):
    """The HA watcher of the demo's cluster, in the background (its log in the lab's
    directory): failover works in the demo out of the box (`mvmtui lab crash kvm-01`
    from another terminal, and watch the console)."""
    import subprocess
    env = dict(os.environ)
    if _inventory_path(args):
        env["MVMTUI_INVENTORY"] = _inventory_path(args)
    try:
        lab.root.mkdir(parents=True, exist_ok=True)
        log = open(lab.root / "watch.log", "ab")
    except OSError as exc:          # the console then says plainly that nobody watches
        print(f"mvmtui: no watcher for the demo ({exc})", file=sys.stderr)
        return None
    try:
        return subprocess.Popen([sys.executable, "-m", "mvmtui", "watch", "--cluster",
                                 lab.name], env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        log.close()


def _stop(proc) -> None:
    import signal
    import subprocess
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)      # it lets go of the watcher lease
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def add_parsers(sub) -> None:
    lab = sub.add_parser("lab", help="the built-in lab cluster (needs root)")
    lab.add_argument("--name", default="lab", help="lab (and cluster) name (default: lab)")
    ls = lab.add_subparsers(dest="lab_cmd", required=True)
    ls.add_parser("prepare", help="fetch and build the lab's guest image (no hosts)")
    x = ls.add_parser("up", help="start the lab and register it as a cluster")
    x.add_argument("--hosts", type=_hosts, default=None,
                   help="lab hosts (default 3, or 4 with --ceph)")
    x.add_argument("--ceph", action="store_true",
                   help="with a real Ceph: a monitor on 3 hosts, an OSD on each, VM disks "
                        "on RBD; returns at HEALTH_OK")
    ls.add_parser("down", help="stop the lab and remove all it made")
    x = ls.add_parser("status", help="the lab's hosts")
    x.add_argument("--json", action="store_true")
    x = ls.add_parser("crash", help="power cut: link down, then kill the host")
    x.add_argument("host")
    x = ls.add_parser("revive", help="power a crashed host back on")
    x.add_argument("host")
    ls.add_parser("heal", help="make the lab whole again: every host on and serving, "
                               "the seed's running VMs running")
    x = ls.add_parser("ssh", help="ssh to a lab host as root (runs CMD if given)")
    x.add_argument("host")
    x.add_argument("command", nargs="...", metavar="CMD", help="command to run there")
    x = ls.add_parser("virsh", help="run virsh on a lab host, e.g. `lab virsh kvm-01 list`")
    x.add_argument("host")
    x.add_argument("args", nargs="...", metavar="ARG", help="virsh's arguments")
    lab.set_defaults(func=cmd_lab)

    d = sub.add_parser("demo", help="lab up, the console on it, lab down when you quit "
                                    "(needs root)")
    d.add_argument("--name", default="lab", help="lab (and cluster) name (default: lab)")
    d.add_argument("--hosts", type=_hosts, default=None,
                   help="lab hosts (default 3, or 4 with --ceph)")
    d.add_argument("--ceph", action="store_true", help="the lab with a real Ceph")
    d.add_argument("--readonly", action="store_true", help="hide and refuse every change")
    d.set_defaults(func=cmd_demo)


def _hosts(text: str) -> int:
    import argparse
    if not text.isdigit() or not 1 <= int(text) <= 20:
        raise argparse.ArgumentTypeError(f"give a number of hosts from 1 to 20 (not {text})")
    return int(text)

