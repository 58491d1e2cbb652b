"""libvirt adapter. Blocking: every function here runs in a libvirt worker thread,
never on the engine's I/O loop (DESIGN rule 3: the SSH tunnel that carries libvirt
lives on that loop; a libvirt call there deadlocks, even through __del__).

Libvirt objects never leave this module: callers get model dataclasses.
"""
from __future__ import annotations

import functools
import threading
import time
import xml.etree.ElementTree as ET
from typing import Callable

import libvirt

from .adapter import (LIFECYCLE, PLACEMENT_KEY, PLACEMENT_NS, REBOOT, VmSample,
                      Placement, parse_placement, placement_xml)
from .errors import HypervisorError
from .metrics import rate
from .model import (Datastore, Disk, MigrationProgress, Network, Nic, Strategy, Vm,
                    VmState)

# Events that change what the console shows of a VM besides its lifecycle: each makes
# the engine re-read that VM. What no event reports (autostart, a --config change
# of a shut-off VM) the stats pass or the slow reconciliation catches. A --config
# change of a running VM takes effect at its next boot: the console shows the live
# definition, as `virsh dominfo` does.
_CHANGE_EVENTS = ("DEVICE_ADDED", "DEVICE_REMOVED", "TUNABLE", "BALLOON_CHANGE",
                  "METADATA_CHANGE", "PMSUSPEND", "PMWAKEUP", "DISK_CHANGE", "TRAY_CHANGE",
                  "JOB_COMPLETED", "DEVICE_REMOVAL_FAILED", "MEMORY_DEVICE_SIZE_CHANGE")

_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: VmState.UNKNOWN,
    libvirt.VIR_DOMAIN_RUNNING: VmState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: VmState.BLOCKED,
    libvirt.VIR_DOMAIN_PAUSED: VmState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: VmState.SHUTTING_DOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: VmState.SHUTOFF,
    libvirt.VIR_DOMAIN_CRASHED: VmState.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: VmState.SUSPENDED,
}

_event_loop_lock = threading.Lock()
_event_loop_started = False


def ensure_event_loop() -> None:
    """libvirt's own event loop, in one daemon thread: lifecycle events and keepalive."""
    global _event_loop_started
    with _event_loop_lock:
        if _event_loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run():
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _event_loop_started = True


def _quiet(ctx, err):  # libvirt prints every error to stderr by default
    pass


libvirt.registerErrorHandler(_quiet, None)


def reason(exc: Exception) -> str:
    """libvirt's own words for a refusal, without the Python wrapper's noise."""
    if isinstance(exc, libvirt.libvirtError):
        return exc.get_error_message() or str(exc)
    return str(exc)


def version_str(v: int) -> str:
    return f"{v // 1000000}.{(v // 1000) % 1000}.{v % 1000}"


def _plain_errors(cls):
    """Public methods raise HypervisorError (libvirt's words), never libvirtError,
    so the engine need not import libvirt."""
    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except libvirt.libvirtError as exc:
                err = HypervisorError(reason(exc), exc.get_error_code() or 0)
            # Raised outside the except block: no __context__ chain, whose traceback
            # would keep libvirt objects alive until freed on the I/O loop (rule 3).
            raise err
        return inner
    for name, fn in list(vars(cls).items()):
        if callable(fn) and not name.startswith("_"):
            setattr(cls, name, wrap(fn))
    return cls


