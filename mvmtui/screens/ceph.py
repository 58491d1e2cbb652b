"""A cluster's Ceph as the console shows it: the compact summary of the cluster's Ceph
tab (6) and the full Ceph screen (c on that tab).

Pure functions of the engine's CephSummary (engine/ceph/model.py, read as a type
only), `now` and a palette, and CephScreen. Everything says how old it is ("read 3s
ago from kvm-01"); a reading older than STALE_AFTER, or one the engine could not
refresh, is marked STALE: Ceph's state at 2 a.m. is never a guess. Flags that change
how Ceph behaves (noout, norebalance…) come first, with who set them and when they
expire; one that expired, or that nobody recorded, is a warning.
"""
from __future__ import annotations

from pathlib import Path

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from ..engine.errors import EngineError
from ..engine.model import CEPH_SERIES, CephSummary, Flag, Osd
from ..widgets import format as fmt
from ..widgets.format import DASH
from ..widgets.gauge import Gauge
from ..widgets.listing import plural
from .base import ConsoleScreen
from .monitoring import ChartScreen, DetailChart, metric_binding, range_bindings
from .rows import Palette

_HERE = Path(__file__).parent
STALE_AFTER = 15.0          # seconds: an older reading is marked STALE
DETAIL_LINES = 100          # a health check's detail lines shown before "… N more"
WIDE = 100                  # columns from which the tables show every column


class CephUpdate(Message):
    """Posted by the app when clusters' Ceph summaries were read again (CephChanged)."""

    def __init__(self, clusters: set[str]) -> None:
        super().__init__()
        self.clusters = clusters


# ---- age and staleness ---------------------------------------------------------------
def not_refreshed(s: "CephSummary") -> bool:
    """The engine kept the last reading because the new one failed."""
    return any(p.startswith("not refreshed") for p in s.problems)


def is_stale(s: "CephSummary", now: float) -> bool:
    return now - s.read_at > STALE_AFTER or not_refreshed(s)


def age_text(s: "CephSummary", now: float, pal: Palette) -> Text:
    """"read 3s ago from kvm-01", then " · STALE" when it is."""
    text = Text(f"read {fmt.ago(max(0.0, now - s.read_at))}"
                + (f" from {s.source}" if s.source else ""), style=pal.muted)
    if is_stale(s, now):
        text.append(" · ")
        text.append("STALE", style=f"bold reverse {pal.warn}")
    return text


def health_style(health: str, pal: Palette) -> str:
    return {"HEALTH_OK": f"bold {pal.ok}", "HEALTH_WARN": f"bold {pal.warn}",
            "HEALTH_ERR": pal.alarm}.get(health, pal.strong)


def severity_word(severity: str) -> str:
    """HEALTH_WARN → WARN, HEALTH_ERR → ERR; anything else as Ceph spelled it."""
    return severity.removeprefix("HEALTH_") or "?"


def headline(s: "CephSummary", now: float, pal: Palette) -> Text:
    """"Ceph HEALTH_WARN · read 3s ago from kvm-01 · STALE"."""
    text = Text.assemble(("Ceph ", pal.strong),
                         (s.health or "health not known", health_style(s.health, pal)),
                         "  ·  ")
    text.append_text(age_text(s, now, pal))
    if s.release:
        text.append(f"  ·  {s.release}", style=pal.muted)
    return text


def absent_text(present: bool | None, cluster: str, pal: Palette) -> Text:
    if present is False:
        return Text(f"Cluster {cluster} has no Ceph: none of its hosts has "
                    f"/etc/ceph/ceph.conf (looked for again every minute).", style=pal.muted)
    return Text(f"Ceph of {cluster}: not read yet (the first reading comes once a host "
                f"answers).", style=pal.muted)


