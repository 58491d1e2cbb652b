"""Plain data that crosses the engine boundary: frozen dataclasses, nothing live.

Screens and the CLI only ever see these; never libvirt objects or SQLite rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum


class HostStatus(str, Enum):
    """What the console knows about its link to a host."""

    UP = "up"                          # connected; data is live
    CONNECTING = "connecting"          # first contact or reconnect under way
    UNREACHABLE = "unreachable"        # network/SSH down; data is last known
    AUTH_FAILED = "auth-failed"        # SSH refused our credentials
    HOST_KEY_UNKNOWN = "host-key-unknown"  # needs trust-on-first-use
    HOST_KEY_CHANGED = "host-key-changed"  # possible MITM: never connect
    LIBVIRT_DOWN = "libvirt-down"      # SSH works, libvirtd does not answer
    STALE = "stale"                    # not contacted this session (offline)

    @property
    def live(self) -> bool:
        return self is HostStatus.UP


class VmState(str, Enum):
    RUNNING = "running"
    BLOCKED = "blocked"
    PAUSED = "paused"
    SHUTTING_DOWN = "shutting down"
    SHUTOFF = "shut off"
    CRASHED = "crashed"
    SUSPENDED = "pmsuspended"
    UNKNOWN = "unknown"

    @property
    def active(self) -> bool:
        return self in (VmState.RUNNING, VmState.BLOCKED, VmState.PAUSED,
                        VmState.SHUTTING_DOWN, VmState.SUSPENDED)


class Strategy(str, Enum):
    """Where a VM may run (as MVM's placement strategies)."""

    AUTO = "auto"            # managed by load: moved for balance, maintenance, failover
    FAILOVER = "failover"    # moved only when its host is lost (or for maintenance)
    PINNED = "pinned"        # never moved from its home host


class TaskStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"   # the console died while it ran
    CANCELLED = "cancelled"       # an operator cancelled it (History, `task cancel`)
    SUPERSEDED = "superseded"     # another task took over (Force off ends a pending shutdown)
    SKIPPED = "skipped"           # a step that never ran: the task ended before it
    ROLLED_BACK = "rolled back"   # interrupted, then undone from what the hosts showed

    @property
    def finished(self) -> bool:
        return self not in (TaskStatus.QUEUED, TaskStatus.RUNNING)


@dataclass(frozen=True)
class Cluster:
    name: str
    layout: str = "kvm"             # e.g. "kvm", "kvm+ceph" (hyperconverged)
    ssh_user: str = "root"
    ssh_key: str | None = None       # path of the private key
    known_hosts: str | None = None   # path of the known_hosts file
    description: str = ""


@dataclass(frozen=True)
class ClusterPolicy:
    """How a cluster may be loaded and how workloads move in it (kept in the inventory;
    `mvmtui cluster set`). Used by the planner and, later, migration and DRS."""

    vcpu_ratio: float = 4.0              # vCPUs per physical CPU
    memory_ratio: float = 1.0            # 1.0: memory is never overcommitted
    host_reserve_mib: int = 2048         # memory each host keeps for itself
    migration_concurrency: int = 2       # moves at once in an evacuation
    migration_bandwidth_mib: int = 0     # MiB/s per migration; 0 = no limit
    migration_max_downtime_ms: int = 0   # switch-over pause allowed; 0 = libvirt's 300 ms
    shared_datastores: tuple[str, ...] = ()   # pools every host sees at the same path
    # Placement rules, as typed (policy.py reads them): VM names, host names.
    affinity: str = ""                   # "a+b, c+d": kept together
    anti_affinity: str = ""              # "a+b": kept apart
    must_run_on: str = ""                # "vm:host+host": never elsewhere
    prefer: str = ""                     # "vm:host": preferred
    # Host loss (engine/ha.py): when a host is lost, how it is fenced, what comes home.
    ha_lost_after: float = 2.0           # seconds a host may not answer before it is lost
    fence_method: str = "none"           # lab, command, ceph, none (each: fence_hosts)
    fence_command: str = ""              # template run on the watcher's machine
    fence_status: str = ""               # template; its output must say "off"
    fence_hosts: str = ""                # "kvm-03:none, kvm-04:command": per-host method
    ha_return: str = "migrate"           # a returned host gets its VMs back live; or "stay"
    drs_interval: int = 0                # seconds between the watcher's rebalances; 0 = off
    drs_threshold: int = 3               # 1 conservative … 5 aggressive
    drs_cooldown: int = 3600             # seconds a VM DRS moved is left where it is
    lab_root: str = ""                   # a lab's directory (lab.register): its fence
    # Ceph (engine/ceph/): how its daemons are run on a host, and the decommission's gates.
    ceph_service: str = "systemctl {action} ceph-{type}@{id}"
    ceph_settle: int = 60                # seconds a clean reading must last before a destroy
    ceph_noout_expiry: int = 7200        # seconds a maintenance's noout lasts, at most
    ceph_blocklist_seconds: int = 7 * 86400   # a storage fence's blocklist entries last
    fence_storage: bool = False          # after a power fence, fence at the storage too


@dataclass(frozen=True)
class Host:
    cluster: str
    name: str
    address: str
    port: int = 22
    status: HostStatus = HostStatus.STALE
    problem: str = ""               # readable reason when not up
    fingerprint: str = ""           # SHA256 host-key fingerprint, when known
    hostname: str = ""
    cpu_model: str = ""
    cpus: int = 0
    memory_mib: int = 0
    os_release: str = ""
    libvirt_version: str = ""
    qemu_version: str = ""
    cpu_pct: float | None = None     # host CPU use, 0..100
    mem_used_mib: int | None = None
    seen_at: float | None = None     # when data was last confirmed live
    maintenance: str = ""            # "", ENTERING or IN_MAINTENANCE (out of the pool)

    @property
    def key(self) -> str:
        return f"{self.cluster}/{self.name}"

    @property
    def in_pool(self) -> bool:
        """A placement target at all: not in, nor entering, maintenance."""
        return not self.maintenance

    def age(self, now: float) -> float | None:
        return None if self.seen_at is None else max(0.0, now - self.seen_at)


@dataclass(frozen=True)
class Disk:
    target: str                      # vda, sdb …
    source: str                      # file path, rbd pool/image, …
    kind: str = "file"               # file, block, network
    bus: str = "virtio"
    device: str = "disk"             # disk, cdrom
    capacity_bytes: int | None = None
    allocation_bytes: int | None = None
    readonly: bool = False


@dataclass(frozen=True)
class Nic:
    mac: str
    kind: str                        # network, bridge, user, direct
    source: str = ""                 # network/bridge name
    model: str = ""
    target: str = ""                 # host-side device (vnet0)


@dataclass(frozen=True)
class Vm:
    cluster: str
    host: str
    uuid: str
    name: str
    state: VmState = VmState.UNKNOWN
    vcpus: int = 0
    memory_mib: int = 0
    max_memory_mib: int = 0
    autostart: bool = False
    persistent: bool = True
    disks: tuple[Disk, ...] = ()
    nics: tuple[Nic, ...] = ()
    cpu_pct: float | None = None     # share of its own vCPUs, 0..100 (as host CPU %)
    mem_used_mib: int | None = None
    # When its state was last confirmed by its host on its own; a stats pass over the
    # whole host confirms every VM at once without copying each: Engine.vm_seen_at.
    seen_at: float | None = None
    stale: bool = False             # host is not live: this is last known state
    config_at: float | None = None   # when its whole definition was last read
    strategy: Strategy = Strategy.AUTO   # kept in the domain's own <metadata> too
    home: str = ""                   # the host it belongs on ("" = none)
    priority: str = "medium"         # restart priority after a host loss: high, medium, low
    failed_from: str = ""            # the host it was restarted from after that host was lost
    cpu_mode: str = ""               # <cpu mode=…>: host-passthrough ties it to its CPU
    # The domain's XML as last read (live for a running VM, its config otherwise): a
    # VM is later re-defined from it. Carried only from the host to the inventory.
    definition: str = field(default="", repr=False, compare=False)

    @property
    def key(self) -> str:
        return self.uuid

    def age(self, now: float) -> float | None:
        return None if self.seen_at is None else max(0.0, now - self.seen_at)


@dataclass(frozen=True)
class Network:
    cluster: str
    host: str
    name: str
    active: bool = False
    bridge: str = ""
    autostart: bool = False


@dataclass(frozen=True)
class Datastore:
    cluster: str
    host: str
    name: str
    kind: str = "dir"
    path: str = ""
    active: bool = False
    capacity_bytes: int = 0
    allocation_bytes: int = 0
    available_bytes: int = 0


@dataclass(frozen=True)
class TaskStep:
    index: int
    name: str
    status: TaskStatus = TaskStatus.QUEUED
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True)
class TaskLog:
    at: float
    level: str
    message: str


