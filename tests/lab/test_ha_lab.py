"""Host loss (issue 9) on the real lab: `mvmtui watch` as an operator runs it, real
power cuts (lab.crash), real sshd/libvirtd deaths, the lab's real fence, and the
guests' disk counters as the proof that no VM ever ran twice. Every test brings the
lab back as it found it (the session's lab is shared): hosts revived, VMs home."""
from __future__ import annotations

import asyncio
import subprocess
import time

from mvmtui.engine.model import TaskStatus

from .conftest import wait_for
from .helpers import CLI, Counters, _env, running_on, watcher

def _home(engine, lab, names, host, timeout=120):
    wait_for(lambda: all(running_on(lab, n) == [host] for n in names), timeout, 0.5)


def _revive(lab, host):
    if not lab.init_pid(lab.host(host)):
        lab.revive(host)


def _failover_task(engine, cluster, host, since):
    for t in engine.tasks(cluster, target=host, details=True):
        if t.kind == "host.failover" and t.created_at >= since:
            return t
    return None


def test_the_seed_example_power_cut_failover_and_return(engine, lab_cluster, tmp_path):
    """kvm-01 holds web-01 (Auto), web-02 (Failover), db-01 (Pinned). Power-cut it: the
    first two run elsewhere, their counters going on from where they stopped; db-01
    stays. Revive it: the two come back live, db-01 is there, stopped."""
    lab, c = lab_cluster.lab, lab_cluster.name
    assert running_on(lab, "web-01") == ["kvm-01"] and running_on(lab, "web-02") == ["kvm-01"]
    counters = Counters(lab, ["web-01", "web-02"])
    with watcher(lab_cluster, tmp_path / "watch.log"):
        wait_for(lambda: engine.ha_status(c).watcher.watched, 15, 0.1)
        assert "watcher · " in engine.ha_status(c).watcher.holder
        counters.start()
        wait_for(lambda: all(counters.seen[v] for v in counters.vms), 30, 0.1)
        cut = time.time()
        lab.crash("kvm-01")
        try:
            (elsewhere, took) = wait_for(
                lambda: all(running_on(lab, v) and "kvm-01" not in running_on(lab, v)
                            for v in ("web-01", "web-02")), 60, 0.1)
            before = {v: counters.seen[v][-1] for v in counters.vms}
            wait_for(lambda: all(counters.seen[v][-1][1] != before[v][1] or
                                 counters.seen[v][-1][0] > before[v][0] + 1
                                 for v in counters.vms), 30, 0.1)
            t = wait_for(lambda: (x := _failover_task(engine, c, "kvm-01", cut))
                         and x.status.finished and x, 30, 0.2)[0]
            assert t.status is TaskStatus.SUCCEEDED, t.error
            log = "\n".join(e.message for e in t.logs)
            assert "fenced: lab power cut" in log and "db-01: not restarted" in log
            print(f"power cut to both running elsewhere: {took:.1f} s")
            assert engine.vm(engine.find_vm("web-01", c).uuid).failed_from == "kvm-01"
        finally:
            _revive(lab, "kvm-01")
        _home(engine, lab, ["web-01", "web-02"], "kvm-01")
        for v in counters.vms:
            counters.wait_counting(v)
        counters.stop()
    for v in counters.vms:
        boots = counters.boots(v)
        assert len(boots) == 2, (v, boots)          # one restart; never two writers
        assert counters.gapless(v), counters.seen[v]
        # The count went on from where it stopped: the restart's first number follows
        # the last one written before the cut.
        first_new = next(i for i, (_, b) in enumerate(counters.seen[v]) if b == boots[1])
        assert counters.seen[v][first_new][0] - counters.seen[v][first_new - 1][0] <= 2
    assert running_on(lab, "db-01") == []
    assert "db-01" in lab.virsh("kvm-01", "list", "--all", "--name").stdout.split()
    for v in ("web-01", "web-02"):     # the stale copies elsewhere are gone
        for h in ("kvm-02", "kvm-03"):
            assert v not in lab.virsh(h, "list", "--all", "--name").stdout.split()


def test_management_down_guests_alive_the_lab_fence_fences_then_restarts(engine, lab_cluster,
                                                                         tmp_path):
    lab, c = lab_cluster.lab, lab_cluster.name
    vms = [v for v in ("db-02", "cache-01") if running_on(lab, v) == ["kvm-02"]]
    assert vms
    counters = Counters(lab, vms)
    with watcher(lab_cluster, tmp_path / "watch.log"):
        counters.start()
        wait_for(lambda: all(counters.seen[v] for v in vms), 30, 0.1)
        since = time.time()
        lab.management_down("kvm-02")
        try:
            wait_for(lambda: all(running_on(lab, v) and "kvm-02" not in running_on(lab, v)
                                 for v in vms), 60, 0.2)
            t = wait_for(lambda: (x := _failover_task(engine, c, "kvm-02", since))
                         and x.status.finished and x, 30, 0.2)[0]
            assert "fenced: lab power cut" in "\n".join(e.message for e in t.logs)
            for v in vms:
                counters.wait_new_boot(v)
        finally:
            _revive(lab, "kvm-02")
        _home(engine, lab, vms, "kvm-02")
        for v in vms:
            counters.wait_counting(v)
        counters.stop()
    for v in vms:
        boots = counters.boots(v)
        assert len(boots) == 2 and counters.gapless(v), (v, counters.seen[v][-5:])