@_plain_errors
class LibvirtHypervisor:
    """One libvirt connection to one host (adapter.Hypervisor). Use only from libvirt
    worker threads."""

    def __init__(self, uri: str, cluster: str, host: str, clock: Callable[[], float] = time.time):
        self.uri = uri
        self.cluster = cluster
        self.host = host
        self.clock = clock
        self.conn: libvirt.virConnect | None = None
        self._callbacks: list[int] = []
        self._prev_cpu: dict[str, tuple] = {}   # uuid -> (wall, cpu ns, I/O counters)
        self._prev_host_cpu: tuple[int, int] | None = None  # (busy, total)

    # ---- connection -------------------------------------------------------
    def open(self, on_domain_event: Callable[[str, int, int], None],
             on_close: Callable[[int], None]) -> None:
        ensure_event_loop()
        conn = libvirt.open(self.uri)
        try:
            conn.setKeepAlive(2, 3)
        except libvirt.libvirtError:
            pass  # test driver has no keepalive

        def lifecycle(_conn, dom, event, detail, _opaque):
            on_domain_event(dom.UUIDString(), LIFECYCLE, event)

        def reboot(_conn, dom, _opaque):
            on_domain_event(dom.UUIDString(), REBOOT, 0)

        self._callbacks.append(conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle, None))
        self._callbacks.append(conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_REBOOT, reboot, None))
        for name in _CHANGE_EVENTS:
            event_id = getattr(libvirt, f"VIR_DOMAIN_EVENT_ID_{name}", None)
            if event_id is None:
                continue

            def changed(_conn, dom, *_rest, kind=name.lower()):
                on_domain_event(dom.UUIDString(), kind, 0)
            try:
                self._callbacks.append(conn.domainEventRegisterAny(
                    None, event_id, changed, None))
            except libvirt.libvirtError:
                pass   # a driver without this event: the stats pass covers it
        try:
            conn.registerCloseCallback(lambda _c, why, _o: on_close(why), None)
        except libvirt.libvirtError:
            pass
        self.conn = conn

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        for cb in self._callbacks:
            try:
                conn.domainEventDeregisterAny(cb)
            except libvirt.libvirtError:
                pass
        self._callbacks.clear()
        try:
            conn.unregisterCloseCallback()
        except libvirt.libvirtError:
            pass
        try:
            conn.close()
        except libvirt.libvirtError:
            pass

    def _c(self) -> libvirt.virConnect:
        if self.conn is None:
            raise libvirt.libvirtError("not connected to libvirt")
        return self.conn

    # ---- facts --------------------------------------------------------------
    def facts(self) -> dict:
        c = self._c()
        model, mem_mib, cpus, *_ = c.getInfo()
        try:   # getInfo's memory can be one NUMA cell's; the total of all cells is not
            mem_mib = int(c.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS)["total"]
                          // 1024)
        except (libvirt.libvirtError, KeyError):
            pass
        facts = {"hostname": c.getHostname(), "cpus": cpus, "memory_mib": mem_mib,
                 "cpu_model": model, "libvirt_version": version_str(c.getLibVersion())}
        try:
            facts["qemu_version"] = version_str(c.getVersion())
        except libvirt.libvirtError:
            facts["qemu_version"] = ""
        try:
            caps = ET.fromstring(c.getCapabilities())
            m = caps.findtext("host/cpu/model")
            if m:
                facts["cpu_model"] = m
        except (libvirt.libvirtError, ET.ParseError):
            pass
        return facts

    def host_usage(self) -> tuple[float | None, int | None]:
        """Host CPU % since the previous call, and memory in use (MiB)."""
        c = self._c()
        cpu_pct = None
        try:
            s = c.getCPUStats(libvirt.VIR_NODE_CPU_STATS_ALL_CPUS)
            busy = s.get("kernel", 0) + s.get("user", 0)
            total = busy + s.get("idle", 0) + s.get("iowait", 0)
            if self._prev_host_cpu and total > self._prev_host_cpu[1]:
                cpu_pct = 100.0 * (busy - self._prev_host_cpu[0]) / (total - self._prev_host_cpu[1])
            self._prev_host_cpu = (busy, total)
        except libvirt.libvirtError:
            pass
        mem_used = None
        try:
            m = c.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS)
            free = m.get("free", 0) + m.get("buffers", 0) + m.get("cached", 0)
            mem_used = int((m["total"] - free) // 1024)
        except (libvirt.libvirtError, KeyError):
            pass
        return cpu_pct, mem_used

    # ---- domains ------------------------------------------------------------
    def _vm(self, dom: libvirt.virDomain, now: float) -> Vm:
        state, max_kib, mem_kib, vcpus, _cpu = dom.info()
        xml = dom.XMLDesc(0)
        root = ET.fromstring(xml)
        disks = []
        for d in root.findall("devices/disk"):
            src = d.find("source")
            target = d.find("target")
            if target is None:
                continue
            source = ""
            if src is not None:
                source = src.get("file") or src.get("dev") or src.get("name") or ""
            dev = target.get("dev", "")
            cap = alloc = None
            if source and d.get("device", "disk") == "disk":
                try:
                    cap, alloc, _phys = dom.blockInfo(dev)
                except libvirt.libvirtError:
                    pass
            disks.append(Disk(target=dev, source=source, kind=d.get("type", "file"),
                              bus=target.get("bus", ""), device=d.get("device", "disk"),
                              capacity_bytes=cap, allocation_bytes=alloc,
                              readonly=d.find("readonly") is not None))
        nics = []
        for n in root.findall("devices/interface"):
            src = n.find("source")
            source = ""
            if src is not None:
                source = src.get("network") or src.get("bridge") or src.get("dev") or ""
            mac = n.find("mac")
            model = n.find("model")
            tgt = n.find("target")
            nics.append(Nic(mac=mac.get("address", "") if mac is not None else "",
                            kind=n.get("type", ""), source=source,
                            model=model.get("type", "") if model is not None else "",
                            target=tgt.get("dev", "") if tgt is not None else ""))
        try:
            autostart = bool(dom.autostart())
        except libvirt.libvirtError:
            autostart = False
        placed = parse_placement(root)
        return Vm(cluster=self.cluster, host=self.host, uuid=dom.UUIDString(),
                  name=dom.name(), state=_STATES.get(state, VmState.UNKNOWN),
                  vcpus=vcpus, memory_mib=mem_kib // 1024, max_memory_mib=max_kib // 1024,
                  autostart=autostart, persistent=bool(dom.isPersistent()),
                  disks=tuple(disks), nics=tuple(nics), seen_at=now, config_at=now,
                  strategy=placed.strategy, home=placed.home, priority=placed.priority,
                  failed_from=placed.failed_from, definition=xml,
                  cpu_mode=root.find("cpu").get("mode", "") if root.find("cpu") is not None
                  else "")

    def vms(self) -> list[Vm]:
        now = self.clock()
        out = []
        for dom in self._c().listAllDomains(0):
            try:
                out.append(self._vm(dom, now))
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise  # a domain that vanished mid-listing is simply gone
        return out

    def summaries(self) -> list[Vm]:
        """Every VM's name, state, vCPUs and memory, without its definition: what a
        table's first page needs, at the cost of a listing (no XML read or parsed).
        config_at is None: `details` reads the rest."""
        now = self.clock()
        out = []
        for dom in self._c().listAllDomains(0):
            try:
                state, max_kib, mem_kib, vcpus, _cpu = dom.info()
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
                continue
            out.append(Vm(cluster=self.cluster, host=self.host, uuid=dom.UUIDString(),
                          name=dom.name(), state=_STATES.get(state, VmState.UNKNOWN),
                          vcpus=vcpus, memory_mib=mem_kib // 1024,
                          max_memory_mib=max_kib // 1024, seen_at=now))
        return out

    def details(self, uuids: list[str]) -> list[Vm]:
        """These VMs in full (those gone meanwhile are left out)."""
        now = self.clock()
        out = []
        c = self._c()
        for uuid in uuids:
            try:
                out.append(self._vm(c.lookupByUUIDString(uuid), now))
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
        return out

    def vm(self, uuid: str) -> Vm | None:
        try:
            return self._vm(self._c().lookupByUUIDString(uuid), self.clock())
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise

    def state(self, uuid: str) -> VmState:
        st, _ = self._c().lookupByUUIDString(uuid).state()
        return _STATES.get(st, VmState.UNKNOWN)

    def stats(self, uuids: list[str] | None = None) -> dict[str, VmSample]:
        """Every VM's state, vCPUs, memory, CPU use and guest memory from one bulk call
        (getAllDomainStats), or only those of `uuids` (domainListGetStats; one gone
        meanwhile is left out): it confirms what the tables show even where no event
        said a thing changed."""
        c = self._c()
        now = time.monotonic()
        flags = (libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
                 | libvirt.VIR_DOMAIN_STATS_BALLOON | libvirt.VIR_DOMAIN_STATS_VCPU
                 | libvirt.VIR_DOMAIN_STATS_BLOCK | libvirt.VIR_DOMAIN_STATS_INTERFACE)
        out: dict[str, VmSample] = {}
        if uuids is None:
            prev, self._prev_cpu = self._prev_cpu, {}
            records = [(dom.UUIDString(), rec) for dom, rec in c.getAllDomainStats(flags, 0)]
        else:
            prev = self._prev_cpu
            doms = []
            for uuid in uuids:
                try:
                    doms.append(c.lookupByUUIDString(uuid))
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                        raise
            records = ([(dom.UUIDString(), rec) for dom, rec in c.domainListGetStats(doms, flags, 0)]
                       if doms else [])
        for uuid, rec in records:
            state = _STATES.get(rec.get("state.state"), VmState.UNKNOWN)
            vcpus = rec.get("vcpu.current")
            cpu_ns = rec.get("cpu.time")
            pct = None
            io = _io_counters(rec)
            rates: dict[str, float | None] = {}
            if cpu_ns is not None and state.active:
                self._prev_cpu[uuid] = (now, cpu_ns, io)
                if uuid in prev and now > prev[uuid][0]:
                    dt = now - prev[uuid][0]
                    # A share of its own vCPUs, like host CPU % is a share of all CPUs.
                    pct = max(0.0, (cpu_ns - prev[uuid][1]) / 1e9 / dt
                              * 100 / max(1, vcpus or 1))
                    rates = {k: rate(prev[uuid][2].get(k), v, dt) for k, v in io.items()}
            # Memory the guest itself reports in use (needs its balloon driver);
            # QEMU's RSS is not the guest's memory, so without the driver: unknown.
            mem = None
            if "balloon.available" in rec and "balloon.unused" in rec:
                mem = int(rec["balloon.available"] - rec["balloon.unused"]) // 1024
            current = rec.get("balloon.current")
            out[uuid] = VmSample(state=state, vcpus=vcpus,
                                 memory_mib=None if current is None else int(current) // 1024,
                                 cpu_pct=pct, mem_used_mib=mem,
                                 disk_rd_bps=rates.get("rd"), disk_wr_bps=rates.get("wr"),
                                 net_rx_bps=rates.get("rx"), net_tx_bps=rates.get("tx"))
        return out

    def networks(self) -> list[Network]:
        out = []
        try:
            for n in self._c().listAllNetworks(0):
                try:
                    bridge = n.bridgeName()
                except libvirt.libvirtError:
                    bridge = ""
                out.append(Network(cluster=self.cluster, host=self.host, name=n.name(),
                                   active=bool(n.isActive()), bridge=bridge,
                                   autostart=bool(n.autostart())))
        except libvirt.libvirtError:
            pass
        return out

    def datastores(self) -> list[Datastore]:
        out = []
        try:
            for p in self._c().listAllStoragePools(0):
                _st, cap, alloc, avail = p.info()
                root = ET.fromstring(p.XMLDesc(0))
                out.append(Datastore(cluster=self.cluster, host=self.host, name=p.name(),
                                     kind=root.get("type", ""),
                                     path=root.findtext("target/path") or "",
                                     active=bool(p.isActive()), capacity_bytes=cap,
                                     allocation_bytes=alloc, available_bytes=avail))
        except libvirt.libvirtError:
            pass
        return out

    # ---- actions ------------------------------------------------------------
    def act(self, uuid: str, action: str) -> None:
        dom = self._c().lookupByUUIDString(uuid)
        if action == "start":
            dom.create()
        elif action == "shutdown":
            dom.shutdown()
        elif action == "destroy":
            dom.destroy()
        elif action == "reboot":
            dom.reboot(0)
        elif action == "suspend":
            dom.suspend()
        elif action == "resume":
            dom.resume()
        else:
            raise ValueError(f"unknown VM action {action!r}")

    def set_placement(self, uuid: str, placement: Placement) -> None:
        """Write the placement into the domain's metadata (its persistent definition,
        and the live one while it runs)."""
        dom = self._c().lookupByUUIDString(uuid)
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if dom.isActive():
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, placement_xml(placement),
                        PLACEMENT_KEY, PLACEMENT_NS, flags)

    # ---- moving VMs ---------------------------------------------------------------
    def migrate(self, uuid: str, dest: "LibvirtHypervisor", *, bandwidth_mib: int = 0,
                auto_converge: bool = True, unsafe: bool = False,
                copy_storage: bool = False, disks: list[str] = ()) -> None:
        """Live-migrate to `dest`, driven from here over both connections (libvirt's
        managed, client-driven migration: no host-to-host trust needed). Persistent on
        the destination, undefined on the source. Blocks for the whole job: call it on
        a thread of its own, never on the host's worker (job stats and abort go there).
        `unsafe`: the disks are on a datastore the cluster declares shared, which
        libvirt cannot see for itself (a plain directory every host mounts)."""
        dom = self._c().lookupByUUIDString(uuid)
        flags = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PERSIST_DEST
                 | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
        if auto_converge:
            flags |= libvirt.VIR_MIGRATE_AUTO_CONVERGE
        if unsafe:
            flags |= libvirt.VIR_MIGRATE_UNSAFE
        if copy_storage:
            flags |= libvirt.VIR_MIGRATE_NON_SHARED_DISK
        params = {}
        if bandwidth_mib:
            params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = int(bandwidth_mib)
        if copy_storage and disks:   # only these are copied; the rest are shared
            params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = list(disks)
        dom.migrate3(dest._c(), params, flags)

    def disk_formats(self, uuid: str) -> dict[str, str]:
        """Each disk's image format (target -> raw, qcow2…), from its <driver>."""
        root = ET.fromstring(self._c().lookupByUUIDString(uuid).XMLDesc(0))
        out = {}
        for d in root.findall("devices/disk"):
            target, driver = d.find("target"), d.find("driver")
            if target is not None:
                out[target.get("dev", "")] = (driver.get("type") if driver is not None
                                              else None) or "raw"
        return out

    def migration_progress(self, uuid: str) -> MigrationProgress | None:
        """The running job's figures, or None when no job runs."""
        try:
            st = self._c().lookupByUUIDString(uuid).jobStats()
        except libvirt.libvirtError:
            return None
        if not st or st.get("type", 0) in (libvirt.VIR_DOMAIN_JOB_NONE,):
            return None
        disk_left = st.get("disk_remaining", 0)
        copying_disk = bool(st.get("disk_total")) and disk_left > 0
        return MigrationProgress(
            processed=int(st.get("data_processed", 0)),
            remaining=st.get("data_remaining"), total=st.get("data_total"),
            bytes_per_s=st.get("disk_bps") if copying_disk else st.get("memory_bps"),
            elapsed_s=st.get("time_elapsed", 0) / 1000.0,
            downtime_ms=st.get("downtime"), phase="disk" if copying_disk else "memory")

    def set_max_downtime(self, uuid: str, ms: int) -> None:
        self._c().lookupByUUIDString(uuid).migrateSetMaxDowntime(int(ms), 0)

    def abort_job(self, uuid: str) -> None:
        self._c().lookupByUUIDString(uuid).abortJob()

    def definition(self, uuid: str) -> str:
        """The domain's persistent definition (what an offline move defines elsewhere)."""
        dom = self._c().lookupByUUIDString(uuid)
        return dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)

    def define(self, xml: str) -> None:
        self._c().defineXML(xml)

    def set_autostart(self, uuid: str, on: bool) -> None:
        """A definition carries no autostart (libvirt keeps it beside it): a VM moved or
        restarted elsewhere gets its flag set there again."""
        self._c().lookupByUUIDString(uuid).setAutostart(1 if on else 0)

    def undefine(self, uuid: str) -> None:
        """Forget a stopped domain; its disks and NVRAM stay where they are. A running
        one is refused (libvirt would leave it running, transient)."""
        dom = self._c().lookupByUUIDString(uuid)
        if dom.isActive():
            raise HypervisorError(f"{dom.name()} is running on {self.host}; not undefined")
        try:
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_KEEP_NVRAM)
        except libvirt.libvirtError:
            dom.undefine()

    def prepare_disks(self, disks: list[tuple[str, int, str]]) -> list[str]:
        """Create empty volumes for a storage copy (path, bytes, format) in this host's
        pools, where missing; returns the paths created. A path outside every pool
        cannot be created: libvirt's words say so."""
        made = []
        c = self._c()
        for p in c.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
            try:   # a file left by an earlier move is then found, not created again
                p.refresh(0)
            except libvirt.libvirtError:
                pass
        for path, size, fmt in disks:
            try:
                c.storageVolLookupByPath(path)
                continue
            except libvirt.libvirtError:
                pass
            directory, _, name = path.rpartition("/")
            pool = None
            for p in c.listAllStoragePools(0):
                if ET.fromstring(p.XMLDesc(0)).findtext("target/path") == directory:
                    pool = p
                    break
            if pool is None:
                raise HypervisorError(f"no storage pool on {self.host} holds {directory}")
            pool.createXML(f"<volume><name>{name}</name><capacity>{int(size)}</capacity>"
                           f"<target><format type='{fmt}'/></target></volume>", 0)
            made.append(path)
        return made


def _io_counters(rec: dict) -> dict[str, int]:
    """A domain's disk bytes read / written and network bytes in / out, summed over
    its disks and NICs (getAllDomainStats' block.N.* and net.N.*)."""
    out = {"rd": 0, "wr": 0, "rx": 0, "tx": 0}
    for i in range(rec.get("block.count", 0)):
        out["rd"] += rec.get(f"block.{i}.rd.bytes", 0)
        out["wr"] += rec.get(f"block.{i}.wr.bytes", 0)
    for i in range(rec.get("net.count", 0)):
        out["rx"] += rec.get(f"net.{i}.rx.bytes", 0)
        out["tx"] += rec.get(f"net.{i}.tx.bytes", 0)
    return out