# ---- flags -------------------------------------------------------------------------------
def flag_text(f: "Flag", now: float, pal: Palette) -> Text:
    """"noout on host kvm-04 · set by root@admin (pid 1) 2h 1m ago for maintenance ·
    EXPIRED 1m 40s ago"; a flag nobody recorded says "set outside mvmtui"."""
    where = "cluster-wide" if f.scope == "cluster" else f"on {f.scope}"
    text = Text.assemble((f.name, f"bold {pal.warn}"), f" {where}")
    if not f.who and f.expires is None:
        text.append(" · ")
        text.append("set outside mvmtui", style=f"bold {pal.warn}")
        text.append(": nobody recorded who set it or until when")
        return text
    text.append(f" · set by {f.who or 'someone'}")
    if f.since is not None:
        text.append(f" {fmt.ago(max(0.0, now - f.since))}")
    if f.why:
        text.append(f" for {f.why}")
    if f.expires is None:
        text.append(" · no expiry", style=pal.warn)
    elif f.expired(now):
        text.append(" · ")
        text.append(f"EXPIRED {fmt.ago(now - f.expires)}", style=pal.alarm)
        text.append(": clear it if the work is over")
    else:
        text.append(f" · expires in {fmt.duration(f.expires - now)}")
    return text


def flags_text(s: "CephSummary", now: float, pal: Palette) -> Text | None:
    """Every flag, one a line, under "FLAGS"; None when Ceph has none set."""
    if not s.flags:
        return None
    text = Text()
    for n, f in enumerate(s.flags):
        if n:
            text.append("\n")
        text.append("⚑ ", style=f"bold {pal.warn}")
        text.append_text(flag_text(f, now, pal))
    return text


# ---- health --------------------------------------------------------------------------------
def check_line(c, pal: Palette) -> Table:
    """"WARN OSD_DOWN  1 osds down": severity, code, Ceph's message (wrapped lines
    stay under the message)."""
    style = pal.alarm if c.severity == "HEALTH_ERR" else f"bold {pal.warn}"
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, min_width=4)
    grid.add_column(ratio=1)
    grid.add_row(Text(severity_word(c.severity), style=pal.muted if c.muted else style),
                 Text.assemble((c.code, pal.muted if c.muted else pal.strong),
                               f"  {c.summary}" + (" (muted)" if c.muted else "")))
    return grid


def health_text(s: "CephSummary", pal: Palette) -> RenderableType:
    """Every check on a line of its own (no detail); or that there is none."""
    if not s.checks:
        if s.health == "HEALTH_OK":
            return Text("HEALTH_OK: no health check raised", style=pal.ok)
        return Text(f"{s.health or 'Health not known'}: no check listed", style=pal.muted)
    return Group(*(check_line(c, pal) for c in s.checks))


def health_detail(s: "CephSummary", pal: Palette) -> RenderableType:
    """Every check with its detail lines, indented under it (the first DETAIL_LINES,
    then how many more: `ceph health detail` has them all)."""
    if not s.checks:
        return health_text(s, pal)
    parts: list[RenderableType] = []
    for c in s.checks:
        parts.append(check_line(c, pal))
        lines = list(c.detail[:DETAIL_LINES])
        if len(c.detail) > DETAIL_LINES:
            lines.append(f"… {len(c.detail) - DETAIL_LINES} more (ceph health detail)")
        if lines:
            parts.append(Padding(Text("\n".join(lines), style=pal.muted), (0, 0, 0, 5)))
    return Group(*parts)


# ---- daemons ---------------------------------------------------------------------------------
def mons_text(s: "CephSummary", pal: Palette) -> Text:
    """"3 of 3 in quorum: kvm-01 kvm-02 kvm-03"; one outside it in red."""
    q = len(s.quorum)
    text = Text()
    if not s.mons:
        return text.append("not known", style=pal.muted)
    majority = q * 2 > len(s.mons)
    text.append(f"{q} of {len(s.mons)} in quorum",
                style=pal.ok if q == len(s.mons) else (pal.warn if majority else pal.alarm))
    text.append(": ")
    for n, m in enumerate(s.mons):
        if n:
            text.append(" ")
        text.append(m.name if m.in_quorum else f"{m.name} (out of quorum)",
                    style="" if m.in_quorum else pal.alarm)
    return text


