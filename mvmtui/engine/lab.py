"""The lab: a real multi-host KVM cluster on this one machine, for tests and the demo.

A host is a network namespace plus new mount, UTS and PID namespaces. Its PID 1
(a shell that ends as sshd) bind-mounts private copies of libvirt's directories,
/root and /etc/hosts, then starts virtlogd, libvirtd and its own sshd. Hosts sit
on a bridge that carries the console's address. Everything the lab owns is named
after it (netns, links, state directory), so a crashed run is cleaned up by name.
Needs root.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path

from . import guest
from .errors import LabError
from .inventory import Inventory
from .model import Cluster, Host

SEED = [  # (name, vcpus, running, autostart) per host slot; names an operator knows
    # kvm-01 holds one VM of each placement strategy (STRATEGIES): the failover example
    [("web-01", 1, True, True), ("web-02", 1, True, False), ("db-01", 2, False, False)],
    [("db-02", 2, True, True), ("cache-01", 1, True, False), ("backup-01", 1, False, False)],
    [("ci-runner-01", 2, True, False), ("monitor-01", 1, True, True),
     ("staging-01", 1, False, False)],
]
GUEST_MIB = 96
# Placement of the seed's VMs (the rest are Auto): kept in each domain's <metadata>.
STRATEGIES = {"web-02": "failover", "db-01": "pinned"}
# Every lab host sees the lab's shared directory at this path (a bind mount): the
# "shared" datastore, declared shared in the cluster's policy. Seed VMs keep their
# disk there, so they can live-migrate and fail over; VMs named here keep theirs on
# the host's own "images" pool, so a move of theirs needs a storage copy.
SHARED_PATH = "/var/lib/libvirt/shared"
SHARED_POOL = "shared"
LOCAL_DISK = {"staging-01"}
DISK_MIB = 16
HOOK = Path(__file__).resolve().parents[2] / "assets" / "libvirt-hook-qemu"


def accel() -> str:
    """How lab guests run. TCG by default: on the nested KVM of the machines this was
    built on, a Linux guest under KVM dies with "emulation failure" (cmpxchg16b) or
    hangs at boot, while under TCG it boots in ~2.5 s and idles cheaply.
    MVMTUI_LAB_ACCEL=kvm opts in where KVM works; without /dev/kvm it is always TCG."""
    want = os.environ.get("MVMTUI_LAB_ACCEL", "tcg")
    return "kvm" if want == "kvm" and os.access("/dev/kvm", os.R_OK | os.W_OK) else "tcg"


def _run(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(list(cmd), capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


# Not under /root or /etc: a host bind-mounts its own over those, hiding the lab's files.
DEFAULT_ROOT = Path("/var/lib/mvmtui/labs")
# The guest kernel and initramfs are shared by every lab (and kept between runs).
GUEST_ROOT = Path(os.environ.get("MVMTUI_GUEST_DIR", "/var/lib/mvmtui/guest"))


@dataclass(frozen=True)
class LabHost:
    name: str
    address: str
    netns: str
    veth: str
    dir: Path


class Lab:
    def __init__(self, name: str = "lab", hosts: int | None = None, subnet: int | None = None,
                 root: Path | None = None, ceph: bool = False):
        if not name.isalnum() or len(name) > 8:
            raise LabError("a lab name is 1–8 letters or digits")
        self.name = name
        # Ceph wants four hosts: one can be decommissioned and three copies still fit.
        self.nhosts = hosts if hosts is not None else (4 if ceph else 3)
        self.want_ceph = ceph
        self.subnet = subnet if subnet is not None else (
            77 if name == "lab" else 80 + int(hashlib.sha1(name.encode()).hexdigest(), 16) % 100)
        self.root = Path(root or os.environ.get("MVMTUI_LAB_DIR") or DEFAULT_ROOT) / name
        self.bridge = f"mv{name}br"
        self.gateway = f"10.{self.subnet}.0.1"
        self.ssh_key = self.root / "ssh" / "id_ed25519"
        self.shared = self.root / "shared"      # SHARED_PATH on every host
        self.known_hosts = self.root / "ssh" / "known_hosts"

    @property
    def ceph(self):
        """This lab's Ceph (lab_ceph.LabCeph), or None: a lab without Ceph. Made once
        (it keeps what it looked up, such as each image's object prefix)."""
        if getattr(self, "_ceph", None) is None:
            if not (self.want_ceph or self._state().get("ceph")):
                return None
            from .lab_ceph import LabCeph
            self._ceph = LabCeph(self)
        return self._ceph

    # ---- naming -------------------------------------------------------------
    def host(self, i_or_name: int | str) -> LabHost:
        if isinstance(i_or_name, str):
            names = {self.host(i).name: i for i in range(1, self._count() + 1)}
            if i_or_name not in names:
                raise LabError(f"no lab host {i_or_name!r}; hosts: {', '.join(names)}")
            i = names[i_or_name]
        else:
            i = i_or_name
        name = f"kvm-{i:02d}"
        return LabHost(name=name, address=f"10.{self.subnet}.0.{10 + i}",
                       netns=f"mv{self.name}-{name}", veth=f"mv{self.name}{i}",
                       dir=self.root / "hosts" / name)

    def _count(self) -> int:
        st = self._state()
        return len(st.get("hosts", {})) or self.nhosts

    def _state(self) -> dict:
        try:
            return json.loads((self.root / "state.json").read_text())
        except (OSError, ValueError):
            return {}

    def _save_state(self, st: dict) -> None:
        (self.root / "state.json").write_text(json.dumps(st, indent=1))

    # ---- up -----------------------------------------------------------------------
    def up(self, inventory: Inventory | None = None, seed: bool = True) -> None:
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, libvirtd)")
        for tool in ("libvirtd", "virtlogd", "sshd", "qemu-system-x86_64", "ip", "unshare"):
            if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
                raise LabError(f"{tool} is missing: run `make setup` first")
        self.down(keep_files=False)
        self._ceph = None           # a new Ceph (its images, their prefixes)
        (self.root / "ssh").mkdir(parents=True, exist_ok=True)
        self.shared.mkdir(parents=True, exist_ok=True)
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"mvmtui-{self.name}",
             "-f", str(self.ssh_key))
        try:
            kernel, initrd = guest.build(GUEST_ROOT / "image", GUEST_ROOT / "debs")
        except (RuntimeError, OSError, subprocess.CalledProcessError, StopIteration) as exc:
            kernel = initrd = None
            print(f"lab: no guest kernel ({exc}); VMs boot without an OS "
                  f"(graceful shutdown will time out)")
        if self.want_ceph:
            if not shutil.which("ceph-mon") or not shutil.which("ceph-osd"):
                raise LabError("ceph-mon and ceph-osd are missing: run `make setup` first")
            self.ceph.prepare()
        self._net_up()
        st = {"hosts": {}, "subnet": self.subnet, "ceph": self.want_ceph}
        known = []
        for i in range(1, self.nhosts + 1):
            h = self.host(i)
            self._prepare_host(h)
            ktype, kbody = (h.dir / "ssh_host_ed25519_key.pub").read_text().split()[:2]
            known.append(f"{h.address} {ktype} {kbody}")
            st["hosts"][h.name] = {"address": h.address}
        self.known_hosts.write_text("\n".join(known) + "\n")
        self._save_state(st)
        for i in range(1, self.nhosts + 1):
            self._start_host(self.host(i))
        for i in range(1, self.nhosts + 1):
            self._wait_ready(self.host(i))
        if self.want_ceph:
            self.ceph.bootstrap()
            for i in range(1, self.nhosts + 1):
                self.ceph.libvirt_setup(self.host(i))
        if seed:
            for i in range(1, self.nhosts + 1):
                self._seed(self.host(i), i, kernel, initrd)
        if inventory is not None:
            self.register(inventory)

    def register(self, inv: Inventory) -> None:
        inv.save_cluster(Cluster(name=self.name, layout="kvm", ssh_user="root",
                                 ssh_key=str(self.ssh_key), known_hosts=str(self.known_hosts),
                                 description=f"built-in lab: {self._count()} hosts on "
                                             f"10.{self.subnet}.0.0/24"))
        for i in range(1, self._count() + 1):
            h = self.host(i)
            inv.save_host(Host(cluster=self.name, name=h.name, address=h.address))
        policy = inv.cluster_policy(self.name)
        policy["shared_datastores"] = sorted({*policy.get("shared_datastores", ()),
                                              SHARED_POOL})
        # Failover works out of the box: the lab can cut a lost host's power for real.
        policy["fence_method"] = "lab"
        ceph = self.ceph
        if ceph:    # RBD is shared storage; its daemons are run by the lab's cephctl
            policy["shared_datastores"] = sorted({*policy["shared_datastores"],
                                                  ceph.DATASTORE})
            policy["ceph_service"] = ceph.service_command()
            policy["ceph_settle"] = 15
        policy["lab_root"] = str(self.root.parent)
        inv.save_cluster_policy(self.name, policy)

    def _net_up(self) -> None:
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        for i in range(1, self.nhosts + 1):
            h = self.host(i)
            _run("ip", "netns", "add", h.netns)
            _run("ip", "link", "add", h.veth, "type", "veth", "peer", "name", "eth0",
                 "netns", h.netns)
            _run("ip", "link", "set", h.veth, "master", self.bridge, "up")
            _run("ip", "-n", h.netns, "addr", "add", f"{h.address}/24", "dev", "eth0")
            _run("ip", "-n", h.netns, "link", "set", "eth0", "up")
            _run("ip", "-n", h.netns, "link", "set", "lo", "up")

    def _prepare_host(self, h: LabHost) -> None:
        d = h.dir
        for sub in ("var-lib-libvirt/images", "var-lib-libvirt/shared", "log-libvirt", "cache-libvirt", "root/.ssh"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        etc = d / "etc-libvirt"
        shutil.copytree("/etc/libvirt", etc, symlinks=True)
        # No default NAT network: it needs dnsmasq and firewall rules the lab avoids.
        for p in etc.glob("qemu/networks/**/default.xml"):
            p.unlink()
        host_uuid = uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"{self.name}.{h.name}.mvmtui")
        (etc / "libvirtd.conf").write_text(
            f'host_uuid = "{host_uuid}"\n'
            'unix_sock_group = "root"\nunix_sock_rw_perms = "0770"\n'
            'auth_unix_rw = "none"\nauth_unix_ro = "none"\n'
            'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n')
        (etc / "qemu.conf").write_text(
            'user = "root"\ngroup = "root"\ndynamic_ownership = 0\nremember_owner = 0\n'
            'security_driver = "none"\ncgroup_controllers = [ ]\n'
            f'migration_address = "{h.address}"\nmigration_host = "{h.address}"\n')
        # The HA boot gate (assets/libvirt-hook-qemu): libvirt finds hooks at start.
        (etc / "hooks").mkdir(exist_ok=True)
        shutil.copyfile(HOOK, etc / "hooks" / "qemu")
        os.chmod(etc / "hooks" / "qemu", 0o755)
        ceph = self.ceph
        if ceph:
            ceph.host_dirs(d)
        (d / "hostname").write_text(h.name + "\n")
        (d / "hosts").write_text(f"127.0.0.1 localhost\n{h.address} {h.name}\n")
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", h.name,
             "-f", str(d / "ssh_host_ed25519_key"))
        shutil.copyfile(f"{self.ssh_key}.pub", d / "root/.ssh/authorized_keys")
        (d / "sshd_config").write_text(
            f"ListenAddress {h.address}\nPort 22\nHostKey {d}/ssh_host_ed25519_key\n"
            "PidFile /run/sshd.pid\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            f"AuthorizedKeysFile {d}/root/.ssh/authorized_keys\nStrictModes no\n"
            "AllowTcpForwarding yes\nAllowStreamLocalForwarding yes\n"
            "LogLevel ERROR\nSubsystem sftp internal-sftp\n")
        (d / "init.sh").write_text(f"""set -e
hostname {h.name}
mount -t tmpfs tmpfs /run
mkdir -p /run/sshd /run/libvirt /run/lock
mount --bind {d}/etc-libvirt /etc/libvirt
mount --bind {d}/var-lib-libvirt /var/lib/libvirt
mount --bind {self.shared} {SHARED_PATH}
mount --bind {d}/log-libvirt /var/log/libvirt
mount --bind {d}/cache-libvirt /var/cache/libvirt
mount --bind {d}/root /root
mount --bind {d}/hosts /etc/hosts
mount --bind {d}/hostname /etc/hostname
{ceph.init_lines(d) if ceph else ""}virtlogd -d
libvirtd -d
exec /usr/sbin/sshd -D -f {d}/sshd_config -E {d}/sshd.log
""")

    def _start_host(self, h: LabHost) -> None:
        log = open(h.dir / "init.log", "ab")
        p = subprocess.Popen(
            ["ip", "netns", "exec", h.netns, "unshare", "--mount", "--uts", "--pid",
             "--fork", "--mount-proc", "--propagation", "private", "sh", str(h.dir / "init.sh")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        st = self._state()
        st["hosts"].setdefault(h.name, {"address": h.address})["unshare_pid"] = p.pid
        self._save_state(st)

    def init_pid(self, h: LabHost) -> int | None:
        """PID (in our namespace) of the host's PID 1, the child of unshare."""
        pid = self._state().get("hosts", {}).get(h.name, {}).get("unshare_pid")
        if not pid:
            return None
        try:
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return None
        return int(kids[0]) if kids else None

    def _wait_ready(self, h: LabHost, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.init_pid(h)
            if pid and self._alive_sshd(h) and self.exec(h, "test", "-S",
                                                         "/run/libvirt/libvirt-sock",
                                                         check=False).returncode == 0:
                r = self.exec(h, "virsh", "-q", "-c", "qemu:///system", "version", check=False)
                if r.returncode == 0:
                    return
            time.sleep(0.1)
        log = (h.dir / "init.log").read_text()[-2000:] if (h.dir / "init.log").exists() else ""
        raise LabError(f"lab host {h.name} did not come up within {timeout:.0f} s\n{log}")

    def _alive_sshd(self, h: LabHost) -> bool:
        import socket
        try:
            with socket.create_connection((h.address, 22), timeout=0.3):
                return True
        except OSError:
            return False

    def exec(self, h: LabHost | str, *cmd: str, check: bool = True,
             input: str | None = None) -> subprocess.CompletedProcess:
        """Run a command inside a lab host (its mount, UTS, net and PID namespaces)."""
        if isinstance(h, str):
            h = self.host(h)
        pid = self.init_pid(h)
        if not pid:
            raise LabError(f"lab host {h.name} is not running")
        return _run("nsenter", "-t", str(pid), "-m", "-u", "-n", "-p", "--", *cmd,
                    check=check, input=input)

    def virsh(self, h: LabHost | str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.exec(h, "virsh", "-q", "-c", "qemu:///system", *args, check=check)

    def _slots(self, i: int) -> list[tuple[str, int, bool, bool]]:
        """The seed VMs of host i: (name, vcpus, running, autostart)."""
        slots = SEED[(i - 1) % len(SEED)] if i <= len(SEED) else [
            (f"app-{i:02d}a", 1, True, False), (f"app-{i:02d}b", 1, False, False)]
        # With Ceph, fewer guests run: one per host of the first three (TCG guests
        # and Ceph's daemons share the machine's two cores).
        ceph = self.want_ceph or self._state().get("ceph")
        return [(name, vcpus, running and not (ceph and (n > 0 or i > len(SEED))),
                 autostart) for n, (name, vcpus, running, autostart) in enumerate(slots)]

    def _seed(self, h: LabHost, i: int, kernel: Path | None, initrd: Path | None) -> None:
        images = h.dir / "var-lib-libvirt" / "images"
        for pool_name, path in (("images", "/var/lib/libvirt/images"),
                                (SHARED_POOL, SHARED_PATH)):
            pool = (f"<pool type='dir'><name>{pool_name}</name>"
                    f"<target><path>{path}</path></target></pool>")
            self.exec(h, "sh", "-c", "cat > /tmp/pool.xml", input=pool)
            self.virsh(h, "pool-define", "/tmp/pool.xml")
            self.virsh(h, "pool-start", pool_name)
            self.virsh(h, "pool-autostart", pool_name)
        kvm = accel() == "kvm"
        ceph = self.ceph
        for name, vcpus, running, autostart in self._slots(i):
            if name in LOCAL_DISK:
                disk = f"/var/lib/libvirt/images/{name}.qcow2"
                _run("qemu-img", "create", "-q", "-f", "qcow2", str(images / f"{name}.qcow2"),
                     f"{DISK_MIB}M")
                driver = "<driver name='qemu' type='qcow2'/>"
            elif ceph:      # an RBD image in the pool every host sees
                ceph.create_image(h, name, DISK_MIB)
            else:   # raw, O_DIRECT: what every host reads is what the guest wrote
                disk = f"{SHARED_PATH}/{name}.raw"
                with open(self.shared / f"{name}.raw", "wb") as f:
                    f.truncate(DISK_MIB << 20)
                driver = "<driver name='qemu' type='raw' cache='none'/>"
            vm_uuid = uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"{self.name}.{name}.vm.mvmtui")
            mac = "52:54:00:" + ":".join(vm_uuid.hex[i:i + 2] for i in (0, 2, 4))
            boot = (f"<kernel>{kernel}</kernel><initrd>{initrd}</initrd>"
                    f"<cmdline>console=ttyS0 quiet panic=-1</cmdline>") if kernel else ""
            xml = f"""<domain type='{'kvm' if kvm else 'qemu'}'>
  <name>{name}</name><uuid>{vm_uuid}</uuid>
  <memory unit='MiB'>{GUEST_MIB}</memory><vcpu>{vcpus}</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>{boot}</os>
  {_placement(name, h.name)}
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    {ceph.disk_xml(name) if ceph and name not in LOCAL_DISK else
     f"<disk type='file' device='disk'>{driver}<source file='{disk}'/>"
     f"<target dev='vda' bus='virtio'/></disk>"}
    <interface type='user'><mac address='{mac}'/><model type='virtio'/></interface>
    <serial type='file'><source path='/var/log/libvirt/{name}-console.log'/></serial>
    <memballoon model='virtio'/>
  </devices>
</domain>"""
            self.exec(h, "sh", "-c", f"cat > /tmp/{name}.xml", input=xml)
            self.virsh(h, "define", f"/tmp/{name}.xml")
            if autostart:
                self.virsh(h, "autostart", name)
            if running:
                self.virsh(h, "start", name)

    # ---- faults ---------------------------------------------------------------------
    def disk_counter(self, vm: str) -> tuple[int, str] | None:
        """What the guest last wrote on its shared disk: (count, boot id), or None
        before its first write. On a Ceph lab the disk is an RBD image, read from the OSDs."""
        ceph = self.ceph
        if ceph and vm not in LOCAL_DISK:
            try:
                words = ceph.first_sector(vm).encode().split()
            except (LabError, ValueError, KeyError):
                return None
        else:
            try:
                with open(self.shared / f"{vm}.raw", "rb") as f:
                    words = f.read(512).split(b"\0", 1)[0].split()
            except OSError:
                return None
        if len(words) >= 3 and words[0] == b"mvmtui-counter" and words[1].isdigit():
            return int(words[1]), words[2].decode()
        return None

    def burn_cpu(self, vm: str, on: bool = True) -> None:
        """Make the guest spin one vCPU (or stop): its burner reads the second sector
        of its shared disk every second (guest.INIT)."""
        if self.ceph or vm in LOCAL_DISK:
            raise LabError(f"{vm}: burn_cpu needs a disk on the lab's shared directory")
        with open(self.shared / f"{vm}.raw", "r+b") as f:
            f.seek(512)
            f.write((b"mvmtui-burn\n" if on else b"").ljust(512, b"\0"))
            f.flush()
            os.fsync(f.fileno())

    def console_log(self, vm: str) -> str:
        """What the guest wrote on its serial console, on the host it runs on."""
        where = self.running_on(vm)
        if not where:
            return ""
        r = self.exec(where[0], "cat", f"/var/log/libvirt/{vm}-console.log", check=False)
        return r.stdout if r.returncode == 0 else ""

    def crash(self, name: str) -> None:
        """Power cut: the link goes down first, then everything on the host dies at once."""
        h = self.host(name)
        _run("ip", "link", "set", h.veth, "down", check=False)
        pid = self.init_pid(h)
        if pid:
            os.kill(pid, signal.SIGKILL)
        self._reap(h)

    def management_down(self, name: str) -> None:
        """sshd and libvirtd die while the guests run on: the split-brain case. The
        host's PID 1 is its listening sshd, and killing it would end the whole host,
        so it is frozen (SIGSTOP, from outside its namespace) and every other sshd
        and libvirtd is killed. `crash` then ends it for real."""
        h = self.host(name)
        pid = self.init_pid(h)
        if not pid:
            raise LabError(f"lab host {name} is not running")
        os.kill(pid, signal.SIGSTOP)
        self.exec(h, "sh", "-c", "for p in $(pidof sshd libvirtd); do [ $p = 1 ] || "
                                 "kill -9 $p; done; true")

    def revive(self, name: str) -> None:
        h = self.host(name)
        if self.init_pid(h):
            raise LabError(f"{name} is running; crash it first")
        _run("ip", "link", "set", h.veth, "up")
        self._start_host(h)
        self._wait_ready(h)

    def heal(self) -> list[str]:
        """Bring every host back to serving: raise a link left down, power on a host
        that is off, power-cycle one that is frozen (management_down) or whose sshd or
        libvirtd is gone; then start the seed's running VMs that run nowhere. Says what
        it did (nothing: the lab was whole)."""
        done = []
        if not _admin_up(self.bridge):
            _run("ip", "link", "set", self.bridge, "up")
            done.append(f"{self.bridge}: bridge raised")
        runs: dict[str, list[str]] = {}
        for name in self._state().get("hosts", {}):
            h = self.host(name)
            if not _admin_up(h.veth):
                _run("ip", "link", "set", h.veth, "up")
                done.append(f"{name}: link raised")
            listed = self._list_running(h)
            if listed is None:
                if self.init_pid(h):
                    self.crash(name)
                    done.append(f"{name}: power-cycled (its sshd or libvirtd was not serving)")
                else:
                    done.append(f"{name}: powered on")
                self.revive(name)
                listed = self._list_running(h) or []
            for vm in listed:
                runs.setdefault(vm, []).append(name)
        for i in range(1, self._count() + 1):
            h = self.host(i)
            for vm, _, running, _ in self._slots(i):
                where = runs.get(vm, [])
                if running and not where and self.virsh(h, "start", vm,
                                                        check=False).returncode == 0:
                    done.append(f"{vm}: started on {h.name}")
                elif where and where != [h.name]:
                    done.append(f"{vm}: runs on {', '.join(where)}, not {h.name}; left there")
        return done

    def _list_running(self, h: LabHost) -> list[str] | None:
        """The VMs the host's libvirt runs, or None: the host is off, frozen, or its
        sshd or libvirtd does not answer."""
        pid = self.init_pid(h)
        try:
            frozen = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
        except (OSError, IndexError):
            return None
        if frozen or not self._alive_sshd(h):
            return None
        r = self.virsh(h, "list", "--name", check=False)
        return r.stdout.split() if r.returncode == 0 else None

    def _reap(self, h: LabHost, timeout: float = 5.0) -> None:
        pid = self._state().get("hosts", {}).get(h.name, {}).get("unshare_pid")
        deadline = time.monotonic() + timeout
        while pid and time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    return
            except ChildProcessError:  # not our child (another process started it)
                if not Path(f"/proc/{pid}").exists():
                    return
            time.sleep(0.05)

    # ---- down / status ------------------------------------------------------------
    def down(self, keep_files: bool = False) -> None:
        """Stop every host and remove every namespace, link and file this lab owns."""
        st = self._state()
        names = {r.split()[0] for r in _run("ip", "netns", "list", check=False).stdout.splitlines()
                 if r.strip()}
        for netns in sorted(n for n in names if n.startswith(f"mv{self.name}-")):
            # Every process in our namespace is ours: end them by PID.
            pids = _run("ip", "netns", "pids", netns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            _run("ip", "netns", "del", netns, check=False)
        for hname, info in st.get("hosts", {}).items():
            pid = info.get("unshare_pid")
            if pid:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
        links = _run("ip", "-o", "link", "show", check=False).stdout
        for line in links.splitlines():
            dev = line.split(":")[1].strip().split("@")[0]
            if dev == self.bridge or (dev.startswith(f"mv{self.name}") and dev[len(self.name) + 2:].isdigit()):
                _run("ip", "link", "del", dev, check=False)
        if not keep_files and self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)

    def status(self) -> list[dict]:
        out = []
        for hname, info in self._state().get("hosts", {}).items():
            h = self.host(hname)
            pid = self.init_pid(h)
            link = _run("ip", "-o", "link", "show", h.veth, check=False).stdout
            out.append({"host": hname, "address": h.address, "pid": pid,
                        "running": bool(pid),
                        "link": "up" if "state UP" in link or ",UP" in link else "down"})
        return out

    # ---- reaching hosts by hand (mvmtui lab ssh / virsh / demo) -----------------------
    def running_hosts(self) -> list[str]:
        """Names of this lab's hosts that run now (none: the lab is not up)."""
        return [n for n in self._state().get("hosts", {}) if self.init_pid(self.host(n))]

    def running_on(self, vm: str) -> list[str]:
        """Every lab host whose libvirt runs the VM now (a host that dies while it is
        asked runs nothing)."""
        out = []
        for h in self.running_hosts():
            try:
                r = self.virsh(h, "list", "--name", check=False)
            except LabError:
                continue
            if r.returncode == 0 and vm in r.stdout.split():
                out.append(h)
        return out

    def running_host(self, name: str) -> LabHost:
        """The named host if it runs now; LabError says why not."""
        if not self._state().get("hosts"):
            raise LabError(f"lab '{self.name}' is not up; `mvmtui lab up` starts it")
        h = self.host(name)
        if not self.init_pid(h):
            raise LabError(f"lab host {h.name} is not running; `mvmtui lab revive "
                           f"{h.name}` powers it on")
        return h


def _admin_up(dev: str) -> bool:
    """Whether the link is set up (its flags say UP), whatever its carrier."""
    out = _run("ip", "-o", "link", "show", dev, check=False).stdout
    flags = out.split("<", 1)[1].split(">", 1)[0].split(",") if "<" in out else []
    return not out or "UP" in flags


def _placement(vm: str, host: str) -> str:
    """The seed VM's placement metadata (adapter.PLACEMENT_NS), Auto by default."""
    from .adapter import PLACEMENT_NS
    strategy = STRATEGIES.get(vm, "auto")
    home = host if strategy == "pinned" else ""
    return (f"<metadata><mvmtui:placement xmlns:mvmtui='{PLACEMENT_NS}' "
            f"strategy='{strategy}' home='{home}'/></metadata>")

