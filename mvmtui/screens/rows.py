"""How hosts, VMs and tasks read in tables: columns and cells, one place for all
screens. Pure functions of model objects, `now` and a palette of theme colours."""
from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from ..engine.model import (ENTERING, IN_MAINTENANCE, Capacity, ClusterSummary, Datastore,
                            Disk, Host, HostStatus, MigrationProgress, Network, Nic, Task,
                            TaskStatus, TaskStep, Vm, VmState)
from ..widgets import format as fmt
from ..widgets.fast_table import Column
from ..widgets.format import DASH, Age, Num
from ..widgets.spark import SPARK_WIDTH, spark_cell


@dataclass(frozen=True)
class Palette:
    """Styles for cells: status colours from the theme, and the few text styles
    (muted, strong) the screens share, named for what they mean."""

    ok: str = "green"
    warn: str = "yellow"
    bad: str = "red"
    accent: str = "blue"
    muted: str = "dim"            # shut off, queued, labels, descriptions
    strong: str = "bold"          # names and titles

    @property
    def alarm(self) -> str:
        """Bad and bold: failed, crashed, a host that cannot be reached."""
        return f"bold {self.bad}"

    @property
    def busy(self) -> str:
        """Work under way: a running task or step."""
        return f"bold {self.accent}"

    @classmethod
    def from_variables(cls, variables: dict[str, str]) -> "Palette":
        return cls(ok=variables.get("text-success", cls.ok),
                   warn=variables.get("text-warning", cls.warn),
                   bad=variables.get("text-error", cls.bad),
                   accent=variables.get("text-primary", variables.get("primary", cls.accent)))


# ---- shared cells ------------------------------------------------------------------
def maintenance_words(host: Host, moved: tuple[int, int] | None = None,
                      short: bool = False) -> str:
    """"entering maintenance 2/3" (VMs moved of those to move; `short`: "entering 2/3",
    for a table's Status column at 80 columns), "maintenance", or ""."""
    if host.maintenance == IN_MAINTENANCE:
        return "maintenance"
    if host.maintenance == ENTERING:
        return ("entering" if short else "entering maintenance") + (
            f" {moved[0]}/{moved[1]}" if moved and moved[1] else "")
    return ""


def host_status_text(host: Host, pal: Palette, moved: tuple[int, int] | None = None,
                     short: bool = False) -> Text:
    """"up", "unreachable", … and, for a host out of the placement pool,
    " · maintenance" or " · entering maintenance 2/3" (`moved`: VMs moved, of all)."""
    s = host.status
    if s is HostStatus.UP:
        style = pal.ok
    elif s in (HostStatus.CONNECTING, HostStatus.STALE):
        style = pal.warn
    else:  # unreachable, auth-failed, host-key-*, libvirt-down
        style = pal.alarm
    text = Text(s.value, style=style)
    words = maintenance_words(host, moved, short)
    if words:
        text.append(f" · {words}", style=pal.busy if host.maintenance == ENTERING else pal.warn)
    return text


_STATE_TEXTS: dict[tuple[VmState, bool, Palette], Text] = {}


def vm_state_text(vm: Vm, pal: Palette) -> Text:
    """Shared between rows (10,000 of them on a load): copy before changing it."""
    key = (vm.state, vm.stale, pal)
    text = _STATE_TEXTS.get(key)
    if text is None:
        text = _STATE_TEXTS[key] = _state_text(vm.state, vm.stale, pal)
    return text


def _state_text(st: VmState, stale: bool, pal: Palette) -> Text:
    style = {VmState.RUNNING: pal.ok, VmState.BLOCKED: pal.warn, VmState.PAUSED: pal.warn,
             VmState.SHUTTING_DOWN: pal.warn, VmState.SUSPENDED: pal.warn,
             VmState.CRASHED: pal.alarm, VmState.SHUTOFF: pal.muted,
             VmState.UNKNOWN: pal.muted}[st]
    if stale:
        # Last known state: never drawn as if it were live.
        return Text.assemble((st.value, f"{pal.muted} italic"), (" (stale)", pal.warn))
    return Text(st.value, style=style)