def test_management_down_without_a_fence_waits_for_the_operator(engine, lab_cluster,
                                                                tmp_path):
    lab, c = lab_cluster.lab, lab_cluster.name
    vms = [v for v in ("ci-runner-01", "monitor-01") if running_on(lab, v) == ["kvm-03"]]
    assert vms
    engine.set_policy(c, ["fence-hosts=kvm-03:none"])
    counters = Counters(lab, vms)
    try:
        with watcher(lab_cluster, tmp_path / "watch.log"):
            counters.start()
            wait_for(lambda: all(counters.seen[v] for v in vms), 30, 0.1)
            since = time.time()
            lab.management_down("kvm-03")
            wait_for(lambda: engine.ha_status(c).of("kvm-03").state == "unfenced", 40, 0.2)
            assert "host not fenced" in engine.ha_status(c).of("kvm-03").note
            time.sleep(3)
            # Nothing restarted: no other host runs them (kvm-03's libvirtd is dead, so it
            # cannot say), and their first boot still writes its counter.
            assert all(running_on(lab, v) == [] for v in vms)
            for v in vms:
                counters.wait_counting(v)
                assert counters.boots(v) == counters.boots(v)[:1]
            r = subprocess.run(CLI + ["host", "fenced", "kvm-03", "--cluster", c],
                               env=_env(lab_cluster), capture_output=True, text=True,
                               stdin=subprocess.DEVNULL, timeout=60)
            assert r.returncode == 2 and "--yes" in r.stderr    # no terminal: refused
            lab.crash("kvm-03")                   # the operator pulls the power…
            r = subprocess.run(CLI + ["host", "fenced", "kvm-03", "--cluster", c, "--yes"],
                               env=_env(lab_cluster), capture_output=True, text=True,
                               timeout=60)
            assert r.returncode == 0, r.stderr    # …and says so
            try:
                wait_for(lambda: all(running_on(lab, v) and "kvm-03" not in running_on(lab, v)
                                     for v in vms), 60, 0.2)
                t = wait_for(lambda: (x := _failover_task(engine, c, "kvm-03", since))
                             and x.status.finished and x, 30, 0.2)[0]
                assert "confirmed powered off by cli" in "\n".join(e.message for e in t.logs)
                for v in vms:
                    counters.wait_new_boot(v)
            finally:
                _revive(lab, "kvm-03")
            _home(engine, lab, vms, "kvm-03")
            for v in vms:
                counters.wait_counting(v)
            counters.stop()
    finally:
        engine.set_policy(c, ["fence-hosts="])
    for v in vms:
        assert len(counters.boots(v)) == 2 and counters.gapless(v)


def test_a_watcher_cut_off_from_every_host_acts_on_none(engine, lab_cluster, tmp_path):
    lab, c = lab_cluster.lab, lab_cluster.name
    log = tmp_path / "watch.log"
    with watcher(lab_cluster, log):
        before = {v: running_on(lab, v) for v in ("web-01", "db-02", "ci-runner-01")}
        subprocess.run(["ip", "link", "set", lab.bridge, "down"], check=True)
        try:
            wait_for(lambda: "isolated" in log.read_text(), 40, 0.2)
            time.sleep(4)                       # well past ha-lost-after
        finally:
            subprocess.run(["ip", "link", "set", lab.bridge, "up"], check=True)
        text = log.read_text()
        assert "fenced:" not in text and "Failover:" not in text
        assert {v: running_on(lab, v) for v in before} == before
        assert all(lab.init_pid(lab.host(h)) for h in ("kvm-01", "kvm-02", "kvm-03"))
        wait_for(lambda: all(h.status.value == "up" for h in engine.hosts(c)), 60, 0.5)


def test_two_watchers_one_killed_mid_failover_the_other_finishes(engine, lab_cluster,
                                                                 tmp_path):
    """Two admin boxes, each with its own inventory: one acts; SIGKILL it after the
    first restart; the standby takes over the lease and restarts the rest, once."""
    lab, c = lab_cluster.lab, lab_cluster.name
    other = tmp_path / "admin-2.db"
    from mvmtui.engine.inventory import Inventory
    inv = Inventory(other)
    lab.register(inv)
    inv.close()
    web02 = engine.find_vm("web-02", c)
    asyncio.run(engine.set_placement(web02.uuid, priority="high"))   # restarts first
    try:
        with watcher(lab_cluster, tmp_path / "a.log") as a, \
                watcher(lab_cluster, tmp_path / "b.log", inventory=other, wait=False):
            time.sleep(5)
            assert "holding the watcher lease" not in (tmp_path / "b.log").read_text()
            lab.crash("kvm-01")
            try:
                wait_for(lambda: running_on(lab, "web-02") and
                         "kvm-01" not in running_on(lab, "web-02"), 60, 0.05)
                a.kill()                          # mid-failover: web-01 not yet restarted
                wait_for(lambda: "holding the watcher lease" in (tmp_path / "b.log").read_text(),
                         40, 0.2)
                wait_for(lambda: running_on(lab, "web-01") and
                         "kvm-01" not in running_on(lab, "web-01"), 60, 0.2)
                for v in ("web-01", "web-02"):
                    assert len(running_on(lab, v)) == 1, (v, running_on(lab, v))
            finally:
                _revive(lab, "kvm-01")
            _home(engine, lab, ["web-01", "web-02"], "kvm-01", timeout=150)
    finally:
        asyncio.run(engine.set_placement(web02.uuid, priority="medium"))


