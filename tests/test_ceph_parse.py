"""Ceph's answers as CephSummary, OkToStop and SafeToDestroy (engine/ceph/parse.py).

The fixtures are real refresh documents from a Ceph 16 lab (tests/fixtures/ceph,
capture.py). Expectations are read from the same raw JSON wherever they can be, so a
recaptured fixture still checks the parser rather than the capture. Then hypothesis
mangles the real documents (keys gone, values of the wrong type, states nobody knows)
and the parser must still answer.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck as HypothesisHealthCheck
from hypothesis import given, settings
from hypothesis import strategies as st

from mvmtui.engine.ceph import parse
from mvmtui.engine.ceph.model import (CephSummary, HealthCheck, OkToStop, PgCount,
                                      SafeToDestroy)
from mvmtui.engine.ceph.reads import parse_cli

FIXTURES = Path(__file__).parent / "fixtures" / "ceph"
STATES = ("healthy", "flags", "osd_down", "backfilling", "mon_removed")
RAW = {s: (FIXTURES / f"{s}.json").read_text() for s in STATES}
AT = 1_796_155_300.0


def doc(state: str) -> dict:
    return json.loads(RAW[state])


def out(d: dict, read: str):
    return d["reads"][read]["out"]


def check(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def parsed(state: str) -> CephSummary:
    return parse.summary("lab", doc(state), AT)


# ---- every state, against its own raw JSON ------------------------------------------

@pytest.mark.parametrize("state", STATES)
def test_every_state_parses_to_the_numbers_ceph_gave(state):
    d = doc(state)
    s = parse.summary("lab", d, AT)
    assert s.problems == ()
    assert s.cluster == "lab" and s.read_at == AT and s.source == d["host"]
    status = out(d, "status")
    pgmap = status["pgmap"]
    assert s.fsid == status["fsid"]
    assert s.health == out(d, "health")["status"]
    assert {c.code for c in s.checks} == set(out(d, "health")["checks"])
    for c in s.checks:
        raw = out(d, "health")["checks"][c.code]
        assert c.severity == raw["severity"]
        assert c.summary == raw["summary"]["message"]
        assert c.count == raw["summary"]["count"]
        assert c.detail == tuple(x["message"] for x in raw["detail"])
    # PGs: the states as listed, summing to the total.
    assert [(p.state, p.count) for p in s.pgs] == [
        (e["state_name"], e["count"]) for e in pgmap["pgs_by_state"]]
    assert sum(p.count for p in s.pgs) == s.num_pgs == pgmap["num_pgs"]
    # Raw capacity is df's.
    stats = out(d, "df")["stats"]
    assert (s.raw_total_bytes, s.raw_used_bytes, s.raw_avail_bytes) == (
        stats["total_bytes"], stats["total_used_raw_bytes"], stats["total_avail_bytes"])
    assert s.client_read_bytes_per_sec == pgmap["read_bytes_sec"]
    assert s.client_write_ops_per_sec == pgmap["write_op_per_sec"]
    # OSDs: osd df tree's figures (KiB -> bytes), up/in from osd dump, host from the tree.
    nodes = out(d, "osd_df")["nodes"]
    raw_osds = {n["id"]: n for n in nodes if n["type"] == "osd"}
    host_of = {c: n["name"] for n in nodes if n["type"] == "host" for c in n["children"]}
    dump = {o["osd"]: o for o in out(d, "osd_dump")["osds"]}
    assert [o.id for o in s.osds] == sorted(raw_osds)
    for o in s.osds:
        n = raw_osds[o.id]
        assert o.name == n["name"] and o.host == host_of[o.id]
        assert o.size_bytes == n["kb"] * 1024 and o.used_bytes == n["kb_used"] * 1024
        assert o.avail_bytes == n["kb_avail"] * 1024
        assert o.utilization == n["utilization"] and o.pgs == n["pgs"]
        assert o.crush_weight == n["crush_weight"] and o.reweight == n["reweight"]
        assert o.status == n["status"] and o.device_class == n["device_class"]
        assert (o.up, o.in_) == (bool(dump[o.id]["up"]), bool(dump[o.id]["in"]))
    assert [h.name for h in s.hosts] == [n["name"] for n in nodes if n["type"] == "host"]
    for h in s.hosts:
        assert s.osds_on(h.name) == tuple(o for o in s.osds if o.id in h.osds)
    # Pools: the pool list and df's usage, percent as 0-100.
    df_pools = {p["id"]: p["stats"] for p in out(d, "df")["pools"]}
    assert [(p.id, p.name) for p in s.pools] == [
        (p["pool_id"], p["pool_name"]) for p in out(d, "pools")]
    for p, raw in zip(s.pools, out(d, "pools")):
        assert (p.size, p.min_size, p.pg_num, p.crush_rule) == (
            raw["size"], raw["min_size"], raw["pg_num"], raw["crush_rule"])
        assert p.kind == "replicated"
        assert p.applications == tuple(raw["application_metadata"])
        st_ = df_pools[p.id]
        assert p.stored_bytes == st_["stored"] and p.used_bytes == st_["bytes_used"]
        assert p.max_avail_bytes == st_["max_avail"] and p.objects == st_["objects"]
        assert p.percent_used == pytest.approx(st_["percent_used"] * 100)
    assert [(r.id, r.name, r.failure_domain) for r in s.rules] == [
        (r["rule_id"], r["rule_name"], "host") for r in out(d, "rules")]
    dump_doc = out(d, "osd_dump")
    assert (s.nearfull_ratio, s.backfillfull_ratio, s.full_ratio) == (
        dump_doc["nearfull_ratio"], dump_doc["backfillfull_ratio"],
        dump_doc["full_ratio"])
    assert s.release == dump_doc["require_osd_release"] == "pacific"
    # Ceph's housekeeping flags are never shown.
    assert not {f.name for f in s.flags} & parse.HOUSEKEEPING
    mgr = out(d, "mgr")
    assert [(m.name, m.active) for m in s.mgrs] == [(mgr["active_name"], True)] + [
        (x["name"], False) for x in mgr["standbys"]]
    assert s.quorum == tuple(out(d, "quorum")["quorum_names"])
    assert [(m.name, m.rank) for m in s.mons] == [
        (m["name"], m["rank"]) for m in out(d, "mon_dump")["mons"]]
    assert s.blocklist == ()


def test_healthy():
    s = parsed("healthy")
    assert s.health == "HEALTH_OK" and s.checks == ()
    assert len(s.mons) == 3 and all(m.in_quorum for m in s.mons)
    assert s.mon_on("kvm-01").address == "10.79.0.11:3300"
    assert len(s.mgrs) == 2 and [m.name for m in s.mgrs if m.active] == ["kvm-02"]
    assert len(s.osds) == 4 and all(o.up and o.in_ for o in s.osds)
    assert [o.host for o in s.osds] == ["kvm-01", "kvm-02", "kvm-03", "kvm-04"]
    assert [h.name for h in s.hosts] == ["kvm-01", "kvm-02", "kvm-03", "kvm-04"]
    assert s.clean() and not s.recovery.active
    # Ceph leaves zero figures out of its pgmap: zero, not unknown.
    assert s.recovery.degraded_objects == 0 and s.recovery.misplaced_objects == 0
    assert s.flags == ()


def test_osd_down():
    d = doc("osd_down")
    s = parse.summary("lab", d, AT)
    down = next(c for c in s.checks if c.code == "OSD_DOWN")
    assert down.count == 1 and "osd.3" in down.detail[0]
    assert "OSD_HOST_DOWN" in {c.code for c in s.checks}
    osd3 = s.osds[3]
    assert not osd3.up and osd3.in_ and osd3.status == "down"    # down, not yet out
    assert all(o.up for o in s.osds if o.id != 3)
    assert not s.clean()
    pgmap = out(d, "status")["pgmap"]
    assert s.recovery.degraded_objects == pgmap["degraded_objects"] == 43
    assert s.recovery.degraded_total == pgmap["degraded_total"]
    assert "stale+active+clean" in {p.state for p in s.pgs}


def test_backfilling():
    d = doc("backfilling")
    s = parse.summary("lab", d, AT)
    pgmap = out(d, "status")["pgmap"]
    assert s.recovery.active
    assert s.recovery.degraded_objects == pgmap["degraded_objects"]
    assert s.recovery.degraded_total == pgmap["degraded_total"]
    assert s.recovery.recovering_bytes_per_sec == pgmap["recovering_bytes_per_sec"]
    assert s.recovery.recovering_objects_per_sec == pgmap["recovering_objects_per_sec"]
    # osd.3 was weighted to 0 in CRUSH: still up and in, its host weighs nothing.
    assert s.osds[3].crush_weight == 0 and s.osds[3].up and s.osds[3].in_
    assert next(h for h in s.hosts if h.name == "kvm-04").crush_weight == 0
    assert not s.clean()


def test_flags_with_mvmtui_s_mark():
    d = doc("flags")
    s = parse.summary("lab", d, AT)
    mark = json.loads(out(d, "marks")["mvmtui/noout/kvm-04"])
    noout = next(f for f in s.flags if f.scope == "host kvm-04")
    assert noout.name == "noout"
    assert noout.who == mark["by"] == "root@admin (pid 1)"
    assert noout.since == mark["since"] and noout.expires == mark["expires"]
    assert noout.why == "maintenance"
    assert noout.expired(mark["expires"]) and not noout.expired(mark["expires"] - 1)
    # Set by hand: no mark, nobody named.
    reb = next(f for f in s.flags if f.name == "norebalance")
    assert reb.scope == "cluster" and reb.who == "" and reb.since is None
    assert {(f.name, f.scope) for f in s.flags} == {("noout", "host kvm-04"),
                                                    ("norebalance", "cluster")}
    assert {"OSDMAP_FLAGS", "OSD_FLAGS"} <= {c.code for c in s.checks}


def test_mon_removed():
    s = parsed("mon_removed")
    assert [m.name for m in s.mons] == ["kvm-01", "kvm-02"]
    assert s.quorum == ("kvm-01", "kvm-02")
    assert s.mon_on("kvm-03") is None


# ---- marks ---------------------------------------------------------------------------

def test_a_mark_whose_flag_is_gone_is_dropped_and_a_bad_mark_is_ignored():
    d = doc("flags")
    out(d, "marks").update({
        "mvmtui/noout/kvm-02": json.dumps({"by": "x", "since": 1, "expires": 2}),
        "mvmtui/flag/norebalance": json.dumps({"by": "ops", "why": "upgrade"}),
        "mvmtui/noout/kvm-04": "{not json",
        "mvmtui/other": "{}"})
    s = parse.summary("lab", d, AT)
    assert {(f.name, f.scope) for f in s.flags} == {("noout", "host kvm-04"),
                                                    ("norebalance", "cluster")}
    assert next(f for f in s.flags if f.scope == "host kvm-04").who == ""
    reb = next(f for f in s.flags if f.name == "norebalance")
    assert (reb.who, reb.why) == ("ops", "upgrade")


def test_per_osd_flags_and_blocklist():
    d = doc("healthy")
    dump = out(d, "osd_dump")
    dump["osds"][2]["state"] = ["exists", "up", "noout", "noin"]
    dump["blocklist"] = {"10.79.0.14:0/3271": "2026-12-02T20:00:00.000000+0000"}
    dump["flags_set"] = dump["flags_set"] + ["noscrub", "pause"]
    s = parse.summary("lab", d, AT)
    assert {(f.name, f.scope) for f in s.flags} == {
        ("noscrub", "cluster"), ("pause", "cluster"),
        ("noout", "osd.2"), ("noin", "osd.2")}
    assert [(b.address, b.until) for b in s.blocklist] == [
        ("10.79.0.14:0/3271", "2026-12-02T20:00:00.000000+0000")]


# ---- failed reads --------------------------------------------------------------------

def test_a_failed_read_is_a_problem_and_the_rest_still_parses():
    d = doc("healthy")
    d["reads"]["osd_df"] = {"ret": -110, "out": None, "err": "timed out"}
    d["reads"]["pools"]["out"] = "this is not JSON"
    del d["reads"]["mgr"]
    s = parse.summary("lab", d, AT)
    assert "osd df tree: (-110) timed out" in s.problems
    assert any(p.startswith("osd pool ls detail: ") for p in s.problems)
    assert "mgr dump: not read" in s.problems
    assert len(s.problems) == 3
    # OSDs still known from osd dump (no host: that is the tree's), pools from df.
    assert [(o.id, o.up, o.in_, o.host) for o in s.osds] == [
        (i, True, True, "") for i in range(4)]
    assert s.hosts == ()
    assert [(p.id, p.name, p.size) for p in s.pools] == [
        (1, "device_health_metrics", None), (2, "vms", None)]
    assert s.mgrs == () and s.health == "HEALTH_OK" and len(s.mons) == 3


def test_no_monitor_answered():
    s = parse.summary("lab", {"host": "kvm-01", "reads": {},
                              "error": "no monitor answered: timed out"}, AT)
    assert s.problems == ("no monitor answered: timed out",)
    assert s.source == "kvm-01" and s.health == "" and s.osds == () and s.mons == ()


def test_the_cli_fallback_reads_the_same():
    d = doc("healthy")
    text = "\n".join(f"@@ {name}\n{json.dumps(r['out'])}\n@@rc 0"
                     for name, r in d["reads"].items() if name != "osd_df")
    text += "\n@@ osd_df\nError ETIMEDOUT: timed out\n@@rc 110\n"
    s = parse.summary("lab", parse_cli(text), AT)
    ref = parsed("healthy")
    assert s.problems == ("osd df tree: (-110) Error ETIMEDOUT: timed out",)
    assert (s.health, s.mons, s.mgrs, s.pools, s.pgs) == (
        ref.health, ref.mons, ref.mgrs, ref.pools, ref.pgs)


# ---- other versions' spellings -------------------------------------------------------

def test_older_and_newer_spellings():
    d = doc("healthy")
    r = d["reads"]
    dump = out(d, "osd_dump")
    del dump["flags_set"]
    dump["flags"] = "noout,sortbitwise,recovery_deletes"      # before flags_set
    del dump["blocklist"]
    dump["blacklist"] = {"10.0.0.9:0/1": "2020-01-01"}         # before Pacific
    for m in out(d, "mon_dump")["mons"]:
        del m["public_addrs"]                                   # before Nautilus
    # status without a pgmap: pg stat's figures ({name, num}).
    del out(d, "status")["pgmap"]
    # mgr dump failed: a Nautilus status' mgrmap names them.
    r["mgr"] = {"ret": -22, "out": None, "err": "EINVAL"}
    out(d, "status")["mgrmap"] = {"available": True, "active_name": "kvm-03",
                                  "standbys": [{"name": "kvm-04"}]}
    # used only as its parts; no osd dump osds (up/in from the tree).
    node = next(n for n in out(d, "osd_df")["nodes"] if n["name"] == "osd.1")
    del node["kb_used"]
    node["reweight"] = 0
    node["status"] = "down"
    del dump["osds"]
    s = parse.summary("lab", d, AT)
    assert [(f.name, f.scope) for f in s.flags] == [("noout", "cluster")]
    assert [b.address for b in s.blocklist] == ["10.0.0.9:0/1"]
    assert s.mon_on("kvm-02").address == "10.79.0.12:6789/0"
    pg_sum = out(d, "pg_stat")["pg_summary"]
    assert [(p.state, p.count) for p in s.pgs] == [
        (e["name"], e["num"]) for e in pg_sum["num_pg_by_state"]]
    assert s.num_pgs == pg_sum["num_pgs"]
    assert s.client_read_bytes_per_sec == pg_sum["read_bytes_sec"]
    assert s.client_read_ops_per_sec is None   # pg stat gives no ops split: not known
    assert [(m.name, m.active) for m in s.mgrs] == [("kvm-03", True), ("kvm-04", False)]
    assert s.problems == ("mgr dump: (-22) EINVAL",)
    osd1 = s.osds[1]
    assert osd1.used_bytes == 1024 * (node["kb_used_data"] + node["kb_used_omap"]
                                      + node["kb_used_meta"])
    assert (osd1.up, osd1.in_) == (False, False)
    assert all(o.up and o.in_ for o in s.osds if o.id != 1)


def test_what_this_code_never_heard_of_is_kept_as_ceph_said_it():
    d = doc("healthy")
    out(d, "health")["status"] = "HEALTH_PURPLE"
    out(d, "health")["checks"]["FUTURE_CHECK"] = {
        "severity": "HEALTH_SEVERE", "muted": True,
        "summary": {"message": "something new", "count": 2},
        "detail": [{"message": "first"}, "second"]}
    out(d, "status")["pgmap"]["pgs_by_state"].append(
        {"state_name": "active+clean+zorched", "count": 3})
    out(d, "pools")[0]["type"] = 7
    out(d, "pools")[1]["type"] = "tiered"
    out(d, "osd_dump")["flags_set"].append("nofuture")
    out(d, "osd_dump")["require_osd_release"] = "zebra"
    out(d, "rules")[0]["steps"][1]["type"] = "datacenter-row"
    out(d, "osd_df")["nodes"][2]["status"] = "hibernating"
    s = parse.summary("lab", d, AT)
    assert s.health == "HEALTH_PURPLE"
    assert s.checks == (HealthCheck("FUTURE_CHECK", "HEALTH_SEVERE", "something new",
                                    ("first", "second"), 2, True),)
    assert s.pgs[-1] == PgCount("active+clean+zorched", 3)
    assert [p.kind for p in s.pools] == ["7", "tiered"]
    assert ("nofuture", "cluster") in {(f.name, f.scope) for f in s.flags}
    assert s.release == "zebra"
    assert s.rules[0].failure_domain == "datacenter-row"
    assert s.osds[0].status == "hibernating"
    assert not s.clean()


def test_absurd_figures_are_not_known_rather_than_infinite():
    d = doc("healthy")
    out(d, "df")["pools"][1]["stats"]["percent_used"] = 1e307      # x 100 overflows
    nodes = {n["name"]: n for n in out(d, "osd_df")["nodes"]}
    nodes["kvm-01"]["children"] = [0, 1]    # two OSDs whose weights overflow as a sum
    nodes["osd.0"]["crush_weight"] = nodes["osd.1"]["crush_weight"] = 1.7e308
    nodes["osd.0"]["kb"] = "lots"
    s = parse.summary("lab", d, AT)
    assert s.pools[1].percent_used is None
    assert s.hosts[0].crush_weight is None
    assert s.osds[0].size_bytes is None and s.osds[0].crush_weight == 1.7e308


def test_erasure_pools_and_a_muted_check():
    d = doc("healthy")
    out(d, "pools")[1]["type"] = 3
    out(d, "health")["checks"] = {"OSD_NEARFULL": {
        "severity": "HEALTH_WARN", "muted": False,
        "summary": {"message": "1 nearfull osd(s)", "count": 1}, "detail": []}}
    out(d, "health")["mutes"] = [{"code": "OSD_NEARFULL", "sticky": False}]
    s = parse.summary("lab", d, AT)
    assert s.pools[1].kind == "erasure"
    assert s.checks[0].muted


# ---- ok-to-stop and safe-to-destroy --------------------------------------------------

def test_ok_to_stop_from_real_answers():
    c = check("ok_to_stop_healthy")
    a = parse.ok_to_stop(c["rc"], c["stdout"], c["stderr"])
    raw = json.loads(c["stdout"])
    assert a == OkToStop(ok=True, osds=tuple(raw["osds"]), bad_pgs=0, reason="")
    c = check("ok_to_stop_other_down")
    raw = json.loads(c["stdout"])
    a = parse.ok_to_stop(c["rc"], c["stdout"], c["stderr"])
    assert c["rc"] == 16 and not a.ok and a.osds == (2,)
    assert a.bad_pgs == raw["num_not_ok_pgs"] == len(raw["bad_become_inactive"])
    assert a.reason == c["stderr"]


def test_ok_to_stop_without_an_answer():
    a = parse.ok_to_stop(11, "", "Error EAGAIN: 3 PGs have unknown state; cannot draw "
                                 "any conclusions\n")
    assert not a.ok and a.reason.startswith("Error EAGAIN: 3 PGs have unknown state")
    assert parse.ok_to_stop(0, "garbage", "") == OkToStop(False,
                                                          reason="Ceph gave no answer")
    # The JSON alone does not make it ok when Ceph's exit code says otherwise.
    assert not parse.ok_to_stop(16, '\n{"ok_to_stop": true, "osds": [1]}', "").ok


def test_safe_to_destroy_from_real_answers():
    for name, safe in (("safe_to_destroy_in", False),
                       ("safe_to_destroy_backfilling", False),
                       ("safe_to_destroy_clean", True)):
        c = check(name)
        raw = json.loads(c["stdout"])
        a = parse.safe_to_destroy(c["rc"], c["stdout"], c["stderr"])
        assert c["rc"] == 0                     # 0 either way: the lists are the answer
        assert a.safe == tuple(raw["safe_to_destroy"])
        assert a.active == tuple(raw["active"])
        assert a.is_safe(3) is safe
        assert (a.reason == "") is safe
    a = parse.safe_to_destroy(1, "", "Error ENOENT: osd.9 does not exist")
    assert a == SafeToDestroy(reason="Error ENOENT: osd.9 does not exist")
    assert not parse.safe_to_destroy(0, "\n", "").is_safe(3)
    both = parse.safe_to_destroy(0, '{"safe_to_destroy":[3],"stored_pgs":[3]}', "")
    assert not both.is_safe(3)


# ---- hypothesis: mangled real documents ------------------------------------------------

def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


# Paths grouped by read, so that a small read (mgr) is mangled as often as a big one.
PATHS = {s: {name: list(_paths(r, ("reads", name)))
             for name, r in doc(s)["reads"].items()}
         | {"": [(), ("host",), ("reads",)]} for s in STATES}
ODD = st.sampled_from(["", "unknown", "active+zorched", "HEALTH_PURPLE", "-1", "1e999",
                       "nan", "osd.x", "osd.-3", "mvmtui/noout/", "{}", "[1,"])
WEIRD = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | ODD,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=6) | ODD, inner, max_size=3),
    max_leaves=6)


def _at(node, path):
    for k in path:
        if isinstance(node, dict) and k in node or isinstance(node, list) and (
                isinstance(k, int) and k < len(node)):
            node = node[k]
        else:
            return None, False
    return node, True


@st.composite
def mangled_docs(draw):
    state = draw(st.sampled_from(STATES))
    d = doc(state)
    for _ in range(draw(st.integers(1, 12))):
        group = draw(st.sampled_from(sorted(PATHS[state])))
        path = draw(st.sampled_from(PATHS[state][group]))
        if not path:
            if draw(st.integers(0, 9)) == 0:    # now and then, not a document at all
                return draw(WEIRD)
            continue
        parent, ok = _at(d, path[:-1])
        key = path[-1]
        if not ok or not isinstance(parent, (dict, list)) or (
                isinstance(parent, list) and (not isinstance(key, int)
                                              or key >= len(parent))) or (
                isinstance(parent, dict) and key not in parent):
            continue                            # gone with an earlier change
        if draw(st.booleans()):
            del parent[key]
        else:
            parent[key] = draw(WEIRD)
    if draw(st.integers(0, 19)) == 0:
        d["error"] = draw(WEIRD)
    return d


def _sane(value):
    """Every figure a finite number or None, every text a str: nothing a screen would
    choke on."""
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            _sane(getattr(value, f.name))
    elif isinstance(value, tuple):
        for v in value:
            _sane(v)
    elif isinstance(value, float):
        assert math.isfinite(value)
    else:
        assert value is None or isinstance(value, (str, int, bool)), value


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HypothesisHealthCheck.too_slow,
                                 HypothesisHealthCheck.data_too_large])
@given(mangled_docs())
def test_a_mangled_document_never_breaks_the_parser(d):
    before = repr(copy.deepcopy(d))
    s = parse.summary("lab", d, AT)
    assert isinstance(s, CephSummary)
    assert repr(d) == before                    # the parser changes nothing it reads
    _sane(s)
    assert all(isinstance(p, str) and p for p in s.problems)
    # What the screens ask must answer too.
    s.clean(), s.quorum, s.recovery.active, s.rule(0)
    for o in s.osds:
        s.osds_on(o.host)


JSONISH = st.one_of(
    st.text(max_size=40),
    WEIRD.map(lambda v: json.dumps(v)),
    st.fixed_dictionaries({}, optional={
        k: WEIRD for k in ("ok_to_stop", "osds", "num_not_ok_pgs", "bad_become_inactive",
                           "safe_to_destroy", "active", "missing_stats", "stored_pgs")})
    .map(lambda v: "\n" + json.dumps(v)))


@settings(max_examples=150, deadline=None)
@given(st.integers(-300, 300), JSONISH, st.text(max_size=40))
def test_ok_to_stop_and_safe_to_destroy_never_break(rc, stdout, stderr):
    a = parse.ok_to_stop(rc, stdout, stderr)
    assert isinstance(a, OkToStop) and isinstance(a.ok, bool)
    assert a.ok or a.reason                     # a no always says why
    _sane(a)
    b = parse.safe_to_destroy(rc, stdout, stderr)
    assert isinstance(b, SafeToDestroy)
    _sane(b)
    for i in b.safe:
        b.is_safe(i)
