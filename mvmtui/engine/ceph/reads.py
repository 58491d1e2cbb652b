"""What a Ceph summary reads, and how: one SSH exec a refresh.

Each read is a monitor (or manager) command with JSON output, the same as `ceph …
-f json` would give. Starting the `ceph` CLI costs about 0.75 s of a host's CPU per
command (it is Python, and connects afresh each time), so a refresh runs READ_SCRIPT
instead: one python3 on the monitor host, one librados connection (python3-rados comes
with ceph-common, so every host with the `ceph` CLI has it), every command, one JSON
document back. Where python3-rados is missing, the same reads run as `ceph … -f json`
(cli_script), one command each.
"""
from __future__ import annotations

import json
import shlex

# name -> (the command as `ceph` takes it, the monitor command as JSON)
READS: dict[str, tuple[str, dict]] = {
    "status": ("status", {"prefix": "status"}),
    "health": ("health detail", {"prefix": "health", "detail": "detail"}),
    "osd_df": ("osd df tree", {"prefix": "osd df", "output_method": "tree"}),
    "df": ("df detail", {"prefix": "df", "detail": "detail"}),
    "pools": ("osd pool ls detail", {"prefix": "osd pool ls", "detail": "detail"}),
    "osd_dump": ("osd dump", {"prefix": "osd dump"}),
    "mon_dump": ("mon dump", {"prefix": "mon dump"}),
    "quorum": ("quorum_status", {"prefix": "quorum_status"}),
    "pg_stat": ("pg stat", {"prefix": "pg stat"}),
    "pg_stuck": ("pg dump_stuck", {"prefix": "pg dump_stuck"}),
    "mgr": ("mgr dump", {"prefix": "mgr dump"}),
    "rules": ("osd crush rule dump", {"prefix": "osd crush rule dump"}),
    "marks": ("config-key dump mvmtui/", {"prefix": "config-key dump", "key": "mvmtui/"}),
}
SUMMARY = tuple(READS)
# Parts of big answers nobody here reads (mgr dump is ~95 KB, mostly module options).
TRIM = {"mgr": ("active_name", "active_addr", "available", "standbys"),
        "osd_dump": ("epoch", "flags", "flags_set", "full_ratio", "backfillfull_ratio",
                     "nearfull_ratio", "osds", "blocklist", "crush_node_flags",
                     "require_osd_release", "max_osd")}

READ_SCRIPT = r'''
import json, os, sys, socket, time
out = {"host": socket.gethostname(), "reads": {}, "started": time.time()}
if not os.path.exists("/etc/ceph/ceph.conf"):
    out["absent"] = True
    print(json.dumps(out)); sys.exit(0)
import rados
want = json.loads(sys.argv[1])
trim = json.loads(sys.argv[2])
r = rados.Rados(conffile="/etc/ceph/ceph.conf")
try:
    r.connect(timeout=5)
except Exception as exc:
    out["error"] = "no monitor answered: %s" % exc
    print(json.dumps(out)); sys.exit(0)
for name, cmd in want.items():
    cmd = dict(cmd, format="json")
    try:
        ret, buf, err = r.mon_command(json.dumps(cmd), b"", timeout=10)
        if ret == -22:
            ret, buf, err = r.mgr_command(json.dumps(cmd), b"", timeout=10)
    except Exception as exc:
        out["reads"][name] = {"ret": -110, "err": str(exc)}; continue
    try:
        data = json.loads(buf) if buf.strip() else None
    except ValueError:
        data = buf.decode(errors="replace")
    if isinstance(data, dict) and name in trim:
        data = {k: data[k] for k in trim[name] if k in data}
    if name == "mgr" and isinstance(data, dict):
        data["standbys"] = [{"name": s.get("name")} for s in data.get("standbys", [])]
    out["reads"][name] = {"ret": ret, "out": data, "err": err}
r.shutdown()
out["ended"] = time.time()
print(json.dumps(out))
'''


def script(names=SUMMARY, extra: dict | None = None) -> str:
    """The shell command one refresh runs on a monitor host. `extra`: more reads, name
    -> monitor command (the decommission wizard's safe-to-destroy, auth get …)."""
    want = {n: READS[n][1] for n in names}
    want.update(extra or {})
    trim = {n: TRIM[n] for n in names if n in TRIM}
    return (f"python3 -c {shlex.quote(READ_SCRIPT)} {shlex.quote(json.dumps(want))} "
            f"{shlex.quote(json.dumps(trim))}")


def cli_script(names=SUMMARY) -> str:
    """The same reads through the `ceph` CLI, one command each (no python3-rados): a
    line `@@ name rc` before each answer."""
    parts = [f"echo '@@ {n}'; ceph {READS[n][0]} -f json 2>&1; echo \"@@rc $?\""
             for n in names]
    return "; ".join(parts)


def parse_cli(text: str) -> dict:
    """cli_script's output as READ_SCRIPT's document."""
    reads, name, lines = {}, None, []
    for line in text.splitlines():
        if line.startswith("@@rc ") and name:
            body = "\n".join(lines)
            ret = int(line.split()[1]) if line.split()[1].lstrip("-").isdigit() else 1
            try:
                data = json.loads(body) if ret == 0 and body.strip() else None
                err = "" if ret == 0 else body.strip()
            except ValueError:
                data, err = None, body.strip()
            reads[name] = {"ret": 0 if ret == 0 else -ret, "out": data, "err": err}
            name, lines = None, []
        elif line.startswith("@@ "):
            name, lines = line[3:].strip(), []
        elif name:
            lines.append(line)
    return {"reads": reads}
