"""The engine's host links and VM actions over libvirt's test driver: no root, no SSH.

libvirt's `test:///FILE` driver is real libvirt (in-process) with a node described in
FILE; hosts with such an address skip SSH. The lab tests cover the real transport."""
from __future__ import annotations

import asyncio
from dataclasses import replace
import time
from pathlib import Path

import pytest

from mvmtui.engine import Engine, Inventory
from mvmtui.engine.model import Cluster, Host, HostStatus, TaskStatus, VmState

NODE = """<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads>
<active>4</active><mhz>2000</mhz><model>x86_64</model></cpu><memory>8388608</memory>
{domains}</node>"""
DOMAIN = """<domain type='test'><name>{name}</name><uuid>{uuid}</uuid>
<memory>524288</memory><vcpu>2</vcpu><os><type>hvm</type></os>
<devices><disk type='file' device='disk'><source file='/img/{name}.qcow2'/>
<target dev='vda' bus='virtio'/></disk>
<interface type='network'><mac address='52:54:00:00:00:{n:02x}'/><source network='default'/>
<model type='virtio'/></interface></devices></domain>"""


def _node(path: Path, names: list[tuple[int, str]]) -> str:
    path.write_text(NODE.format(domains="".join(
        DOMAIN.format(name=name, n=n, uuid=f"00000000-0000-4000-8000-{n:012d}")
        for n, name in names)))
    return f"test://{path}"


