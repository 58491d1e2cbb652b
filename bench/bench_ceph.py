"""Ceph: what the console's readings cost, and how late the decommission's wait sees
what Ceph sees.

    python bench/bench_ceph.py [--rounds 5]       (root; builds Ceph lab "bceph", ~70 s)
    python bench/bench_ceph.py --offline          (only the parse figures; no lab)

1. One summary refresh, as the console makes it: one SSH exec on a monitor host
   (librados, 13 reads), timed from the console's side; the host's CPU for it, against
   the same reads through the `ceph` CLI (one command each, as the fallback does).
2. Parsing cost on the console's side, from a real capture scaled to 4, 100 and 1,000
   OSDs (a lab cannot have 100 OSDs; the reads grow linearly in OSDs and hosts).
3. From `ceph osd crush reweight osd.3 0` (step 4) until safe-to-destroy: as Ceph says
   it (`ceph osd safe-to-destroy 3` polled every 0.5 s beside it) and as the console
   reports it (the wait step's checkpoint turns safe). The console adds at most one
   refresh (WAIT_POLL, 2 s) plus a read.
Never run it beside another lab (2 cores).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mvmtui.engine import Engine  # noqa: E402
from mvmtui.engine.ceph import parse, reads  # noqa: E402
from mvmtui.engine.ceph.wizard import WAIT_POLL  # noqa: E402
from mvmtui.engine.inventory import Inventory  # noqa: E402
from mvmtui.engine.lab import Lab  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "ceph" / "healthy.json"


def scaled(doc: dict, osds: int) -> dict:
    """The healthy capture with `osds` OSDs, four to a host (osd df tree, osd dump)."""
    d = copy.deepcopy(doc)
    r = d["reads"]
    nodes = r["osd_df"]["out"]["nodes"]
    proto_osd = next(n for n in nodes if n["type"] == "osd")
    proto_host = next(n for n in nodes if n["type"] == "host")
    root = next(n for n in nodes if n["type"] == "root")
    new, hosts = [root], []
    for h in range((osds + 3) // 4):
        ids = list(range(h * 4, min(osds, h * 4 + 4)))
        host = dict(proto_host, id=-(h + 2), name=f"kvm-{h + 1:03d}", children=ids)
        hosts.append(host["id"])
        new.append(host)
        new += [dict(proto_osd, id=i, name=f"osd.{i}") for i in ids]
    root["children"] = hosts
    r["osd_df"]["out"]["nodes"] = new
    proto = r["osd_dump"]["out"]["osds"][0]
    r["osd_dump"]["out"]["osds"] = [dict(proto, osd=i) for i in range(osds)]
    return d


def parse_figures() -> list[str]:
    doc = json.loads(FIXTURE.read_text())
    out = []
    for n in (4, 100, 1000):
        d = scaled(doc, n)
        size = len(json.dumps(d))
        times = []
        for _ in range(20):
            t = time.perf_counter()
            s = parse.summary("x", d, 0.0)
            times.append(time.perf_counter() - t)
        assert len(s.osds) == n, len(s.osds)
        out.append(f"| {n:,} OSDs | {size / 1024:.0f} KiB | {statistics.median(times) * 1e3:.2f} ms |")
    return out


def cpu_of(lab, host, command: str) -> tuple[float, float]:
    """(wall s, CPU s user+sys) of a command on a lab host, read from the host's side."""
    script = (f"start=$(date +%s.%N); {command} >/dev/null 2>&1; end=$(date +%s.%N); "
              f"times; echo $start $end")
    r = lab.exec(host, "bash", "-c", script)
    lines = r.stdout.strip().splitlines()
    start, end = map(float, lines[-1].split())

    def secs(t: str) -> float:
        m, s = t.rstrip("s").split("m")
        return int(m) * 60 + float(s)
    kids = lines[-2].split()            # `times`: children's user and sys
    return end - start, secs(kids[0]) + secs(kids[1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--offline", action="store_true")
    args = ap.parse_args()
    print(f"# bench_ceph — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{platform.node()}, {os.cpu_count()} CPUs")
    print("\n## Parsing one refresh (console side), a real capture scaled\n")
    print("| | document | parse |\n|---|---|---|")
    print("\n".join(parse_figures()))
    if args.offline:
        return 0
    root = Path(tempfile.mkdtemp(prefix="bceph-"))
    lab = Lab("bceph", ceph=True, subnet=75, root=root / "labs")
    inv_path = root / "inventory.db"
    inv = Inventory(inv_path)
    t = time.monotonic()
    try:
        lab.up(inv)
        inv.close()
        print(f"\nlab up with Ceph at HEALTH_OK in {time.monotonic() - t:.0f} s")
        eng = Engine(inv_path, reconnect_interval=0.5)
        eng.start()
        eng.call(eng.wait_ready(timeout=30))
        try:
            refresh(eng, lab, args.rounds)
            to_safe(eng, lab)
        finally:
            eng.stop()
    finally:
        lab.down()
    return 0


def refresh(eng, lab, rounds: int) -> None:
    walls, ru0 = [], resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(rounds):
        t = time.perf_counter()
        s = eng.call(eng.ceph_refresh("bceph"), timeout=60)
        walls.append(time.perf_counter() - t)
        assert s and s.health, s
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    console_cpu = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / rounds
    batch = [cpu_of(lab, "kvm-01", reads.script()) for _ in range(rounds)]
    cli = [cpu_of(lab, "kvm-01", reads.cli_script()) for _ in range(max(2, rounds // 2))]
    print("\n## One summary refresh (13 reads), median\n")
    print("| | SSH execs | wall | host CPU |\n|---|---|---|---|")
    print(f"| the console (librados batch), seen from the console | 1 | "
          f"{statistics.median(walls) * 1e3:.0f} ms | — |")
    print(f"| the same batch, on the host | 1 | {statistics.median(b[0] for b in batch) * 1e3:.0f} ms"
          f" | {statistics.median(b[1] for b in batch) * 1e3:.0f} ms |")
    print(f"| the `ceph` CLI, one command a read (the fallback) | 1 | "
          f"{statistics.median(c[0] for c in cli) * 1e3:.0f} ms | "
          f"{statistics.median(c[1] for c in cli) * 1e3:.0f} ms |")
    print(f"\nconsole CPU per refresh (engine thread, parse included): {console_cpu * 1e3:.0f} ms")


def to_safe(eng, lab) -> None:
    """osd.3 on kvm-04: weight 0, then both clocks run to safe-to-destroy."""
    c = "bceph"
    # Data to move, as in a real cluster: 400 MiB written into an image.
    lab.exec("kvm-01", "rbd", "create", "--size", "512", "vms/fill")
    lab.exec("kvm-01", "rbd", "bench", "--io-type", "write", "--io-size", "4M",
             "--io-total", "400M", "vms/fill")
    lab.ceph.wait_health_ok(timeout=300)
    t = eng.call(eng.enter_maintenance(c, "kvm-04", "kvm-04"), timeout=60)
    eng.call(eng.wait_task(t.id), timeout=300)
    p = eng.call(eng.decommission_plan(c, "kvm-04"), timeout=60)
    assert p.next and p.next.key == "out:3", (p.refusal, p.next)
    ceph_safe = {}

    def poll():
        while "t" not in ceph_safe:
            r = lab.exec("kvm-01", "ceph", "osd", "safe-to-destroy", "3", "-f", "json",
                         check=False)
            try:
                d = json.JSONDecoder().raw_decode(r.stdout.strip())[0]
            except ValueError:
                d = {}
            if 3 in d.get("safe_to_destroy", []) and start:
                ceph_safe["t"] = time.monotonic()
            time.sleep(0.5)
    start = 0.0
    th = threading.Thread(target=poll, daemon=True)
    t0 = time.monotonic()
    task = eng.call(eng.decommission_step(c, "kvm-04", "out:3"), timeout=60)
    start = time.monotonic()
    th.start()
    eng.call(eng.wait_task(task.id), timeout=120)
    out_took = time.monotonic() - t0
    w = eng.call(eng.decommission_step(c, "kvm-04", "wait:3"), timeout=60)
    console_safe = None
    while console_safe is None:
        cp = eng.task(w.id).checkpoint or {}
        if cp.get("safe"):
            console_safe = time.monotonic()
        time.sleep(0.05)
    th.join(120)
    eng.call(eng.wait_task(w.id), timeout=600)
    print("\n## From `ceph osd crush reweight osd.3 0` to safe-to-destroy (400 MiB to move)\n")
    print("| | seconds after the reweight |\n|---|---|")
    print(f"| Ceph says safe (`ceph osd safe-to-destroy 3`, polled every 0.5 s) | "
          f"{ceph_safe['t'] - start:.1f} |")
    print(f"| the console reports it (the wait step's checkpoint) | {console_safe - start:.1f} |")
    print(f"| the console's lag | {console_safe - ceph_safe['t']:.1f} (its refresh: "
          f"{WAIT_POLL:.0f} s + a read) |")
    print(f"(the reweight step, from confirming it until Ceph showed the weight 0: "
          f"{out_took:.1f} s)")


if __name__ == "__main__":
    sys.exit(main())
