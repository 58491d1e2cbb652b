"""The storage fence's choices, over a Ceph that answers as the lab's did (the lab test
tests/lab/test_ceph_lab.py drives the real one): which clients are cut off, that only
Ceph listing them counts, and fence-storage=on as a second guard after a power fence."""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace

from mvmtui.engine import fence as fencing
from mvmtui.engine.ceph import fence as ceph_fence
from mvmtui.engine.ceph.room import CephResult
from mvmtui.engine.model import ClusterPolicy, Disk

HOST_IP = "10.76.0.11"
ADDR = f"{HOST_IP}:0/88820228"
OTHER = "10.76.0.12:0/1234"           # a client of another host: never cut off


@dataclass
class _Vm:
    name: str
    disks: tuple


class FakeCeph:
    """What ceph_fence asks of the engine, answering like Ceph 16 in the lab."""

    def __init__(self, listed=True, vms=None):
        self.ran: list[str] = []
        self.batches: list[dict] = []
        self.listed = listed
        self._vms = vms if vms is not None else [
            _Vm("web-01", (Disk(target="vda", source="vms/web-01", kind="network"),))]
        self.journal = type("J", (), {"started_by": "watcher · root@admin"})()

    def ceph_present(self, cluster):
        return True

    async def _ceph_read(self, cluster):
        return None

    def host(self, cluster, name):
        return type("H", (), {"address": HOST_IP, "name": name})()

    def vms(self, cluster, host):
        return self._vms

    def storage_issue(self, vm):
        return ""

    def policy(self, cluster):
        return ClusterPolicy()

    async def _ceph_run(self, cluster, argv, timeout=60, host=None):
        cmd = " ".join(argv)
        self.ran.append(cmd)
        if argv[:2] == ["sh", "-c"] and "rbd status" in cmd:
            status = {"watchers": [{"address": ADDR, "client": 4279, "cookie": 1},
                                   {"address": OTHER, "client": 9, "cookie": 2}]}
            locks = [{"id": "auto 140217864426112", "locker": "client.4279",
                      "address": ADDR}]
            out = f"@@ vms/web-01\n{json.dumps(status)}\n\n@@\n{json.dumps(locks)}\n"
            return CephResult(cmd, 0, out, "", "kvm-02")
        return CephResult(cmd, 0, "", "", "kvm-02")

    async def _ceph_doc(self, cluster, names=(), extra=None):
        self.batches.append(extra)
        reads = {k: {"ret": 0, "out": None, "err": ""} for k in extra}
        listed = [{"addr": ADDR, "until": "2026-12-08T20:16:32+0000"}] if self.listed else []
        reads["list"] = {"ret": 0, "out": json.dumps(listed) + "[]", "err": ""}
        return {"host": "kvm-02", "reads": reads}


def test_only_the_lost_hosts_clients_are_blocklisted_for_days_and_their_locks_broken():
    eng = FakeCeph()
    got = asyncio.run(ceph_fence.storage_fence(eng, "c", "kvm-01"))
    assert got.ok and "1 client(s) of kvm-01 on 1 image(s)" in got.how
    assert "1 exclusive lock(s) broken" in got.how
    (batch,) = eng.batches
    adds = [c for c in batch.values() if c.get("blocklistop") == "add"]
    assert [a["addr"] for a in adds] == [ADDR]            # not the other host's client
    assert adds[0]["expire"] > 3600                       # more than Ceph's default hour
    assert json.loads(batch["mark"]["val"])["addresses"] == [ADDR]
    (lock_rm,) = [c for c in eng.ran if "lock rm" in c]
    assert "--rbd_blocklist_on_break_lock=false" in lock_rm and "client.4279" in lock_rm


def test_a_blocklist_ceph_does_not_list_is_no_fence():
    got = asyncio.run(ceph_fence.storage_fence(FakeCeph(listed=False), "c", "kvm-01"))
    assert not got.ok and "does not list" in got.how


def test_a_disk_on_shared_storage_that_is_not_ceph_cannot_be_fenced_this_way():
    vms = [_Vm("web-02", (Disk(target="vda", source="/var/lib/libvirt/shared/web-02.raw",
                               kind="file"),))]
    got = asyncio.run(ceph_fence.storage_fence(FakeCeph(vms=vms), "c", "kvm-01"))
    assert not got.ok and "web-02" in got.how and "not Ceph" in got.how


def test_fence_storage_on_adds_the_storage_fence_after_a_power_fence():
    eng = FakeCeph()
    pol = replace(ClusterPolicy(), fence_method="command", fence_command="true",
                  fence_status="echo power is off", fence_storage=True)
    got = asyncio.run(fencing.fence(eng, "c", "kvm-01", HOST_IP, "command", pol))
    assert got.ok and "power-off" in got.how and "Ceph blocklist" in got.how
    # Off (the default): the power fence alone, Ceph untouched.
    eng = FakeCeph()
    got = asyncio.run(fencing.fence(eng, "c", "kvm-01", HOST_IP, "command",
                                    replace(pol, fence_storage=False)))
    assert got.ok and "Ceph" not in got.how and not eng.ran


def test_fence_method_ceph_is_the_storage_fence_alone():
    eng = FakeCeph()
    got = asyncio.run(fencing.fence(eng, "c", "kvm-01", HOST_IP, "ceph", ClusterPolicy()))
    assert got.ok and got.how.startswith("Ceph blocklist")
