"""Host loss as the console shows it: who watches a cluster (the banner on every
cluster screen), what the watcher says of each host, and "what if this host dies
now?" (its failover plan; N−1 for the whole cluster).

Pure functions of the engine's HA model, `now` and a palette, and WatchBanner, the
one line that says who watches. Its age is drawn from when the hosts were read
(watcher.age + now − read_at) once a second, so it grows between reads and never
claims a fresher lease than the hosts showed.
"""
from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ..engine.model import (PRIORITIES, ClusterPolicy, FailoverPlan, FailoverRow, HaStatus,
                            HostHa, HostLossCheck, Vm)
from ..widgets import format as fmt
from ..widgets.fast_table import Column
from ..widgets.format import DASH, Num
from ..widgets.listing import plural
from .rows import Palette

FENCED_KEY = "F"        # "I have powered it off" (screens/fence.py)

# The watcher's state of a host, in words; its note follows ("lost — not restarted:
# host not fenced (…)").
STATE_WORDS = {"suspect": "suspect", "lost": "lost", "fencing": "lost · fencing",
               "unfenced": "lost", "fenced": "fenced", "restarting": "fenced · restarting",
               "failed-over": "failed over", "returning": "returning",
               "isolated": "isolated"}


# ---- who watches ---------------------------------------------------------------------
def watch_text(st: HaStatus, now: float, pal: Palette, offline: bool = False) -> Text:
    """"HA: watched by watcher · root@admin-2 (pid 4242), 3 s ago", "HA: watched here
    (pid 4242)", "HA: nobody watches — failover is off" (a warning), "HA: who watches
    is not known yet"; then what the watcher says of the whole cluster. `offline`: no
    host is asked, so it is never known."""
    w = st.watcher
    text = Text("HA: ", style=pal.strong)
    message = st.message
    if w.me:
        text.append(f"watched here (pid {w.pid})", style=pal.ok)
    elif w.watched:
        text.append(f"watched by {w.holder}", style=pal.ok)
        if w.pid is not None:
            text.append(f" (pid {w.pid})")
        if w.age is not None and w.read_at is not None:
            text.append(f", {int(w.age + max(0.0, now - w.read_at))} s ago")
    elif message.startswith("standby"):
        # This console watches too, but another holds the lease: it is watched.
        text.append("watched by another watcher; this console is its standby", style=pal.ok)
        message = ""
    elif w.read_at is None:
        text.append("who watches is not known (offline: no host is asked)" if offline
                    else "who watches is not known yet", style=pal.muted)
    else:
        text.append("nobody watches — failover is off", style=f"bold {pal.warn}")
    if message:
        text.append(f" · {message}", style=pal.alarm if message.startswith("isolated")
                    else pal.warn)
    return text


def watch_cell(st: HaStatus, pal: Palette) -> Text:
    """Who watches, for the clusters list: "watched", "watched here", "nobody
    watches" (a warning), "not known yet"."""
    w = st.watcher
    if w.me:
        return Text("watched here", style=pal.ok)
    if w.watched or st.message.startswith("standby"):
        return Text("watched", style=pal.ok)
    if w.read_at is None:
        return Text("not known yet", style=pal.muted)
    return Text("nobody watches", style=f"bold {pal.warn}")


def state_words(ha: HostHa) -> str:
    """"lost — not restarted: host not fenced (fence-method none)", "failed over — 2
    VMs restarted elsewhere", "suspect — …"; "" for a host the watcher is not worried
    about."""
    if not ha.state:
        return ""
    words = STATE_WORDS.get(ha.state, ha.state)
    return f"{words} — {ha.note}" if ha.note else words


def state_style(ha: HostHa, pal: Palette) -> str:
    if ha.state in ("lost", "fencing", "unfenced", "isolated"):
        return pal.alarm
    if ha.state in ("suspect", "returning"):
        return pal.warn
    return pal.busy if ha.state in ("fenced", "restarting") else pal.warn


def host_ha_text(ha: HostHa, pal: Palette) -> Text | str:
    """The HA cell of a host's row."""
    words = state_words(ha)
    return Text(words, style=state_style(ha, pal)) if words else ""


