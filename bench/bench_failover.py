"""Failover and return on the real lab, as an operator meets them: `mvmtui watch`
running as a service would, a real power cut (lab crash), real guests.

    python bench/bench_failover.py [--rounds 3]        (root; builds lab "bfail")

Each round power-cuts kvm-01, which holds web-01 (Auto) and web-02 (Failover), and
times, from the cut:
- detection: until the watcher marked the host suspect (its SSH keepalive failed);
- lost: until it declared it lost (ha-lost-after later);
- fence: the lab's power cut of the lost host, confirmed off;
- restart: from fenced until both VMs run elsewhere (define, start, confirmed);
- total: the cut until `virsh` on another host lists both running (polled every
  50 ms from outside, not taken from the watcher's own word).
Then it revives kvm-01 and times the return: from the host answering (its sshd up
again) until `virsh` on kvm-01 lists both running there again (live migration back).
It prints a table per round and the medians. Goal (issue 9): failover ≤ 10 s.
Never run it beside another lab (2 cores).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mvmtui.engine.inventory import Inventory  # noqa: E402
from mvmtui.engine.lab import Lab  # noqa: E402

VMS = ("web-01", "web-02")


def wait(pred, timeout: float, every: float = 0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(every)
    raise SystemExit(f"timed out after {timeout} s")


def failover_task(db: Path, since: float) -> dict | None:
    """The watcher's failover task of kvm-01 started after `since`, with its checkpoint
    and its restarts' end times."""
    con = sqlite3.connect(db)
    try:
        row = con.execute("SELECT id, status, checkpoint FROM tasks WHERE kind='host.failover' "
                          "AND target='kvm-01' AND created_at >= ? ORDER BY id DESC LIMIT 1",
                          (since,)).fetchone()
        if row is None:
            return None
        kids = con.execute("SELECT finished_at FROM tasks WHERE parent=? AND kind='vm.restart'",
                           (row[0],)).fetchall()
        return {"id": row[0], "status": row[1], "cp": json.loads(row[2] or "{}"),
                "restarts": [k[0] for k in kids]}
    finally:
        con.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ceph", action="store_true",
                    help="a Ceph lab: web-01's disk on RBD, fence-method ceph (the storage "
                         "fence: blocklist and lock break) instead of the lab's power cut")
    args = ap.parse_args()
    vms = ("web-01",) if args.ceph else VMS
    if os.geteuid() != 0:
        raise SystemExit("needs root (the lab)")
    root = Path(tempfile.mkdtemp(prefix="mvmtui-bench-failover-"))
    lab = (Lab("bfailc", ceph=True, subnet=79, root=root / "labs") if args.ceph
           else Lab("bfail", hosts=3, subnet=79, root=root / "labs"))
    db = root / "inventory.db"
    inv = Inventory(db)
    print(f"lab up ({lab.name}, {lab.nhosts} hosts{', Ceph' if args.ceph else ''})…",
          flush=True)
    lab.up(inv)
    inv.close()
    env = {**os.environ, "MVMTUI_INVENTORY": str(db),
           "MVMTUI_CONFIG": "/nonexistent/mvmtui-bench/settings.toml"}
    if args.ceph:
        subprocess.run([sys.executable, "-m", "mvmtui", "cluster", "set", lab.name,
                        "fence-method=ceph"], env=env, check=True, capture_output=True)
    log = open(root / "watch.log", "w")
    watcher = subprocess.Popen([sys.executable, "-m", "mvmtui", "watch"], env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    rows = []
    try:
        wait(lambda: "holding the watcher lease" in (root / "watch.log").read_text(), 60, 0.2)
        for vm in vms:
            wait(lambda vm=vm: lab.disk_counter(vm), 60, 0.2)
        for n in range(1, args.rounds + 1):
            wait(lambda: all(lab.running_on(v) == ["kvm-01"] for v in vms), 180, 0.5)
            time.sleep(3)           # settled: the return's last task has ended
            boots = {v: lab.disk_counter(v)[1] for v in vms}
            cut = time.time()
            lab.crash("kvm-01")
            wait(lambda: all(lab.running_on(v) and "kvm-01" not in lab.running_on(v)
                             for v in vms), 90)
            seen = time.time()
            # The restarted copies' first writes on their disks (a new boot id).
            wait(lambda: all((c := lab.disk_counter(v)) and c[1] != boots[v] for v in vms),
                 120, 0.1)
            wrote = time.time()
            t = wait(lambda: (x := failover_task(db, cut - 1)) and x["status"] == "succeeded"
                     and x, 30, 0.2)
            cp = t["cp"]
            done = max(t["restarts"])
            time.sleep(2)
            lab.revive("kvm-01")
            back_up = time.time()           # its sshd and libvirtd answer
            wait(lambda: all(lab.running_on(v) == ["kvm-01"] for v in vms), 240, 0.1)
            home = time.time()
            rows.append({"round": n, "detect": cp["suspect_at"] - cut,
                         "lost": cp["lost_at"] - cut, "fence": cp["fenced_at"] - cp["lost_at"],
                         "restart": done - cp["fenced_at"], "total": seen - cut,
                         "write": wrote - cut, "return": home - back_up})
            r = rows[-1]
            print(f"round {n}: detection {r['detect']:.1f} s, lost at {r['lost']:.1f} s, "
                  f"fence {r['fence']:.2f} s, restart {r['restart']:.1f} s — running "
                  f"elsewhere {r['total']:.1f} s after the cut, writing at "
                  f"{r['write']:.1f} s; back home "
                  f"{r['return']:.1f} s after it answered", flush=True)
    finally:
        watcher.send_signal(signal.SIGTERM)
        try:
            watcher.wait(20)
        except subprocess.TimeoutExpired:
            watcher.kill()
        log.close()
        lab.down()
    load = os.getloadavg()
    print(f"\nbench_failover — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"machine {platform.node()}, {os.cpu_count()} cores, load {load[0]:.2f}; "
          f"{len(rows)} rounds; lab guests under {os.environ.get('MVMTUI_LAB_ACCEL', 'tcg')}")
    print(f"{'':24}{'median':>8}{'min':>8}{'max':>8}")
    fence = "fence (storage: Ceph)" if args.ceph else "fence (lab power cut)"
    for key, what in (("detect", "detection (suspect)"), ("lost", "declared lost"),
                      ("fence", fence), ("restart", f"restart {len(vms)} VM(s)"),
                      ("total", "cut → running elsewhere"),
                      ("write", "cut → new copy writes"), ("return", "answers → home again")):
        vals = [r[key] for r in rows]
        d = 2 if key == "fence" else 1
        print(f"{what:24}{statistics.median(vals):7.{d}f}s{min(vals):7.{d}f}s{max(vals):7.{d}f}s")
    print("goal: cut → running elsewhere ≤ 10 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
