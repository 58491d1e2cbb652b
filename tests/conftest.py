"""A fixed inventory and offline engines for console tests and snapshots.

Everything is pinned: the clock (FIXED), the time zone (UTC, so clock times read
the same everywhere), every seen_at / created_at relative to FIXED.
"""
from __future__ import annotations

import asyncio
import difflib
import html
import os
import re
import time
from pathlib import Path

import pytest

os.environ["TZ"] = "UTC"
time.tzset()
# The developer's own settings file must not change what tests see (a test that wants
# one sets its own).
os.environ["MVMTUI_CONFIG"] = "/nonexistent/mvmtui-tests/settings.toml"

from mvmtui.engine import Engine  # noqa: E402
from mvmtui.engine.inventory import Inventory  # noqa: E402
from mvmtui.engine.tasks import this_process  # noqa: E402
from mvmtui.engine.model import (Cluster, Datastore, Disk, Host, HostStatus,  # noqa: E402
                                 Network, Nic, Task, TaskStatus, TaskStep, Vm, VmState)

FIXED = 1_750_000_000.0          # 2025-06-15 15:06:40 UTC
GIB = 1024 ** 3


def _host(cluster, name, ip, cpus, mem_gib, seen_ago, cpu_pct, mem_used_gib, **kw) -> Host:
    return Host(cluster=cluster, name=name, address=ip, hostname=f"{name}.example.net",
                cpu_model="AMD EPYC 7443P 24-Core Processor", cpus=cpus,
                memory_mib=mem_gib * 1024, os_release="Ubuntu 24.04.2 LTS",
                libvirt_version="10.0.0", qemu_version="8.2.2", cpu_pct=cpu_pct,
                mem_used_mib=int(mem_used_gib * 1024), seen_at=FIXED - seen_ago,
                fingerprint=f"SHA256:{name.replace('-', '')}Qx9fT3o0c1lWk8e2m5rB7yHdJ4sVnZ",
                **kw)


def _vm(n, cluster, host, name, state, vcpus, mem_mib, seen_ago=5.0, cpu=None, used=None,
        disks=None, nics=None, **kw) -> Vm:
    uuid = f"00000000-0000-4000-8000-{n:012d}"
    disks = disks if disks is not None else (
        Disk("vda", f"/var/lib/libvirt/images/{name}.qcow2", capacity_bytes=20 * GIB,
             allocation_bytes=int(6.5 * GIB)),)
    nics = nics if nics is not None else (
        Nic(f"52:54:00:00:{n // 256:02x}:{n % 256:02x}", "bridge", "br0", "virtio",
            f"vnet{n}"),)
    return Vm(cluster=cluster, host=host, uuid=uuid, name=name, state=state, vcpus=vcpus,
              memory_mib=mem_mib, max_memory_mib=mem_mib, autostart=state is VmState.RUNNING,
              disks=disks, nics=nics, cpu_pct=cpu, mem_used_mib=used,
              seen_at=FIXED - seen_ago, **kw)


