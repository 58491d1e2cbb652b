"""Fencing at the storage: a lost host's clients are cut off from Ceph before its VMs
restart elsewhere (fence-method ceph, or fence-storage=on as a second guard after a
power fence).

For each RBD image of the VMs that ran on the host, the clients that hold it (`rbd
status`: watchers; `rbd lock ls`: exclusive-lock owners) and whose address is the
host's are blocklisted with `ceph osd blocklist add`, for longer than Ceph's default of
one hour (an entry that expires lets the old writer back in). Ceph is then asked
whether they are listed: only that counts. The entries are kept in Ceph's config-key
store (mvmtui/blocklist/HOST), and removed once the host has returned and its stale
copies are gone (ha.py calls `unfence`).
"""
from __future__ import annotations

import json
import shlex
import time

from .. import fence as fencing
from ..fence import Fenced

MARK = "mvmtui/blocklist/"


def _images(engine, cluster: str, host: str) -> tuple[list[str], list[str]]:
    """(RBD images of the host's VMs, VMs whose shared disks are not on RBD)."""
    images, other = [], []
    for vm in engine.vms(cluster, host):
        for d in vm.disks:
            if d.device != "disk" or not d.source or d.readonly:
                continue
            if d.kind == "network" and "/" in d.source:
                images.append(d.source)
            elif not engine.storage_issue(vm):      # on a shared directory: not ours
                other.append(vm.name)
    return sorted(set(images)), sorted(set(other))


def _ip(address: str) -> str:
    """10.0.0.11 of "10.0.0.11:0/3452" (v1) or "v2:10.0.0.11:0/3452"."""
    return address.removeprefix("v1:").removeprefix("v2:").rsplit(":", 1)[0].strip("[]")


def _holders(text: str):
    """(image, rbd status, rbd lock ls) from the holders script's output."""
    dec = json.JSONDecoder()
    for chunk in text.split("@@ ")[1:]:
        image, _, rest = chunk.partition("\n")
        status_text, _, locks_text = rest.partition("@@")
        values = []
        for part in (status_text, locks_text):
            try:
                values.append(dec.raw_decode(part.strip())[0])
            except ValueError:
                values.append(None)
        yield image.strip(), values[0], values[1]