def mgrs_text(s: "CephSummary", pal: Palette) -> Text:
    text = Text()
    active = [m.name for m in s.mgrs if m.active]
    standby = [m.name for m in s.mgrs if not m.active]
    if not s.mgrs:
        return text.append("not known", style=pal.muted)
    if active:
        text.append(f"{', '.join(active)} active", style=pal.ok)
    else:
        text.append("no active manager", style=pal.alarm)
    text.append(f" · {', '.join(standby)} standby" if standby else " · no standby",
                style="" if standby else pal.warn)
    return text


def osds_counts(s: "CephSummary") -> str:
    n = len(s.osds)
    up = sum(o.up for o in s.osds)
    in_ = sum(o.in_ for o in s.osds)
    return f"{up} of {n} up, {in_} of {n} in, on {plural(len(s.hosts), 'host')}"


def osds_text(s: "CephSummary", pal: Palette) -> Text:
    text = Text()
    if not s.osds:
        return text.append("none known", style=pal.muted)
    ok = all(o.up and o.in_ for o in s.osds)
    text.append(osds_counts(s), style=pal.ok if ok else pal.warn)
    full = [f"{o.name} {fullness(o, s)}" for o in s.osds if fullness(o, s)]
    if full:
        text.append(" · " + ", ".join(full), style=f"bold {pal.warn}")
    return text


# ---- usage and data moving -------------------------------------------------------------------
def fullness(o: "Osd", s: "CephSummary") -> str:
    """"FULL", "BACKFILLFULL", "NEARFULL" against the cluster's ratios, or ""."""
    if o.utilization is None:
        return ""
    for word, ratio in (("FULL", s.full_ratio), ("BACKFILLFULL", s.backfillfull_ratio),
                        ("NEARFULL", s.nearfull_ratio)):
        if ratio is not None and o.utilization >= ratio * 100:
            return word
    return ""


def ratios_words(s: "CephSummary") -> str:
    parts = [f"{name} {fmt.percent(r * 100)}" for name, r in
             (("nearfull", s.nearfull_ratio), ("backfillfull", s.backfillfull_ratio),
              ("full", s.full_ratio)) if r is not None]
    return ", ".join(parts) if parts else "ratios not known"


def show_raw(gauge: Gauge, s: "CephSummary") -> None:
    """Raw used of raw total, amber from nearfull, red from full."""
    gauge.warn = s.nearfull_ratio * 100 if s.nearfull_ratio is not None else 85.0
    gauge.bad = s.full_ratio * 100 if s.full_ratio is not None else 95.0
    detail = (f"{fmt.size_bytes(s.raw_used_bytes)} of {fmt.size_bytes(s.raw_total_bytes)}"
              f" · {fmt.size_bytes(s.raw_avail_bytes)} available")
    gauge.show(s.raw_used_bytes, s.raw_total_bytes, detail)
    gauge.refresh()


def pg_state_style(state: str, pal: Palette) -> str:
    if state == "active+clean":
        return pal.ok
    parts = set(state.split("+"))
    if parts & {"down", "incomplete", "stale", "unknown", "inconsistent", "inactive",
                "unfound", "recovery_unfound", "backfill_unfound"} or "active" not in parts:
        return pal.alarm
    return pal.warn


def pgs_text(s: "CephSummary", pal: Palette, limit: int | None = None) -> Text:
    """"33: 18 active+clean · 5 activating+degraded …" (most first)."""
    text = Text()
    if not s.pgs:
        return text.append("not known", style=pal.muted)
    total = s.num_pgs if s.num_pgs is not None else sum(p.count for p in s.pgs)
    text.append(f"{total}: ")
    states = sorted(s.pgs, key=lambda p: (-p.count, p.state))
    shown = states if limit is None else states[:limit]
    for n, p in enumerate(shown):
        if n:
            text.append(" · ")
        text.append(f"{p.count} {p.state}", style=pg_state_style(p.state, pal))
    if len(shown) < len(states):
        text.append(f" · {len(states) - len(shown)} more states", style=pal.muted)
    return text


