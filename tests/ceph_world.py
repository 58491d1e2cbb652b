"""A scripted Ceph for the console's tests: the REAL documents captured from the lab's
Ceph 16 (tests/fixtures/ceph/*.json) served as the engine's reads, and the wizard's
commands applied to them as Ceph would, so a pilot test can walk a whole decommission
(and a snapshot can show any step of it) without a lab.

    eng = ceph_engine(path)            # cluster "hci": kvm-01..kvm-04, kvm-03 in
    eng.ceph.load("osd_down")          # maintenance; Ceph as captured "healthy"

Engine(ceph_reader=…, ceph_runner=…) replaces SSH to a Ceph host (ceph/room.py). The
world keeps one document; `reads()` answers a refresh with the parts asked for, and
`run()` changes it: crush reweight → the OSD's crush_weight 0 in osd df; osd out → in 0
and reweight 0 in osd dump; the service stopped → up 0 and status "down"; osd crush
remove → out of its host's children, into osd df's "stray"; mon remove → out of the
monmap and the quorum; crush rm HOST → the host bucket gone (ENOTEMPTY while it holds
an OSD); auth del; osd rm → gone everywhere (EBUSY while up); config-key set/rm → the
marks; set-group / unset-group noout. Taking data off an OSD makes the PGs move: the
next `moving_reads` refreshes show backfilling.json's PG map and health (a real
backfill's), or every refresh until `settle()` when `hold` is set.

With the healthy document the health is worked out from the world (data moving, an
OSD down and in, noout on a host); the other captured states keep Ceph's own words.
"""
from __future__ import annotations

import copy
import json
import shlex
import time
from dataclasses import replace
from pathlib import Path

from conftest import FIXED, GIB
from ha_world import wait_for  # the same poll (test files take it from here too)

from mvmtui.engine import Engine
from mvmtui.engine.inventory import Inventory
from mvmtui.engine.model import (IN_MAINTENANCE, Cluster, ClusterPolicy, Disk, Host, Vm,
                                 VmState)
from mvmtui.engine.policy import to_stored
from mvmtui.engine.scripted import ScriptedWorld

FIXTURES = Path(__file__).parent / "fixtures" / "ceph"
CLUSTER = "hci"
HOSTS = ("kvm-01", "kvm-02", "kvm-03", "kvm-04")
STATES = ("healthy", "flags", "osd_down", "backfilling", "mon_removed")
MOVING_READS = 2           # refreshes that show data moving after an OSD is emptied


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _uuid(n: int) -> str:
    return f"00000000-0000-4000-a000-{n:012d}"


# kvm-03 runs nothing (it is in maintenance): the one to take out of Ceph.
VMS = {"kvm-01": [("web-01", 1, VmState.RUNNING)], "kvm-02": [("db-01", 2, VmState.RUNNING)],
       "kvm-04": [("cache-01", 3, VmState.SHUTOFF)]}


