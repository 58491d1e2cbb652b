"""What the console knows of a cluster's Ceph: frozen snapshots, parsed from Ceph's own
JSON (parse.py). A figure Ceph did not give is None, shown as "?", never a guess; a
health check, PG state or flag this code does not know is kept as Ceph spelled it."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HealthCheck:
    code: str                    # OSD_DOWN, PG_DEGRADED, … or one we never heard of
    severity: str                # HEALTH_WARN, HEALTH_ERR (as Ceph says)
    summary: str
    detail: tuple[str, ...] = ()
    count: int | None = None
    muted: bool = False


@dataclass(frozen=True)
class Mon:
    name: str
    address: str = ""
    rank: int | None = None
    in_quorum: bool = False


@dataclass(frozen=True)
class Mgr:
    name: str
    active: bool


@dataclass(frozen=True)
class Osd:
    id: int
    host: str = ""               # its CRUSH host bucket ("" when outside any)
    up: bool = False
    in_: bool = False
    status: str = ""             # as osd df tree says: up, down, destroyed, …
    crush_weight: float | None = None
    reweight: float | None = None
    size_bytes: int | None = None
    used_bytes: int | None = None
    avail_bytes: int | None = None
    utilization: float | None = None      # percent used, 0–100
    pgs: int | None = None
    device_class: str = ""

    @property
    def name(self) -> str:
        return f"osd.{self.id}"


@dataclass(frozen=True)
class CrushHost:
    name: str
    osds: tuple[int, ...] = ()
    crush_weight: float | None = None
    size_bytes: int | None = None
    used_bytes: int | None = None


@dataclass(frozen=True)
class PgCount:
    state: str                   # "active+clean", "active+undersized+degraded", …
    count: int


@dataclass(frozen=True)
class Recovery:
    degraded_objects: int | None = None
    degraded_total: int | None = None
    misplaced_objects: int | None = None
    misplaced_total: int | None = None
    unfound_objects: int | None = None
    recovering_bytes_per_sec: float | None = None
    recovering_objects_per_sec: float | None = None

    @property
    def active(self) -> bool:
        return bool(self.degraded_objects or self.misplaced_objects
                    or self.recovering_bytes_per_sec)


@dataclass(frozen=True)
class CrushRule:
    id: int
    name: str
    failure_domain: str = ""     # host, osd, rack… ("" when the rule does not say)


@dataclass(frozen=True)
class Pool:
    id: int
    name: str
    size: int | None = None
    min_size: int | None = None
    pg_num: int | None = None
    crush_rule: int | None = None
    kind: str = "replicated"     # replicated, erasure, or as Ceph says
    applications: tuple[str, ...] = ()
    stored_bytes: int | None = None
    used_bytes: int | None = None
    max_avail_bytes: int | None = None
    percent_used: float | None = None    # 0–100
    objects: int | None = None


@dataclass(frozen=True)
class Flag:
    """A flag that changes how Ceph behaves: cluster-wide (noout, norebalance, …) or on
    a CRUSH node or OSD (`ceph osd set-group noout HOST`). who / since / expires are
    known for flags mvmtui set (kept in Ceph's config-key store, so every console sees
    them); a flag set by hand says "set outside mvmtui"."""
    name: str
    scope: str = "cluster"       # cluster, host NAME, osd.N
    who: str = ""
    since: float | None = None   # wall clock, seconds
    expires: float | None = None
    why: str = ""

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires


@dataclass(frozen=True)
class Blocklisted:
    address: str                 # 10.0.0.11:0/123456
    until: str = ""              # as Ceph says


@dataclass(frozen=True)
class CephSummary:
    cluster: str
    read_at: float               # wall clock of the read
    source: str = ""             # the host whose monitor answered
    fsid: str = ""
    health: str = ""             # HEALTH_OK / HEALTH_WARN / HEALTH_ERR; "" not known
    checks: tuple[HealthCheck, ...] = ()
    mons: tuple[Mon, ...] = ()
    mgrs: tuple[Mgr, ...] = ()
    osds: tuple[Osd, ...] = ()
    hosts: tuple[CrushHost, ...] = ()
    pgs: tuple[PgCount, ...] = ()
    num_pgs: int | None = None
    recovery: Recovery = field(default_factory=Recovery)
    raw_total_bytes: int | None = None
    raw_used_bytes: int | None = None
    raw_avail_bytes: int | None = None
    pools: tuple[Pool, ...] = ()
    rules: tuple[CrushRule, ...] = ()
    client_read_bytes_per_sec: float | None = None
    client_write_bytes_per_sec: float | None = None
    client_read_ops_per_sec: float | None = None
    client_write_ops_per_sec: float | None = None
    flags: tuple[Flag, ...] = ()
    nearfull_ratio: float | None = None
    backfillfull_ratio: float | None = None
    full_ratio: float | None = None
    blocklist: tuple[Blocklisted, ...] = ()
    release: str = ""            # require_osd_release: pacific, quincy, reef…
    problems: tuple[str, ...] = ()   # reads that failed or could not be parsed, as said

    # ---- small questions the screens and the wizard ask --------------------------
    @property
    def raw_used_pct(self) -> float | None:
        if self.raw_used_bytes is None or not self.raw_total_bytes:
            return None
        return 100.0 * self.raw_used_bytes / self.raw_total_bytes

    @property
    def quorum(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.mons if m.in_quorum)

    def osds_on(self, host: str) -> tuple[Osd, ...]:
        return tuple(o for o in self.osds if o.host == host)

    def mon_on(self, host: str) -> Mon | None:
        return next((m for m in self.mons if m.name == host), None)

    def clean(self) -> bool:
        """Every PG active+clean (and there are PGs to say so)."""
        return bool(self.pgs) and all(p.state == "active+clean" for p in self.pgs)

    def rule(self, rule_id: int | None) -> CrushRule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def recovery_eta(self) -> float | None:
        """Seconds until the degraded and misplaced objects are recovered at the present
        rate (objects/s, else bytes/s over the pools' mean object size); None when
        nothing moves or the rate is not known."""
        r = self.recovery
        left = (r.degraded_objects or 0) + (r.misplaced_objects or 0)
        per_sec = r.recovering_objects_per_sec
        objects = sum(p.objects or 0 for p in self.pools)
        stored = sum(p.stored_bytes or 0 for p in self.pools)
        if not per_sec and r.recovering_bytes_per_sec and objects and stored:
            per_sec = r.recovering_bytes_per_sec / (stored / objects)
        return left / per_sec if left and per_sec else None


@dataclass(frozen=True)
class OkToStop:
    """`ceph osd ok-to-stop`: may these OSDs stop now without PGs going offline."""
    ok: bool
    osds: tuple[int, ...] = ()
    bad_pgs: int | None = None           # PGs that would go inactive
    reason: str = ""                     # Ceph's words (or ours when it gave none)


@dataclass(frozen=True)
class SafeToDestroy:
    """`ceph osd safe-to-destroy`: which OSDs hold nothing still needed."""
    safe: tuple[int, ...] = ()
    active: tuple[int, ...] = ()         # PGs still mapped to them
    missing_stats: tuple[int, ...] = ()  # no stats reported and not all PGs clean
    stored_pgs: tuple[int, ...] = ()     # may still hold PG data
    reason: str = ""

    def is_safe(self, osd: int) -> bool:
        return (osd in self.safe and osd not in self.active
                and osd not in self.missing_stats and osd not in self.stored_pgs)


# ---- the decommission wizard's plan (decommission.py makes it) ----------------------
@dataclass(frozen=True)
class Check:
    step: int
    title: str
    ok: bool
    message: str


@dataclass(frozen=True)
class Action:
    """One confirmed step of the wizard: its exact commands, run in order. `on_host`
    commands run on the host being removed (its services); the rest on a monitor host."""
    key: str                     # out:3, wait:3, stop:3, crush-remove:3, mon-remove, …
    step: int                    # 4–11 of the procedure
    title: str
    commands: tuple[str, ...] = ()
    on_host: tuple[str, ...] = ()
    state: str = "pending"       # done, next, pending
    note: str = ""               # why it is done this way
    blocked: str = ""            # why it may not run now (the next step only)


@dataclass(frozen=True)
class Progress:
    """Step 5, while data moves: PGs, objects left, speed, ETA, and how long the
    reading has been clean (a clean reading must last `settle` s)."""
    pgs_total: int | None = None
    pgs_clean: int | None = None
    degraded: int | None = None
    misplaced: int | None = None
    bytes_per_sec: float | None = None
    eta_seconds: float | None = None
    clean_for: float = 0.0
    settle: float = 0.0
    safe: bool | None = None     # safe-to-destroy for every OSD of the host
    safe_reason: str = ""


@dataclass(frozen=True)
class DecomPlan:
    cluster: str
    host: str
    read_at: float
    osds: tuple[int, ...]
    checks: tuple[Check, ...]
    actions: tuple[Action, ...]
    method: str = ""             # "reweight" or "out"
    method_why: str = ""
    refusal: str = ""            # why it may not start (or go on): shown with numbers
    started: bool = False        # some step already ran (a mark, or Ceph shows it)
    absent: bool = False         # the host has nothing of Ceph (any more)

    @property
    def next(self) -> Action | None:
        return next((a for a in self.actions if a.state == "next"), None)

    @property
    def finished(self) -> bool:
        return self.absent or (bool(self.actions) and all(a.state == "done"
                                                          for a in self.actions))