def _wait(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("not true in time")
        time.sleep(0.02)


@pytest.fixture
def sim(tmp_path):
    inv = Inventory(tmp_path / "inv.db")
    inv.save_cluster(Cluster(name="sim", known_hosts=str(tmp_path / "kh" / "known_hosts")))
    inv.save_host(Host(cluster="sim", name="hv-1",
                       address=_node(tmp_path / "n1.xml", [(1, "web-01"), (2, "db-01")])))
    inv.save_host(Host(cluster="sim", name="hv-2",
                       address=_node(tmp_path / "n2.xml", [(3, "cache-01")])))
    eng = Engine(inv, reconnect_interval=0.2, stats_interval=0.2)
    eng.start()
    eng.call(eng.wait_ready(timeout=10))
    yield eng
    eng.stop()


def test_hosts_come_up_and_see_their_own_vms(sim):
    assert [h.status for h in sim.hosts("sim")] == [HostStatus.UP, HostStatus.UP]
    assert sorted(v.name for v in sim.vms("sim", "hv-1")) == ["db-01", "web-01"]
    assert [v.name for v in sim.vms("sim", "hv-2")] == ["cache-01"]
    web = sim.find_vm("web-01")
    assert web.state is VmState.RUNNING and web.vcpus == 2 and web.memory_mib == 512
    assert web.disks[0].source == "/img/web-01.qcow2"
    assert web.nics[0].source == "default" and web.nics[0].mac == "52:54:00:00:00:01"
    assert not web.stale
    s = sim.summary("sim")
    assert (s.hosts_up, s.hosts_total, s.vms_running, s.vms_total) == (2, 2, 3, 3)


def test_vm_actions_are_tasks_with_libvirts_refusals(sim):
    web = sim.find_vm("web-01")
    t = asyncio.run(sim.vm_action(web.uuid, "start"))
    assert t.status is TaskStatus.FAILED and "already running" in t.error
    for action, state in (("suspend", VmState.PAUSED), ("resume", VmState.RUNNING),
                          ("shutdown", VmState.SHUTOFF), ("start", VmState.RUNNING),
                          ("destroy", VmState.SHUTOFF)):
        t = asyncio.run(sim.vm_action(web.uuid, action))
        assert t.status is TaskStatus.SUCCEEDED, (action, t.error)
        assert sim.vm(web.uuid).state is state, action
        assert t.steps[-1].status is TaskStatus.SUCCEEDED and t.progress == 1.0
    kinds = [t.kind for t in sim.tasks(target=web.uuid)]
    assert kinds == ["vm.destroy", "vm.start", "vm.shutdown", "vm.resume", "vm.suspend",
                     "vm.start"]


def test_usage_is_sampled(sim):
    _wait(lambda: sim.host("sim", "hv-1").seen_at is not None)
    first = sim.host("sim", "hv-1").seen_at
    _wait(lambda: sim.host("sim", "hv-1").seen_at > first, 5)   # sampling goes on


def test_unreachable_and_bad_key_are_said_plainly(tmp_path):
    inv = Inventory(tmp_path / "inv.db")
    inv.save_cluster(Cluster(name="far", known_hosts=str(tmp_path / "new" / "known_hosts")))
    inv.save_host(Host(cluster="far", name="closed", address="127.0.0.1", port=1))
    inv.save_cluster(Cluster(name="badkey", ssh_key=str(tmp_path / "no-such-key"),
                             known_hosts=str(tmp_path / "known_hosts")))
    inv.save_host(Host(cluster="badkey", name="h", address="127.0.0.1", port=1))
    with Engine(inv, reconnect_interval=0.2) as eng:
        eng.call(eng.wait_ready(timeout=10))
        closed = eng.host("far", "closed")
        assert closed.status is HostStatus.UNREACHABLE
        assert "Cannot reach root@127.0.0.1:1" in closed.problem
        bad = eng.host("badkey", "h")
        assert bad.status is HostStatus.AUTH_FAILED
        assert "no-such-key" in bad.problem
        assert eng.summary("far").problems == (f"closed: unreachable — {closed.problem}",)


def test_actions_on_a_host_that_is_down_change_nothing(tmp_path):
    """libvirt cannot be opened: the host says so, its VMs keep their last known state
    marked stale, and an action on them fails before touching anything."""
    from mvmtui.engine.model import Vm
    inv = Inventory(tmp_path / "inv.db")
    inv.save_cluster(Cluster(name="sim"))
    inv.save_host(Host(cluster="sim", name="hv-9", address=f"test://{tmp_path}/gone.xml"))
    inv.save_vms([Vm(cluster="sim", host="hv-9", uuid="u-9", name="old-01",
                     state=VmState.RUNNING, seen_at=1.0)])
    with Engine(inv, reconnect_interval=0.2) as eng:
        eng.call(eng.wait_ready(timeout=10))
        h = eng.host("sim", "hv-9")
        assert h.status is HostStatus.LIBVIRT_DOWN and "does not answer" in h.problem
        vm = eng.vm("u-9")
        assert vm.stale and vm.state is VmState.RUNNING
        t = asyncio.run(eng.vm_action("u-9", "destroy"))
        assert t.status is TaskStatus.FAILED and "nothing was changed" in t.error
        assert eng.summary("sim").vms_running == 0     # stale VMs are not counted live


def test_password_login_is_used_and_never_written(tmp_path):
    """An SSH server on loopback that takes only a password: the engine logs in with the
    password it was given (then finds no libvirtd there), a wrong one is an auth
    failure, and the password is in no file."""
    import asyncssh
    import threading

    host_key = asyncssh.generate_private_key("ssh-ed25519")
    known = tmp_path / "known_hosts"
    ready, stop = threading.Event(), threading.Event()
    port_box = []

    class PasswordOnly(asyncssh.SSHServer):
        def begin_auth(self, username):
            return True

        def password_auth_supported(self):
            return True

        def validate_password(self, username, password):
            return username == "root" and password == "s3cret-pass"

    def serve():
        async def main():
            server = await asyncssh.create_server(PasswordOnly, "127.0.0.1", 0,
                                                  server_host_keys=[host_key])
            port_box.append(server.sockets[0].getsockname()[1])
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)
            server.close()
        asyncio.run(main())

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    ready.wait(5)
    port = port_box[0]
    known.write_text(f"[127.0.0.1]:{port} "
                     f"{host_key.export_public_key().decode().strip()}\n")
    try:
        for password, expect in (("s3cret-pass", HostStatus.LIBVIRT_DOWN),
                                 ("wrong", HostStatus.AUTH_FAILED)):
            inv = Inventory(tmp_path / f"{expect.value}.db")
            inv.save_cluster(Cluster(name="pw", known_hosts=str(known)))
            inv.save_host(Host(cluster="pw", name="h", address="127.0.0.1", port=port))
            eng = Engine(inv, reconnect_interval=5)
            eng.set_password("pw", password)
            with eng:
                eng.call(eng.wait_ready(timeout=10))
                assert eng.host("pw", "h").status is expect, eng.host("pw", "h").problem
        for f in tmp_path.iterdir():
            assert b"s3cret-pass" not in f.read_bytes(), f
    finally:
        stop.set()
        t.join(5)


def _scripted(tmp_path, world, hosts=("hv-1", "hv-2")):
    inv = Inventory(tmp_path / "inv.db")
    inv.save_cluster(Cluster(name="sim"))
    for i, name in enumerate(hosts, 1):
        inv.save_host(Host(cluster="sim", name=name, address=f"10.0.0.{i}"))
    eng = Engine(inv, connect=world.connect, reconnect_interval=0.2, stats_interval=0.2)
    eng.start()
    eng.call(eng.wait_ready(timeout=10))
    return eng