class ScriptedCeph:
    """One cluster's Ceph as a document the engine reads, changed by its commands."""

    def __init__(self, state: str = "healthy", clock=lambda: FIXED) -> None:
        self.clock = clock
        self.commands: list[tuple[str | None, str]] = []    # (host or None, command)
        self.refuse: dict[str, tuple[int, str]] = {}        # command prefix -> rc, err
        self.moving_reads = MOVING_READS
        self.hold = False          # data keeps moving until settle()
        self.load(state)

    # ---- the document ----------------------------------------------------------------
    def load(self, state: str) -> None:
        """Ceph as captured in that state (the marks' times moved to the test clock)."""
        self.state = state
        self.doc = fixture(state)["reads"]
        self.host = fixture(state).get("host", "kvm-01")
        self.backfill = fixture("backfilling")["reads"]
        self.moving = 0
        marks = self.doc.get("marks", {}).get("out") or {}
        self.marks: dict[str, str] = {}
        for key, value in marks.items():
            # Captured with `since` 7300 s and `expires` 100 s before the capture:
            # the same distances from the test clock (an expired noout).
            data = json.loads(value)
            if "since" in data and "expires" in data:
                data["since"], data["expires"] = FIXED - 7300, FIXED - 100
            self.marks[key] = json.dumps(data)
        self.auth = {f"osd.{o['osd']}" for o in self._dump()["osds"]}
        self.auth |= {"client.admin", "client.bootstrap-osd"}
        self.auth |= {f"mgr.{h}" for h in HOSTS[:2]}

    def _out(self, name: str) -> dict:
        return self.doc[name]["out"]

    def _dump(self) -> dict:
        return self._out("osd_dump")

    def _nodes(self) -> list[dict]:
        return self._out("osd_df")["nodes"]

    def _stray(self) -> list[dict]:
        return self._out("osd_df").setdefault("stray", [])

    def _osd_node(self, i: int) -> dict | None:
        return next((n for n in self._nodes() + self._stray()
                     if n.get("type") == "osd" and n.get("id") == i), None)

    def _dump_osd(self, i: int) -> dict | None:
        return next((o for o in self._dump()["osds"] if o.get("osd") == i), None)

    def _host_node(self, name: str) -> dict | None:
        return next((n for n in self._nodes() if n.get("type") == "host"
                     and n.get("name") == name), None)

    def osd_weight(self, i: int) -> float:
        n = self._osd_node(i)
        return float(n.get("crush_weight") or 0) if n else 0.0

    def settle(self) -> None:
        """The data has moved: every PG active+clean again."""
        self.hold = False
        self.moving = 0

    def start_moving(self) -> None:
        self.moving = self.moving_reads

    def set_pool_size(self, pool: str, size: int) -> None:
        """`ceph osd pool set POOL size N`, as an operator might have done."""
        for p in self._out("pools"):
            if p.get("pool_name") == pool:
                p["size"] = size

    # ---- what a refresh reads ----------------------------------------------------------
    def _health(self) -> dict:
        """The health as Ceph would say it now (worked out for the healthy document)."""
        if self.state != "healthy":
            return copy.deepcopy(self._out("health"))
        checks: dict = {}
        if self.moving:
            checks.update(copy.deepcopy(self.backfill["health"]["out"]["checks"]))
        down = [o for o in self._dump()["osds"] if not o.get("up") and o.get("in")]
        if down:
            checks["OSD_DOWN"] = {
                "detail": [{"message": f"osd.{o['osd']} (root=default,host="
                                       f"{self._host_of(o['osd'])}) is down"} for o in down],
                "muted": False, "severity": "HEALTH_WARN",
                "summary": {"count": len(down), "message": f"{len(down)} osds down"}}
        flagged = self._dump().get("crush_node_flags") or {}
        if flagged:
            checks["OSD_FLAGS"] = {
                "detail": [{"message": f"host {h} has flags {','.join(f)}"}
                           for h, f in flagged.items()],
                "muted": False, "severity": "HEALTH_WARN",
                "summary": {"count": len(flagged), "message":
                            f"{len(flagged)} OSDs or CRUSH {{nodes, device-classes}} have "
                            f"{{NOUP,NODOWN,NOIN,NOOUT}} flags set"}}
        return {"checks": checks, "mutes": [],
                "status": "HEALTH_WARN" if checks else "HEALTH_OK"}

    def _host_of(self, i: int) -> str:
        for n in self._nodes():
            if n.get("type") == "host" and i in n.get("children", ()):
                return n["name"]
        return ""

    def _status(self) -> dict:
        st = copy.deepcopy(self._out("status"))
        if self.moving:
            st["pgmap"] = copy.deepcopy(self.backfill["status"]["out"]["pgmap"])
        st["health"] = {k: v for k, v in self._health().items() if k != "detail"}
        osds = self._dump()["osds"]
        st["osdmap"].update(num_osds=len(osds), num_up_osds=sum(o["up"] for o in osds),
                            num_in_osds=sum(o["in"] for o in osds))
        st["quorum_names"] = list(self._out("quorum")["quorum_names"])
        return st

    def read(self, name: str) -> dict:
        if name == "status":
            return {"ret": 0, "out": self._status(), "err": ""}
        if name == "health":
            return {"ret": 0, "out": self._health(), "err": ""}
        if name == "marks":
            return {"ret": 0, "out": dict(self.marks), "err": ""}
        if name in ("pg_stat",) and self.moving:
            return copy.deepcopy(self.backfill[name])
        return copy.deepcopy(self.doc[name])

    def extra(self, name: str, cmd: dict) -> dict:
        """The wizard's own reads: auth ls, osd safe-to-destroy, mon ok-to-rm."""
        prefix = cmd.get("prefix")
        if prefix == "auth ls":
            return {"ret": 0, "err": "", "out": {"auth_dump": [
                {"entity": e} for e in sorted(self.auth)]}}
        if prefix == "osd safe-to-destroy":
            safe, active = [], []
            for i in (int(x) for x in cmd.get("ids", ())):
                (safe if self._empty(i) else active).append(i)
            return {"ret": 0, "err": "", "out": {"safe_to_destroy": safe, "active": active,
                                                 "missing_stats": [], "stored_pgs": []}}
        if prefix == "mon ok-to-rm":
            return self._mon_ok_to_rm(str(cmd.get("id")))
        return {"ret": -22, "out": None, "err": f"scripted Ceph has no {prefix!r}"}

    def _empty(self, i: int) -> bool:
        """No PG is mapped to it: gone, or weighted 0 or out once nothing moves."""
        n, o = self._osd_node(i), self._dump_osd(i)
        if n is None and o is None:
            return True
        drained = (n is not None and not n.get("crush_weight")) or (o is not None and not o["in"])
        return drained and not self.moving

    def _mon_ok_to_rm(self, name: str) -> dict:
        mons = [m["name"] for m in self._out("mon_dump")["mons"]]
        if name not in mons:
            return {"ret": 0, "out": None, "err": f"mon.{name} does not exist or has already "
                                                  f"been removed"}
        quorum = set(self._out("quorum")["quorum_names"]) - {name}
        left = len(mons) - 1
        if not left or len(quorum) * 2 <= left:
            return {"ret": -16, "out": None,
                    "err": f"removing mon.{name} would break quorum (current quorum: "
                           f"{sorted(self._out('quorum')['quorum_names'])}, would be "
                           f"{sorted(quorum)})"}
        return {"ret": 0, "out": None, "err": f"safe to remove mon.{name}"}

    async def reader(self, cluster: str, names, extra: dict) -> dict:
        reads = {n: self.read(n) for n in names}
        reads.update({n: self.extra(n, c) for n, c in extra.items()})
        if self.moving and not self.hold:
            self.moving -= 1
        return {"host": self.host, "reads": reads}

    # ---- what a command changes ------------------------------------------------------
    async def runner(self, cluster: str, host: str | None, command: str):
        return self.run(command, host)

    def run(self, command: str, host: str | None = None) -> tuple[int, str, str]:
        self.commands.append((host, command))
        for prefix, answer in self.refuse.items():
            if command.startswith(prefix):
                return answer[0], "", answer[1]
        argv = shlex.split(command)
        try:
            if argv[0] == "systemctl":
                return self._service(argv[1], argv[2])
            if argv[0] == "ceph":
                return self._ceph(argv[1:])
        except (IndexError, ValueError) as exc:
            return 22, "", f"Error EINVAL: {exc}"
        return 127, "", f"{argv[0]}: command not found"

    def _service(self, action: str, unit: str) -> tuple[int, str, str]:
        kind, _, ident = unit.removeprefix("ceph-").partition("@")
        if action == "stop" and kind == "osd":
            o, n = self._dump_osd(int(ident)), self._osd_node(int(ident))
            if o is not None:
                o["up"], o["state"] = 0, ["exists"]
            if n is not None:
                n["status"] = "down"
        elif action == "stop" and kind == "mgr":
            mgr = self._out("mgr")
            mgr["standbys"] = [s for s in mgr.get("standbys", []) if s["name"] != ident]
        elif action == "stop" and kind == "mon":
            q = self._out("quorum")
            q["quorum_names"] = [m for m in q["quorum_names"] if m != ident]
        return 0, "", ""

    def _ceph(self, a: list[str]) -> tuple[int, str, str]:
        words = " ".join(a[:3])
        if a[:3] == ["osd", "crush", "reweight"]:
            i = _osd(a[3])
            n = self._osd_node(i)
            if n is None:
                return 2, "", f"Error ENOENT: device 'osd.{i}' does not appear in the crush map"
            if n.get("crush_weight") and not float(a[4]):
                self.start_moving()
            n["crush_weight"] = float(a[4])
            return 0, "", f"reweighted item id {i} name 'osd.{i}' to {a[4]} in crush map"
        if a[:2] == ["osd", "out"]:
            i = _osd(a[2])
            o, n = self._dump_osd(i), self._osd_node(i)
            if o is None:
                return 2, "", f"Error ENOENT: osd.{i} does not exist"
            if o["in"] and n is not None and n.get("crush_weight"):
                self.start_moving()
            o["in"], o["weight"] = 0, 0
            if n is not None:
                n["reweight"] = 0
            return 0, "", f"marked out osd.{i}. "
        if a[:3] == ["osd", "crush", "remove"]:
            i = _osd(a[3])
            for h in self._nodes():
                if h.get("type") == "host" and i in h.get("children", []):
                    h["children"].remove(i)
            n = self._osd_node(i)
            if n is not None and n in self._nodes():
                self._nodes().remove(n)
                self._stray().append(dict(n, depth=0))
            return 0, "", f"removed item id {i} name 'osd.{i}' from crush map"
        if a[:3] == ["osd", "crush", "rm"]:
            node = self._host_node(a[3])
            if node is None:
                return 0, "", f"device '{a[3]}' does not appear in the crush map"
            if node.get("children"):
                return 39, "", "Error ENOTEMPTY: (39) Directory not empty"
            self._nodes().remove(node)
            for root in self._nodes():
                if node["id"] in root.get("children", []):
                    root["children"].remove(node["id"])
            return 0, "", f"removed item id {node['id']} name '{a[3]}' from crush map"
        if a[:2] == ["osd", "rm"]:
            i = _osd(a[2])
            o = self._dump_osd(i)
            if o is not None and o["up"]:
                return 16, "", f"Error EBUSY: osd.{i} is still up; must be down before removal."
            self._dump()["osds"] = [x for x in self._dump()["osds"] if x.get("osd") != i]
            st = self._out("osd_df")
            st["stray"] = [n for n in self._stray() if n.get("id") != i]
            st["nodes"] = [n for n in self._nodes() if not (n.get("type") == "osd"
                                                             and n.get("id") == i)]
            return 0, "", f"removed osd.{i}"
        if a[:2] == ["auth", "del"]:
            self.auth.discard(a[2])
            return 0, "", ""
        if a[:2] == ["mon", "remove"]:
            dump = self._out("mon_dump")
            if a[2] not in [m["name"] for m in dump["mons"]]:
                return 2, "", f"Error ENOENT: cannot remove mon.{a[2]}: does not exist"
            dump["mons"] = [m for m in dump["mons"] if m["name"] != a[2]]
            q = self._out("quorum")
            q["quorum_names"] = [m for m in q["quorum_names"] if m != a[2]]
            left = len(dump["mons"])
            return 0, "", f"removing mon.{a[2]} at {a[2]}, there will be {left} monitors"
        if a[:2] == ["mgr", "fail"]:
            mgr = self._out("mgr")
            if mgr.get("active_name") == a[2] and mgr.get("standbys"):
                mgr["active_name"] = mgr["standbys"].pop(0)["name"]
            return 0, "", ""
        if a[:2] == ["config-key", "set"]:
            self.marks[a[2]] = a[3]
            return 0, "", f"set {a[2]}"
        if a[:2] == ["config-key", "rm"]:
            self.marks.pop(a[2], None)
            return 0, "", "key deleted"
        if a[:2] in (["osd", "set-group"], ["osd", "unset-group"]):
            flags = self._dump().setdefault("crush_node_flags", {})
            for who in a[3:]:
                have = set(flags.get(who, []))
                have = have | {a[2]} if a[1] == "set-group" else have - {a[2]}
                if have:
                    flags[who] = sorted(have)
                else:
                    flags.pop(who, None)
            return 0, "", ""
        if a[:2] == ["osd", "ok-to-stop"]:
            ids = [int(x) for x in a[2:] if x.isdigit()]
            if self._health()["status"] == "HEALTH_OK" or self.state == "flags":
                answer = fixture("ok_to_stop_healthy")
            else:
                answer = fixture("ok_to_stop_other_down")
            out = json.loads(answer["stdout"])
            out["osds"] = ids
            return answer["rc"], "\n" + json.dumps(out) + "\n", answer["stderr"]
        return 22, "", f"Error EINVAL: scripted Ceph does not know `ceph {words}`"


