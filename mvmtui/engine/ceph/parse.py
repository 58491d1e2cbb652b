"""Ceph's JSON answers as the frozen snapshots of model.py.

Everything here is tolerant: Ceph 16, 17 and 18 spell some things differently, a read
can fail or come back as text, and a console must show what it has rather than crash.
So every value goes through the small converters below: a number that is missing or
not a number becomes None (shown as "?"), a name or state we do not know is kept as
Ceph spelled it, and a read that failed becomes a line in `problems`.
"""
from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

from .model import (Blocklisted, CephSummary, CrushHost, CrushRule, Flag, HealthCheck,
                    Mgr, Mon, OkToStop, Osd, PgCount, Pool, Recovery, SafeToDestroy)
from .reads import READS

KIB = 1024

# Flags Ceph keeps set for its own book-keeping: they change nothing an operator would
# act on, so they are not shown as flags. (require_*_osds are the pre-Luminous names.)
HOUSEKEEPING = frozenset({"sortbitwise", "recovery_deletes", "purged_snapdirs",
                          "pglog_hardlimit", "require_jewel_osds", "require_kraken_osds",
                          "require_luminous_osds"})
# Flags an OSD can carry in `osd dump` osds[].state next to exists/up/…
OSD_FLAGS = ("noout", "noin", "nodown", "noup")
POOL_TYPES = {1: "replicated", 3: "erasure"}


# ---- converters: never raise, None (or "") for what is not there ---------------------

def _int(v: Any) -> int | None:
    if isinstance(v, bool):                    # some versions say true/false for 1/0
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v) if math.isfinite(v) else None
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            f = _float(v)
            return int(f) if f is not None else None
    return None