async def storage_fence(engine, cluster: str, host: str) -> Fenced | None:
    """Blocklist the host's clients on its VMs' images; None if the cluster has no Ceph."""
    if engine.ceph_present(cluster) is None:       # not read yet (a watcher just started)
        await engine._ceph_read(cluster)
    if not engine.ceph_present(cluster):
        return None
    h = engine.host(cluster, host)
    images, other = _images(engine, cluster, host)
    if other:
        return Fenced(False, f"{', '.join(other)} keep disks on shared storage that is not "
                             f"Ceph: the storage fence cannot stop them writing")
    clients: dict[str, set[str]] = {}
    # Who holds each image: `rbd` is quick (C++), so all of them in one exec.
    script = "; ".join(f"echo '@@ {i}'; rbd status {shlex.quote(i)} --format json; echo; "
                       f"echo '@@'; rbd lock ls {shlex.quote(i)} --format json; echo"
                       for i in images)
    res = await engine._ceph_run(cluster, ["sh", "-c", script]) if images else None
    if res is not None and not res.ok:
        return Fenced(False, f"`rbd status` failed: {res.said()}")
    held_locks = []             # (image, lock id, locker) the host's clients hold
    for image, status, locks in _holders(res.out if res else ""):
        found = [w.get("address", "") for w in (status.get("watchers") or [])
                 if isinstance(w, dict)] if isinstance(status, dict) else []
        if isinstance(locks, dict):         # older Ceph: a dict by lock id
            locks = [dict(v, id=k) for k, v in locks.items() if isinstance(v, dict)]
        for lk in locks if isinstance(locks, list) else ():
            if isinstance(lk, dict) and _ip(str(lk.get("address", ""))) == h.address:
                found.append(lk["address"])
                held_locks.append((image, str(lk.get("id", "")), str(lk.get("locker", ""))))
        for addr in found:
            if addr and _ip(addr) == h.address:
                clients.setdefault(addr, set()).add(image)
    if not clients:
        return Fenced(True, f"Ceph: no client of {host} holds any of its VMs' "
                            f"{len(images)} RBD image(s)")
    seconds = engine.policy(cluster).ceph_blocklist_seconds
    now = time.time()
    mark = {"addresses": sorted(clients), "images": sorted({i for v in clients.values()
                                                            for i in v}),
            "by": engine.journal.started_by, "since": now, "expires": now + seconds}
    # `ceph osd blocklist add ADDR SECONDS` for each, sent as monitor commands in one
    # exec (the `ceph` CLI costs ~0.75 s a call), then the list read back: only Ceph
    # listing them counts.
    cmds = {f"add {a}": {"prefix": "osd blocklist", "blocklistop": "add", "addr": a,
                         "expire": float(seconds)} for a in sorted(clients)}
    cmds["mark"] = {"prefix": "config-key set", "key": MARK + host, "val": json.dumps(mark)}
    cmds["list"] = {"prefix": "osd blocklist ls"}
    doc = await engine._ceph_doc(cluster, names=(), extra=cmds)
    got = doc.get("reads", {})
    for a in sorted(clients):
        r = got.get(f"add {a}", {})
        if r.get("ret") != 0:
            return Fenced(False, f"`ceph osd blocklist add {a}` was refused: "
                                 f"{r.get('err') or doc.get('error') or 'no answer'}")
    listed = got.get("list", {}).get("out")
    if isinstance(listed, str):     # two lists back to back (ranges second): the first
        try:
            listed = json.JSONDecoder().raw_decode(listed.strip())[0]
        except ValueError:
            listed = None
    have = {str(e.get("addr", "")) for e in listed if isinstance(e, dict)} \
        if isinstance(listed, list) else set()
    missing = [a for a in clients if a not in have]
    if missing:
        return Fenced(False, f"Ceph does not list {', '.join(missing)} as blocklisted")
    # The blocklisted clients' exclusive locks, broken: the restarted copy takes the
    # lock at once instead of waiting for the dead owner's watch to time out (~30 s).
    broken = ""
    if held_locks:
        # Not blocklisting again on the break (rbd's default): that entry would carry
        # Ceph's one-hour expiry and replace ours.
        script = "; ".join(f"rbd --rbd_blocklist_on_break_lock=false lock rm "
                           f"{shlex.quote(i)} {shlex.quote(lid)} {shlex.quote(who)}"
                           for i, lid, who in held_locks)
        r = await engine._ceph_run(cluster, ["sh", "-c", script])
        broken = (f"; {len(held_locks)} exclusive lock(s) broken" if r.ok else
                  f"; its exclusive locks were not broken ({r.said()}): the new copies "
                  f"wait for them to time out")
    return Fenced(True, f"Ceph blocklist: {len(clients)} client(s) of {host} on "
                        f"{len(mark['images'])} image(s) cut off for {seconds // 3600} h "
                        f"({', '.join(sorted(clients))}){broken}")


async def unfence(engine, cluster: str, host: str) -> str:
    """Lift the blocklist entries kept for a host that returned; what was done ("" none)."""
    if not engine.ceph_present(cluster):
        return ""
    res = await engine._ceph_run(cluster, ["ceph", "config-key", "get", MARK + host])
    if not res.ok:
        return ""
    try:
        mark = json.loads(res.out)
    except ValueError:
        mark = {}
    lifted, failed = [], []
    for addr in mark.get("addresses", []):
        r = await engine._ceph_run(cluster, ["ceph", "osd", "blocklist", "rm", addr])
        (lifted if r.ok else failed).append(addr if r.ok else f"{addr} ({r.said()})")
    if not failed:
        await engine._ceph_run(cluster, ["ceph", "config-key", "rm", MARK + host])
    text = f"Ceph blocklist lifted for {', '.join(lifted)}" if lifted else ""
    if failed:
        text += ("; " if text else "") + f"not lifted: {', '.join(failed)}"
    return text


fencing.STORAGE_FENCES.append(storage_fence)
fencing.STORAGE_UNFENCES.append(unfence)