@dataclass(frozen=True)
class Task:
    id: int
    kind: str                        # vm.start, vm.shutdown, …
    title: str                       # "Start web-01"
    cluster: str
    target_kind: str                 # vm, host, cluster
    target: str                      # uuid or host name
    target_name: str
    status: TaskStatus = TaskStatus.QUEUED
    progress: float = 0.0            # 0..1
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    error: str = ""
    host: str = ""
    steps: tuple[TaskStep, ...] = ()
    logs: tuple[TaskLog, ...] = ()
    started_by: str = ""             # "console · root@admin-1", "cli · …", "watcher · …"
    cancellable: bool = False        # running, and stopping it now is safe (a wait)
    cancel_requested: str = ""       # why someone asked it to stop (it stops soon)
    parent: int | None = None        # the task it is part of (an evacuation's move)
    params: dict = field(default_factory=dict)   # what was asked (source, target, …)
    # Per-step data a resume or rollback needs (source, target, what was done), and
    # live figures (a migration's progress); JSON in the inventory.
    checkpoint: dict = field(default_factory=dict, compare=True)

    def duration(self, now: float) -> float | None:
        if self.started_at is None:
            return None
        return max(0.0, (self.finished_at or now) - self.started_at)


# Host.maintenance
ENTERING = "entering"
IN_MAINTENANCE = "in"