def _float(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        try:
            f = float(v)
        except OverflowError:                  # an int too big for a float
            return None
        return f if math.isfinite(f) else None
    if isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _finite(f: float | None) -> float | None:
    """Arithmetic on figures Ceph gave can still overflow (absurd values): None then."""
    return f if f is not None and math.isfinite(f) else None


def _str(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    return ""


def _bool(v: Any, default: bool = False) -> bool:
    if isinstance(v, (bool, int)):
        return bool(v)
    if isinstance(v, str):
        return v.strip().lower() in ("true", "yes", "1", "up", "in")
    return default


def _dict(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def _list(v: Any) -> list:
    return v if isinstance(v, list) else []


def _kib(v: Any) -> int | None:
    n = _int(v)
    return n * KIB if n is not None else None


def _ints(v: Any) -> tuple[int, ...]:
    return tuple(n for n in (_int(x) for x in _list(v)) if n is not None)


def _first(*values: Any) -> Any:
    """The first value that is there (not None): the same figure under two spellings."""
    return next((v for v in values if v is not None), None)


# ---- the reads -------------------------------------------------------------------------

class _Reads:
    """The answers of one refresh, each checked for the shape we expect; what failed is
    said once in `problems`."""

    def __init__(self, reads: dict):
        self.reads = reads
        self.problems: list[str] = []

    def get(self, name: str, kind: type, empty_ok: bool = False):
        label = READS[name][0] if name in READS else name
        entry = self.reads.get(name)
        if entry is None:
            self.problems.append(f"{label}: not read")
            return None
        if not isinstance(entry, dict):
            self.problems.append(f"{label}: unexpected answer")
            return None
        err = _str(entry.get("err")).strip()
        if "ret" in entry:
            ret = _int(entry.get("ret"))
            if ret != 0:
                self.problems.append(
                    f"{label}: ({_str(entry.get('ret')) or '?'}) {err or 'failed'}")
                return None
        out = entry.get("out")
        if out is None and empty_ok:           # e.g. no mvmtui marks at all
            return kind()
        if not isinstance(out, kind):
            said = out.strip()[:120] if isinstance(out, str) else ""
            self.problems.append(f"{label}: unexpected answer"
                                 + (f": {said}" if said else "")
                                 + (f" ({err})" if err else ""))
            return None
        return out


def summary(cluster: str, doc: dict, read_at: float) -> CephSummary:
    """One refresh document (reads.READ_SCRIPT) as a CephSummary."""
    if not isinstance(doc, dict):
        return CephSummary(cluster, read_at, problems=("Ceph gave no answer",))
    source = _str(doc.get("host"))
    if doc.get("error"):
        # Nothing was read: say why, show nothing else (the screen keeps the last read).
        return CephSummary(cluster, read_at, source=source,
                           problems=(_str(doc.get("error")) or "Ceph gave no answer",))
    r = _Reads(_dict(doc.get("reads")))
    status = r.get("status", dict)
    health = r.get("health", dict)
    osd_df = r.get("osd_df", dict)
    df = r.get("df", dict)
    pools = r.get("pools", list)
    osd_dump = r.get("osd_dump", dict)
    mon_dump = r.get("mon_dump", dict)
    quorum = r.get("quorum", dict)
    pg_stat = r.get("pg_stat", dict)
    mgr = r.get("mgr", dict)
    rules = r.get("rules", list)
    marks = r.get("marks", dict, empty_ok=True)
    # A read the summary does not use (pg dump_stuck) is still a problem when it fails.
    if "pg_stuck" in r.reads:
        r.get("pg_stuck", dict)

    status = status or {}
    # pg stat gives the same PG figures when status failed (16+: under pg_summary).
    pg_sum = _dict(pg_stat.get("pg_summary", pg_stat)) if pg_stat else {}
    pgmap = _dict(status.get("pgmap")) or pg_sum
    # pg stat never splits reads from writes in ops: not known, rather than 0.
    ops = pgmap if pgmap is not pg_sum else {}

    health_doc = health if health is not None else _dict(status.get("health"))
    flags = _flags(osd_dump or {})
    flags = _marked(flags, marks or {})
    osds, hosts = _osds(osd_df or {}, osd_dump or {})
    df_stats = _dict((df or {}).get("stats"))
    return CephSummary(
        cluster=cluster,
        read_at=read_at,
        source=source,
        fsid=_str(_first(status.get("fsid"), (mon_dump or {}).get("fsid"),
                         _dict((quorum or {}).get("monmap")).get("fsid"))),
        health=_str(_first(health_doc.get("status"), health_doc.get("overall_status"))),
        checks=_checks(health_doc),
        mons=_mons(mon_dump, quorum, status),
        mgrs=_mgrs(mgr, status),
        osds=osds,
        hosts=hosts,
        pgs=_pgs(pgmap),
        num_pgs=_int(pgmap.get("num_pgs")),
        recovery=_recovery(pgmap),
        raw_total_bytes=_int(_first(df_stats.get("total_bytes"), pgmap.get("bytes_total"),
                                    pgmap.get("total_bytes"))),
        raw_used_bytes=_int(_first(df_stats.get("total_used_raw_bytes"),
                                   df_stats.get("total_used_bytes"),
                                   pgmap.get("bytes_used"),
                                   pgmap.get("total_used_raw_bytes"))),
        raw_avail_bytes=_int(_first(df_stats.get("total_avail_bytes"),
                                    pgmap.get("bytes_avail"),
                                    pgmap.get("total_avail_bytes"))),
        pools=_pools(pools, df),
        rules=_rules(rules),
        # Ceph leaves a rate out when it is zero, so a pgmap without one means 0.
        client_read_bytes_per_sec=_rate(pgmap, "read_bytes_sec"),
        client_write_bytes_per_sec=_rate(pgmap, "write_bytes_sec"),
        client_read_ops_per_sec=_rate(ops, "read_op_per_sec"),
        client_write_ops_per_sec=_rate(ops, "write_op_per_sec"),
        flags=flags,
        nearfull_ratio=_float((osd_dump or {}).get("nearfull_ratio")),
        backfillfull_ratio=_float((osd_dump or {}).get("backfillfull_ratio")),
        full_ratio=_float((osd_dump or {}).get("full_ratio")),
        blocklist=_blocklist(osd_dump or {}),
        release=_str((osd_dump or {}).get("require_osd_release")),
        problems=tuple(r.problems),
    )


def _rate(pgmap: dict, key: str) -> float | None:
    if not pgmap:
        return None                            # no status and no pg stat: not known
    if key not in pgmap:
        return 0.0 if key in _OMITTED_WHEN_ZERO else None
    return _float(pgmap.get(key))


# Figures Ceph's pgmap dump leaves out when they are zero (PGMap's *_summary dumps).
_OMITTED_WHEN_ZERO = frozenset({
    "read_bytes_sec", "write_bytes_sec", "read_op_per_sec", "write_op_per_sec",
    "degraded_objects", "misplaced_objects", "unfound_objects",
    "recovering_bytes_per_sec", "recovering_objects_per_sec"})


def _count(pgmap: dict, key: str) -> int | None:
    if pgmap and key not in pgmap and key in _OMITTED_WHEN_ZERO:
        return 0
    return _int(pgmap.get(key))


def _recovery(pgmap: dict) -> Recovery:
    return Recovery(
        degraded_objects=_count(pgmap, "degraded_objects"),
        degraded_total=_int(pgmap.get("degraded_total")),
        misplaced_objects=_count(pgmap, "misplaced_objects"),
        misplaced_total=_int(pgmap.get("misplaced_total")),
        unfound_objects=_count(pgmap, "unfound_objects"),
        recovering_bytes_per_sec=_rate(pgmap, "recovering_bytes_per_sec"),
        recovering_objects_per_sec=_rate(pgmap, "recovering_objects_per_sec"),
    )


def _pgs(pgmap: dict) -> tuple[PgCount, ...]:
    """status' pgs_by_state [{state_name, count}] or pg stat's num_pg_by_state
    [{name, num}]; some versions give a {state: count} mapping."""
    entries = _first(pgmap.get("pgs_by_state"), pgmap.get("num_pg_by_state"))
    if isinstance(entries, dict):
        entries = [{"state_name": k, "count": v} for k, v in entries.items()]
    out = []
    for e in _list(entries):
        e = _dict(e)
        state = _str(_first(e.get("state_name"), e.get("name"), e.get("state")))
        count = _int(_first(e.get("count"), e.get("num")))
        if state and count is not None:
            out.append(PgCount(state, count))
    return tuple(out)


def _checks(health: dict) -> tuple[HealthCheck, ...]:
    checks = health.get("checks")
    if isinstance(checks, list):               # a list of checks that name themselves
        checks = {_str(_first(_dict(c).get("code"), _dict(c).get("type"))): c
                  for c in checks}
    mutes = {_str(_dict(m).get("code")) if isinstance(m, dict) else _str(m)
             for m in _list(health.get("mutes"))}
    out = []
    for code, c in _dict(checks).items():
        code, c = _str(code), _dict(c)
        if not code:
            continue
        summ = c.get("summary")
        if isinstance(summ, dict):
            message, count = _str(summ.get("message")), _int(summ.get("count"))
        else:
            message, count = _str(summ), None
        detail = tuple(_str(_dict(d).get("message")) if isinstance(d, dict) else _str(d)
                       for d in _list(c.get("detail")))
        out.append(HealthCheck(code=code, severity=_str(c.get("severity")),
                               summary=message, detail=tuple(d for d in detail if d),
                               count=count,
                               muted=_bool(c.get("muted")) or code in mutes))
    return tuple(out)


def _address(mon: dict) -> str:
    """The monitor's first public address (v2 first, as Ceph lists them); older dumps
    only have public_addr or addr ("10.0.0.1:6789/0")."""
    for a in _list(_dict(mon.get("public_addrs")).get("addrvec")):
        addr = _str(_dict(a).get("addr"))
        if addr:
            return addr
    return _str(_first(mon.get("public_addr"), mon.get("addr")))


def _mons(mon_dump: dict | None, quorum: dict | None, status: dict) -> tuple[Mon, ...]:
    quorum = quorum or {}
    # The monmap: mon dump's, else the one quorum_status carries.
    monmap = mon_dump if mon_dump is not None else _dict(quorum.get("monmap"))
    names = _first(quorum.get("quorum_names"), status.get("quorum_names"))
    if isinstance(names, list):
        in_q = {_str(n) for n in names}
        by_rank: set[int] | None = None
    else:                                      # only ranks (mon dump's "quorum")
        in_q = set()
        by_rank = set(_ints(_first(quorum.get("quorum"), status.get("quorum"),
                                   monmap.get("quorum"))))
    out = []
    for m in _list(monmap.get("mons")):
        m = _dict(m)
        name = _str(m.get("name"))
        if not name:
            continue
        rank = _int(m.get("rank"))
        inq = name in in_q if by_rank is None else rank in by_rank
        out.append(Mon(name=name, address=_address(m), rank=rank, in_quorum=inq))
    return tuple(out)


def _mgrs(mgr: dict | None, status: dict) -> tuple[Mgr, ...]:
    # mgr dump, else status' mgrmap (before 16 it named the active and the standbys;
    # 16's only counts them).
    m = mgr if mgr is not None else _dict(status.get("mgrmap"))
    out = []
    active = _str(m.get("active_name"))
    # A map can still name an active mgr that is not available (it died): not active.
    if active:
        out.append(Mgr(active, _bool(m.get("available"), default=True)))
    for s in _list(m.get("standbys")):
        name = _str(_dict(s).get("name")) if isinstance(s, dict) else _str(s)
        if name and name != active:
            out.append(Mgr(name, False))
    return tuple(out)


def _osd_id(node: dict) -> int | None:
    n = _int(_first(node.get("id"), node.get("osd")))
    if n is None:                              # "osd.3" is an id too
        name = _str(node.get("name"))
        if name.startswith("osd."):
            n = _int(name[4:])
    return n if n is not None and n >= 0 else None


def _osds(osd_df: dict, osd_dump: dict) -> tuple[tuple[Osd, ...], tuple[CrushHost, ...]]:
    nodes = [_dict(n) for n in _list(osd_df.get("nodes"))]
    stray = [_dict(n) for n in _list(osd_df.get("stray"))]
    dump = {}
    for o in _list(osd_dump.get("osds")):
        o = _dict(o)
        i = _osd_id({"osd": o.get("osd")})
        if i is not None:
            dump[i] = o

    host_of: dict[int, str] = {}
    host_nodes = [n for n in nodes if _str(n.get("type")) == "host"]
    for h in host_nodes:
        for c in _ints(h.get("children")):
            if c >= 0:
                host_of.setdefault(c, _str(h.get("name")))

    osds: dict[int, Osd] = {}
    for n in nodes + stray:
        if _str(n.get("type")) not in ("osd", ""):
            continue
        i = _osd_id(n)
        if i is None or i in osds:
            continue
        osds[i] = _osd(i, n, dump.get(i), host_of.get(i, ""))
    # An OSD the tree did not list (or osd df failed) is still an OSD.
    for i, o in dump.items():
        if i not in osds:
            osds[i] = _osd(i, {}, o, host_of.get(i, ""))

    hosts = []
    for h in host_nodes:
        name = _str(h.get("name"))
        kids = tuple(c for c in _ints(h.get("children")) if c >= 0)
        weights = [osds[c].crush_weight for c in kids if c in osds]
        weight = _float(h.get("crush_weight"))
        if weight is None and weights and None not in weights:
            weight = _finite(sum(weights))     # buckets weigh what their OSDs weigh
        hosts.append(CrushHost(name=name, osds=kids, crush_weight=weight,
                               size_bytes=_kib(h.get("kb")),
                               used_bytes=_kib(h.get("kb_used"))))
    return tuple(osds[i] for i in sorted(osds)), tuple(hosts)


def _osd(i: int, n: dict, dump: dict | None, host: str) -> Osd:
    status = _str(n.get("status"))
    reweight = _float(_first(n.get("reweight"), (dump or {}).get("weight")))
    if dump is not None and ("up" in dump or "in" in dump):
        up, in_ = _bool(dump.get("up")), _bool(dump.get("in"))
    else:
        # No osd dump: osd df says up/down, and an OSD weighted 0 is out.
        up, in_ = status == "up", reweight is not None and reweight > 0
    used = _kib(n.get("kb_used"))
    if used is None:                           # the parts, where only they are given
        parts = [_int(n.get(k)) for k in ("kb_used_data", "kb_used_omap", "kb_used_meta")]
        if any(p is not None for p in parts):
            used = sum(p for p in parts if p is not None) * KIB
    return Osd(id=i, host=host, up=up, in_=in_, status=status,
               crush_weight=_float(n.get("crush_weight")), reweight=reweight,
               size_bytes=_kib(n.get("kb")), used_bytes=used,
               avail_bytes=_kib(n.get("kb_avail")),
               utilization=_float(n.get("utilization")), pgs=_int(n.get("pgs")),
               device_class=_str(n.get("device_class")))


def _pools(pools: list | None, df: dict | None) -> tuple[Pool, ...]:
    stats: dict[int, dict] = {}
    names: dict[int, str] = {}
    for p in _list((df or {}).get("pools")):
        p = _dict(p)
        i = _int(p.get("id"))
        if i is not None:
            stats[i], names[i] = _dict(p.get("stats")), _str(p.get("name"))
    out, seen = [], set()
    for p in _list(pools):
        p = _dict(p)
        i = _int(p.get("pool_id"))
        if i is None or i in seen:
            continue
        seen.add(i)
        kind = p.get("type")
        kind = POOL_TYPES.get(kind, _str(kind)) if isinstance(kind, int) else _str(kind)
        apps = p.get("application_metadata")
        apps = tuple(_str(a) for a in (apps if isinstance(apps, (dict, list)) else ()))
        out.append(_with_stats(Pool(
            id=i, name=_str(p.get("pool_name")) or names.get(i, ""),
            size=_int(p.get("size")), min_size=_int(p.get("min_size")),
            pg_num=_int(p.get("pg_num")), crush_rule=_int(p.get("crush_rule")),
            kind=kind, applications=tuple(a for a in apps if a)), stats.get(i)))
    # A pool df knows and the pool list did not give (that read failed).
    for i in stats:
        if i not in seen:
            out.append(_with_stats(Pool(id=i, name=names[i], kind=""), stats[i]))
    return tuple(out)


def _with_stats(pool: Pool, s: dict | None) -> Pool:
    if s is None:
        return pool
    pct = _float(s.get("percent_used"))
    return replace(pool, stored_bytes=_int(s.get("stored")),
                   used_bytes=_int(s.get("bytes_used")),
                   max_avail_bytes=_int(s.get("max_avail")),
                   percent_used=_finite(pct * 100) if pct is not None else None,  # 0–1
                   objects=_int(s.get("objects")))


def _rules(rules: list | None) -> tuple[CrushRule, ...]:
    out = []
    for r in _list(rules):
        r = _dict(r)
        i = _int(r.get("rule_id"))
        if i is None:
            continue
        # The first choose/chooseleaf step says across what the copies spread.
        domain = ""
        for s in _list(r.get("steps")):
            s = _dict(s)
            if _str(s.get("op")).startswith("choose"):
                domain = _str(s.get("type"))
                break
        out.append(CrushRule(id=i, name=_str(r.get("rule_name")), failure_domain=domain))
    return tuple(out)


def _flags(osd_dump: dict) -> tuple[Flag, ...]:
    names = osd_dump.get("flags_set")
    if not isinstance(names, list):            # before flags_set: "noout,sortbitwise"
        names = _str(osd_dump.get("flags")).split(",")
    out: list[Flag] = []
    for n in names:
        n = _str(n).strip()
        if n and n not in HOUSEKEEPING:
            out.append(Flag(n, "cluster"))
    for node, fl in _dict(osd_dump.get("crush_node_flags")).items():
        for n in (fl if isinstance(fl, list) else [fl]):
            if _str(n):
                out.append(Flag(_str(n), f"host {_str(node)}"))
    for o in _list(osd_dump.get("osds")):
        o = _dict(o)
        i = _osd_id({"osd": o.get("osd")})
        state = {_str(s) for s in _list(o.get("state"))}
        for n in OSD_FLAGS:
            if i is not None and n in state:
                out.append(Flag(n, f"osd.{i}"))
    return tuple(dict.fromkeys(out))           # once each, in Ceph's order


def _mark_key(key: str) -> tuple[str, str] | None:
    """(flag, scope) a config-key names: mvmtui/noout/HOST, mvmtui/flag/NAME (cluster)
    or mvmtui/flag/NAME/SCOPE (SCOPE as Flag.scope: "host kvm-04", "osd.3")."""
    parts = key.split("/")
    if len(parts) == 3 and parts[:2] == ["mvmtui", "noout"] and parts[2]:
        return "noout", f"host {parts[2]}"
    if len(parts) >= 3 and parts[:2] == ["mvmtui", "flag"] and parts[2]:
        scope = "/".join(parts[3:]) or "cluster"
        return parts[2], scope
    return None


def _marked(flags: tuple[Flag, ...], marks: dict) -> tuple[Flag, ...]:
    """Who set a flag, since when and until when, from mvmtui's marks. A mark whose
    flag is gone is left out (nobody is holding it any more)."""
    found: dict[tuple[str, str], dict] = {}
    for key, value in marks.items():
        at = _mark_key(_str(key))
        if at is None:
            continue
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):
                continue
        if isinstance(value, dict):
            found[at] = value
    out = []
    for f in flags:
        m = found.get((f.name, f.scope))
        if m is None:
            out.append(f)
            continue
        out.append(Flag(f.name, f.scope, who=_str(_first(m.get("by"), m.get("who"))),
                        since=_float(m.get("since")), expires=_float(m.get("expires")),
                        why=_str(m.get("why"))))
    return tuple(out)


def _blocklist(osd_dump: dict) -> tuple[Blocklisted, ...]:
    # "blacklist" is the name before Pacific.
    bl = _first(osd_dump.get("blocklist"), osd_dump.get("blacklist"))
    if isinstance(bl, list):                   # `osd blocklist ls` shape
        items = [(_dict(b).get("addr"), _dict(b).get("until")) for b in bl]
    else:
        items = list(_dict(bl).items())
    return tuple(Blocklisted(_str(a), _str(u)) for a, u in items if _str(a))


# ---- the OSD questions -----------------------------------------------------------------

def _answer(stdout: Any) -> dict | None:
    """The JSON document a `ceph … -f json` printed (it may start with a newline)."""
    if not isinstance(stdout, str) or not stdout.strip():
        return None
    try:
        data = json.loads(stdout)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def ok_to_stop(rc: int, stdout: str, stderr: str) -> OkToStop:
    """`ceph osd ok-to-stop IDS -f json`. Measured on 16: exit 0 when ok; 16 (EBUSY) with
    the JSON on stdout and the reason on stderr when not; 11 (EAGAIN) while PG states
    are not known yet."""
    reason = _str(stderr).strip()
    data = _answer(stdout)
    if data is None:
        return OkToStop(ok=False, reason=reason or "Ceph gave no answer")
    bad = _int(data.get("num_not_ok_pgs"))
    if bad is None and isinstance(data.get("bad_become_inactive"), list):
        bad = len(data["bad_become_inactive"])
    # Both must say yes: the answer and the exit code.
    ok = data.get("ok_to_stop") is True and _int(rc) == 0
    if not ok and not reason:
        reason = (f"{bad} PGs would become inactive" if bad else
                  "Ceph says not ok to stop")
    return OkToStop(ok=ok, osds=_ints(data.get("osds")), bad_pgs=bad, reason=reason)


def safe_to_destroy(rc: int, stdout: str, stderr: str) -> SafeToDestroy:
    """`ceph osd safe-to-destroy IDS -f json`. Measured on 16: it exits 0 whether or not
    the OSDs are safe, so the lists are the answer."""
    err = _str(stderr).strip()
    data = _answer(stdout)
    if data is None:
        return SafeToDestroy(reason=err or "Ceph gave no answer")
    safe, active = _ints(data.get("safe_to_destroy")), _ints(data.get("active"))
    missing, stored = _ints(data.get("missing_stats")), _ints(data.get("stored_pgs"))

    def osds(ids: tuple[int, ...]) -> str:
        return ", ".join(f"osd.{i}" for i in ids)

    why = []
    if active:
        why.append(f"{osds(active)}: PGs still mapped to it")
    if missing:
        why.append(f"{osds(missing)}: no stats reported and not all PGs are clean")
    if stored:
        why.append(f"{osds(stored)}: may still store PG data")
    return SafeToDestroy(safe=safe, active=active, missing_stats=missing,
                         stored_pgs=stored, reason="; ".join(why) or err)