def task_status_style(status: TaskStatus, pal: Palette) -> str:
    """One colour per task (or step) status, for every screen."""
    return {TaskStatus.QUEUED: pal.muted, TaskStatus.RUNNING: pal.busy,
            TaskStatus.SUCCEEDED: pal.ok, TaskStatus.FAILED: pal.alarm,
            TaskStatus.INTERRUPTED: pal.warn, TaskStatus.CANCELLED: pal.warn,
            TaskStatus.SUPERSEDED: pal.muted, TaskStatus.SKIPPED: pal.muted,
            TaskStatus.ROLLED_BACK: pal.warn}[status]


def task_refused(task: Task) -> bool:
    """Refused before it started (busy, locked): it never ran a step."""
    return task.status is TaskStatus.FAILED and task.started_at is None


def task_status_text(task: Task, pal: Palette) -> Text:
    st = task.status
    if st is TaskStatus.RUNNING:
        label = "stopping…" if task.cancel_requested else f"running {task.progress * 100:.0f}%"
    elif task_refused(task):
        label = "refused"
    else:
        label = st.value
    return Text(label, style=task_status_style(st, pal))


def data_age(seen_at: float | None, now: float, live: bool, source=None) -> Age:
    """"2m 5s ago", or "stale · 2m 5s ago" unless the source is live; sorted by age.
    A table draws it with its own clock: on screen it never lags the dialogs.
    `source()` gives the timestamp as it is now (confirmed since the row was built)."""
    return Age(seen_at, live, now, source)


def pct_cell(value: float | None) -> Num | str:
    return DASH if value is None else Num(value, fmt.percent(value))


def mib_cell(mib: int | None) -> Num | str:
    return DASH if mib is None else Num(mib, fmt.size_mib(mib))


def bytes_cell(n: int | None) -> Num | str:
    return DASH if n is None else Num(n, fmt.size_bytes(n))


def mib_of_cell(used: int | None, total: int | None) -> Num | str:
    """"62.1 / 128.0 GiB", sorted by what is used; "— / 128.0 GiB" when unknown."""
    text = fmt.mib_of(used, total or None)
    return text if used is None else Num(used, text)


def host_problem(host: Host) -> str:
    if host.status is HostStatus.UP:
        return ""
    if host.problem:
        return host.problem
    if host.status is HostStatus.STALE:
        return "not contacted this session: last known data"
    return ""


# ---- clusters ----------------------------------------------------------------------
CLUSTER_COLUMNS = [
    Column("name", "Name", 16, min_width=10),
    Column("layout", "Layout", 10, priority=4, min_width=8),
    Column("hosts", "Hosts up", 9, align="right", priority=1),
    Column("vms", "VMs running", 12, align="right", priority=1),
    Column("cpu", "CPU %", 6, align="right", priority=3),
    Column("memory", "Memory used", 18, align="right", priority=3, min_width=17),
    Column("health", "Health", 20, flex=True, priority=2, min_width=12),
    # Who watches for host loss ("nobody watches" in warning colours): screens/ha.py.
    Column("ha", "HA", 14, priority=3),
]


def cluster_cells(s: ClusterSummary, pal: Palette, ha: Text | str = "") -> tuple:
    problems = len(s.problems)
    if problems:
        health = Text(f"{problems} problem{'s' if problems != 1 else ''}",
                      style=pal.alarm if s.hosts_up < s.hosts_total else pal.warn)
    elif s.hosts_connecting:
        health = Text(f"connecting to {s.hosts_connecting}…", style=pal.warn)
    else:
        health = Text("OK", style=pal.ok)
    return (s.cluster.name, s.cluster.layout,
            Num(s.hosts_up, fmt.ratio(s.hosts_up, s.hosts_total)),
            Num(s.vms_running, fmt.ratio(s.vms_running, s.vms_total)),
            *capacity_cells(s.capacity), health, ha)


def capacity_cells(cap: Capacity) -> tuple:
    """CPU % and memory used of the hosts the capacity counts; "—" unless they are
    live (offline or every host down: the last known figures are not today's load)."""
    if not cap.live:
        return DASH, mib_of_cell(None, cap.memory_mib)
    return pct_cell(cap.cpu_pct), mib_of_cell(cap.memory_used_mib, cap.memory_mib)