def _of(part: int | None, whole: int | None) -> str:
    if part is None:
        return DASH
    if whole:
        return f"{part} of {whole} ({fmt.percent(part / whole * 100)})"
    return str(part)


def recovery_text(s: "CephSummary", pal: Palette) -> Text:
    """What moves and how fast: objects degraded / misplaced / unfound, bytes and
    objects a second, and the ETA; "nothing moving" when so."""
    r = s.recovery
    text = Text()
    if not r.active and not r.unfound_objects:
        return text.append("nothing moving: no object degraded or misplaced", style=pal.ok)
    text.append(f"degraded {_of(r.degraded_objects, r.degraded_total)} · misplaced "
                f"{_of(r.misplaced_objects, r.misplaced_total)}", style=pal.warn)
    if r.unfound_objects:
        text.append(f" · {r.unfound_objects} UNFOUND", style=pal.alarm)
    rate, objects = r.recovering_bytes_per_sec, r.recovering_objects_per_sec
    if rate is None and objects is None:
        return text.append(" · speed not known", style=pal.muted)
    if not rate and not objects:
        # Degraded with nothing recovering: a copy is missing and nowhere to go yet.
        return text.append(" · nothing recovering now", style=pal.warn)
    text.append(f" · {fmt.size_bytes(rate or 0)}/s")
    if objects:
        text.append(f", {objects:.0f} objects/s")
    eta = s.recovery_eta()
    text.append(f" · ETA {fmt.duration(eta)}" if eta is not None else " · ETA not known yet",
                style="" if eta is not None else pal.muted)
    return text


def _rate(value: float | None) -> str:
    return DASH if value is None else f"{fmt.size_bytes(value)}/s"


def _ops(value: float | None) -> str:
    return "" if value is None else f" ({value:.0f} op/s)"


def client_text(s: "CephSummary", pal: Palette) -> Text:
    return Text.assemble(f"read {_rate(s.client_read_bytes_per_sec)}"
                         f"{_ops(s.client_read_ops_per_sec)} · write "
                         f"{_rate(s.client_write_bytes_per_sec)}"
                         f"{_ops(s.client_write_ops_per_sec)}")


def pools_line(s: "CephSummary", pal: Palette) -> Text:
    """"vms 3/2 1.4%, …": each pool's size / min_size and use."""
    if not s.pools:
        return Text("none", style=pal.muted)
    return Text(", ".join(
        f"{p.name} {p.size if p.size is not None else '?'}/"
        f"{p.min_size if p.min_size is not None else '?'} {fmt.percent(p.percent_used)}"
        for p in s.pools))


def overview(s: "CephSummary", pal: Palette, pools: bool = False) -> Table:
    """Daemons, OSDs, PGs, data moving, client I/O: a label, then what it says
    (wrapped lines stay under their value)."""
    rows = [("Monitors", mons_text(s, pal)), ("Managers", mgrs_text(s, pal)),
            ("OSDs", osds_text(s, pal)), ("PGs", pgs_text(s, pal, limit=None if not pools
                                                          else 4)),
            ("Recovery", recovery_text(s, pal))]
    if pools:
        rows.append(("Pools", pools_line(s, pal)))
    rows.append(("Client IO", client_text(s, pal)))
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style=pal.strong, no_wrap=True, min_width=9)
    grid.add_column(ratio=1)
    for label, value in rows:
        grid.add_row(label, value)
    return grid


# ---- tables ------------------------------------------------------------------------------
def _weight(w: float | None) -> str:
    return DASH if w is None else f"{w:.5f}"


