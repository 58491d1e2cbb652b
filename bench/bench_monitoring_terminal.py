"""The Monitoring tab as an operator meets it: the real `mvmtui` command in tmux,
online, 200 hosts / 10,000 VMs, with a week of history.

    .venv/bin/python bench/bench_monitoring_terminal.py [--hosts 200] [--per-host 50]
        [--runs 3] [--size 200x50] [--timeout 120]

The hosts are libvirt test-driver nodes (bench/testnode.py, --per-host VMs each, two
in three running), so the console is online to all of them: it connects, reads every
VM, and its stats passes sample every host and VM every 5 s while the bench looks, as
on a real cluster (test-driver hosts have no SSH, so no /proc figures: load, host
network and disk stay unsampled). The history before the launch is written through
the engine's own History, as the stats passes would have: every host every 10 s and
every VM every 60 s for the last hour, and every host every 15 minutes for the week
before (written an hour at a time, so it is rolled up as it goes).

The tmux server, the pane command, the control client and the screen polling are
bench_terminal.py's (same socket name, 2 ms polls; see there). Each round is a cold
launch on a fresh copy of the inventory. Measured, each from the key sent to the
first capture that proves it:
- `2` (the Hosts tab) → its table drawn with hv-000 "up": the tab beside which the
  Monitoring tab is compared;
- `7` → the Monitoring tab with its six charts drawn (the host CPU chart's legend
  "8 of 200 hosts" and every chart's "as of", nothing "reading");
- `]` → 1 day (every chart saying "1-minute averages"), `]` → 1 week ("15-minute
  averages"), `[` `[` → back to 1 hour;
- idle CPU (utime+stime of the app, % of one core, over 20 s) on the Monitoring tab
  while samples keep arriving and it redraws, against the same on the Hosts tab, in
  the same launch.
Before the keys, the launch settles (bench_terminal.settle: at least 5 s, then until
a 2 s window uses under 10 % of a core, at most 60 s) so every host is connected.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
import bench_terminal as bt  # noqa: E402
import testnode  # noqa: E402
from tmuxctl import Tmux  # noqa: E402

CLUSTER = "bench"
HOUR, WEEK = 3600, 7 * 86400
CHARTS = ("CPU per host", "Memory used per host", "Top VMs by CPU", "Top VMs by memory",
          "Top VMs by disk writes", "Top VMs by network in")


# ---- the inventory -------------------------------------------------------------------
def build(tmp: Path, hosts: int, per_host: int) -> tuple[Path, float]:
    """Node files, the inventory and its history; returns (the inventory, seconds)."""
    from mvmtui.engine import Inventory
    from mvmtui.engine.history import History
    from mvmtui.engine.model import Cluster, Host

    t0 = time.perf_counter()
    db = tmp / "inv.template.db"
    inv = Inventory(db)
    inv.save_cluster(Cluster(name=CLUSTER))
    for h in range(hosts):
        uri = testnode.write(per_host, tmp / f"node-{h:03d}.xml", first=h * per_host)
        inv.save_host(Host(cluster=CLUSTER, name=f"hv-{h:03d}", address=uri))
    history = History(inv)
    now = time.time()
    names = [f"hv-{h:03d}" for h in range(hosts)]

    def host_cpu(h: int, t: float) -> float:
        return max(0.0, min(100.0, 15 + 60 * h / hosts + 10 * math.sin(t / 1800 + h)))

    # The week before the last hour: every host every 15 minutes, an hour per batch.
    t = now - WEEK
    while t < now - HOUR:
        batch = []
        for k in range(4):
            at = t + 900 * k
            batch += [(CLUSTER, "host", n, n, at, {"cpu_pct": host_cpu(h, at),
                                                   "mem_used_mib": 8000.0 + 40 * h})
                      for h, n in enumerate(names)]
        history.write(batch, now=t + HOUR)
        t += HOUR
    # The last hour: hosts every 10 s, VMs every 60 s, a minute per batch.
    vms = [(f"00000000-0000-4000-8000-{i:012d}", f"vm-{i:05d}")
           for i in range(hosts * per_host) if testnode.running(i)]
    t = now - HOUR
    while t <= now:
        batch = []
        for s in range(6):
            at = t + 10 * s
            if at > now:
                break           # nothing from the future: the charts' "as of" is true
            batch += [(CLUSTER, "host", n, n, at, {"cpu_pct": host_cpu(h, at),
                                                   "mem_used_mib": 8000.0 + 40 * h})
                      for h, n in enumerate(names)]
        batch += [(CLUSTER, "vm", u, name, t,
                   {"cpu_pct": float(i % 97), "mem_used_mib": 256.0 + i % 200,
                    "disk_wr_bps": 1e4 * (i % 13), "net_rx_bps": 1e3 * (i % 17)})
                  for i, (u, name) in enumerate(vms)]
        history.write(batch, now=min(t + 60, now))
        t += 60
    inv.close()
    return db, time.perf_counter() - t0


# ---- reading the screen ----------------------------------------------------------------
def hosts_drawn(screen: str) -> bool:
    return bt.mvm_on_tab(screen, "2 Hosts") and any(
        re.match(r"\s*hv-000\b.*\bup\b", ln) for ln in screen.split("\n"))


def charts_drawn(screen: str, tier: str, hosts: int) -> bool:
    """Every chart on screen drawn from `tier`, the host CPU chart's legend there
    ("8 of 200 hosts, busiest by mean")."""
    if not bt.mvm_on_tab(screen, "7 Monitoring") or "reading" in screen.lower():
        return False
    shown = [c for c in CHARTS if c in screen]
    legend = f"of {hosts} hosts" in screen if hosts > 8 else "hv-000" in screen
    return (len(shown) >= 2 and screen.count(tier) >= len(shown)
            and screen.count("as of") >= len(shown) and legend)


class MonitoringBench(bt.Bench):
    def round(self, db: Path) -> dict:
        r: dict = {}
        n = self.args.hosts

        def drawn(tier: str):
            return lambda s: charts_drawn(s, tier, n)
        t0, r["first_frame"] = self.mvm_launch(db)
        pid = self.t.pane_pid()
        r["settled"] = bt.settle(pid)
        r["hosts_tab"] = self.timed_key("2", hosts_drawn, "the Hosts tab with hv-000 up")
        time.sleep(3)
        r["idle_hosts"] = bt.idle_cpu_pct(pid, 20)
        r["monitoring"] = self.timed_key("7", drawn("raw samples"),
                                         "the Monitoring tab's charts (raw samples)")
        time.sleep(0.5)
        r["day"] = self.timed_key("]", drawn("1-minute averages"),
                                  "the charts at 1 day")
        time.sleep(0.5)
        r["week"] = self.timed_key("]", drawn("15-minute averages"),
                                   "the charts at 1 week")
        time.sleep(0.5)
        self.t.send_keys("[")
        time.sleep(0.5)
        r["hour"] = self.timed_key("[", drawn("raw samples"),
                                   "the charts back at 1 hour")
        time.sleep(3)
        r["idle_monitoring"] = bt.idle_cpu_pct(pid, 20)
        r["rss"] = bt.rss_mib(pid)
        r["screen"] = self.t.capture()
        r["quit_clean"] = self.quit(["C-q"])
        return r


def report(rows: list[dict], info: dict) -> str:
    g = lambda k: [r[k] for r in rows if r.get(k) is not None]  # noqa: E731
    L = [f"### The Monitoring tab, {info['hosts']} hosts / {info['vms']:,} VMs online — "
         f"`bench/bench_monitoring_terminal.py`", "",
         f"{info['date']}, machine {info['machine']}, load average {info['load']} at the "
         f"start. tmux {info['size']}, TERM={bt.TERM}, {len(rows)} cold launches, each "
         f"on a fresh copy of an inventory with a week of history ({info['points']:,} "
         f"points, {info['mib']:.0f} MiB, built in {info['build']:.0f} s). Versions: "
         f"{info['versions_line']}.", "",
         "| key → drawn, in the same launch | median (min–max) |", "|---|---|"]
    L.append(f"| `2` → the Hosts tab (its table, hv-000 up) | {bt.med_range(g('hosts_tab'), bt.ms)} |")
    L.append(f"| `7` → the Monitoring tab, six charts at 1 hour (raw samples) | "
             f"{bt.med_range(g('monitoring'), bt.ms)} (Monitoring/Hosts "
             f"{bt.ratio(g('monitoring'), g('hosts_tab'))}) |")
    L.append(f"| `]` → 1 day (1-minute averages) | {bt.med_range(g('day'), bt.ms)} |")
    L.append(f"| `]` → 1 week (15-minute averages) | {bt.med_range(g('week'), bt.ms)} |")
    L.append(f"| `[` `[` → back to 1 hour (the second key) | {bt.med_range(g('hour'), bt.ms)} |")
    L.append(f"| idle CPU over 20 s on the Hosts tab (samples arriving) | "
             f"{bt.med_range(g('idle_hosts'), bt.pct)} |")
    L.append(f"| idle CPU over 20 s on the Monitoring tab (samples arriving, redrawn) | "
             f"{bt.med_range(g('idle_monitoring'), bt.pct)} (Monitoring/Hosts "
             f"{bt.ratio(g('idle_monitoring'), g('idle_hosts'))}) |")
    L.append(f"| launch → first frame | {bt.med_range(g('first_frame'), bt.ms)} |")
    L.append(f"| settling after the launch (every host connected) | "
             f"{bt.med_range(g('settled'), bt.dur)} |")
    L.append(f"| RSS at the end | {bt.med_range(g('rss'), bt.mib)} |")
    unclean = sum(not r.get("quit_clean", True) for r in rows)
    if unclean:
        L.append("")
        L.append(f"{unclean} launches did not exit on ctrl+q within 15 s and were killed.")
    if info.get("failures"):
        L.append("")
        L.append(f"Samples lost to timeouts: {', '.join(info['failures'])}.")
    return "\n".join(L)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--per-host", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size", default="200x50")
    ap.add_argument("--timeout", type=float, default=120, help="per wait, seconds")
    ap.add_argument("--poll-ms", type=float, default=2.0, help="pause between captures")
    ap.add_argument("--show", action="store_true", help="print the last screen")
    args = ap.parse_args()
    width, height = (int(x) for x in args.size.lower().split("x"))
    load = "{:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())
    subprocess.run([str(bt.VENV_PY), "-m", "compileall", "-q", str(ROOT / "mvmtui")],
                   stdout=subprocess.DEVNULL)
    v = bt.versions()
    info = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": bt.machine(), "load": load, "size": f"{width}×{height}",
            "hosts": args.hosts, "vms": args.hosts * args.per_host, "failures": [],
            "versions_line": f"Python {v['python']}, Textual {v['textual']}, "
                             f"libvirt {v['libvirt']}, {v['tmux']}, mvmtui {v['mvmtui']}"}
    print(f"bench_monitoring_terminal: {args.hosts} hosts × {args.per_host} VMs, "
          f"{args.runs} round(s); load average {load}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mvmbench-") as d:
        tmp = Path(d)
        template, info["build"] = build(tmp, args.hosts, args.per_host)
        import sqlite3
        with sqlite3.connect(template) as c:
            info["points"] = c.execute("SELECT count(*) FROM metric_points").fetchone()[0]
        info["mib"] = template.stat().st_size / 2**20
        print(f"inventory built in {info['build']:.0f} s: {info['points']:,} points",
              flush=True)
        env = dict(os.environ)
        env.pop("TMUX", None)
        tmux = Tmux(bt.SOCKET, bt.SESSION, width, height, env=env)
        try:
            tmux.start()
            bench = MonitoringBench(tmux, tmp, args)
            for i in range(args.runs):
                db = bt.fresh_copy(template, tmp / "inv.db")
                try:
                    r = bench.round(db)
                except bt.WaitTimeout as exc:
                    info["failures"].append(f"round {i + 1}: {exc}")
                    print(f"round {i + 1}: {exc}\n{exc.screen}", flush=True)
                    bench.kill()
                    continue
                rows.append(r)
                print(f"round {i + 1}: " + ", ".join(
                    f"{k} {x:.3f}" for k, x in r.items() if isinstance(x, float)), flush=True)
        finally:
            tmux.kill_server()
    if args.show and rows:
        print(rows[-1]["screen"])
    print()
    print(report(rows, info))


if __name__ == "__main__":
    main()