# ---- hosts -------------------------------------------------------------------------
HOST_COLUMNS = [
    Column("name", "Name", 12, min_width=10),
    Column("status", "Status", 17, priority=1, min_width=11),   # "up · entering 2/3"
    # What the HA watcher says of it ("lost — not restarted: host not fenced"): narrow
    # (80 columns keep Data age and Problem), it grows where there is room.
    Column("ha", "HA", 7, flex=True, priority=3, max_width=48),
    Column("address", "Address", 15, priority=6, min_width=11),
    Column("cpus", "CPUs", 4, align="right", priority=5),
    Column("memory", "Memory used", 17, align="right", priority=4),
    Column("cpu", "CPU %", 6, align="right", priority=3),
    # The last minute or two of CPU % (engine.sparkline), newest at the right.
    Column("trend", "CPU trend", SPARK_WIDTH, priority=5),
    Column("vms", "VMs", 5, align="right", priority=2),
    Column("age", "Data age", 18, priority=2, min_width=11),
    # What is wrong with a host that is down: wide enough to read before CPU or memory.
    Column("problem", "Problem", 30, flex=True, priority=1, min_width=20),
]


def host_cells(h: Host, now: float, pal: Palette, vms_running: int, vms_total: int,
               moved: tuple[int, int] | None = None, ha: Text | str = "",
               spark: tuple = ()) -> tuple:
    """`ha`: the watcher's words for the host (screens/ha.py host_ha_text); `spark`:
    its recent CPU figures (engine.sparkline)."""
    live = h.status.live
    used = h.mem_used_mib if live else None
    return (h.name, host_status_text(h, pal, moved, short=True), ha, h.address, h.cpus or DASH,
            mib_of_cell(used, h.memory_mib), pct_cell(h.cpu_pct if live else None),
            spark_cell(spark), Num(vms_total, fmt.ratio(vms_running, vms_total)),
            data_age(h.seen_at, now, live), host_problem(h))


# ---- VMs ---------------------------------------------------------------------------
VM_COLUMNS = [
    Column("name", "Name", 16, flex=True, min_width=12, max_width=32),
    Column("state", "State", 20, flex=True, priority=1, min_width=15, max_width=28),
    Column("host", "Host", 12, priority=2, min_width=8),
    Column("vcpus", "vCPUs", 5, align="right", priority=3),
    Column("memory", "Memory", 9, align="right", priority=3, min_width=8),
    Column("cpu", "CPU %", 6, align="right", priority=5),
    Column("trend", "CPU trend", SPARK_WIDTH, priority=6),
    Column("age", "Data age", 18, priority=4, min_width=11),
]


# What a VM is doing while a task of this kind runs on it ("running · rebooting…").
# Short enough that "running · stopping…" fits the State column at 80 columns.
PENDING_WORDS = {"vm.start": "starting…", "vm.shutdown": "stopping…",
                 "vm.destroy": "powering off…", "vm.reboot": "rebooting…",
                 "vm.suspend": "pausing…", "vm.resume": "resuming…",
                 "vm.migrate": "migrating…", "vm.move": "moving…",
                 "vm.placement": "placing…"}


def pending_words(task: Task | None) -> str:
    """"rebooting…" for an unfinished task on a VM; "" for none (or a finished one)."""
    if task is None or task.status.finished:
        return ""
    return PENDING_WORDS.get(task.kind, f"{task.title.lower()}…")


def vm_state_with_task(vm: Vm, pal: Palette, pending: Task | None = None,
                       note: str = "") -> Text:
    """The VM's state, then what the task running on it is doing; `note`: what else
    holds it ("not restarted: host not fenced"), as an alarm."""
    text = vm_state_text(vm, pal)
    words = pending_words(pending)
    if words or note:
        text = text.copy()
    if words:
        text.append(f" · {words}", style=pal.busy)
    if note:
        text.append(f" · {note}", style=pal.alarm)
    return text


def vm_cells(vm: Vm, now: float, pal: Palette, pending: Task | None = None,
             seen=None, note: str = "", spark: tuple = ()) -> tuple:
    """`seen(uuid)`: when the engine last confirmed the VM. Each stats pass confirms
    every VM of a live host but announces only changes, so the age is read when drawn.
    `spark`: its recent CPU figures (engine.sparkline), drawn as a sparkline."""
    live = not vm.stale
    source = (lambda u=vm.uuid: seen(u)) if seen is not None and live else None
    return (vm.name, vm_state_with_task(vm, pal, pending, note), vm.host, vm.vcpus,
            mib_cell(vm.memory_mib),
            pct_cell(vm.cpu_pct if live and vm.state.active else None),
            spark_cell(spark), data_age(vm.seen_at, now, live, source))