def hosts_line(st: HaStatus, pal: Palette) -> Text:
    """The hosts the watcher is worried about, for the cluster's banner (80 columns
    hide the Hosts tab's HA column): "kvm-01 lost — not restarted: … (F on its row)"."""
    text = Text()
    for ha in st.hosts:
        words = state_words(ha)
        if not words:
            continue
        if text:
            text.append("  ·  ")
        text.append(ha.host, style=pal.strong)
        text.append(f" {words}", style=state_style(ha, pal))
        if ha.state == "unfenced":
            text.append(f" · {FENCED_KEY} on its row in Hosts once it is powered off")
    return text


def host_banner(name: str, ha: HostHa, now: float, pal: Palette, changes: bool) -> Text:
    """The host screen's HA line for a host the watcher is worried about."""
    text = Text.assemble(("HA: ", pal.strong), (f"{name} ", pal.strong),
                         (state_words(ha), state_style(ha, pal)))
    if ha.since is not None:
        text.append(f" · since {fmt.clock(ha.since, now)}", style=pal.muted)
    if ha.state == "unfenced":
        text.append("\nIts VMs restart elsewhere only once it is fenced: power it off (BMC, "
                    "PDU, by hand), then "
                    + (f"{FENCED_KEY}: I have powered it off." if changes else
                       "confirm it from a console that may make changes."),
                    style=pal.warn)
    return text


# The host's HA states in which its loss is under way: its plan is what its fence starts.
LOSING = ("suspect", "lost", "fencing", "unfenced")


class WatchBanner(Static):
    """Who watches the cluster (and, with `hosts`, what the watcher says of its hosts),
    drawn from the engine once a second and on every HaChanged."""

    def __init__(self, cluster: str, *, hosts: bool = False) -> None:
        super().__init__(classes="ha-banner", markup=False)
        self.cluster = cluster
        self.hosts = hosts
        self._drawn: Text | None = None

    def on_mount(self) -> None:
        self.show()
        self.set_interval(1.0, self.show)   # the age moves on between reads

    def show(self) -> None:
        screen = self.screen
        st = self.app.engine.ha_status(self.cluster)  # type: ignore[attr-defined]
        pal = screen.palette  # type: ignore[attr-defined]
        text = watch_text(st, screen.now(), pal,  # type: ignore[attr-defined]
                          self.app.engine.offline)  # type: ignore[attr-defined]
        if self.hosts:
            worried = hosts_line(st, pal)
            if worried:
                text.append("\n")
                text.append_text(worried)
        if text != self._drawn:
            self._drawn = text
            self.update(text)


# ---- "what if this host dies now?" ---------------------------------------------------
PLAN_COLUMNS = [
    Column("name", "VM", 14, flex=True, min_width=10, max_width=24),
    Column("strategy", "Strategy", 8, priority=3),
    Column("priority", "Priority", 8, priority=2),
    Column("outcome", "Restarts on", 14, priority=1, min_width=11),
    Column("reason", "Why", 30, flex=True, priority=1, min_width=16),
]

_RANK = {p: i for i, p in enumerate(PRIORITIES)}


def priority_cell(priority: str) -> Num:
    """Sorted high, medium, low (not alphabetically)."""
    return Num(_RANK.get(priority, 1), priority)


def plan_cells(r: FailoverRow, pal: Palette) -> tuple:
    if r.outcome == "restart":
        outcome = Text(r.target, style=pal.ok)
    elif r.outcome == "blocked":
        outcome = Text("cannot restart", style=pal.alarm)
    else:
        outcome = Text("stays", style=pal.muted)
    return (r.name, r.strategy.value, priority_cell(r.priority), outcome,
            Text(r.reason, style=pal.bad if r.outcome == "blocked" else ""))


def plan_rows(plan: FailoverPlan, pal: Palette) -> list[tuple[str, tuple]]:
    return [(r.vm, plan_cells(r, pal)) for r in plan.rows]


def plan_heading(host: str, up: bool, ha: HostHa) -> str:
    """"If kvm-01 dies now" (up), "Once kvm-01 is fenced" (its loss under way), "If
    kvm-01 is lost" (down, the watcher not at it)."""
    if up:
        return f"If {host} dies now"
    return f"Once {host} is fenced" if ha.state in LOSING else f"If {host} is lost"


