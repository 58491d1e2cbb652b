"""Fencing: making sure a lost host is really off before its VMs restart elsewhere.

A host that stops answering may still run its guests (sshd or libvirtd dead, or the
watcher's own network cut): restarting them elsewhere then runs each VM twice, and
two copies writing one disk destroy it. So nothing restarts without a confirmed
fence. Methods, per host (cluster policy: fence-method, fence-hosts):
- command: a template run on the watcher's machine (IPMI, Redfish…), then a status
  template polled until its output says "off" (a power-off that is not confirmed
  proves nothing, so a command without a status check is refused);
- lab: the built-in lab's own power cut (the namespace host dies, guests and all);
- none: only an operator's typed "I have powered it off" counts (ha.confirm_fenced).
- ceph: the storage fence (ceph/fence.py), which cuts the host's clients off its VMs'
  RBD images; with fence-storage=on it also runs after a power fence, as a second guard.
Storage fences register in STORAGE_FENCES (and what lifts them, once the host has
returned, in STORAGE_UNFENCES), so this module knows no storage.
"""
from __future__ import annotations

import asyncio
import logging
import re
import shlex
from dataclasses import dataclass
from typing import Awaitable, Callable

log = logging.getLogger("mvmtui.fence")

COMMAND_TIMEOUT = 30.0      # a fence command, and the wait for "off" after it
STATUS_POLL = 1.0


@dataclass(frozen=True)
class Fenced:
    ok: bool
    how: str                 # "lab power cut", "ipmitool … (status: off)", why not


# (engine, cluster, host) -> Fenced, or None when this storage has nothing to fence
StorageFence = Callable[[object, str, str], Awaitable["Fenced | None"]]
STORAGE_FENCES: list[StorageFence] = []
# (engine, cluster, host) -> what was lifted ("" nothing), once the host is back
STORAGE_UNFENCES: list[Callable[[object, str, str], Awaitable[str]]] = []


def _fill(template: str, host: str, address: str) -> str:
    return template.replace("{host}", shlex.quote(host)).replace("{address}",
                                                               shlex.quote(address))


async def _sh(command: str, timeout: float) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_shell(
        command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, f"no answer within {timeout:.0f} s"
    return proc.returncode, out.decode(errors="replace").strip()


_OFF = re.compile(r"\boff\b", re.I)


async def by_command(command: str, status: str, host: str, address: str) -> Fenced:
    if not command:
        return Fenced(False, "fence-method is command, but fence-command is not set")
    if not status:
        return Fenced(False, "fence-method is command, but fence-status is not set: a "
                             "power-off that nothing confirms is not a fence")
    cmd = _fill(command, host, address)
    rc, out = await _sh(cmd, COMMAND_TIMEOUT)
    if rc != 0:
        return Fenced(False, f"the fence command failed ({rc}): {out[-200:]}")
    check = _fill(status, host, address)
    loop = asyncio.get_running_loop()
    end = loop.time() + COMMAND_TIMEOUT
    said = ""
    while loop.time() < end:
        rc, said = await _sh(check, COMMAND_TIMEOUT)
        if rc == 0 and _OFF.search(said):
            return Fenced(True, f"{command.split()[0]} power-off, status says {said[-60:]!r}")
        await asyncio.sleep(STATUS_POLL)
    return Fenced(False, f"the status check never said off (last: {said[-120:]!r})")


async def by_lab(lab_name: str, host: str, root: str = "") -> Fenced:
    """The lab's power cut, from this machine (the watcher runs beside the lab)."""
    from .lab import Lab
    from .errors import LabError

    def cut() -> Fenced:
        lab = Lab(lab_name, root=root or None)
        try:
            h = lab.host(host)
        except LabError as exc:
            return Fenced(False, f"not a host of lab {lab_name}: {exc}")
        if not lab._state().get("hosts"):
            return Fenced(False, f"lab {lab_name} is not on this machine")
        lab.crash(host)
        if lab.init_pid(h):
            return Fenced(False, f"the lab power cut of {host} did not take")
        return Fenced(True, "lab power cut (the host's namespace is dead)")
    return await asyncio.get_running_loop().run_in_executor(None, cut)


async def _storage(engine, cluster: str, host: str) -> Fenced | None:
    """The first storage fence that has something to say (None: no storage fences)."""
    for storage in STORAGE_FENCES:
        try:
            got = await storage(engine, cluster, host)
        except Exception as exc:        # a storage fence that breaks is not a fence
            log.warning("storage fence of %s failed: %s", host, exc)
            return Fenced(False, f"the storage fence failed: {exc}")
        if got is not None:
            return got
    return None


async def fence(engine, cluster: str, host: str, address: str, method: str,
                policy) -> Fenced:
    """Power the host off by its method (or fence it at the storage); with
    fence-storage on, a power fence is followed by the storage fence."""
    if method == "lab":
        done = await by_lab(cluster, host, policy.lab_root)
    elif method == "command":
        done = await by_command(policy.fence_command, policy.fence_status, host, address)
    elif method == "ceph":
        done = await _storage(engine, cluster, host) or Fenced(
            False, "fence-method is ceph, but the cluster has no Ceph that answers")
        return done
    else:
        done = Fenced(False, "no fence method is set for it")
    if done.ok and policy.fence_storage:
        extra = await _storage(engine, cluster, host)
        if extra is not None:
            done = Fenced(True, f"{done.how}; {extra.how}" if extra.ok else
                          f"{done.how}; the storage fence did not take ({extra.how})")
    return done


async def unfence(engine, cluster: str, host: str) -> list[str]:
    """What storage fences lifted for a host that returned."""
    out = []
    for undo in STORAGE_UNFENCES:
        try:
            text = await undo(engine, cluster, host)
        except Exception as exc:
            text = f"the storage fence could not be lifted: {exc}"
        if text:
            out.append(text)
    return out