# ---- tasks -------------------------------------------------------------------------
TASK_COLUMNS = [
    Column("id", "ID", 5, align="right"),
    Column("title", "Task", 22, priority=1, min_width=16),
    Column("target", "Target", 12, priority=2, min_width=10),
    Column("host", "Host", 10, priority=6, min_width=8),
    Column("status", "Status", 12, priority=1),
    Column("started", "Started", 12, priority=2),
    Column("duration", "Duration", 8, align="right", priority=4),
    Column("by", "By", 16, priority=5, min_width=12),
    Column("error", "Error", 16, flex=True, priority=3, min_width=10),
]


def task_rows(tasks, now: float, pal: Palette) -> list[tuple[str, tuple]]:
    """Rows for a history table, keyed by task id (the key opens the task)."""
    return [(str(t.id), task_cells(t, now, pal)) for t in tasks]


def task_cells(t: Task, now: float, pal: Palette) -> tuple:
    started = t.started_at if t.started_at is not None else t.created_at
    took = t.duration(now)
    return (t.id, t.title, t.target_name, t.host or DASH, task_status_text(t, pal),
            Num(started, fmt.clock(started, now)),
            DASH if took is None else Num(took, fmt.duration(took)),
            t.started_by or DASH,
            Text(t.error, style=pal.bad) if t.error else "")


STEP_COLUMNS = [
    Column("index", "#", 3, align="right"),
    Column("name", "Step", 30, flex=True, min_width=16),
    Column("status", "Status", 12, priority=1),
    Column("started", "Started", 12, priority=2),
    Column("duration", "Took", 8, align="right", priority=2),
]


def step_cells(s: TaskStep, now: float, pal: Palette, task_ended: bool = False) -> tuple:
    """A step still queued when its task has ended never ran: "skipped" (journals
    older than the SKIPPED status left such steps queued)."""
    status = TaskStatus.SKIPPED if task_ended and s.status is TaskStatus.QUEUED else s.status
    took: Num | str = DASH
    if s.started_at is not None and (s.finished_at is not None or s.status is TaskStatus.RUNNING):
        seconds = max(0.0, (s.finished_at if s.finished_at is not None else now) - s.started_at)
        took = Num(seconds, fmt.duration(seconds))
    return (s.index + 1, s.name, Text(status.value, style=task_status_style(status, pal)),
            DASH if s.started_at is None else Num(s.started_at, fmt.clock(s.started_at, now)),
            took)


LOG_COLUMNS = [
    Column("at", "Time", 12),
    Column("level", "Level", 7, priority=1),
    Column("message", "Message", 40, flex=True, min_width=20),
]


def log_level_text(level: str, pal: Palette) -> Text:
    style = {"error": pal.alarm, "warning": pal.warn, "debug": pal.muted}.get(level, "")
    return Text(level, style=style)


# ---- disks and NICs ----------------------------------------------------------------
DISK_COLUMNS = [
    Column("target", "Device", 6),
    Column("device", "Type", 6, priority=3),
    Column("bus", "Bus", 7, priority=4),
    Column("kind", "Kind", 7, priority=3),
    Column("source", "Source", 30, flex=True, priority=1, min_width=16),
    Column("capacity", "Capacity", 10, align="right", priority=1),
    Column("allocation", "Allocated", 10, align="right", priority=2),
    Column("mode", "Mode", 4, priority=2),
]


def disk_cells(d: Disk) -> tuple:
    return (d.target, d.device, d.bus, d.kind, d.source or DASH,
            bytes_cell(d.capacity_bytes), bytes_cell(d.allocation_bytes),
            "ro" if d.readonly else "rw")


NIC_COLUMNS = [
    Column("mac", "MAC", 17),
    Column("kind", "Kind", 8, priority=2),
    Column("source", "Network / bridge", 20, flex=True, priority=1, min_width=16),
    Column("model", "Model", 10, priority=3),
    Column("target", "Host device", 12, priority=2),
]


