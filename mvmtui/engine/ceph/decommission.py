"""The guided decommission of a Ceph host, as a plan made from what Ceph shows now.

The seed's procedure ("Decommissioning a CEPH-backed Host"), gated:
  1 HEALTH_OK   2 room for every pool without the host   3 the host's OSDs
  4 out (or CRUSH weight 0 on a small cluster)   5 wait until the data has moved
  6 stop the OSD service   7 osd crush remove   8 mon remove   9 crush rm the host
  10 auth del   11 osd rm
Pure: `plan()` takes a summary and what the wizard read besides, and says which steps
are done, which is next and what would block it. Done is decided by what Ceph shows
(an OSD with weight 0 was taken out, one absent from CRUSH was removed…), so a
console that died mid-way resumes at the right step. What Ceph cannot show (a
stopped manager's service) is in the decommission's mark, kept in Ceph's config-key
store (`mvmtui/decommission/HOST`) with the OSDs it started with.
"""
from __future__ import annotations

import json

from .model import Action, CephSummary, Check, DecomPlan, Progress, SafeToDestroy

MARK = "mvmtui/decommission/"
NEARFULL_SPARE = 0.05           # room kept below nearfull after the data has moved
TITLES = {1: "Check health", 2: "Check room without the host", 3: "List the host's OSDs",
          4: "Take the OSDs out", 5: "Wait until the data has moved",
          6: "Stop the OSD service", 7: "Remove the OSDs from CRUSH",
          8: "Remove the monitor", 9: "Remove the host from CRUSH",
          10: "Delete the OSDs' keys", 11: "Remove the OSDs"}


def read_mark(marks: dict, host: str) -> dict:
    """The decommission mark of a host from a config-key dump ({} if none)."""
    raw = marks.get(MARK + host)
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _gib(n: int | float | None) -> str:
    return "?" if n is None else f"{n / (1 << 30):.1f} GiB"


def capacity(s: CephSummary, host: str, osds: tuple[int, ...]) -> tuple[list[str], list[str]]:
    """(refusals, notes) of step 2: can the other hosts hold every pool's copies, with
    room below nearfull once the data has moved?"""
    refusals, notes = [], []
    gone = set(osds)
    left_hosts = {o.host for o in s.osds if o.id not in gone and o.host and o.host != host
                  and o.up and o.in_ and (o.crush_weight or 0) > 0}
    left_osds = [o for o in s.osds if o.id not in gone and o.up and o.in_
                 and (o.crush_weight or 0) > 0]
    for p in s.pools:
        rule = s.rule(p.crush_rule)
        domain = (rule.failure_domain if rule else "") or "host"
        size = p.size or 0
        have = len(left_hosts) if domain == "host" else len(left_osds)
        unit = "hosts" if domain == "host" else "OSDs"
        if size > have:
            refusals.append(f"pool {p.name} keeps {size} copies on different {unit}; "
                            f"without {host} only {have} {unit} are left")
    total = sum(o.size_bytes or 0 for o in left_osds)
    used = s.raw_used_bytes
    nearfull = s.nearfull_ratio if s.nearfull_ratio is not None else 0.85
    if not total or used is None:
        refusals.append("the OSDs' sizes are not known, so the room left cannot be checked")
    else:
        share = used / total
        limit = nearfull - NEARFULL_SPARE
        line = (f"after the move about {_gib(used)} of {_gib(total)} would be used "
                f"({share:.0%}) on the {len(left_osds)} OSDs left; nearfull is "
                f"{nearfull:.0%}, and {NEARFULL_SPARE:.0%} is kept to spare")
        (refusals if share >= limit else notes).append(line)
    return refusals, notes


def _method(s: CephSummary, host: str, osds: tuple[int, ...]) -> tuple[str, str]:
    gone = set(osds)
    left = len({o.host for o in s.osds if o.id not in gone and o.host and o.host != host
                and (o.crush_weight or 0) > 0})
    size = max((p.size or 0 for p in s.pools), default=0)
    if size and left <= size:
        return "reweight", (f"{left} hosts are left for pools of {size} copies, none to "
                            f"spare: `ceph osd out` could leave PGs stuck active+remapped "
                            f"(CRUSH finds no other host), so each OSD's CRUSH weight goes "
                            f"to 0 first and it is marked out once empty")
    return "out", (f"{left} hosts are left for pools of {size} copies: `ceph osd out` "
                   f"moves the data to the others")


def fill(template: str, action: str, kind: str, ident: str) -> str:
    """The cluster's service command (policy ceph_service) for one daemon."""
    return (template.replace("{action}", action).replace("{type}", kind)
            .replace("{id}", ident))