@dataclass(frozen=True)
class MigrationProgress:
    """A running migration as libvirt's job stats say (bytes; None where unknown)."""

    processed: int = 0
    remaining: int | None = None
    total: int | None = None
    bytes_per_s: float | None = None
    elapsed_s: float = 0.0
    downtime_ms: int | None = None      # expected downtime at the switch-over
    phase: str = "memory"              # "disk" (storage copy) or "memory"

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.processed / self.total))

    @property
    def eta_s(self) -> float | None:
        if self.remaining is None or not self.bytes_per_s:
            return None
        return self.remaining / self.bytes_per_s


@dataclass(frozen=True)
class MoveRequest:
    """What the operator asked for (CLI flags, dialog choices)."""

    vm: str                          # uuid
    target: str
    offline: bool = False            # move a stopped VM (after shutting it down: below)
    wait_shutdown: bool = False      # shut a running VM down first, then move it offline
    start_after: bool = False        # start it on the target after an offline move
    copy_storage: bool = False       # copy disks that the target cannot see


@dataclass(frozen=True)
class HostFit:
    """One host as a target for one VM (Manage Placement): fits, or why not."""

    host: str
    why_not: str = ""                  # "" = it fits
    best: bool = False                 # the planner's choice
    reason: str = ""                   # why the planner prefers it

    @property
    def fits(self) -> bool:
        return not self.why_not


@dataclass(frozen=True)
class MoveRow:
    """One VM in a maintenance preview: where it goes and how, or what blocks it."""

    vm: str                            # uuid
    name: str
    state: "VmState"
    target: str = ""
    method: str = ""                   # "live", "offline", "stays"
    reason: str = ""                   # why this target, why it stays, or what blocks
    blocked: bool = False
    ways_out: tuple[str, ...] = ()     # what the operator can do about a block


@dataclass(frozen=True)
class MaintenancePreview:
    cluster: str
    host: str
    rows: tuple[MoveRow, ...] = ()

    @property
    def blocked(self) -> tuple[MoveRow, ...]:
        return tuple(r for r in self.rows if r.blocked)

    @property
    def moves(self) -> tuple[MoveRow, ...]:
        return tuple(r for r in self.rows if r.method in ("live", "offline"))