def _status(o: "Osd", pal: Palette) -> Text:
    text = Text("up" if o.up else (o.status or "down"), style=pal.ok if o.up else pal.alarm)
    text.append("·in" if o.in_ else "·out", style="" if o.in_ else pal.warn)
    return text


def osd_tree(s: "CephSummary", pal: Palette, wide: bool = True) -> Table:
    """The CRUSH tree, a host then its OSDs, with usage; OSDs outside CRUSH last."""
    # One space between columns (rich's padding on the right only): 80 columns hold them.
    t = Table(box=None, padding=(0, 1, 0, 0), show_edge=False, header_style=pal.muted)
    t.add_column("Host / OSD", no_wrap=True)
    t.add_column("Status", no_wrap=True)
    if wide:
        t.add_column("Class", no_wrap=True)
    t.add_column("Weight", justify="right", no_wrap=True)
    if wide:
        t.add_column("Reweight", justify="right", no_wrap=True)
    t.add_column("Size", justify="right", no_wrap=True)
    t.add_column("Used", justify="right", no_wrap=True)
    t.add_column("Use", justify="right", no_wrap=True)
    t.add_column("PGs", justify="right", no_wrap=True)
    t.add_column("", no_wrap=True)
    by_id = {o.id: o for o in s.osds}

    def osd_row(o: "Osd") -> None:
        full = fullness(o, s)
        cells = [f"  {o.name}", _status(o, pal)]
        if wide:
            cells.append(o.device_class or DASH)
        cells.append(_weight(o.crush_weight))
        if wide:
            cells.append(DASH if o.reweight is None else f"{o.reweight:.2f}")
        cells += [fmt.size_bytes(o.size_bytes), fmt.size_bytes(o.used_bytes),
                  Text(fmt.percent(o.utilization), style=pal.warn if full else ""),
                  DASH if o.pgs is None else str(o.pgs),
                  Text(full, style=pal.alarm if full == "FULL" else f"bold {pal.warn}")]
        t.add_row(*cells)

    seen: set[int] = set()
    for h in s.hosts:
        mine = [by_id[i] for i in h.osds if i in by_id]
        seen |= {o.id for o in mine}
        up = sum(o.up for o in mine)
        use = (h.used_bytes / h.size_bytes * 100) if h.used_bytes is not None \
            and h.size_bytes else None
        cells = [Text(h.name, style=pal.strong),
                 Text(f"{up}/{len(mine)} up", style=pal.ok if up == len(mine) and mine
                      else pal.warn)]
        if wide:
            cells.append("")
        cells.append(_weight(h.crush_weight))
        if wide:
            cells.append("")
        cells += [fmt.size_bytes(h.size_bytes), fmt.size_bytes(h.used_bytes),
                  fmt.percent(use), "", ""]
        t.add_row(*cells)
        for o in mine:
            osd_row(o)
    outside = [o for o in s.osds if o.id not in seen]
    if outside:
        t.add_row(Text("outside CRUSH", style=pal.warn), *[""] * (len(t.columns) - 1))
        for o in outside:
            osd_row(o)
    return t