def plan(s: CephSummary, host: str, *, in_maintenance: bool, service: str,
         marks: dict | None = None, auth: set[str] | None = None,
         safe: SafeToDestroy | None = None, mon_ok_to_rm: tuple[int, str] | None = None,
         running_vms: int = 0) -> DecomPlan:
    """The wizard's plan for one host from a fresh reading. `auth`: the entities Ceph
    has keys for (None: not read); `safe`: safe-to-destroy of the host's OSDs;
    `mon_ok_to_rm`: `ceph mon ok-to-rm HOST`'s (rc, answer)."""
    mark = read_mark(marks or {}, host)
    present = {o.id: o for o in s.osds}
    osds = tuple(sorted({o.id for o in s.osds_on(host)}
                        | {int(i) for i in mark.get("osds", ()) if str(i).isdigit()}))
    mon = s.mon_on(host)
    had_mon = mon is not None or bool(mark.get("mon"))
    had_mgr = any(m.name == host for m in s.mgrs) or bool(mark.get("mgr"))
    bucket = any(h.name == host for h in s.hosts)
    done_marks = set(mark.get("done", ()))

    # ---- steps 1–3: checks ----
    checks = []
    health_ok = s.health == "HEALTH_OK"
    why_not = "; ".join(f"{c.code}: {c.summary}" for c in s.checks) or s.health or "not known"
    checks.append(Check(1, TITLES[1], health_ok, "HEALTH_OK" if health_ok else
                        f"{s.health or 'health not known'} — {why_not}"))
    refusals, notes = capacity(s, host, osds)
    checks.append(Check(2, TITLES[2], not refusals, "; ".join(refusals + notes)))
    listing = ", ".join(f"osd.{i}" for i in osds) or "none"
    checks.append(Check(3, TITLES[3], True,
                        f"{listing}" + (f"; monitor {host}" if had_mon else "")
                        + (f"; manager {host}" if had_mgr else "")))
    method, method_why = mark.get("method") or "", ""
    if not method:
        method, method_why = _method(s, host, osds)
    else:
        method_why = ("chosen when the decommission started: "
                      + ("CRUSH weight 0" if method == "reweight" else "`ceph osd out`"))

    # ---- steps 4–11: what each OSD / the host shows ----
    def osd_gone(i):
        return i not in present

    def stopped(i):
        return osd_gone(i) or not present[i].up

    def out_done(i):
        o = present.get(i)
        return o is None or not o.in_ or (o.crush_weight is not None and o.crush_weight == 0)

    def uncrushed(i):
        return osd_gone(i) or not present[i].host

    def key_gone(i):
        return osd_gone(i) and auth is None or (auth is not None and f"osd.{i}" not in auth)

    actions: list[tuple[Action, bool]] = []
    for i in osds:
        cmd = (f"ceph osd crush reweight osd.{i} 0" if method == "reweight"
               else f"ceph osd out osd.{i}")
        actions.append((Action(f"out:{i}", 4, f"Take osd.{i} out", (cmd,),
                               note=method_why), out_done(i)))
        actions.append((Action(f"wait:{i}", 5, f"Wait until osd.{i}'s data has moved",
                               note="every PG active+clean for the settle time, and "
                                    "`ceph osd safe-to-destroy` agrees"),
                        stopped(i) or f"wait:{i}" in done_marks))
    for i in osds:
        cmds = () if (i in present and not present[i].in_) else (f"ceph osd out osd.{i}",)
        actions.append((Action(f"stop:{i}", 6, f"Stop osd.{i}'s service", cmds,
                               on_host=(fill(service, "stop", "osd", str(i)),
                                        fill(service, "disable", "osd", str(i)))),
                        stopped(i)))
    for i in osds:
        actions.append((Action(f"crush-remove:{i}", 7, f"Remove osd.{i} from CRUSH",
                               (f"ceph osd crush remove osd.{i}",)), uncrushed(i)))
    if had_mon:
        actions.append((Action("mon-remove", 8, f"Remove monitor {host}",
                               (f"ceph mon remove {host}",),
                               on_host=(fill(service, "stop", "mon", host),
                                        fill(service, "disable", "mon", host))),
                        mon is None))
    if had_mgr:
        active = any(m.name == host and m.active for m in s.mgrs)
        actions.append((Action("mgr-stop", 8, f"Stop manager {host}",
                               (f"ceph mgr fail {host}",) if active else (),
                               on_host=(fill(service, "stop", "mgr", host),
                                        fill(service, "disable", "mgr", host)),
                               note="a standby takes over; not in the seed's list, but a "
                                    "manager left running would come back as standby"),
                        "mgr-stop" in done_marks or not any(m.name == host for m in s.mgrs)))
    actions.append((Action("crush-rm-host", 9, f"Remove host {host} from CRUSH",
                           (f"ceph osd crush rm {host}",)), not bucket))
    for i in osds:
        actions.append((Action(f"auth-del:{i}", 10, f"Delete osd.{i}'s key",
                               (f"ceph auth del osd.{i}",)), key_gone(i)))
    for i in osds:
        actions.append((Action(f"osd-rm:{i}", 11, f"Remove osd.{i}",
                               (f"ceph osd rm osd.{i}",),
                               note="`ceph osd purge` does 7, 10 and 11 at once in newer "
                                    "Ceph; the steps are kept apart to show each"),
                        osd_gone(i)))

    started = bool(mark) or any(done for a, done in actions)
    # The start's gates: only before anything was done (mid-way, health is not OK).
    refusal = ""
    if not osds and not had_mon and not bucket and not had_mgr:
        # Nothing of Ceph on it (never was, or the decommission is over).
        return DecomPlan(s.cluster, host, s.read_at, (), tuple(checks[:1]), (), "", "",
                         "", started=False, absent=True)
    if not started:
        if running_vms:
            refusal = (f"{host} still runs {running_vms} VM(s): put it in maintenance "
                       f"first")
        elif not in_maintenance:
            refusal = f"put {host} in maintenance first: its VMs must have left"
        elif not health_ok:
            refusal = f"Ceph is not HEALTH_OK: {why_not}"
            if any(f.name == "noout" and f.scope == f"host {host}" for f in s.flags):
                refusal += (f" (noout is set on {host}, for its maintenance: clear it first, "
                            f"`mvmtui ceph noout {host} off`)")
        elif refusals:
            refusal = "; ".join(refusals)

    # ---- the next step, and what blocks it ----
    out, nxt = [], None
    for a, done in actions:
        state = "done" if done else ("pending" if nxt or refusal else "next")
        blocked = ""
        if state == "next":
            nxt = a
            blocked = _gate(a, s, host, present, safe, mon_ok_to_rm)
        out.append(Action(a.key, a.step, a.title, a.commands, a.on_host, state, a.note,
                          blocked))
    return DecomPlan(s.cluster, host, s.read_at, osds, tuple(checks), tuple(out), method,
                     method_why, refusal, started)