@dataclass(frozen=True)
class Capacity:
    """CPU and memory of a set of hosts and of the VMs active on them: the one
    capacity model every screen and the CLI use (engine/capacity.py).

    Numerator and denominator always cover the same hosts: the live ones; or, when
    none is live (offline, or every host lost), the last known state of all of them,
    with `live` False so it is shown as stale."""

    hosts: int                       # hosts counted
    cpus: int
    memory_mib: int
    vcpus_allocated: int             # vCPUs of active VMs on those hosts
    memory_allocated_mib: int
    memory_used_mib: int | None      # as the hosts report it (None: unknown)
    cpu_pct: float | None            # average host CPU use (None: unknown)
    live: bool = True
    hosts_left_out: int = 0          # hosts not counted (not live)
    vms_left_out: int = 0            # VMs on those hosts (last known state only)


@dataclass(frozen=True)
class ClusterSummary:
    """Counts and capacity of one cluster, computed from hosts and VMs."""

    cluster: Cluster
    hosts_up: int
    hosts_total: int
    vms_running: int
    vms_total: int
    capacity: Capacity
    problems: tuple[str, ...] = ()
    hosts_connecting: int = 0       # first contact under way: not yet a problem


PRIORITIES = ("high", "medium", "low")     # Vm.priority, in restart order


@dataclass(frozen=True)
class WatcherInfo:
    """Who holds a cluster's watcher lease (engine/ha.py), as the hosts say."""

    cluster: str
    holder: str = ""                 # "watcher · root@admin-2"; "" = nobody
    pid: int | None = None
    machine: str = ""
    age: float | None = None         # seconds since the holder last renewed it
    hosts_held: int = 0              # hosts whose lease file it holds
    hosts_total: int = 0
    me: bool = False                 # this very engine holds it
    read_at: float | None = None     # when the console last read it from a host

    @property
    def watched(self) -> bool:
        return bool(self.holder)


@dataclass(frozen=True)
class HostHa:
    """What the watcher says of one host (published on the cluster's hosts)."""

    host: str
    state: str = ""                  # "", suspect, lost, fencing, unfenced, fenced,
    #                                  restarting, failed-over, returning, isolated
    since: float | None = None
    note: str = ""                   # in an operator's words: "not restarted: host not fenced"


@dataclass(frozen=True)
class HaStatus:
    cluster: str
    watcher: WatcherInfo
    hosts: tuple[HostHa, ...] = ()
    message: str = ""                # cluster-wide: "isolated: acting on no host"

    def of(self, host: str) -> HostHa:
        for h in self.hosts:
            if h.host == host:
                return h
        return HostHa(host)


@dataclass(frozen=True)
class FailoverRow:
    """One VM of a host in its failover plan: where it would restart, or why not."""

    vm: str
    name: str
    strategy: Strategy
    priority: str
    state: VmState
    target: str = ""
    outcome: str = ""                # "restart", "stays", "blocked"
    reason: str = ""


@dataclass(frozen=True)
class FailoverPlan:
    cluster: str
    host: str
    rows: tuple[FailoverRow, ...] = ()

    @property
    def restarts(self) -> tuple[FailoverRow, ...]:
        return tuple(r for r in self.rows if r.outcome == "restart")

    @property
    def blocked(self) -> tuple[FailoverRow, ...]:
        return tuple(r for r in self.rows if r.outcome == "blocked")


@dataclass(frozen=True)
class HostLossCheck:
    """N−1: can the cluster lose any one host and restart everything?"""

    cluster: str
    plans: tuple[FailoverPlan, ...] = ()
    short_mib: int = 0               # the worst host's shortfall, memory
    short_vcpus: int = 0

    @property
    def ok(self) -> bool:
        return all(not p.blocked for p in self.plans)

    @property
    def worst(self) -> FailoverPlan | None:
        bad = [p for p in self.plans if p.blocked]
        return max(bad, key=lambda p: len(p.blocked)) if bad else None


@dataclass(frozen=True)
class RebalancePreview:
    """A DRS plan: every move with its reason, and the balance before and after."""

    cluster: str
    threshold: int
    moves: tuple[MoveRow, ...] = ()
    before: float = 0.0              # imbalance: spread of host loads (0 = even)
    after: float = 0.0
    loads_before: tuple[tuple[str, float], ...] = ()
    loads_after: tuple[tuple[str, float], ...] = ()
    skipped: tuple[str, ...] = ()    # why some VMs were left out (cooldown, …)