def plan_title(host: str, plan: FailoverPlan | None, error: str, pal: Palette,
               heading: str = "") -> Text:
    """"If kvm-01 dies now: 2 VMs restart elsewhere, 1 cannot, 1 stays"."""
    text = Text(heading or f"If {host} dies now", style=pal.strong)
    if plan is None:
        text.append(f": {error}" if error else ": …", style=pal.warn if error else pal.muted)
        return text
    if not plan.rows:
        text.append(f": no VM on {host} to restart", style=pal.muted)
        return text
    stays = len(plan.rows) - len(plan.restarts) - len(plan.blocked)
    n = len(plan.restarts)
    text.append(f": {plural(n, 'VM')} restart{'s' if n == 1 else ''} elsewhere" if n
                else ": no VM restarts elsewhere", style=pal.ok if n else pal.warn)
    if plan.blocked:
        text.append(f", {len(plan.blocked)} cannot", style=pal.alarm)
    if stays:
        text.append(f", {stays} stay{'s' if stays == 1 else ''}", style=pal.muted)
    return text


def short_of(plan: FailoverPlan, vms: dict[str, Vm]) -> tuple[int, int]:
    """(MiB, vCPUs) of the VMs the plan cannot restart, as the engine's N−1 counts them."""
    blocked = [vms[r.vm] for r in plan.blocked if r.vm in vms]
    return sum(v.memory_mib for v in blocked), sum(v.vcpus for v in blocked)


def short_words(mib: int, vcpus: int) -> str:
    return f"{mib} MiB, {plural(vcpus, 'vCPU')}"


def n_minus_one_text(check: HostLossCheck | None, error: str, pal: Palette) -> Text:
    """"Can lose any one host: yes" / "Losing kvm-01 leaves 2 VMs down (short 4096 MiB,
    2 vCPUs)"."""
    if check is None:
        return Text(f"Can lose any one host: {error}" if error else
                    "Can lose any one host: …", style=pal.warn if error else pal.muted)
    if not check.plans:
        return Text("Can lose any one host: no host is up to check", style=pal.warn)
    worst = check.worst
    if check.ok or worst is None:
        return Text.assemble("Can lose any one host: ", ("yes", f"bold {pal.ok}"))
    return Text(f"Losing {worst.host} leaves {plural(len(worst.blocked), 'VM')} down "
                f"(short {short_words(check.short_mib, check.short_vcpus)})",
                style=f"bold {pal.bad}")


def watcher_policy_text(pol: ClusterPolicy, pal: Palette) -> Text:
    """How the cluster's watcher acts: when a host is lost, how it is fenced, what
    comes back, DRS."""
    fence = pol.fence_method + (f" (per host: {pol.fence_hosts})" if pol.fence_hosts else "")
    if pol.fence_method == "none" and not pol.fence_hosts:
        fence += " — an operator confirms each lost host powered off"
    drs = (f"every {pol.drs_interval} s at threshold {pol.drs_threshold}"
           if pol.drs_interval else "off (R previews a rebalance)")
    back = "come back live" if pol.ha_return == "migrate" else "stay where they are"
    return Text(f"A host is lost after {pol.ha_lost_after:g} s without an answer · fence: "
                f"{fence} · when it returns, its VMs {back} · DRS: {drs}", style=pal.muted)


LOSS_COLUMNS = [
    Column("host", "Host", 12, min_width=10),
    Column("restart", "Restart", 8, align="right"),
    Column("cannot", "Cannot", 7, align="right", priority=1),
    Column("stays", "Stay", 5, align="right", priority=3),
    Column("short", "Short", 22, priority=2, min_width=12),
    Column("now", "HA now", 20, flex=True, priority=4, min_width=10),
]


def loss_cells(plan: FailoverPlan, vms: dict[str, Vm], ha: HostHa, pal: Palette) -> tuple:
    """One host of the N−1 table: what its loss would restart, and what not."""
    blocked = len(plan.blocked)
    stays = len(plan.rows) - len(plan.restarts) - blocked
    mib, vcpus = short_of(plan, vms)
    return (plan.host, len(plan.restarts),
            Text(str(blocked), style=pal.alarm) if blocked else 0,
            stays, Num(mib, short_words(mib, vcpus)) if blocked else DASH,
            host_ha_text(ha, pal) or DASH)