def pools_table(s: "CephSummary", pal: Palette, wide: bool = True) -> Table:
    t = Table(box=None, padding=(0, 1, 0, 0), show_edge=False, header_style=pal.muted)
    t.add_column("Pool", no_wrap=True, overflow="ellipsis", max_width=24)
    t.add_column("Size", justify="right", no_wrap=True)
    t.add_column("PGs", justify="right", no_wrap=True)
    if wide:
        t.add_column("Rule", no_wrap=True)
    t.add_column("Stored", justify="right", no_wrap=True)
    t.add_column("Used", justify="right", no_wrap=True)
    t.add_column("Use", justify="right", no_wrap=True)
    t.add_column("Max avail", justify="right", no_wrap=True)
    if wide:
        t.add_column("Objects", justify="right", no_wrap=True)
        t.add_column("Application", no_wrap=True)
    for p in s.pools:
        size = Text(f"{p.size if p.size is not None else '?'}/"
                    f"{p.min_size if p.min_size is not None else '?'}")
        if p.min_size == 1 and (p.size or 0) > 1:
            size.stylize(f"bold {pal.warn}")     # one copy left still takes writes
        rule = s.rule(p.crush_rule)
        cells = [p.name if p.kind == "replicated" else f"{p.name} ({p.kind})", size,
                 DASH if p.pg_num is None else str(p.pg_num)]
        if wide:
            cells.append(rule.name if rule else fmt.or_dash(p.crush_rule))
        cells += [fmt.size_bytes(p.stored_bytes), fmt.size_bytes(p.used_bytes),
                  fmt.percent(p.percent_used), fmt.size_bytes(p.max_avail_bytes)]
        if wide:
            cells += [DASH if p.objects is None else str(p.objects),
                      ", ".join(p.applications) or DASH]
        t.add_row(*cells)
    return t


def problems_text(s: "CephSummary", pal: Palette) -> Text | None:
    if not s.problems:
        return None
    return Text("\n").join(Text(f"• {p}", style=pal.warn) for p in s.problems)


# ---- the cluster's Ceph tab ------------------------------------------------------------------
def compact_text(s: "CephSummary", now: float, pal: Palette) -> Group:
    """The tab's few lines: health and age, flags, checks (no detail), daemons, OSDs,
    PGs, data moving, pools, client I/O, what failed to be read."""
    parts: list[RenderableType] = [headline(s, now, pal)]
    flags = flags_text(s, now, pal)
    if flags is not None:
        parts.append(Text.assemble(("FLAGS\n", f"bold {pal.warn}"), flags))
    parts += [health_text(s, pal), overview(s, pal, pools=True)]
    problems = problems_text(s, pal)
    if problems is not None:
        parts.append(problems)
    return Group(*parts)


# ---- the full screen ---------------------------------------------------------------------------
class CephBody(VerticalScroll, can_focus=True):
    """The whole screen scrolls, with a table's keys."""

    BINDINGS = [Binding("j", "scroll_down", "Down", show=False, id="ceph.down"),
                Binding("k", "scroll_up", "Up", show=False, id="ceph.up")]