def test_a_copy_on_another_host_never_hides_a_running_vm(tmp_path):
    """Rule 7: web-01 runs on hv-1 and is also defined, shut off, on hv-2. The
    console keeps showing it on hv-1 (running, or stale while hv-1 is unreachable),
    so nothing offers to start the copy on hv-2. A copy that is *running* on hv-2
    (it moved) does take over."""
    from mvmtui.engine.model import Vm
    from mvmtui.engine.scripted import ScriptedWorld
    uuid = "00000000-0000-4000-8000-000000000001"

    def vm(state):
        return Vm(cluster="sim", host="", uuid=uuid, name="web-01", state=state)

    world = ScriptedWorld()
    world.add_host("sim", "hv-1", vms=[vm(VmState.RUNNING)])
    world.add_host("sim", "hv-2", vms=[vm(VmState.SHUTOFF)])
    eng = _scripted(tmp_path, world)
    try:
        running = eng.vm(uuid)
        assert (running.host, running.state, running.stale) == ("hv-1", VmState.RUNNING, False)
        world.power_cut("sim", "hv-1")
        _wait(lambda: eng.host("sim", "hv-1").status is HostStatus.UNREACHABLE)
        asyncio.run(eng.refresh("sim"))                     # hv-2 read again: the copy
        stale = eng.vm(uuid)
        assert (stale.host, stale.state, stale.stale) == ("hv-1", VmState.RUNNING, True)
        world.change_vm("sim", "hv-2", uuid, event="lifecycle", state=VmState.RUNNING)
        _wait(lambda: eng.vm(uuid).host == "hv-2")
        moved = eng.vm(uuid)
        assert (moved.state, moved.stale) == (VmState.RUNNING, False)
    finally:
        eng.stop()


def test_replacing_a_cluster_keeps_unchanged_hosts_live_and_reconnects_moved_ones(tmp_path):
    node = _node(tmp_path / "n1.xml", [(1, "web-01")])
    first = _node(tmp_path / "n2.xml", [(3, "cache-01")])
    other = _node(tmp_path / "n3.xml", [(2, "db-01")])
    inv = Inventory(tmp_path / "inv.db")
    with Engine(inv, reconnect_interval=0.2) as eng:
        eng.add_cluster(Cluster(name="sim"), [Host(cluster="sim", name="hv-1", address=node),
                                              Host(cluster="sim", name="hv-2", address=first)])
        eng.call(eng.wait_ready(timeout=10))
        assert eng.host("sim", "hv-1").status is HostStatus.UP
        seen = eng.host("sim", "hv-1").seen_at
        # hv-2 moves to another address; hv-1 stays as it was.
        eng.add_cluster(Cluster(name="sim"), [Host(cluster="sim", name="hv-1", address=node),
                                              Host(cluster="sim", name="hv-2", address=other)])
        assert eng.host("sim", "hv-1").status is HostStatus.UP
        assert eng.host("sim", "hv-1").seen_at >= seen
        _wait(lambda: eng.host("sim", "hv-2").status is HostStatus.UP)
        assert [v.name for v in eng.vms("sim", "hv-2")] == ["db-01"]
        eng.add_cluster(Cluster(name="sim"), [Host(cluster="sim", name="hv-1", address=node)])
        assert [h.name for h in eng.hosts("sim")] == ["hv-1"]
        assert eng.vms("sim", "hv-2") == []
        eng.remove_cluster("sim")
        assert eng.clusters() == [] and eng.vms() == []


def test_a_moved_vm_belongs_to_its_new_host_only(tmp_path):
    """After web-01 moved from hv-1 to hv-2, a re-read of hv-1 (which no longer has
    it) keeps it; hv-2 losing it removes it; host status changes flag only the VMs
    the host has now."""
    from mvmtui.engine.model import Vm
    from mvmtui.engine.scripted import ScriptedWorld
    uuid = "00000000-0000-4000-8000-000000000001"
    web = Vm(cluster="sim", host="", uuid=uuid, name="web-01", state=VmState.RUNNING)
    db = Vm(cluster="sim", host="", uuid="u-db", name="db-01", state=VmState.RUNNING)
    world = ScriptedWorld()
    one = world.add_host("sim", "hv-1", vms=[web, db])
    two = world.add_host("sim", "hv-2")
    eng = _scripted(tmp_path, world)
    try:
        assert eng.vm(uuid).host == "hv-1"
        with world.lock:                               # a migration, as the hosts see it
            two.vms[uuid] = replace(one.vms.pop(uuid), host="hv-2")
        asyncio.run(eng.refresh("sim"))
        assert eng.vm(uuid).host == "hv-2"
        world.power_cut("sim", "hv-1")
        _wait(lambda: eng.host("sim", "hv-1").status is HostStatus.UNREACHABLE)
        assert (eng.vm(uuid).stale, eng.vm("u-db").stale) == (False, True)
        with world.lock:
            two.vms.pop(uuid)
        asyncio.run(eng.refresh("sim"))
        assert [v.name for v in eng.vms("sim")] == ["db-01"]
    finally:
        eng.stop()


