"""Per-cluster policy: what may be set, in an operator's words, and its checks.

Placement rules are kept as typed, names and all (a VM's name is what an operator
knows; uuids are found when the planner's view is built):
    affinity=app-01+app-02          kept together (groups separated by commas)
    anti-affinity=web-01+web-02     kept apart
    must-run-on=db-01:kvm-01+kvm-02 never anywhere else
    prefer=web-01:kvm-03            preferred, broken when it must be

    mvmtui cluster set prod vcpu-ratio=3 host-reserve=4096 shared-datastores=ceph,nfs

Kept in the inventory (one JSON object per cluster); a value never set is the default.
"""
from __future__ import annotations

import re
from dataclasses import asdict, fields, replace

from .errors import BadSetting
from .model import ClusterPolicy

def _on_off(text: str) -> bool:
    if text.lower() in ("on", "yes", "true", "1"):
        return True
    if text.lower() in ("off", "no", "false", "0"):
        return False
    raise ValueError(text)


# key as typed -> (field, parse, check, what it means)
KEYS = {
    "vcpu-ratio": ("vcpu_ratio", float, lambda v: 0.1 <= v <= 64,
                   "vCPUs per physical CPU, 0.1–64"),
    "memory-ratio": ("memory_ratio", float, lambda v: 0.1 <= v <= 4,
                     "memory overcommit, 0.1–4 (1 = none)"),
    "host-reserve": ("host_reserve_mib", int, lambda v: 0 <= v <= 1 << 20,
                     "MiB each host keeps for itself, 0 or more"),
    "migration-concurrency": ("migration_concurrency", int, lambda v: 1 <= v <= 16,
                              "moves at once in an evacuation, 1–16"),
    "migration-bandwidth": ("migration_bandwidth_mib", int, lambda v: 0 <= v <= 1 << 20,
                            "MiB/s per migration, 0 = no limit"),
    "migration-max-downtime": ("migration_max_downtime_ms", int,
                               lambda v: v == 0 or 50 <= v <= 60_000,
                               "longest pause at a live migration's switch-over, ms; "
                               "0 = libvirt's default (300)"),
    "affinity": ("affinity", lambda t: _groups(t, "affinity"), lambda v: True,
                 "groups of VMs kept on one host: a+b, c+d+e"),
    "anti-affinity": ("anti_affinity", lambda t: _groups(t, "anti-affinity"),
                      lambda v: True, "groups of VMs kept on different hosts: a+b, c+d"),
    "must-run-on": ("must_run_on", lambda t: _host_rules(t, "must-run-on"), lambda v: True,
                    "VMs that run only on these hosts: vm:host+host, vm2:host"),
    "prefer": ("prefer", lambda t: _host_rules(t, "prefer"), lambda v: True,
               "hosts a VM goes to when it can: vm:host+host"),
    "ha-lost-after": ("ha_lost_after", float, lambda v: 0.5 <= v <= 600,
                      "seconds a host may not answer (after its keepalives fail) before "
                      "it is lost and failed over, 0.5–600"),
    "fence-method": ("fence_method", str.lower, lambda v: v in FENCE_METHODS,
                     "how a lost host is fenced before its VMs restart: lab, command, "
                     "ceph (blocklist its clients on the VMs' RBD images) or none"),
    "fence-command": ("fence_command", str, lambda v: True,
                      "fence command run on the watcher's machine; {host} and {address} "
                      "are filled in, e.g. ipmitool -H {address}-ipmi chassis power off"),
    "fence-status": ("fence_status", str, lambda v: True,
                     "command whose output must say \"off\" once the host is off"),
    "fence-hosts": ("fence_hosts", lambda t: _host_methods(t), lambda v: True,
                    "per-host fence method: host:method, host2:method"),
    "fence-storage": ("fence_storage", _on_off, lambda v: True,
                      "on: after a power fence, also blocklist the host's Ceph clients "
                      "(a second guard); off: the power fence alone"),
    "ha-return": ("ha_return", str.lower, lambda v: v in ("migrate", "stay"),
                  "when a lost host returns, its VMs migrate back live (migrate) or "
                  "stay where they restarted (stay)"),
    "drs-interval": ("drs_interval", int, lambda v: v == 0 or 10 <= v <= 86400,
                     "seconds between the watcher's rebalances, 10–86400; 0 = off"),
    "drs-threshold": ("drs_threshold", int, lambda v: 1 <= v <= 5,
                      "rebalance threshold, 1 (conservative) to 5 (aggressive)"),
    "drs-cooldown": ("drs_cooldown", int, lambda v: 0 <= v <= 7 * 86400,
                     "seconds a VM that DRS moved is left where it is"),
    "ceph-service": ("ceph_service", str, lambda v: "{action}" in v and "{id}" in v,
                     "how a Ceph daemon's service is stopped and disabled on its host; "
                     "{action} {type} {id} are filled in"),
    "ceph-settle": ("ceph_settle", int, lambda v: 5 <= v <= 3600,
                    "seconds every PG must stay active+clean before the decommission "
                    "destroys anything, 5–3600"),
    "ceph-noout-expiry": ("ceph_noout_expiry", int, lambda v: 300 <= v <= 7 * 86400,
                          "seconds a maintenance's noout may last before the summary "
                          "flags it, 300–604800"),
    "ceph-blocklist-expiry": ("ceph_blocklist_seconds", int,
                              lambda v: 3601 <= v <= 365 * 86400,
                              "seconds a storage fence's blocklist entries last; more "
                              "than Ceph's default hour, 3601–31536000"),
    "shared-datastores": ("shared_datastores",
                          lambda t: tuple(sorted({x.strip() for x in t.split(",") if x.strip()})),
                          lambda v: all(x.replace("-", "").replace("_", "").isalnum()
                                        for x in v),
                          "storage pools every host sees at the same path, comma-separated"),
}


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
FENCE_METHODS = ("lab", "command", "ceph", "none")