def nic_cells(n: Nic) -> tuple:
    return (n.mac, n.kind, n.source or DASH, n.model or DASH, n.target or DASH)


STORAGE_COLUMNS = [
    Column("name", "Storage / network", 20, min_width=17),
    Column("kind", "Type", 8, priority=2),
    Column("where", "Path / bridge", 24, flex=True, priority=3, min_width=13),
    Column("state", "State", 16, priority=1),
    Column("capacity", "Capacity", 10, align="right", priority=2),
    Column("used", "Used", 10, align="right", priority=3),
    Column("free", "Free", 10, align="right", priority=1),
]


def datastore_cells(d: Datastore, pal: Palette, live: bool = True) -> tuple:
    """A pool of a host that does not answer shows its last known state, marked stale."""
    state = "active" if d.active else "inactive"
    if not live:
        state_text = Text(f"{state} (stale)", style=pal.warn)
    else:
        state_text = Text(state, style=pal.ok if d.active else pal.warn)
    if not d.active:   # libvirt reports zeros for an inactive pool: unknown, not empty
        return (d.name, d.kind, d.path or DASH, state_text, DASH, DASH, DASH)
    return (d.name, d.kind, d.path or DASH, state_text,
            *map(bytes_cell, (d.capacity_bytes, d.allocation_bytes, d.available_bytes)))


def network_cells(n: Network, pal: Palette, live: bool = True) -> tuple:
    state = "active" if n.active else "inactive"
    state = Text(f"{state} (stale)" if not live else state,
                 style=pal.ok if n.active and live else pal.warn)
    return (n.name, "network", n.bridge or DASH, state, DASH, DASH, DASH)


# ---- key/value panels --------------------------------------------------------------
def facts_table(rows: list[tuple[str, str | Text]], pal: Palette):
    """A two-column grid: muted labels, values that wrap."""
    from rich.table import Table

    table = Table.grid(padding=(0, 2), expand=True)
    table.add_column(style=pal.muted, no_wrap=True)
    table.add_column(ratio=1, overflow="fold")
    for label, value in rows:
        table.add_row(label, value if isinstance(value, Text) else Text(str(value)))
    return table


def host_state_text(h: Host, now: float, pal: Palette,
                    moved: tuple[int, int] | None = None) -> Text:
    """"up · data 4s old" or "unreachable — lost contact … · stale · 2m 5s ago"."""
    text = host_status_text(h, pal, moved)
    problem = host_problem(h)
    if problem:
        text.append(f" — {problem}")
    age = h.age(now)
    text.append(f"  ·  {fmt.ago(age)}" if h.status.live else f"  ·  {fmt.stale(age)}",
                style="" if h.status.live else pal.warn)
    return text


def migration_words(p: MigrationProgress) -> str:
    """"1.2 / 4.0 GiB · 120.0 MiB/s · downtime ≈ 30 ms · ETA 23s": a live migration's
    figures as libvirt's job stats give them (what is unknown is left out)."""
    mib = 1024 * 1024
    parts = [fmt.mib_of(p.processed / mib, p.total / mib) if p.total
             else fmt.size_bytes(p.processed)]
    if p.bytes_per_s:
        parts.append(f"{fmt.size_bytes(p.bytes_per_s)}/s")
    if p.downtime_ms is not None:
        parts.append(f"downtime ≈ {p.downtime_ms} ms")
    eta = p.eta_s
    if eta is not None and p.remaining:
        parts.append(f"ETA {fmt.duration(eta)}")
    return " · ".join(parts)


def placement_text(vm: Vm) -> str:
    """"pinned to kvm-01", "failover · home kvm-02", "auto"."""
    if vm.strategy.value == "pinned":
        return f"pinned to {vm.home or vm.host}"
    return vm.strategy.value + (f" · home {vm.home}" if vm.home else "")


def placement_words(vm: Vm) -> str:
    """The placement, then what host loss does with it when that is not the usual:
    "auto · restart priority high · failed over from kvm-01"."""
    text = placement_text(vm)
    if vm.priority != "medium":
        text += f" · restart priority {vm.priority}"
    if vm.failed_from:
        text += f" · failed over from {vm.failed_from}"
    return text