# ---- a big host: the fast listing first, definitions after (issue 8) ---------------
def _big_node(path: Path, count: int) -> str:
    """A test-driver node with `count` domains (MACs from the index)."""
    doms = "".join(
        DOMAIN.format(name=f"vm-{n:04d}", uuid=f"00000000-0000-4000-8000-{n:012d}", n=0)
        .replace("52:54:00:00:00:00", f"52:54:00:00:{n >> 8:02x}:{n & 255:02x}")
        for n in range(count))
    path.write_text(NODE.format(domains=doms))
    return f"test://{path}"


def test_a_big_host_is_listed_live_at_once_and_its_definitions_follow(tmp_path):
    """Over DETAIL_CHUNK VMs, the host is up with every VM's state before their XML is
    read; never a VM shown stale once read; the definitions then arrive for all, and
    the planner refuses (saying why) only until then."""
    from mvmtui.engine.errors import EngineError
    from mvmtui.engine.model import VmChanged
    from mvmtui.engine.sync import DETAIL_CHUNK
    count = DETAIL_CHUNK * 3 + 7
    inv = Inventory(tmp_path / "inv.db")
    inv.save_cluster(Cluster(name="big"))
    inv.save_host(Host(cluster="big", name="hv-1", address=_big_node(tmp_path / "n.xml", count)))
    eng = Engine(inv, stats_interval=3600, reconcile_interval=3600)
    seen: list = []
    eng.subscribe(lambda e: seen.append(e) if isinstance(e, VmChanged) else None)
    eng.start()
    try:
        eng.call(eng.wait_ready(timeout=30))
        assert eng.host("big", "hv-1").status is HostStatus.UP
        vms = eng.vms("big")
        assert len(vms) == count and all(v.state is VmState.RUNNING for v in vms)
        assert not any(e.vm.stale for e in seen), "a VM just read was shown stale"
        eng.call(eng.wait_ready(timeout=60, complete=True))
        vms = eng.vms("big")
        assert all(v.config_at is not None and v.disks and v.nics for v in vms)
        assert eng.find_vm("vm-0000").disks[0].source == "/img/vm-0000.qcow2"
        assert not any(e.vm.stale for e in seen)
        eng.planner("big")                    # definitions read: planning works
        eng._details_pending[("big", "hv-1")] = 5   # as while they are being read
        with pytest.raises(EngineError, match="Still reading VM definitions on hv-1"):
            eng.planner("big")
    finally:
        eng.stop()
    # Written by the writer thread, all of them, with their disks.
    again = Inventory(tmp_path / "inv.db")
    assert len(again.vms("big")) == count and all(v.disks for v in again.vms("big"))
    assert len(again.definition_digests()) == count


def test_a_warm_start_shows_the_last_known_rows_stale_then_live(tmp_path):
    """Second start on the same inventory: the VMs are there at once, stale, with their
    disks; once the host answers they are live, and keep their disks meanwhile."""
    from mvmtui.engine.model import VmChanged
    inv_path = tmp_path / "inv.db"
    inv = Inventory(inv_path)
    inv.save_cluster(Cluster(name="big"))
    inv.save_host(Host(cluster="big", name="hv-1", address=_big_node(tmp_path / "n.xml", 450)))
    eng = Engine(inv, stats_interval=3600, reconcile_interval=3600)
    eng.start()
    eng.call(eng.wait_ready(timeout=60, complete=True))
    eng.stop()
    eng = Engine(inv_path, stats_interval=3600, reconcile_interval=3600)
    vms = eng.vms("big")
    assert len(vms) == 450 and all(v.stale and v.disks for v in vms)
    seen: list = []
    eng.subscribe(lambda e: seen.append(e) if isinstance(e, VmChanged) else None)
    eng.start()
    try:
        eng.call(eng.wait_ready(timeout=30))
        vms = eng.vms("big")
        assert all(not v.stale and v.disks for v in vms)
        assert all(e.vm.disks for e in seen), "a VM lost its disks while re-read"
    finally:
        eng.stop()