def _gate(a: Action, s: CephSummary, host: str, present: dict,
          safe: SafeToDestroy | None, mon_ok_to_rm: tuple[int, str] | None) -> str:
    kind, _, ident = a.key.partition(":")
    i = int(ident) if ident.isdigit() else None
    if kind == "stop" and i is not None:
        if safe is None:
            return "safe-to-destroy was not read"
        if not safe.is_safe(i):
            return f"Ceph says osd.{i} is not safe to destroy: {safe.reason or 'it still holds data'}"
    if kind in ("crush-remove", "auth-del", "osd-rm") and i in present and present[i].up:
        return f"osd.{i} is still up: stop its service first"
    if kind == "mon-remove":
        left = [m for m in s.mons if m.name != host]
        if not left:
            return "it is the last monitor: the cluster would have none"
        quorum_left = [m for m in left if m.in_quorum]
        if len(quorum_left) * 2 <= len(left):
            return (f"the {len(left)} monitors left would have only {len(quorum_left)} in "
                    f"quorum: removing it would break the quorum")
        if mon_ok_to_rm is not None and mon_ok_to_rm[0] != 0:
            return f"Ceph says: {mon_ok_to_rm[1]}"
    return ""


def progress(s: CephSummary, safe: SafeToDestroy | None, osds: tuple[int, ...],
             clean_for: float, settle: float) -> Progress:
    """Step 5's figures from one reading."""
    total = s.num_pgs if s.num_pgs is not None else (sum(p.count for p in s.pgs) or None)
    clean = sum(p.count for p in s.pgs if p.state == "active+clean")
    r = s.recovery
    ok = None if safe is None else all(safe.is_safe(i) for i in osds)
    return Progress(total, clean, r.degraded_objects, r.misplaced_objects,
                    r.recovering_bytes_per_sec, s.recovery_eta(), clean_for, settle, ok,
                    "" if safe is None else safe.reason)


def settled(s: CephSummary) -> bool:
    """A reading that shows nothing moving: every PG active+clean, no object degraded
    or misplaced."""
    r = s.recovery
    return s.clean() and not r.degraded_objects and not r.misplaced_objects
