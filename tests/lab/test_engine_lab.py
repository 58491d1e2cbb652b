"""The engine against the real lab: SSH tunnel, libvirt, events, faults."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest

from mvmtui.engine import Engine, EngineError, Inventory
from mvmtui.engine.model import Cluster, Host, HostStatus, TaskStatus, VmState

from .conftest import wait_for


def _names(vms):
    return sorted(v.name for v in vms)


def _virsh_names(lab, host):
    return sorted(lab.virsh(host, "list", "--all", "--name").stdout.split())


def test_every_host_is_up_with_its_facts(engine, lab_cluster):
    hosts = engine.hosts(lab_cluster.name)
    assert [h.name for h in hosts] == ["kvm-01", "kvm-02", "kvm-03"]
    for h in hosts:
        assert h.status is HostStatus.UP, h.problem
        assert h.hostname == h.name            # its own UTS namespace
        assert h.cpus > 0 and h.memory_mib > 0
        assert h.libvirt_version.startswith("9.") and h.qemu_version
        assert "Debian" in h.os_release
        assert h.fingerprint.startswith("SHA256:")   # the key it proved it holds
        pools = engine.datastores(lab_cluster.name, h.name)
        assert [p.name for p in pools] == ["images", "shared"]   # its own, and the lab's
        assert all(p.active and p.capacity_bytes > 0 for p in pools)


def test_each_host_sees_only_its_own_vms(engine, lab_cluster):
    lab = lab_cluster.lab
    seen = set()
    for host in ("kvm-01", "kvm-02", "kvm-03"):
        vms = engine.vms(lab_cluster.name, host)
        assert _names(vms) == _virsh_names(lab, host)
        uuids = {v.uuid for v in vms}
        assert not uuids & seen
        seen |= uuids
    web = engine.find_vm("web-01", lab_cluster.name)
    assert web.host == "kvm-01" and web.disks[0].target == "vda"
    assert web.disks[0].source == "/var/lib/libvirt/shared/web-01.raw"
    assert web.disks[0].capacity_bytes == 16 * 1024 ** 2
    assert web.nics[0].mac.startswith("52:54:00:")


def test_start_and_force_off_through_the_tunnel(engine, lab_cluster):
    lab = lab_cluster.lab
    vm = engine.find_vm("db-01", lab_cluster.name)
    assert vm.state is VmState.SHUTOFF
    task = asyncio.run(engine.vm_action(vm.uuid, "start"))
    assert task.status is TaskStatus.SUCCEEDED, task.error
    assert lab.virsh("kvm-01", "domstate", "db-01").stdout.strip() == "running"
    assert engine.vm(vm.uuid).state is VmState.RUNNING
    task = asyncio.run(engine.vm_action(vm.uuid, "destroy"))
    assert task.status is TaskStatus.SUCCEEDED, task.error
    assert lab.virsh("kvm-01", "domstate", "db-01").stdout.strip() == "shut off"
    assert [s.status for s in task.steps] == [TaskStatus.SUCCEEDED] * 3
    assert engine.tasks(target=vm.uuid)[0].id == task.id


def test_graceful_shutdown_reaches_the_guest(engine, lab_cluster):
    """The lab guest is a real Linux that honours the ACPI power button."""
    vm = engine.find_vm("web-02", lab_cluster.name)
    if vm.state is not VmState.RUNNING:
        assert asyncio.run(engine.vm_action(vm.uuid, "start")).status is TaskStatus.SUCCEEDED
    # Let the guest finish booting (it answers the button once its init runs).
    console = lab_cluster.lab.host("kvm-01").dir / "log-libvirt" / "web-02-console.log"
    wait_for(lambda: "guest: up" in console.read_text(), 60, 0.2)
    task = asyncio.run(engine.vm_action(vm.uuid, "shutdown"))
    assert task.status is TaskStatus.SUCCEEDED, task.error
    assert engine.vm(vm.uuid).state is VmState.SHUTOFF
    assert any("ACPI" in line.message for line in task.logs)
    assert asyncio.run(engine.vm_action(vm.uuid, "start")).status is TaskStatus.SUCCEEDED


def test_libvirt_refusal_is_the_task_error(engine, lab_cluster):
    vm = engine.find_vm("web-01", lab_cluster.name)
    assert vm.state is VmState.RUNNING
    task = asyncio.run(engine.vm_action(vm.uuid, "start"))
    assert task.status is TaskStatus.FAILED
    assert "already running" in task.error
    assert task.steps[1].status is TaskStatus.FAILED
    assert engine.vm(vm.uuid).state is VmState.RUNNING


def test_change_behind_the_consoles_back_arrives_by_itself(engine, lab_cluster):
    """virsh on the host, no refresh asked: libvirt's event brings the change (how fast
    is for the benchmarks; a timed limit here flaked on a loaded machine)."""
    lab = lab_cluster.lab
    vm = engine.find_vm("backup-01", lab_cluster.name)
    assert vm.state is VmState.SHUTOFF
    seen = []
    engine.subscribe(lambda ev: seen.append(ev))
    lab.virsh("kvm-02", "start", "backup-01")
    wait_for(lambda: engine.vm(vm.uuid).state is VmState.RUNNING, 10.0)
    assert any(getattr(ev, "vm", None) and ev.vm.uuid == vm.uuid for ev in seen)
    lab.virsh("kvm-02", "destroy", "backup-01")
    wait_for(lambda: engine.vm(vm.uuid).state is VmState.SHUTOFF, 10.0)


def test_suspend_and_resume(engine, lab_cluster):
    vm = engine.find_vm("cache-01", lab_cluster.name)
    assert asyncio.run(engine.vm_action(vm.uuid, "suspend")).status is TaskStatus.SUCCEEDED
    assert engine.vm(vm.uuid).state is VmState.PAUSED
    assert asyncio.run(engine.vm_action(vm.uuid, "resume")).status is TaskStatus.SUCCEEDED
    assert engine.vm(vm.uuid).state is VmState.RUNNING


def test_libvirtd_down_then_back(engine, lab_cluster):
    lab = lab_cluster.lab
    lab.exec("kvm-02", "pkill", "-x", "libvirtd")
    h, _ = wait_for(lambda: (h := engine.host(lab_cluster.name, "kvm-02")).status
                    is HostStatus.LIBVIRT_DOWN and h, 15)
    assert h.problem
    assert engine.host(lab_cluster.name, "kvm-01").status is HostStatus.UP
    lab.exec("kvm-02", "libvirtd", "-d")
    wait_for(lambda: engine.host(lab_cluster.name, "kvm-02").status is HostStatus.UP, 20)


def test_power_cut_marks_host_unreachable_and_vms_stale(engine, lab_cluster):
    lab = lab_cluster.lab
    before = {v.uuid: v.state for v in engine.vms(lab_cluster.name, "kvm-03")}
    lab.crash("kvm-03")
    # Seen within about 3 s (SSH keepalives, 1 s × 3); bench_failover measures it. The
    # bound here is loose: the other test worker shares the machine's two cores.
    seen = set()

    def status():
        seen.add(s := engine.host(lab_cluster.name, "kvm-03").status)
        return s
    wait_for(lambda: status() is HostStatus.UNREACHABLE, 15.0)
    host = engine.host(lab_cluster.name, "kvm-03")
    # Whichever noticed first (SSH's keepalive, or libvirt's connection closing and
    # SSH then asked), the host is said lost, never "libvirt down" with SSH working.
    assert "lost contact" in host.problem, host.problem
    assert HostStatus.LIBVIRT_DOWN not in seen, seen
    stale = engine.vms(lab_cluster.name, "kvm-03")
    assert stale and all(v.stale for v in stale)
    assert {v.uuid: v.state for v in stale} == before     # last known state, not blanks
    # The console stays alive: other hosts answer, actions on them work.
    assert engine.host(lab_cluster.name, "kvm-01").status is HostStatus.UP
    vm = stale[0]
    task = asyncio.run(engine.vm_action(vm.uuid, "start"))
    assert task.status is TaskStatus.FAILED and "kvm-03" in task.error
    s = engine.summary(lab_cluster.name)
    assert s.hosts_up == 2 and any("kvm-03" in p for p in s.problems)
    # The engine keeps trying; each failed try says why, after when contact was lost.
    problem, _ = wait_for(lambda: "last try" in (p := engine.host(lab_cluster.name,
                                                                   "kvm-03").problem) and p, 30)
    assert problem.startswith(host.problem[:len("lost contact at 00:00:00")]), problem

    lab.revive("kvm-03")
    wait_for(lambda: engine.host(lab_cluster.name, "kvm-03").status is HostStatus.UP, 20)
    back = engine.vms(lab_cluster.name, "kvm-03")
    assert back and not any(v.stale for v in back)
    # After a power cut only autostart VMs run again.
    monitor = engine.find_vm("monitor-01", lab_cluster.name)
    wait_for(lambda: engine.vm(monitor.uuid).state is VmState.RUNNING, 10)


def _other_cluster(lab_cluster, tmp_path, *, known_hosts: str, key: str) -> Engine:
    inv = Inventory(tmp_path / "inv.db")
    inv.save_cluster(Cluster(name="keys", ssh_key=key, known_hosts=known_hosts))
    h = lab_cluster.lab.host("kvm-01")
    inv.save_host(Host(cluster="keys", name="kvm-01", address=h.address))
    eng = Engine(inv, reconnect_interval=0.5)
    eng.start()
    eng.call(eng.wait_ready(timeout=10))
    return eng


def _host_fingerprint(lab_cluster) -> str:
    import asyncssh
    pub = (lab_cluster.lab.host("kvm-01").dir / "ssh_host_ed25519_key.pub").read_text()
    return asyncssh.import_public_key(pub).get_fingerprint("sha256")


def test_unknown_host_key_is_asked_then_trusted(lab_cluster, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    eng = _other_cluster(lab_cluster, tmp_path, known_hosts=str(known),
                         key=str(lab_cluster.lab.ssh_key))
    try:
        h = eng.host("keys", "kvm-01")
        assert h.status is HostStatus.HOST_KEY_UNKNOWN
        assert h.fingerprint == _host_fingerprint(lab_cluster)
        assert h.fingerprint in h.problem
        (question,) = eng.pending_host_keys()      # what a console starting now asks
        assert question.fingerprint == h.fingerprint and question.key_type == "ssh-ed25519"
        asyncio.run(eng.trust_host_key("keys", "kvm-01", h.fingerprint))
        wait_for(lambda: eng.host("keys", "kvm-01").status is HostStatus.UP, 10)
        assert lab_cluster.lab.host("kvm-01").address in known.read_text()
    finally:
        eng.stop()


def test_changed_host_key_is_refused(lab_cluster, tmp_path):
    import asyncssh
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    known = tmp_path / "known_hosts"
    known.write_text(f"{lab_cluster.lab.host('kvm-01').address} {other}")
    eng = _other_cluster(lab_cluster, tmp_path, known_hosts=str(known),
                         key=str(lab_cluster.lab.ssh_key))
    try:
        h = eng.host("keys", "kvm-01")
        assert h.status is HostStatus.HOST_KEY_CHANGED
        assert "CHANGED" in h.problem and "man-in-the-middle" in h.problem
        assert eng.vms("keys") == []
        assert eng.pending_host_keys() == []
        with pytest.raises(EngineError, match="never trusts a changed key"):
            asyncio.run(eng.trust_host_key("keys", "kvm-01", _host_fingerprint(lab_cluster)))
    finally:
        eng.stop()


def test_wrong_ssh_key_is_auth_failed(lab_cluster, tmp_path):
    import asyncssh
    key = tmp_path / "id_wrong"
    key.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    key.chmod(0o600)
    eng = _other_cluster(lab_cluster, tmp_path, known_hosts=str(lab_cluster.lab.known_hosts),
                         key=str(key))
    try:
        h = eng.host("keys", "kvm-01")
        assert h.status is HostStatus.AUTH_FAILED
        assert "refused our credentials" in h.problem
    finally:
        eng.stop()


def test_a_guest_burning_cpu_shows_in_its_vm_and_host_series_within_two_intervals(
        engine, lab_cluster):
    """The guest spins one vCPU and says so on its console the moment it starts: the
    VM's series shows it within two samples after that (two stats intervals; a third
    allowed for samples being kept to the second), and its host's sample then holds
    it too. Counted in samples, not seconds: a loaded machine stretches both alike."""
    import statistics
    name, lab = lab_cluster.name, lab_cluster.lab
    web = engine.find_vm("web-01", name)
    host = lab.running_on("web-01")[0]
    cpus = engine.host(name, host).cpus

    def after(chart, t):
        return [(at, v) for at, v in chart.series[0].points if at >= t]

    # Idle, it uses some CPU (its disk counter; under TCG every fork costs). Its CPU %
    # is the host CPU time its vCPU thread got: on a loaded machine (CI runs the other
    # test worker beside) a spinning guest got 40 % at first, so twice its idle
    # median, and 10 points more, is the bar.
    idle, _ = wait_for(lambda: len(p := engine.vm_chart(web.uuid, "cpu_pct", "15m")
                                   .series[0].points) >= 5 and p, 30, 0.2)
    base = statistics.median(v for _, v in idle[-5:])
    hot = max(2 * base, base + 10)
    said = lab.console_log("web-01").count("mvmtui burn: on")
    lab.burn_cpu("web-01")
    try:
        wait_for(lambda: lab.console_log("web-01").count("mvmtui burn: on") > said, 20, 0.1)
        t = int(time.time())                  # samples are kept to the second
        try:
            pts, _ = wait_for(lambda: (p := after(engine.vm_chart(web.uuid, "cpu_pct", "15m"),
                                                  t)) and max(v for _, v in p) >= hot and p,
                              30, 0.1)
        except AssertionError:
            raise AssertionError((base, hot, after(engine.vm_chart(web.uuid, "cpu_pct", "15m"),
                                                   t)))
        first_hot = next(i for i, (_, v) in enumerate(pts) if v >= hot)
        assert first_hot <= 2, (base, hot, pts)
        hot_at = pts[first_hot][0]
        # The host's CPU is a share of all its CPUs, and holds the guest's vCPU time:
        # its sample then is at least the VM's figure × vCPUs / CPUs.
        hpts, _ = wait_for(lambda: [(at, v) for at, v in
                                    after(engine.host_chart(name, host, "cpu_pct", "15m"), t)
                                    if at >= hot_at - 0.5], 10, 0.1)
        assert hpts[0][1] >= 0.8 * pts[first_hot][1] * web.vcpus / cpus, (hpts, pts, cpus)
    finally:
        lab.burn_cpu("web-01", on=False)
    # The rest of what a pass takes: the guest's disk writes (its counter), the host's
    # load and network from /proc; a chart says how fresh it is.
    wr = engine.vm_chart(web.uuid, "disk_wr_bps", "15m")
    assert wr.series[0].points and max(v for _, v in wr.series[0].points) > 0
    assert engine.host_chart(name, host, "load1", "15m").series[0].points
    net = engine.host_chart(name, host, "net_rx_bps", "15m")
    assert net.series[0].points and net.as_of >= t
    # The CLI reads the same history from the inventory.
    out = subprocess.run([sys.executable, "-m", "mvmtui", "--inventory",
                          str(lab_cluster.inventory), "metrics", "vm", "web-01",
                          "--since", "15m", "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert max(v for _, v in json.loads(out.stdout)["metrics"]["cpu_pct"]) >= hot


def test_ssh_agent_authentication(lab_cluster, tmp_path, monkeypatch):
    """No key file in the inventory: the key comes from the operator's ssh-agent."""
    import signal
    import subprocess
    sock = tmp_path / "agent.sock"
    agent = subprocess.run(["ssh-agent", "-a", str(sock)], capture_output=True, text=True,
                           check=True).stdout
    pid = int(agent.split("SSH_AGENT_PID=")[1].split(";")[0])
    try:
        env = {"SSH_AUTH_SOCK": str(sock), "PATH": "/usr/bin:/bin"}
        subprocess.run(["ssh-add", "-q", str(lab_cluster.lab.ssh_key)], env=env, check=True,
                       capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        monkeypatch.setenv("HOME", str(tmp_path))   # no ~/.ssh keys to fall back on
        eng = _other_cluster(lab_cluster, tmp_path, known_hosts=str(lab_cluster.lab.known_hosts),
                             key=None)
        try:
            h = eng.host("keys", "kvm-01")
            assert h.status is HostStatus.UP, h.problem
        finally:
            eng.stop()
    finally:
        os.kill(pid, signal.SIGTERM)


def test_the_watcher_samples_while_no_console_runs(lab_cluster, tmp_path):
    """`mvmtui watch` runs the engine live, so the history has no hole while nobody
    looks: its samples land in the inventory, and `mvmtui metrics` reads them."""
    from .helpers import watcher
    with watcher(lab_cluster, tmp_path / "watch.log"):
        t = time.time()

        def newest():
            out = subprocess.run([sys.executable, "-m", "mvmtui", "--inventory",
                                  str(lab_cluster.inventory), "metrics", "host", "kvm-02",
                                  "--since", "15m", "--json"], capture_output=True, text=True)
            assert out.returncode == 0, out.stderr
            d = json.loads(out.stdout)
            return d["as_of"] is not None and d["as_of"] >= t and d
        d, _ = wait_for(newest, 40, 1.0)
    assert d["metrics"]["cpu_pct"] and d["metrics"]["load1"]