def _host_methods(text: str) -> str:
    """host:method, host2:method"""
    out = []
    for rule in (r.strip() for r in text.split(",") if r.strip()):
        host, colon, method = (x.strip() for x in rule.partition(":"))
        if not colon or not _NAME.fullmatch(host) or method.lower() not in FENCE_METHODS:
            raise BadSetting(f"fence-hosts={text}: {rule!r} is not a rule; write "
                             f"host:method with method one of {', '.join(FENCE_METHODS)}.")
        out.append(f"{host}:{method.lower()}")
    return ", ".join(out)


def fence_method(policy: ClusterPolicy, host: str) -> str:
    """The fence method of one host: its own (fence-hosts), else the cluster's."""
    for rule in (r.strip() for r in policy.fence_hosts.split(",") if r.strip()):
        name, _, method = rule.partition(":")
        if name == host:
            return method
    return policy.fence_method


def _groups(text: str, key: str) -> str:
    """a+b, c+d: each group two or more names; kept as typed, tidied."""
    out = []
    for group in (g.strip() for g in text.split(",") if g.strip()):
        names = [n.strip() for n in group.split("+") if n.strip()]
        if len(names) < 2 or not all(_NAME.fullmatch(n) for n in names):
            raise BadSetting(f"{key}={text}: {group!r} is not a group; write VM names "
                             f"joined by +, groups separated by commas (a+b, c+d).")
        out.append("+".join(names))
    return ", ".join(out)


def _host_rules(text: str, key: str) -> str:
    """vm:host+host, vm2:host"""
    out = []
    for rule in (r.strip() for r in text.split(",") if r.strip()):
        vm, colon, hosts = rule.partition(":")
        names = [h.strip() for h in hosts.split("+") if h.strip()]
        if not colon or not _NAME.fullmatch(vm.strip()) or not names \
                or not all(_NAME.fullmatch(h) for h in names):
            raise BadSetting(f"{key}={text}: {rule!r} is not a rule; write vm:host+host, "
                             f"rules separated by commas.")
        out.append(f"{vm.strip()}:{'+'.join(names)}")
    return ", ".join(out)


def groups(text: str) -> list[list[str]]:
    """The groups of an affinity setting, as lists of VM names."""
    return [g.split("+") for g in (x.strip() for x in text.split(",")) if g]


def host_rules(text: str) -> dict[str, list[str]]:
    """VM name -> host names, of a must-run-on or prefer setting."""
    out = {}
    for rule in (x.strip() for x in text.split(",") if x.strip()):
        vm, _, hosts = rule.partition(":")
        out[vm] = hosts.split("+")
    return out


def from_stored(data: dict) -> ClusterPolicy:
    """The policy kept in the inventory; unknown or damaged values fall back to the
    defaults (a newer mvmtui may have written more)."""
    known = {f.name for f in fields(ClusterPolicy)}
    policy = ClusterPolicy()
    for name, value in data.items():
        if name in known:
            try:
                policy = replace(policy, **{name: tuple(value) if isinstance(value, list)
                                            else type(getattr(policy, name))(value)})
            except (TypeError, ValueError):
                pass
    return policy


def to_stored(policy: ClusterPolicy) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(policy).items()}


def apply(policy: ClusterPolicy, assignments: list[str]) -> ClusterPolicy:
    """KEY=VALUE settings on top of a policy; BadSetting says what is wrong."""
    changes = {}
    for item in assignments:
        key, eq, text = item.partition("=")
        key = key.strip().lower()
        if not eq or key not in KEYS:
            raise BadSetting(f"{item!r}: write KEY=VALUE with KEY one of "
                              f"{', '.join(KEYS)}.")
        name, parse, ok, means = KEYS[key]
        try:
            value = parse(text.strip())
        except ValueError:
            raise BadSetting(f"{key}={text}: not a number; {key} is {means}.") from None
        except BadSetting:
            raise
        if not ok(value):
            raise BadSetting(f"{key}={text}: out of range; {key} is {means}.")
        changes[name] = value
    return replace(policy, **changes)


def describe(policy: ClusterPolicy) -> list[tuple[str, str]]:
    """(key, value as typed) for every setting, for `cluster show`."""
    out = []
    for key, (name, *_rest) in KEYS.items():
        value = getattr(policy, name)
        if isinstance(value, bool):
            out.append((key, "on" if value else "off"))
            continue
        out.append((key, ",".join(value) if isinstance(value, tuple) else f"{value:g}"
                    if isinstance(value, float) else str(value)))
    return out


def explain(policy: ClusterPolicy) -> list[tuple[str, str, str, str]]:
    """(key, value as typed, its default, what it means) for every setting, for the
    console's settings screen."""
    defaults = dict(describe(ClusterPolicy()))
    return [(key, value, defaults[key], KEYS[key][3]) for key, value in describe(policy)]
