"""A real Ceph (Debian's ceph 16, Pacific) on the lab's hosts: `mvmtui lab up --ceph`.

A monitor on each of the first three hosts, a manager on the first two (active and
standby), one bluestore OSD per host on a sparse file (it survives a power cut and a
revive, which memstore would not), and a replicated pool `vms` (size 3, min_size 2)
for VM disks. Four hosts by default: one can be decommissioned and the three left
still hold every pool's three copies.

Each host keeps its own /var/lib/ceph and /var/log/ceph; /etc/ceph (ceph.conf and the
admin keyring) is the same on every host, as on a hyperconverged cluster. There is no
systemd in a lab host: `cephctl` stands in for `systemctl … ceph-TYPE@ID`, and the
cluster's policy says so (ceph_service), so the engine's commands are the same shape.
"""
from __future__ import annotations

import concurrent.futures
import json
import time
import uuid as uuidlib
from pathlib import Path

from .errors import LabError

POOL = "vms"                    # the RBD pool VM disks live in
DATASTORE = "ceph"              # libvirt's rbd pool over it, on every host
MONS = 3                        # monitors on the first three hosts
MGRS = 2
OSD_BYTES = 1 << 30             # each OSD's sparse block file
PGS = 32
# libvirt's secret for the admin key: one fixed UUID per lab, on every host.
CEPHCTL = r"""#!/bin/sh
# cephctl ACTION TYPE ID: the lab's stand-in for `systemctl ACTION ceph-TYPE@ID`
# (no systemd in a lab host). ACTION: start stop enable disable is-active; `boot`
# starts every daemon that is not disabled (a host's init runs it).
action=$1 type=$2 id=$3
dir=/var/lib/ceph/$type/ceph-$id
pidf=/run/ceph/$type.$id.pid
running() { [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; }
case "$action" in
  boot)
    for d in /var/lib/ceph/mon/ceph-* /var/lib/ceph/mgr/ceph-* /var/lib/ceph/osd/ceph-*; do
      [ -d "$d" ] && [ ! -e "$d/disabled" ] || continue
      t=$(basename "$(dirname "$d")"); i=${d##*/ceph-}
      "$0" start "$t" "$i" || echo "cephctl: $t.$i did not start" >&2
    done ;;
  start)
    [ -d "$dir" ] || { echo "cephctl: no $type.$id on this host" >&2; exit 5; }
    running && exit 0
    exec ceph-$type -i "$id" ;;
  stop)
    running || exit 0
    pid=$(cat "$pidf"); kill "$pid"
    n=0; while kill -0 "$pid" 2>/dev/null; do
      n=$((n + 1)); [ $n -gt 300 ] && { kill -9 "$pid"; break; }; sleep 0.1
    done
    rm -f "$pidf" ;;
  enable) rm -f "$dir/disabled" ;;
  disable) [ -d "$dir" ] && touch "$dir/disabled"; true ;;
  is-active) if running; then echo active; else echo inactive; exit 3; fi ;;
  *) echo "usage: cephctl start|stop|enable|disable|is-active TYPE ID" >&2; exit 2 ;;
esac
"""