def _osd(name: str) -> int:
    return int(name.removeprefix("osd."))


# ---- the cluster around it ---------------------------------------------------------
def ceph_inventory(path: Path, *, settle: int = 0) -> Path:
    """Cluster "hci" (kvm+ceph): kvm-01..kvm-04 at the fixtures' addresses; `settle`:
    its ceph-settle (0 here: a clean reading need not last, so a walk is quick)."""
    inv = Inventory(path)
    inv.save_cluster(Cluster(CLUSTER, layout="kvm+ceph",
                             description="Hyperconverged, Ceph 16 on every host"))
    for n, name in enumerate(HOSTS, 1):
        inv.save_host(Host(cluster=CLUSTER, name=name, address=f"10.79.0.1{n}"))
    inv.save_cluster_policy(CLUSTER, to_stored(replace(ClusterPolicy(), ceph_settle=settle)))
    inv.close()
    return path


def hypervisors(clock=lambda: FIXED) -> ScriptedWorld:
    world = ScriptedWorld(clock)
    for name in HOSTS:
        vms = [Vm(cluster=CLUSTER, host=name, uuid=_uuid(n), name=vm, state=state,
                  vcpus=2, memory_mib=4096, max_memory_mib=4096,
                  disks=(Disk("vda", f"vms/{vm}-root", kind="network",
                              capacity_bytes=20 * GIB),))
               for vm, n, state in VMS.get(name, [])]
        world.add_host(CLUSTER, name, cpus=16, memory_mib=65536, vms=vms)
    return world