def uuid_of(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


HOSTS = [
    _host("prod", "kvm-01", "10.10.0.11", 32, 256, 4, 23.5, 61.5),
    _host("prod", "kvm-02", "10.10.0.12", 32, 256, 7, 41.0, 148.2),
    _host("prod", "kvm-03", "10.10.0.13", 24, 128, 125, 12.0, 40.0,
          status=HostStatus.UNREACHABLE,
          problem="lost contact at 15:04:35 (no answer to SSH keepalive)"),
    _host("lab", "lab-01", "10.77.0.11", 4, 8, 3 * 3600 + 120, 5.0, 3.1),
    _host("lab", "lab-02", "10.77.0.12", 4, 8, 3 * 3600 + 125, 7.5, 2.2),
]

VMS = [
    _vm(1, "prod", "kvm-01", "web-01", VmState.RUNNING, 2, 4096, cpu=12.5, used=3100),
    _vm(2, "prod", "kvm-02", "web-02", VmState.RUNNING, 2, 4096, cpu=8.0, used=2900),
    _vm(3, "prod", "kvm-01", "db-01", VmState.RUNNING, 8, 32768, cpu=55.0, used=30000,
        disks=(Disk("vda", "rbd/db-01-root", kind="network", capacity_bytes=40 * GIB,
                    allocation_bytes=18 * GIB),
               Disk("vdb", "rbd/db-01-data", kind="network", capacity_bytes=500 * GIB,
                    allocation_bytes=312 * GIB),
               Disk("sda", "/var/lib/libvirt/images/seed.iso", device="cdrom", bus="sata",
                    capacity_bytes=368640, allocation_bytes=368640, readonly=True)),
        nics=(Nic("52:54:00:10:00:03", "bridge", "br0", "virtio", "vnet3"),
              Nic("52:54:00:20:00:03", "network", "storage", "virtio", "vnet4"))),
    _vm(4, "prod", "kvm-02", "db-02", VmState.PAUSED, 8, 32768),
    _vm(5, "prod", "kvm-01", "cache-01", VmState.SHUTOFF, 4, 8192),
    _vm(6, "prod", "kvm-03", "batch-01", VmState.CRASHED, 4, 16384, seen_ago=125),
    _vm(7, "prod", "kvm-03", "mon-01", VmState.RUNNING, 2, 2048, seen_ago=125, cpu=3.0),
    _vm(8, "prod", "kvm-02", "build-01", VmState.SHUTOFF, 16, 65536),
    _vm(9, "lab", "lab-01", "test-01", VmState.RUNNING, 1, 1024, seen_ago=3 * 3600 + 120),
    _vm(10, "lab", "lab-01", "test-02", VmState.SHUTOFF, 1, 512, seen_ago=3 * 3600 + 120),
    _vm(11, "lab", "lab-02", "dev-01", VmState.RUNNING, 2, 2048, seen_ago=3 * 3600 + 125),
    _vm(12, "lab", "lab-02", "dev-02", VmState.SUSPENDED, 1, 1024, seen_ago=3 * 3600 + 125),
]


def _task(inv: Inventory, kind, title, cluster, vm_n, host, status, created_ago, took,
          steps, logs, error="", progress=None, running_step=None, owner="") -> int:
    """Journal a task as the engine would have: steps, logs, times relative to FIXED."""
    vm = next(v for v in VMS if v.uuid == uuid_of(vm_n))
    start = FIXED - created_ago
    end = None if status in (TaskStatus.RUNNING,) else start + took
    tid = inv.create_task(Task(id=0, kind=kind, title=title, cluster=cluster,
                               target_kind="vm", target=vm.uuid, target_name=vm.name,
                               host=host, status=TaskStatus.QUEUED, created_at=start,
                               steps=tuple(TaskStep(i, s) for i, s in enumerate(steps))),
                         owner=owner)
    inv.update_task(tid, status=status, started_at=start, finished_at=end, error=error,
                    progress=1.0 if status is TaskStatus.SUCCEEDED else (progress or 0.0))
    last = len(steps) - 1 if running_step is None else running_step
    for i in range(len(steps)):
        if i < last or (i == last and status is TaskStatus.SUCCEEDED):
            inv.update_step(tid, i, status=TaskStatus.SUCCEEDED, started_at=start + i,
                            finished_at=start + i + 1)
        elif i == last:
            step_status = TaskStatus.RUNNING if status is TaskStatus.RUNNING else status
            inv.update_step(tid, i, status=step_status, started_at=start + i,
                            finished_at=None if step_status is TaskStatus.RUNNING else end)
    for offset, level, message in logs:
        inv.add_log(tid, start + offset, level, message)
    return tid


def build_inventory(path: Path) -> Path:
    inv = Inventory(path)
    inv.save_cluster(Cluster("prod", layout="kvm+ceph",
                             description="Production, hyperconverged with Ceph"))
    inv.save_cluster(Cluster("lab", layout="kvm"))
    for h in HOSTS:
        inv.save_host(h)
    inv.save_vms(VMS)
    inv.replace_host_networks("prod", "kvm-03", [
        Network("prod", "kvm-03", "storage", active=True, bridge="virbr1", autostart=True)], [
        Datastore("prod", "kvm-03", "images", kind="dir", path="/var/lib/libvirt/images",
                  active=True, capacity_bytes=500 * GIB, allocation_bytes=120 * GIB,
                  available_bytes=380 * GIB),
        Datastore("prod", "kvm-03", "rbd", kind="rbd", path="", active=False)])
    _task(inv, "vm.start", "Start web-01", "prod", 1, "kvm-01", TaskStatus.SUCCEEDED,
          3600, 4.2, ["Check host", "Start", "Wait until running"],
          [(0, "info", "Start web-01: started"), (0.1, "info", "web-01 is on kvm-01"),
           (1.2, "info", "libvirt accepted start"), (4.1, "info", "VM is running"),
           (4.2, "info", "Start web-01: done")])
    _task(inv, "vm.shutdown", "Shut down db-02", "prod", 4, "kvm-02", TaskStatus.FAILED,
          1800, 90.4, ["Check host", "Shut down", "Wait until shut off"],
          [(0, "info", "Shut down db-02: started"), (0.1, "info", "db-02 is on kvm-02"),
           (0.3, "info", "Asked the guest to power off (ACPI); waiting up to 90 s"),
           (90.4, "error", "VM still running after 90 s. It may ignore ACPI: "
                           "Force off cuts the power.")],
          error="VM still running after 90 s. It may ignore ACPI: Force off cuts the power.")
    _task(inv, "vm.start", "Start batch-01", "prod", 6, "kvm-03", TaskStatus.FAILED,
          600, 1.3, ["Check host", "Start", "Wait until running"],
          [(0, "info", "Start batch-01: started"), (0.1, "info", "batch-01 is on kvm-03"),
           (1.3, "error", "libvirt refused: internal error: process exited while "
                          "connecting to monitor: Could not open '/var/lib/libvirt/images/"
                          "batch-01.qcow2': Permission denied")],
          error="libvirt refused: internal error: process exited while connecting to "
                "monitor: Could not open '/var/lib/libvirt/images/batch-01.qcow2': "
                "Permission denied",
          running_step=1)
    _task(inv, "vm.reboot", "Reboot test-01", "lab", 9, "lab-01", TaskStatus.SUCCEEDED,
          2 * 86400, 2.0, ["Check host", "Reboot"],
          [(0, "info", "Reboot test-01: started"), (2.0, "info", "Reboot test-01: done")])
    # Left running by a console that died: the engine marks it interrupted at start.
    _task(inv, "vm.shutdown", "Shut down dev-01", "lab", 11, "lab-02", TaskStatus.RUNNING,
          3 * 3600 + 200, 0, ["Check host", "Shut down", "Wait until shut off"],
          [(0, "info", "Shut down dev-01: started"),
           (0.2, "info", "Asked the guest to power off (ACPI); waiting up to 90 s")],
          progress=0.7, running_step=2)
    inv.close()
    return path


@pytest.fixture
def inventory_path(tmp_path) -> Path:
    return build_inventory(tmp_path / "inventory.db")


def make_engine(path: Path, readonly: bool = False) -> Engine:
    eng = Engine(path, offline=True, clock=lambda: FIXED, readonly=readonly)
    eng.start()
    return eng


def add_running_task(eng: Engine) -> int:
    """A task in progress right now (after start, so recovery leaves it alone)."""
    return _task(_Keep(eng.inv), "vm.suspend", "Suspend web-02", "prod", 2, "kvm-02",
                 TaskStatus.RUNNING, 12, 0, ["Check host", "Suspend", "Wait until paused"],
                 [(0, "info", "Suspend web-02: started"), (0.1, "info", "web-02 is on kvm-02"),
                  (0.4, "info", "libvirt accepted suspend")],
                 progress=0.66, running_step=2, owner=this_process())


class _Keep:
    """The engine's own inventory, which _task must not close."""

    def __init__(self, inv: Inventory):
        self._inv = inv

    def __getattr__(self, name):
        if name == "close":
            return lambda: None
        return getattr(self._inv, name)


def scripted_world(clock=lambda: FIXED):
    """prod's hosts as a scripted hypervisor world: kvm-01 and kvm-02 answer with
    their VMs, kvm-03 cannot be reached (its VMs stay last known, stale)."""
    from mvmtui.engine.scripted import ScriptedWorld
    world = ScriptedWorld(clock)
    for h in HOSTS:
        if h.cluster != "prod":
            continue
        sh = world.add_host(h.cluster, h.name, cpus=h.cpus, memory_mib=h.memory_mib,
                            vms=[v for v in VMS if (v.cluster, v.host) == (h.cluster, h.name)],
                            cpu_pct=h.cpu_pct, mem_used_mib=h.mem_used_mib)
        sh.facts.update(hostname=h.hostname, cpu_model=h.cpu_model,
                        libvirt_version=h.libvirt_version, qemu_version=h.qemu_version)
        sh.reachable = h.status is not HostStatus.UNREACHABLE
    return world


def live_engine(path: Path, readonly: bool = False) -> Engine:
    """What a console that reached prod shows: kvm-01/02 up, kvm-03 unreachable; lab
    not contacted (stale). The engine runs its real host links over a scripted
    hypervisor (no SSH, no libvirt); no stats pass or reconciliation during a test."""
    world = scripted_world()
    eng = Engine(path, clock=lambda: FIXED, readonly=readonly, connect=world.connect,
                 stats_interval=3600, reconcile_interval=3600, reconnect_interval=3600)
    eng.world = world     # tests change hosts through it, as virsh would
    eng.start(clusters=["prod"])
    eng.call(eng.wait_ready(timeout=10))
    return eng


@pytest.fixture
def offline_engine(inventory_path):
    """The engine as `mvmtui --offline` would run it: every host stale."""
    eng = make_engine(inventory_path)
    yield eng
    eng.stop()


@pytest.fixture
def mixed_engine(inventory_path):
    """prod partly live (kvm-01/02 up, kvm-03 unreachable), lab stale, one task running."""
    eng = live_engine(inventory_path)
    add_running_task(eng)
    yield eng
    eng.stop()


@pytest.fixture
def readonly_engine(inventory_path):
    eng = live_engine(inventory_path, readonly=True)
    yield eng
    eng.stop()


def make_app(engine: Engine, start_cluster: str | None = None):
    from mvmtui.app import MvmApp

    app = MvmApp(engine, start_cluster=start_cluster)
    app.animation_level = "none"
    return app


def run_app(app, check, size=(120, 36)) -> None:
    """Run `await check(pilot)` inside the headless app (no pytest-asyncio here)."""
    async def go():
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await check(pilot)
    asyncio.run(go())


async def until(pilot, condition, timeout: float = 15.0) -> None:
    """Let the app run until condition() holds; fails, naming it, after `timeout` s."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        assert loop.time() < end, f"timed out: {condition.__doc__ or condition}"
        await pilot.pause(0.02)


# ---- snapshot failures as text ----------------------------------------------------
def svg_text(svg: str) -> list[str]:
    """The visible text of a Textual SVG screenshot, one string per terminal line."""
    rows: dict[float, list[tuple[float, str]]] = {}
    for x, y, body in re.findall(
            r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        rows.setdefault(float(y), []).append((float(x), html.unescape(body)))
    lines = []
    for y in sorted(rows):
        line = ""
        for x, text in sorted(rows[y]):
            col = int(round(x / 12.2))
            line = line.ljust(col) + text
        lines.append(line.replace("\xa0", " ").rstrip())
    return lines


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """When a snapshot differs, print the two screens' text as a diff."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed or "snap_compare" not in item.fixturenames:
        return
    try:
        import pickle

        from pytest_textual_snapshot import node_to_report_path

        path = node_to_report_path(item)
        if path.exists():
            data = pickle.loads(path.read_bytes())
            expected, actual = data[1], data[2]
            if expected and actual and expected != actual:
                diff = difflib.unified_diff(svg_text(expected), svg_text(actual),
                                            "snapshot", "now", lineterm="", n=1)
                report.sections.append(("snapshot text diff", "\n".join(diff) or
                                        "(same text; colours or styles differ)"))
    except Exception as exc:  # the diff is a courtesy; never hide the real failure
        report.sections.append(("snapshot text diff", f"unavailable: {exc}"))