class LabCeph:
    DATASTORE = DATASTORE
    """Ceph on a Lab's hosts. Paths: lab.root/ceph/etc is every host's /etc/ceph; each
    host's own /var/lib/ceph and /var/log/ceph sit under its directory."""

    def __init__(self, lab):
        self.lab = lab
        self.etc = lab.root / "ceph" / "etc"
        self.bin = lab.root / "ceph" / "cephctl"
        self.fsid = str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"{lab.name}.ceph.mvmtui"))
        self.secret = str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"{lab.name}.secret.mvmtui"))
        self._prefixes: dict[str, str] = {}     # image -> its data objects' prefix

    @property
    def conf(self) -> Path:
        return self.etc / "ceph.conf"

    @property
    def keyring(self) -> Path:
        return self.etc / "ceph.client.admin.keyring"

    def service_command(self) -> str:
        """The cluster policy's ceph_service for this lab (see module doc)."""
        return f"{self.bin} {{action}} {{type}} {{id}}"

    def mon_hosts(self) -> list:
        n = self.lab._count()
        return [self.lab.host(i) for i in range(1, min(MONS, n) + 1)]

    # ---- what a lab host's init needs ---------------------------------------------
    def host_dirs(self, d: Path) -> None:
        for sub in ("var-lib-ceph/mon", "var-lib-ceph/mgr", "var-lib-ceph/osd",
                    "var-lib-ceph/tmp", "log-ceph"):
            (d / sub).mkdir(parents=True, exist_ok=True)

    def init_lines(self, d: Path) -> str:
        """Shell lines for a host's init.sh: its Ceph directories, then its daemons."""
        return (f"mkdir -p /run/ceph\n"
                f"mount --bind {self.etc} /etc/ceph\n"
                f"mount --bind {d}/var-lib-ceph /var/lib/ceph\n"
                f"mount --bind {d}/log-ceph /var/log/ceph\n"
                f"{self.bin} boot\n")

    def prepare(self) -> None:
        """ceph.conf and cephctl, before the hosts start (their init binds /etc/ceph)."""
        self.etc.mkdir(parents=True, exist_ok=True)
        self.bin.write_text(CEPHCTL)
        self.bin.chmod(0o755)
        mons = self.mon_hosts()
        mon_host = ",".join(f"[v2:{h.address}:3300,v1:{h.address}:6789]" for h in mons)
        self.conf.write_text(f"""[global]
fsid = {self.fsid}
mon initial members = {", ".join(h.name for h in mons)}
mon host = {mon_host}
public network = 10.{self.lab.subnet}.0.0/24
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
osd pool default size = 3
osd pool default min size = 2
osd pool default pg num = {PGS}
osd pool default pgp num = {PGS}
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 1
run dir = /run/ceph
pid file = /run/ceph/$type.$id.pid
admin socket = /run/ceph/$cluster-$name.asok
log file = /var/log/ceph/$cluster-$name.log
mon data avail warn = 5
mon data avail crit = 2
mon allow pool delete = true
mon allow pool size one = false
ms bind ipv6 = false

[osd]
osd objectstore = bluestore
bluestore block create = true
bluestore block size = {OSD_BYTES}
bluestore fsck on mount = false
bluestore cache autotune = false
bluestore cache size = 67108864
osd memory target = 939524096

[client]
log file = /dev/null
admin socket =
""")

    # ---- bootstrap -------------------------------------------------------------------
    def bootstrap(self) -> None:
        """Monitors, managers, OSDs and the pool, on hosts that run; returns at HEALTH_OK."""
        lab = self.lab
        mons = self.mon_hosts()
        tmp = lab.root / "ceph" / "bootstrap"
        tmp.mkdir(parents=True, exist_ok=True)
        h0 = mons[0]
        # Keys: the monitors' shared key and the admin's (admin keyring in /etc/ceph).
        lab.exec(h0, "ceph-authtool", "--create-keyring", f"{tmp}/mon.keyring", "--gen-key",
                 "-n", "mon.", "--cap", "mon", "allow *")
        lab.exec(h0, "ceph-authtool", "--create-keyring", str(self.keyring), "--gen-key",
                 "-n", "client.admin", "--cap", "mon", "allow *", "--cap", "osd", "allow *",
                 "--cap", "mds", "allow *", "--cap", "mgr", "allow *")
        lab.exec(h0, "ceph-authtool", f"{tmp}/mon.keyring", "--import-keyring",
                 str(self.keyring))
        addv = []
        for h in mons:
            addv += ["--addv", h.name, f"[v2:{h.address}:3300,v1:{h.address}:6789]"]
        lab.exec(h0, "monmaptool", "--create", "--clobber", "--fsid", self.fsid, *addv,
                 f"{tmp}/monmap")
        for h in mons:
            lab.exec(h, "ceph-mon", "--mkfs", "-i", h.name, "--monmap", f"{tmp}/monmap",
                     "--keyring", f"{tmp}/mon.keyring")
            lab.exec(h, str(self.bin), "start", "mon", h.name)
        self._wait(lambda: len(self.json(h0, "quorum_status").get("quorum", ())) == len(mons),
                   60, "the monitors to form a quorum")
        # Quiet warnings that say nothing about a lab (and would hide real ones).
        self.ceph(h0, "config", "set", "mon", "mon_warn_on_pool_no_redundancy", "true")
        for i, h in enumerate(mons[:MGRS]):
            key = self.ceph(h, "auth", "get-or-create", f"mgr.{h.name}", "mon",
                            "allow profile mgr", "osd", "allow *", "mds", "allow *")
            mdir = h.dir / "var-lib-ceph" / "mgr" / f"ceph-{h.name}"
            mdir.mkdir(parents=True, exist_ok=True)
            (mdir / "keyring").write_text(key)
            lab.exec(h, str(self.bin), "start", "mgr", h.name)
        # One OSD per host, all at once (each mkfs takes seconds); osd.N on host N+1.
        n = lab._count()
        with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
            list(pool.map(lambda i: self.add_osd(lab.host(i), i - 1), range(1, n + 1)))
        self._wait(lambda: self.json(h0, "osd", "stat").get("num_up_osds") == n,
                   90, f"{n} OSDs to come up")
        self.ceph(h0, "osd", "pool", "create", POOL, str(PGS), str(PGS), "replicated")
        self.ceph(h0, "osd", "pool", "set", POOL, "size", "3")
        self.ceph(h0, "osd", "pool", "set", POOL, "min_size", "2")
        lab.exec(h0, "rbd", "pool", "init", POOL)
        self.wait_health_ok(timeout=120)

    def add_osd(self, h, osd_id: int) -> int:
        lab = self.lab
        osd_uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"{lab.name}.{h.name}.osd.mvmtui"))
        osd_id = int(self.ceph(h, "osd", "new", osd_uuid, str(osd_id)).strip())
        odir = f"/var/lib/ceph/osd/ceph-{osd_id}"
        lab.exec(h, "mkdir", "-p", odir)
        lab.exec(h, "ceph-authtool", "--create-keyring", f"{odir}/keyring", "--gen-key",
                 "-n", f"osd.{osd_id}")
        lab.exec(h, "ceph", "auth", "add", f"osd.{osd_id}", "osd", "allow *", "mon",
                 "allow profile osd", "mgr", "allow profile osd", "-i", f"{odir}/keyring")
        lab.exec(h, "ceph-osd", "-i", str(osd_id), "--mkfs", "--osd-uuid", osd_uuid)
        lab.exec(h, str(self.bin), "start", "osd", str(osd_id))
        return osd_id

    def libvirt_setup(self, h) -> None:
        """The admin key as a libvirt secret, and an rbd pool over `vms` (datastore "ceph")."""
        lab = self.lab
        key = self.ceph(h, "auth", "get-key", "client.admin").strip()
        secret = (f"<secret ephemeral='no' private='no'><uuid>{self.secret}</uuid>"
                  f"<usage type='ceph'><name>client.admin secret</name></usage></secret>")
        lab.exec(h, "sh", "-c", "cat > /tmp/secret.xml", input=secret)
        lab.virsh(h, "secret-define", "/tmp/secret.xml")
        lab.virsh(h, "secret-set-value", "--secret", self.secret, "--base64", key)
        hosts = "".join(f"<host name='{m.address}' port='6789'/>" for m in self.mon_hosts())
        pool = (f"<pool type='rbd'><name>{DATASTORE}</name><source><name>{POOL}</name>{hosts}"
                f"<auth type='ceph' username='admin'><secret uuid='{self.secret}'/></auth>"
                f"</source></pool>")
        lab.exec(h, "sh", "-c", "cat > /tmp/cephpool.xml", input=pool)
        lab.virsh(h, "pool-define", "/tmp/cephpool.xml")
        lab.virsh(h, "pool-start", DATASTORE)
        lab.virsh(h, "pool-autostart", DATASTORE)

    def disk_xml(self, image: str) -> str:
        hosts = "".join(f"<host name='{m.address}' port='6789'/>" for m in self.mon_hosts())
        return (f"<disk type='network' device='disk'>"
                f"<driver name='qemu' type='raw' cache='none'/>"
                f"<auth username='admin'><secret type='ceph' uuid='{self.secret}'/></auth>"
                f"<source protocol='rbd' name='{POOL}/{image}'>{hosts}</source>"
                f"<target dev='vda' bus='virtio'/></disk>")

    def create_image(self, h, image: str, mib: int) -> None:
        self.lab.exec(h, "rbd", "create", "--size", str(mib), f"{POOL}/{image}")

    # ---- reading it (tests, the demo) --------------------------------------------------
    def ceph(self, h, *args: str) -> str:
        return self.lab.exec(h, "ceph", *args).stdout

    def json(self, h, *args: str) -> dict:
        r = self.lab.exec(h, "ceph", *args, "-f", "json", check=False)
        try:
            return json.loads(r.stdout) if r.returncode == 0 else {}
        except ValueError:
            return {}

    def any_host(self):
        for name in self.lab.running_hosts():
            return self.lab.host(name)
        raise LabError("no lab host runs")

    def health(self) -> str:
        return self.json(self.any_host(), "health").get("status", "")

    def wait_health_ok(self, timeout: float = 120.0) -> None:
        last = {}

        def ok() -> bool:
            nonlocal last
            last = self.json(self.any_host(), "health", "detail")
            return last.get("status") == "HEALTH_OK"
        try:
            self._wait(ok, timeout, "HEALTH_OK")
        except LabError as exc:
            raise LabError(f"{exc}; last: {json.dumps(last.get('checks', {}))[:1500]}") from None

    def image_prefix(self, image: str) -> str:
        """Asked once per image: the counters are read every tenth of a second."""
        if image not in self._prefixes:
            info = self.lab.exec(self.any_host(), "rbd", "info", "--format", "json",
                                 f"{POOL}/{image}").stdout
            self._prefixes[image] = json.loads(info)["block_name_prefix"]
        return self._prefixes[image]

    def first_sector(self, image: str, prefix: str | None = None) -> str:
        """The text in the image's first sector, read from the OSDs ("" before its first
        write): where the lab guest keeps its disk counter."""
        prefix = prefix or self.image_prefix(image)
        r = self.lab.exec(self.any_host(), "sh", "-c",
                          f"rados -p {POOL} get {prefix}.0000000000000000 - 2>/dev/null "
                          f"| head -c 512 | tr -d '\\000'", check=False)
        return r.stdout

    @staticmethod
    def _wait(pred, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if pred():
                    return
            except (LabError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        raise LabError(f"Ceph: timed out after {timeout:.0f} s waiting for {what}")