class CephScreen(ChartScreen, ConsoleScreen):
    """c on a cluster's Ceph tab: everything the summary reads, refreshed as the engine
    reads it again (every 5 s while a screen shows Ceph); its chart (ChartScreen's
    keys and ageing) is read again with each reading, which is sampled."""

    CSS_PATH = [_HERE / "ceph.tcss", _HERE / "monitoring.tcss"]
    BINDINGS = [Binding("r", "read_now", "Read now", id="ceph.read_now"),
                *range_bindings(), metric_binding()]

    def __init__(self, cluster: str) -> None:
        super().__init__()
        self.cluster = cluster
        self._watching = False

    @property
    def TITLE_TEXT(self) -> str:  # type: ignore[override]
        return f"Ceph of {self.cluster}"

    def crumbs(self) -> list[str]:
        return ["mvmtui", self.cluster, "ceph"]

    def compose_body(self) -> ComposeResult:
        with CephBody(id="ceph-body"):
            yield Static(id="ceph-head", markup=False)
            flags = Static(id="ceph-flags", classes="panel", markup=False)
            flags.border_title = "FLAGS"
            yield flags
            # At a glance first; the long lists (the tree, health detail) after.
            yield Static(id="ceph-overview", markup=False)
            yield Gauge("Raw used", label_width=10, id="g-ceph-raw")
            yield Static(id="ceph-ratios", markup=False)
            # Raw used (and client I/O, M) over time: sampled at each read of the summary.
            yield DetailChart("ceph", self.cluster, CEPH_SERIES, id="ceph-chart")
            osds = Static(id="ceph-osds", classes="panel", markup=False)
            osds.border_title = "OSDs (CRUSH tree)"
            yield osds
            pools = Static(id="ceph-pools", classes="panel", markup=False)
            pools.border_title = "Pools"
            yield pools
            health = Static(id="ceph-health", classes="panel", markup=False)
            health.border_title = "Health detail"
            yield health
            yield Static(id="ceph-problems", markup=False)

    def on_mount(self) -> None:
        # (ConsoleScreen's on_mount runs after this one: reload, focus.)
        self.engine.ceph_watch(self.cluster, True)
        self._watching = True

    def on_unmount(self) -> None:
        if self._watching:
            self._watching = False
            self.engine.ceph_watch(self.cluster, False)

    def focus_first(self) -> None:
        self.query_one(CephBody).focus(scroll_visible=False)

    def reload(self) -> None:
        pal, now = self.palette, self.now()
        s = self.engine.ceph_summary(self.cluster)
        shown = s is not None
        for w in self.query("#ceph-body > *"):
            if w.id != "ceph-head":
                w.display = shown
        head = self.query_one("#ceph-head", Static)
        if s is None:
            head.update(absent_text(self.engine.ceph_present(self.cluster), self.cluster, pal))
            return
        head.update(headline(s, now, pal))
        flags = flags_text(s, now, pal)
        panel = self.query_one("#ceph-flags", Static)
        panel.display = flags is not None
        panel.set_class(any(f.expired(now) or not f.who for f in s.flags), "-warning")
        if flags is not None:
            panel.update(flags)
        self.query_one("#ceph-overview", Static).update(
            Group(health_text(s, pal), overview(s, pal)))
        health = self.query_one("#ceph-health", Static)
        health.display = bool(s.checks)     # HEALTH_OK says so at the top already
        health.update(health_detail(s, pal))
        show_raw(self.query_one("#g-ceph-raw", Gauge), s)
        self.query_one(DetailChart).load()      # each reading was sampled: one more point
        self.query_one("#ceph-ratios", Static).update(
            Text(f"Full ratios: {ratios_words(s)}" + (f" · fsid {s.fsid}" if s.fsid else ""),
                 style=pal.muted))
        wide = self.size.width >= WIDE
        self.query_one("#ceph-osds", Static).update(
            osd_tree(s, pal, wide) if s.osds or s.hosts else Text("No OSD known.",
                                                                 style=pal.muted))
        self.query_one("#ceph-pools", Static).update(
            pools_table(s, pal, wide) if s.pools else Text("No pool known.", style=pal.muted))
        problems = problems_text(s, pal)
        self.query_one("#ceph-problems", Static).display = problems is not None
        if problems is not None:
            self.query_one("#ceph-problems", Static).update(
                Group(Text("Not read:", style=f"bold {pal.warn}"), problems))

    def on_resize(self) -> None:
        if self.is_mounted:
            self.reload()      # the tables' columns follow the width

    def on_ceph_update(self, message: CephUpdate) -> None:
        if self.cluster not in message.clusters:
            return
        if self.mvm.top_console_screen() is not self:
            self._behind = True
            return
        self.reload()

    def chart_host(self) -> None:
        return None                             # host samples say nothing of Ceph

    def apply_changes(self, changes) -> None:
        """Host and VM changes say nothing of Ceph: only CephUpdate redraws."""

    def action_read_now(self) -> None:
        self.run_worker(self._read_now(), exclusive=True, group="ceph-read",
                        exit_on_error=False)

    async def _read_now(self) -> None:
        try:
            await self.engine.ceph_refresh(self.cluster)
        except EngineError as exc:
            self.notify(f"Ceph of {self.cluster}: {exc}", severity="error", timeout=15)
        except Exception as exc:  # never a traceback on screen
            from ..app import unexpected
            self.notify(f"Ceph of {self.cluster}: {unexpected(exc)}", severity="error",
                        timeout=15)
        else:
            self.reload()