def ceph_engine(path: Path, state: str = "healthy", *, settle: int = 0,
                maintenance: dict[str, str] | None = None, clock=lambda: FIXED,
                readonly: bool = False, read: bool = True) -> Engine:
    """The real engine over scripted hosts and the scripted Ceph (eng.ceph; eng.world),
    the clock fixed; kvm-03 in maintenance unless `maintenance` says otherwise. `read`:
    wait for its first reading of Ceph (a screen then shows it at once)."""
    world = hypervisors(clock)
    for name, how in ({"kvm-03": IN_MAINTENANCE} if maintenance is None
                      else maintenance).items():
        world.hosts[(CLUSTER, name)].files["maintenance"] = (how, FIXED)
    ceph = ScriptedCeph(state, clock)
    eng = Engine(ceph_inventory(path, settle=settle), clock=clock, connect=world.connect,
                 stats_interval=3600, reconcile_interval=3600, reconnect_interval=3600,
                 readonly=readonly, ceph_reader=ceph.reader, ceph_runner=ceph.runner)
    eng.world, eng.ceph = world, ceph
    # Who ran each step, as History and the wizard's log say it: one name on every
    # machine (it is "console · USER@HOST" otherwise).
    eng.journal.started_by = "console · root@admin-1"
    eng.start(clusters=[CLUSTER])
    eng.call(eng.wait_ready(timeout=10))
    # The engine's own first read of who watches (nobody): a banner that then stays.
    wait_for(lambda: eng.ha_status(CLUSTER).watcher.read_at is not None, 10)
    if read:
        eng.call(eng._ceph_read(CLUSTER), timeout=10)
    return eng


def run_step(eng: Engine, key: str, host: str = "kvm-03"):
    """One step of the wizard through the engine, as the console runs it; its end."""
    task = eng.call(eng._decom_step(CLUSTER, host, key), timeout=10)
    return eng.call(eng.journal.wait(task.id), timeout=30)


def run_steps_until(eng: Engine, key: str, host: str = "kvm-03") -> None:
    """The wizard's steps, in order, until `key` is the next one."""
    while True:
        plan = eng.call(eng._decom_plan(CLUSTER, host), timeout=10)[0]
        assert plan.next is not None, f"no next step before {key}"
        if plan.next.key == key:
            return
        end = run_step(eng, plan.next.key, host)
        assert end.status.value == "succeeded", (plan.next.key, end.error)


if __name__ == "__main__":      # try the screens by hand over the scripted Ceph
    import sys
    import tempfile

    from mvmtui.app import MvmApp

    eng = ceph_engine(Path(tempfile.mkdtemp()) / "inventory.db",
                      sys.argv[1] if len(sys.argv) > 1 else "healthy", settle=15,
                      clock=time.time)
    eng.ceph.moving_reads = 10
    try:
        MvmApp(eng, start_cluster=CLUSTER).run()
    finally:
        eng.stop()