# Engine → UI notifications (delivered on an engine thread; the UI coalesces).
@dataclass(frozen=True)
class HostChanged:
    host: Host


@dataclass(frozen=True)
class VmChanged:
    vm: Vm


@dataclass(frozen=True)
class VmRemoved:
    cluster: str
    uuid: str


@dataclass(frozen=True)
class TaskChanged:
    task: Task


@dataclass(frozen=True)
class HostKeyQuestion:
    """An unknown host key: the console must show it and let the operator decide."""

    host: Host
    key_type: str
    fingerprint: str


@dataclass(frozen=True)
class HaChanged:
    """What the watcher says of a cluster changed (or who watches it)."""

    status: HaStatus


@dataclass(frozen=True)
class CephChanged:
    """A cluster's Ceph summary was read again (engine.ceph_summary has it)."""

    cluster: str


@dataclass(frozen=True)
class EventRecorded:
    """An event was recorded (engine.event_log has it)."""

    cluster: str
    host: str
    target: str


@dataclass(frozen=True)
class MetricsChanged:
    """A host's stats pass wrote new samples (its own and its VMs'): charts redraw."""

    cluster: str
    host: str


Event = (HostChanged | VmChanged | VmRemoved | TaskChanged | HostKeyQuestion | HaChanged
         | CephChanged | MetricsChanged | EventRecorded)


# ---- monitoring (engine/monitoring.py) ---------------------------------------------
@dataclass(frozen=True)
class MetricSeries:
    """One line of a chart: a host's or a VM's figure over the chart's range."""

    label: str                                  # host name, or VM name
    metric: str                                 # a key of METRICS
    points: tuple[tuple[float, float], ...]     # (unix time, value), oldest first
    mean: float | None = None                   # over the range (the top VMs' order)


@dataclass(frozen=True)
class Chart:
    """What a chart shows: its lines, its window and how fresh it is."""

    title: str
    metric: str
    unit: str
    range: str                      # a key of RANGES
    start: float                    # the window, unix times
    end: float
    tier: str                       # "raw samples", "1-minute averages", …
    series: tuple[MetricSeries, ...]
    as_of: float | None             # the newest sample's time (None: no data yet)
    total: int = 0                  # series with points in the range (lines: the top n)


@dataclass(frozen=True)
class EventRecord:
    """A change recorded: what, when, where and who made it."""

    at: float
    cluster: str
    host: str
    target: str                     # a VM's uuid, or a host's name
    target_name: str                # the VM's name where known
    kind: str                       # vm.state, host.status, host.maintenance, vm.split, …
    message: str
    source: str                     # "task 12 (Start web-01) · console · root@admin",
                                    # "console · …", or OUTSIDE
    id: int = 0                     # the inventory's row id (a stable key)


OUTSIDE = "outside the console (virsh, the guest, another tool)"

# What a cluster's Ceph shows, and the decommission's plan (engine/ceph/model.py):
# screens take these types from here, with the rest of the model.
from .ceph.model import (Action, Blocklisted, CephSummary, Check, CrushHost,  # noqa: E402
                         CrushRule, DecomPlan, Flag, HealthCheck, Mgr, Mon, OkToStop, Osd,
                         PgCount, Pool, Progress, Recovery, SafeToDestroy)

__all__ = [name for name in dir() if not name.startswith("_")] + ["field", "replace"]


# ---- fast copies of frozen dataclasses ---------------------------------------------
def make(cls, fields: dict):
    """A frozen dataclass from all its fields, without running __init__: a warm start
    reads 10,000 VMs, and every stats pass copies VMs; dataclasses.replace re-runs
    __init__ for every field, ten times slower."""
    obj = object.__new__(cls)
    obj.__dict__.update(fields)
    return obj


def copy_with(obj, **changes):
    """A copy of a frozen dataclass with some fields changed (see make)."""
    return make(type(obj), {**obj.__dict__, **changes})

# What is sampled, how long it is kept, the chart ranges (engine/metrics.py).
from .metrics import (CEPH_METRICS, CEPH_SERIES, HOST_METRICS,  # noqa: E402,F401
                      KIND_METRICS, METRICS, RANGE_NAMES, RANGES, VM_METRICS)
