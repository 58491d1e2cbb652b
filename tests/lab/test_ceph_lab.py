"""Ceph (issue 10) against the lab's real Ceph 16: four hosts, three monitors, an OSD
per host, VM disks on RBD. The tests run in order on one lab and leave it changed the
way an operator would: the last one decommissions kvm-03 for good."""
from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import time

import pytest

from mvmtui.engine import Engine
from mvmtui.engine.model import TaskStatus

from .conftest import wait_for
from .helpers import CLI, Counters, running_on, watcher


def _env(cc) -> dict:
    return {**os.environ, "MVMTUI_INVENTORY": str(cc.inventory)}


def _ceph(cc, *args, host="kvm-01"):
    """`ceph ARGS -f json` on a lab host, as Ceph itself answers."""
    r = cc.lab.exec(host, "ceph", *args, "-f", "json")
    return json.JSONDecoder().raw_decode(r.stdout.strip())[0]


def _health_ok(cc, timeout=180):
    cc.lab.ceph.wait_health_ok(timeout=timeout)


def _set(eng, cluster, *assignments):
    eng.set_policy(cluster, list(assignments))


def test_the_summary_agrees_with_ceph_itself(ceph_engine, ceph_cluster):
    eng, cc = ceph_engine, ceph_cluster
    _health_ok(cc)
    s = eng.call(eng.ceph_refresh(cc.name), timeout=60)
    st, tree = _ceph(cc, "status"), _ceph(cc, "osd", "df", "tree")
    assert s.health == st["health"]["status"] == "HEALTH_OK"
    assert sorted(s.quorum) == sorted(st["quorum_names"]) == ["kvm-01", "kvm-02", "kvm-03"]
    assert len(s.osds) == st["osdmap"]["num_osds"] == 4
    assert sum(o.up for o in s.osds) == st["osdmap"]["num_up_osds"]
    assert sum(o.in_ for o in s.osds) == st["osdmap"]["num_in_osds"]
    assert s.num_pgs == st["pgmap"]["num_pgs"]
    assert s.raw_total_bytes == st["pgmap"]["bytes_total"]
    assert [m.name for m in s.mgrs if m.active] == [st["mgrmap"].get("active_name")
                                                    or _ceph(cc, "mgr", "stat")["active_name"]]
    nodes = {n["id"]: n for n in tree["nodes"]}
    for o in s.osds:
        n = nodes[o.id]
        assert o.size_bytes == n["kb"] * 1024
        assert o.crush_weight == pytest.approx(n["crush_weight"])
        assert o.reweight == pytest.approx(n["reweight"])
        assert o.host == next(h["name"] for h in tree["nodes"] if h["type"] == "host"
                              and o.id in h.get("children", ()))
    pools = {p["pool_name"]: p for p in _ceph(cc, "osd", "pool", "ls", "detail")}
    assert {p.name: (p.size, p.min_size) for p in s.pools} == {
        n: (p["size"], p["min_size"]) for n, p in pools.items()}
    r = subprocess.run(CLI + ["ceph", "status"], env=_env(cc), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "HEALTH_OK" in r.stdout and "quorum 3" in r.stdout, r.stderr
    # The reading went into the history: raw used as Ceph counts it, on the chart and
    # from the CLI.
    assert s.raw_used_pct == pytest.approx(
        100 * st["pgmap"]["bytes_used"] / st["pgmap"]["bytes_total"], abs=1.0)
    eng._writes_done()
    chart = eng.ceph_chart(cc.name, "raw_used_pct", "15m")
    assert chart.series[0].points, chart
    assert chart.series[0].points[-1][1] == pytest.approx(s.raw_used_pct, abs=1.0)
    r = subprocess.run(CLI + ["metrics", "ceph", cc.name, "--since", "15m", "--json"],
                       env=_env(cc), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["metrics"]["raw_used_pct"], r.stdout


def test_noout_set_on_enter_cleared_on_leave_flagged_once_expired(ceph_engine, ceph_cluster):
    eng, cc = ceph_engine, ceph_cluster
    t = eng.call(eng.enter_maintenance(cc.name, "kvm-04", "kvm-04", noout=True), timeout=60)
    t = eng.call(eng.wait_task(t.id), timeout=120)
    assert t.status is TaskStatus.SUCCEEDED, t.error
    log = "\n".join(e.message for e in eng.task(t.id).logs)
    assert "osd.3 may stop" in log and "noout set on kvm-04's OSDs" in log
    assert "noout" in _ceph(cc, "osd", "dump")["crush_node_flags"].get("kvm-04", [])
    s = eng.call(eng.ceph_refresh(cc.name), timeout=60)
    flag = next(f for f in s.flags if f.name == "noout" and f.scope == "host kvm-04")
    assert "console" in flag.who or "·" in flag.who
    assert flag.expires and not flag.expired(eng.clock())
    assert any(c.code == "OSD_FLAGS" for c in s.checks)
    # Once its expiry has passed, the summary says so.
    eng.call(eng.ceph_set_noout(cc.name, "kvm-04", seconds=1), timeout=60)
    time.sleep(1.5)
    s = eng.call(eng.ceph_refresh(cc.name), timeout=60)
    flag = next(f for f in s.flags if f.name == "noout" and f.scope == "host kvm-04")
    assert flag.expired(eng.clock())
    t = eng.call(eng.leave_maintenance(cc.name, "kvm-04"), timeout=60)
    t = eng.call(eng.wait_task(t.id), timeout=120)
    assert t.status is TaskStatus.SUCCEEDED, t.error
    assert "noout cleared" in "\n".join(e.message for e in eng.task(t.id).logs)
    assert "kvm-04" not in _ceph(cc, "osd", "dump")["crush_node_flags"]
    s = eng.call(eng.ceph_refresh(cc.name), timeout=60)
    assert not any(f.name == "noout" for f in s.flags)
    assert not eng.ceph_noout_mark(cc.name, "kvm-04")
    _health_ok(cc)


def test_refusals_with_cephs_reason(ceph_engine, ceph_cluster):
    """kvm-03 (a monitor host) goes into maintenance for the decommission that follows.
    With another OSD down, Ceph is not HEALTH_OK and ok-to-stop says no; with a pool
    wider than the hosts left, there is no room. Nothing is changed either time."""
    eng, cc = ceph_engine, ceph_cluster
    t = eng.call(eng.enter_maintenance(cc.name, "kvm-03", "kvm-03"), timeout=60)
    assert eng.call(eng.wait_task(t.id), timeout=180).status is TaskStatus.SUCCEEDED
    p = eng.call(eng.decommission_plan(cc.name, "kvm-03"), timeout=60)
    assert not p.refusal and p.next.key == "out:2" and p.method == "reweight"
    lab = cc.lab
    lab.exec("kvm-01", str(lab.ceph.bin), "stop", "osd", "0")
    try:
        wait_for(lambda: eng.call(eng.ceph_refresh(cc.name), timeout=60).health != "HEALTH_OK",
                 60, 1)
        p = eng.call(eng.decommission_plan(cc.name, "kvm-03"), timeout=60)
        assert "not HEALTH_OK" in p.refusal and "OSD_DOWN" in p.refusal
        # Ceph's manager sees the PGs degraded a moment after the OSD is marked down.
        ids, ok = wait_for(lambda: (r := eng.call(eng.ceph_maintenance_check(
            cc.name, "kvm-03"), timeout=60)) and not r[1].ok and r, 60, 1)[0]
        assert ids == (2,) and "unsafe to stop" in ok.reason, ok
        r = subprocess.run(CLI + ["ceph", "decommission", "kvm-03", "--dry-run"],
                           env=_env(cc), capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "REFUSED: Ceph is not HEALTH_OK" in r.stdout, r.stdout
    finally:
        lab.exec("kvm-01", str(lab.ceph.bin), "start", "osd", "0")
    _health_ok(cc)
    lab.exec("kvm-01", "ceph", "osd", "pool", "create", "wide", "8", "8", "replicated")
    try:
        lab.exec("kvm-01", "ceph", "osd", "pool", "set", "wide", "size", "4")
        lab.exec("kvm-01", "ceph", "osd", "pool", "application", "enable", "wide", "rbd")
        _health_ok(cc)
        p = eng.call(eng.decommission_plan(cc.name, "kvm-03"), timeout=60)
        assert ("pool wide keeps 4 copies on different hosts; without kvm-03 only 3 hosts "
                "are left") in p.refusal
    finally:
        lab.exec("kvm-01", "ceph", "osd", "pool", "rm", "wide", "wide",
                 "--yes-i-really-really-mean-it")
    _health_ok(cc)
    assert eng.call(eng.decommission_plan(cc.name, "kvm-03"), timeout=60).started is False


def test_the_storage_fence_cuts_the_old_copy_off(ceph_engine, ceph_cluster, tmp_path):
    """Management down on kvm-01 while web-01 (disk on RBD) runs on: the watcher fences
    at the storage (fence-method ceph). The old copy still runs but can no longer
    write; the new one writes; the counters never interleave. When kvm-01 comes back,
    the blocklist is lifted and web-01 comes home."""
    eng, cc = ceph_engine, ceph_cluster
    lab = cc.lab
    _set(eng, cc.name, "fence-method=ceph")
    assert running_on(lab, "web-01") == ["kvm-01"]
    counters = Counters(lab, ["web-01"])
    with watcher(cc, tmp_path / "watch.log", inventory=cc.inventory):
        counters.start()
        wait_for(lambda: len(counters.seen["web-01"]) >= 2, 60, 0.2)
        old_qemu = lab.exec("kvm-01", "pgrep", "-f", "guest=web-01").stdout.split()
        assert old_qemu
        since = time.time()
        lab.management_down("kvm-01")
        try:
            wait_for(lambda: running_on(lab, "web-01") not in ([], ["kvm-01"]), 90, 0.3)
            counters.wait_new_boot("web-01", timeout=120)
            listed = _ceph(cc, "osd", "blocklist", "ls", host="kvm-02")
            mine = [e for e in listed
                    if e["addr"].startswith(lab.host("kvm-01").address + ":")]
            cut = [e["addr"] for e in mine]
            assert cut, listed
            # For days, not Ceph's default hour (which would let the old writer back in).
            for e in mine:
                until = datetime.datetime.fromisoformat(e["until"].replace("+0000", "+00:00"))
                assert until.timestamp() > time.time() + 86400, e
            t = next(t for t in eng.tasks(cc.name, target="kvm-01", details=True)
                     if t.kind == "host.failover" and t.created_at >= since)
            fenced = "\n".join(e.message for e in t.logs)
            assert "fenced: Ceph blocklist" in fenced and "exclusive lock(s) broken" in fenced
            # The old copy is alive, but writes nothing since the new one started.
            assert lab.init_pid(lab.host("kvm-01"))
            boots = counters.boots("web-01")
            assert len(boots) == 2, boots
            time.sleep(3)
            assert counters.boots("web-01") == boots      # never the old boot again
        finally:
            lab.crash("kvm-01")
            lab.revive("kvm-01")
        wait_for(lambda: running_on(lab, "web-01") == ["kvm-01"], 180, 0.5)
        # kvm-01's OSD and monitor were power-cycled: its I/O waits for their peering
        # (slow beside the other test worker on CI).
        counters.wait_counting("web-01", timeout=120)
        counters.stop()
    assert counters.gapless("web-01"), counters.seen["web-01"]
    listed = _ceph(cc, "osd", "blocklist", "ls")
    assert not [e for e in listed if e["addr"] in cut], listed
    _set(eng, cc.name, "fence-method=lab")
    _health_ok(cc)


def _console_resumes_at(cc, key: str) -> None:
    """A console started now (its own engine, as a new process would: the dead CLI's
    step is closed as interrupted) shows the wizard resumed at that step, from what
    Ceph shows, read over SSH from the lab."""
    from conftest import make_app, run_app
    from test_ceph_console import open_wizard, text_of
    eng = Engine(cc.inventory, reconnect_interval=0.5)
    eng.start()
    try:
        eng.call(eng.wait_ready(timeout=20))
        eng.call(eng.ceph_refresh(cc.name), timeout=60)
        app = make_app(eng, cc.name)

        async def check(pilot):
            screen = await open_wizard(pilot, "kvm-03")
            assert screen.plan.next.key == key
            status = text_of(app, "#decom-status")
            assert status.startswith("Resumed: Ceph shows steps done already"), status
            assert "Next: step 5 of 11" in status, status
        run_app(app, check, size=(120, 40))
    finally:
        eng.stop()


def _decom_tasks(eng, cluster, host):
    return [t for t in eng.tasks(cluster, target=host) if t.kind == "ceph.decommission"]


def test_decommission_killed_mid_rebalance_resumes_and_completes(ceph_engine, ceph_cluster):
    """kvm-03 (OSD osd.2 and a monitor) leaves Ceph: the CLI is killed while data moves,
    a new run starts at that step, and goes to the end: HEALTH_OK, no kvm-03 in CRUSH
    or the monitor map, and the VMs' disk counters never stopped."""
    eng, cc = ceph_engine, ceph_cluster
    lab = cc.lab
    vms = [v for v in ("web-01", "db-02", "ci-runner-01") if running_on(lab, v)]
    counters = Counters(lab, vms)
    counters.start()
    wait_for(lambda: all(len(counters.seen[v]) >= 2 for v in vms), 60, 0.2)
    p = subprocess.Popen(CLI + ["ceph", "decommission", "kvm-03", "--yes"], env=_env(cc),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    try:
        wait_for(lambda: any(t.status is TaskStatus.RUNNING and "Wait until" in t.title
                             for t in _decom_tasks(eng, cc.name, "kvm-03")), 120, 0.2)
        os.killpg(p.pid, signal.SIGKILL)
    finally:
        p.wait(10)
    resumed = eng.call(eng.decommission_plan(cc.name, "kvm-03"), timeout=60)
    assert resumed.started and resumed.next.key == "wait:2", resumed.next
    assert [a.state for a in resumed.actions if a.key == "out:2"] == ["done"]
    _console_resumes_at(cc, "wait:2")
    r = subprocess.run(CLI + ["ceph", "decommission", "kvm-03", "--yes"], env=_env(cc),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "(resumed: some steps are done)" in r.stdout
    assert "kvm-03 is no longer part of Ceph" in r.stdout or "not part of Ceph" in r.stdout
    _health_ok(cc)
    tree = _ceph(cc, "osd", "tree")
    assert not [n for n in tree["nodes"] if n["name"] in ("kvm-03", "osd.2")]
    assert "kvm-03" not in [m["name"] for m in _ceph(cc, "mon", "dump")["mons"]]
    assert not any(e["entity"] == "osd.2" for e in _ceph(cc, "auth", "ls")["auth_dump"])
    steps = [t.title for t in reversed(_decom_tasks(eng, cc.name, "kvm-03"))]
    assert any("Remove monitor kvm-03" in s for s in steps), steps
    for v in vms:
        counters.wait_counting(v)
    counters.stop()
    for v in vms:
        assert len(counters.boots(v)) == 1, (v, counters.boots(v))
        assert counters.gapless(v), counters.seen[v]
    s = eng.call(eng.ceph_refresh(cc.name), timeout=60)
    assert s.health == "HEALTH_OK" and len(s.osds) == 3 and len(s.mons) == 2