def test_a_host_that_returns_while_its_vms_restart_elsewhere(engine, lab_cluster, tmp_path):
    """Revived as soon as its failover starts: the boot gate keeps web-01 (autostart)
    from starting there too, and the return waits for the failover to end."""
    lab, c = lab_cluster.lab, lab_cluster.name
    with watcher(lab_cluster, tmp_path / "watch.log"):
        since = time.time()
        lab.crash("kvm-01")
        try:
            # Once it is fenced (the fence is a power cut: it must not cut the revived
            # host), while its VMs restart elsewhere.
            wait_for(lambda: (t := _failover_task(engine, c, "kvm-01", since))
                     and "fenced:" in " ".join(e.message for e in t.logs), 40, 0.05)
            lab.revive("kvm-01")
            gate = lab.virsh("kvm-01", "start", "web-01", check=False)
            assert gate.returncode != 0 and "boot gate" in gate.stderr
        finally:
            _revive(lab, "kvm-01")
        _home(engine, lab, ["web-01", "web-02"], "kvm-01", timeout=150)
        for v in ("web-01", "web-02"):
            assert running_on(lab, v) == ["kvm-01"]


def test_short_of_room_the_high_priority_vm_restarts_and_the_other_says_why(
        engine, lab_cluster, tmp_path):
    lab, c = lab_cluster.lab, lab_cluster.name
    web01, web02 = engine.find_vm("web-01", c), engine.find_vm("web-02", c)
    kvm02 = engine.host(c, "kvm-02")
    used = sum(v.memory_mib for v in engine.vms(c, "kvm-02") if v.state.active)
    room = 100                                   # one 96 MiB guest fits, not two
    engine.set_policy(c, [f"host-reserve={kvm02.memory_mib - used - room}",
                          "must-run-on=web-01:kvm-01+kvm-02, web-02:kvm-01+kvm-02"])
    asyncio.run(engine.set_placement(web02.uuid, priority="high"))
    try:
        plan = engine.failover_plan(c, "kvm-01")
        rows = {r.name: r for r in plan.rows}
        assert rows["web-02"].outcome == "restart" and rows["web-01"].outcome == "blocked"
        with watcher(lab_cluster, tmp_path / "watch.log"):
            since = time.time()
            lab.crash("kvm-01")
            try:
                t = wait_for(lambda: (x := _failover_task(engine, c, "kvm-01", since))
                             and x.status.finished and x, 60, 0.2)[0]
                log = "\n".join(e.message for e in t.logs)
                assert "web-02 runs on kvm-02" in log
                assert "web-01: not restarted — no host can take web-01" in log
                assert running_on(lab, "web-01") == []
            finally:
                _revive(lab, "kvm-01")
            _home(engine, lab, ["web-02"], "kvm-01", timeout=150)
            wait_for(lambda: running_on(lab, "web-01") == ["kvm-01"], 60, 0.5)  # autostart
    finally:
        engine.set_policy(c, ["host-reserve=2048", "must-run-on="])
        asyncio.run(engine.set_placement(web02.uuid, priority="medium"))


def test_the_cli_failover_plan_and_rebalance_preview(engine, lab_cluster):
    import json
    c = lab_cluster.name
    r = subprocess.run(CLI + ["cluster", "failover-plan", c, "--json"], env=_env(lab_cluster),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["n_minus_one"]["ok"] and [p["host"] for p in out["plans"]] == [
        "kvm-01", "kvm-02", "kvm-03"]
    kvm01 = {row["name"]: row for row in out["plans"][0]["rows"]}
    assert kvm01["web-01"]["outcome"] == kvm01["web-02"]["outcome"] == "restart"
    assert kvm01["db-01"]["outcome"] == "stays"
    r = subprocess.run(CLI + ["cluster", "failover-plan", c, "--host", "kvm-01"],
                       env=_env(lab_cluster), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "If kvm-01 died now: 2 restart elsewhere" in r.stdout
    r = subprocess.run(CLI + ["cluster", "rebalance", c, "--dry-run", "--threshold", "3"],
                       env=_env(lab_cluster), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "imbalance" in r.stdout, r.stderr
    r = subprocess.run(CLI + ["cluster", "rebalance", c, "--threshold", "9"],
                       env=_env(lab_cluster), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
