"""Locks that other consoles see (DESIGN rule 9): kept on the hosts themselves.

Two operators on two admin boxes each have their own inventory, so the journal's
SQLite locks cannot stop them from moving the same VM at once. The authoritative lock
is a file on each host concerned, created atomically (O_EXCL, the shell's noclobber):

    /var/lib/libvirt/mvmtui/locks/<resource>.lock
        {"holder": "console · root@admin-1", "owner": "4242:1234@admin-1",
         "title": "Migrate web-01 to kvm-02", "taken_at": 1764590000}

- A VM move locks the VM on its source and on its target; maintenance locks the host.
- The holder touches its files every HEARTBEAT seconds while its task runs. A file
  untouched for STALE seconds belongs to a holder that died: the next taker removes it
  (only if it still holds what was read, so a fresh lock is never broken) and takes it.
- A host's maintenance state lives next to them (`maintenance`), so every console
  sees a host in maintenance, whoever put it there.
The local journal mirrors them for History. Scripted hosts keep the same files in
memory; libvirt test-driver hosts (benchmarks, no SSH) have local locks only.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shlex
import socket
import time

from .model import ENTERING, IN_MAINTENANCE
from .tasks import Busy, TaskFailed, TaskSpec, this_process

log = logging.getLogger("mvmtui.locks")

LOCK_DIR = "/var/lib/libvirt/mvmtui"
# The HA boot gate: /run is empty at boot, so the gate is closed until opened.
GATE_DIR = "/run/mvmtui"
GATE_OPEN = "ha-checked"
HEARTBEAT = 5.0
STALE = 30.0


def _owner_field(owner: str) -> str:
    """The owner as the record holds it (json.dumps, sorted keys): matched whole, so
    owner …@admin never matches …@admin-1."""
    return json.dumps({"owner": owner})[1:-1]


def _file(resource: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in resource) + ".lock"


def _holder(head: str, body: str) -> dict:
    """A held lock's record from "HELD AGE" and the file's text (with "age", "raw")."""
    try:
        holder = json.loads(body or "{}")
    except ValueError:
        holder = {"holder": "unknown", "title": body.strip()[:80]}
    if not isinstance(holder, dict):
        holder = {"holder": "unknown", "title": body.strip()[:80]}
    words = head.split()
    holder["age"] = float(words[1]) if len(words) > 1 else 0.0
    holder["raw"] = body
    return holder


class SshLocks:
    """Lock files on one host, through its SSH connection."""

    def __init__(self, conn):
        self.conn = conn

    async def _sh(self, script: str) -> str:
        from . import ssh as sshmod
        return await sshmod.run(self.conn, script, timeout=10)

    async def take(self, resource: str, record: dict) -> dict | None:
        """None if taken now; else the holder's record (with its "age" in seconds).
        A file that its holder removes just as we look is tried again."""
        f = f"{LOCK_DIR}/locks/{_file(resource)}"
        rec = shlex.quote(json.dumps(record, sort_keys=True))
        for _ in range(3):
            out = await self._sh(
                f"mkdir -p {LOCK_DIR}/locks && if (set -C; printf %s {rec} > {f}) "
                f"2>/dev/null; then echo TAKEN; else echo HELD $(( $(date +%s) - "
                f"$(stat -c %Y {f} 2>/dev/null || date +%s) )); cat {f} 2>/dev/null; "
                f"fi; true")
            head, _, body = out.partition("\n")
            if head.strip() == "TAKEN":
                return None
            if body.strip():
                break
        else:
            return {"holder": "unknown", "title": "a lock that keeps changing", "age": 0.0,
                    "raw": ""}
        return _holder(head, body)

    async def hold(self, resource: str, record: dict, owner: str) -> dict | str:
        """Take the lock, or renew it if `owner` holds it, in one command (a watcher
        renews its lease on every host every 2 s): "taken", "renewed", or the other
        holder's record (with its "age")."""
        f = f"{LOCK_DIR}/locks/{_file(resource)}"
        rec = shlex.quote(json.dumps(record, sort_keys=True))
        out = await self._sh(
            f"mkdir -p {LOCK_DIR}/locks && if (set -C; printf %s {rec} > {f}) 2>/dev/null; "
            f"then echo TAKEN; elif grep -qF {shlex.quote(_owner_field(owner))} {f} "
            f"2>/dev/null; then touch {f}; echo RENEWED; else echo HELD $(( $(date +%s) - "
            f"$(stat -c %Y {f} 2>/dev/null || date +%s) )); cat {f} 2>/dev/null; fi; true")
        head, _, body = out.partition("\n")
        if head.strip() in ("TAKEN", "RENEWED"):
            return "taken" if head.strip() == "TAKEN" else "renewed"
        return _holder(head, body)

    async def break_stale(self, resource: str, raw: str) -> None:
        f = f"{LOCK_DIR}/locks/{_file(resource)}"
        await self._sh(f"[ \"$(cat {f} 2>/dev/null)\" = {shlex.quote(raw)} ] && rm -f {f}; true")

    async def touch(self, resources: list[str], owner: str) -> None:
        files = " ".join(f"{LOCK_DIR}/locks/{_file(r)}" for r in resources)
        await self._sh(f"for f in {files}; do grep -qF {shlex.quote(_owner_field(owner))} $f "
                       f"2>/dev/null && touch $f; done; true")

    async def release(self, resources: list[str], owner: str) -> None:
        files = " ".join(f"{LOCK_DIR}/locks/{_file(r)}" for r in resources)
        await self._sh(f"for f in {files}; do grep -qF {shlex.quote(_owner_field(owner))} $f "
                       f"2>/dev/null && rm -f $f; done; true")

    async def peek(self, resource: str) -> dict | None:
        """The holder's record (with its "age") without taking it; None if free."""
        f = f"{LOCK_DIR}/locks/{_file(resource)}"
        out = await self._sh(f"if [ -e {f} ]; then echo HELD $(( $(date +%s) - $(stat -c %Y "
                             f"{f} 2>/dev/null || date +%s) )); cat {f} 2>/dev/null; fi; true")
        head, _, body = out.partition("\n")
        if not head.startswith("HELD") or not body.strip():
            return None
        return _holder(head, body)

    async def peek_with_state(self, resource: str, name: str) -> tuple[dict | None, str]:
        """peek(resource) and read_state(name) in one command (a console reads who
        watches every few seconds)."""
        f = f"{LOCK_DIR}/locks/{_file(resource)}"
        out = await self._sh(f"cat {LOCK_DIR}/{name} 2>/dev/null; echo; echo @@LOCK; "
                             f"if [ -e {f} ]; then echo HELD $(( $(date +%s) - $(stat -c %Y "
                             f"{f} 2>/dev/null || date +%s) )); cat {f} 2>/dev/null; fi; true")
        state, _, lock = out.partition("\n@@LOCK\n")
        head, _, body = lock.partition("\n")
        held = _holder(head, body) if head.startswith("HELD") and body.strip() else None
        return held, state.strip()

    async def gate(self, open_it: bool | None = None) -> bool:
        """The host's HA boot gate (assets/libvirt-hook-qemu): closed from boot until a
        watcher has checked the host, it keeps Auto and Failover VMs from starting
        (autostart included). Opens it if asked; returns whether it is open."""
        if open_it:
            await self._sh(f"mkdir -p {GATE_DIR} && touch {GATE_DIR}/{GATE_OPEN}")
        out = await self._sh(f"[ -e {GATE_DIR}/{GATE_OPEN} ] && echo open; true")
        return out.strip() == "open"

    async def read_state(self, name: str) -> str:
        return (await self._sh(f"cat {LOCK_DIR}/{name} 2>/dev/null; true")).strip()

    async def write_state(self, name: str, value: str) -> None:
        if value:
            await self._sh(f"mkdir -p {LOCK_DIR} && printf %s {shlex.quote(value)} > "
                           f"{LOCK_DIR}/{name}")
        else:
            await self._sh(f"rm -f {LOCK_DIR}/{name}")


class MemoryLocks:
    """The same semantics in memory: a scripted host's lock files (ScriptedHost.files)."""

    def __init__(self, files: dict, clock=time.time):
        self.files = files
        self.clock = clock

    async def take(self, resource: str, record: dict) -> dict | None:
        key = _file(resource)
        held = self.files.get(key)
        if held is None:
            self.files[key] = (json.dumps(record, sort_keys=True), self.clock())
            return None
        raw, touched = held
        holder = json.loads(raw)
        holder["age"], holder["raw"] = self.clock() - touched, raw
        return holder

    async def hold(self, resource: str, record: dict, owner: str) -> dict | str:
        key = _file(resource)
        held = self.files.get(key)
        if held is None:
            self.files[key] = (json.dumps(record, sort_keys=True), self.clock())
            return "taken"
        if _owner_field(owner) in held[0]:
            self.files[key] = (held[0], self.clock())
            return "renewed"
        holder = json.loads(held[0])
        holder["age"], holder["raw"] = self.clock() - held[1], held[0]
        return holder

    async def break_stale(self, resource: str, raw: str) -> None:
        key = _file(resource)
        if self.files.get(key, ("",))[0] == raw:
            del self.files[key]

    async def touch(self, resources: list[str], owner: str) -> None:
        for r in resources:
            held = self.files.get(_file(r))
            if held and _owner_field(owner) in held[0]:
                self.files[_file(r)] = (held[0], self.clock())

    async def release(self, resources: list[str], owner: str) -> None:
        for r in resources:
            held = self.files.get(_file(r))
            if held and _owner_field(owner) in held[0]:
                del self.files[_file(r)]

    async def peek(self, resource: str) -> dict | None:
        held = self.files.get(_file(resource))
        if held is None:
            return None
        raw, touched = held
        holder = json.loads(raw)
        holder["age"], holder["raw"] = self.clock() - touched, raw
        return holder

    async def peek_with_state(self, resource: str, name: str) -> tuple[dict | None, str]:
        return await self.peek(resource), await self.read_state(name)

    async def gate(self, open_it: bool | None = None) -> bool:
        if open_it:
            self.files[GATE_OPEN] = ("open", self.clock())
        return GATE_OPEN in self.files

    async def read_state(self, name: str) -> str:
        return self.files.get(name, ("", 0))[0]

    async def write_state(self, name: str, value: str) -> None:
        if value:
            self.files[name] = (value, self.clock())
        else:
            self.files.pop(name, None)


def owner_id() -> str:
    """This process, on this machine: what a lock file names as its owner."""
    return f"{this_process()}@{socket.gethostname()}"


class ClusterLocks:
    """Mixin for Engine: take, keep and release the lock files of a task."""

    def _lock_store(self, cluster: str, host: str):
        link = self._links.get((cluster, host))
        return None if link is None else getattr(link, "locks", None)

    def _has_no_lock_store(self, cluster: str, host: str) -> bool:
        """Hosts reached without SSH (libvirt's test driver, for benchmarks) have none."""
        h = self._hosts.get((cluster, host))
        return h is not None and h.address.startswith("test:")

    async def _take_cluster_locks(self, spec: TaskSpec, hosts: list[str],
                                  owner: str | None = None,
                                  takeover: frozenset[str] = frozenset()) -> list:
        """Take each of the spec's locks on each host (the hosts at once), or none:
        Busy names the holder. `takeover`: owners whose locks this task may take (the
        waiting tasks it supersedes). Returns what to release."""
        owner = owner or owner_id()
        record = {"holder": self.journal.started_by, "owner": owner,
                  "title": spec.title, "taken_at": int(self.clock())}

        async def on(host: str) -> tuple[list, str]:
            store = self._lock_store(spec.cluster, host)
            got: list[tuple[str, str, str]] = []     # (cluster, host, resource)
            if store is None:
                if self._has_no_lock_store(spec.cluster, host):
                    return got, ""               # libvirt's test driver: local locks only
                return got, (f"refused: {host} is not connected, so its lock cannot be "
                             f"taken; nothing was changed")
            for resource in spec.locks:
                try:
                    holder = await store.take(resource, record)
                except Exception as exc:     # SSH gone, directory not writable…
                    return got, (f"refused: could not take the lock on {host} ({exc}); "
                                 f"the SSH user must be able to write {LOCK_DIR}. Nothing "
                                 f"was changed")
                if holder is not None and (holder.get("age", 0) > STALE
                                           or holder.get("owner") in takeover):
                    log.info("taking over a lock on %s: %s", host, holder)
                    await store.break_stale(resource, holder["raw"])
                    holder = await store.take(resource, record)
                if holder is not None:
                    return got, (f"refused: {spec.target_name} is busy on {host} with "
                                 f"{holder.get('title', '?')} ({holder.get('holder', '?')}, "
                                 f"lock renewed {holder.get('age', 0):.0f} s ago); wait for "
                                 f"it to finish. A lock not renewed for {STALE:.0f} s is "
                                 f"taken over.")
                got.append((spec.cluster, host, resource, owner))
            return got, ""
        results = await asyncio.gather(*(on(h) for h in dict.fromkeys(hosts)))
        taken = [x for got, _ in results for x in got]
        refusals = [why for _, why in results if why]
        if refusals:
            await self._release_cluster_locks(taken)
            raise Busy(refusals[0])
        return taken

    async def _release_cluster_locks(self, taken: list) -> None:
        """Release (the hosts at once); a host that cannot be reached now is released
        when it answers again (and until then the lock goes stale and may be taken
        over)."""
        async def one(cluster: str, host: str, resource: str, owner: str) -> None:
            store = self._lock_store(cluster, host)
            try:
                if store is None:
                    raise ConnectionError(f"{host} is not connected")
                await store.release([resource], owner)
            except Exception as exc:
                log.warning("releasing %s on %s failed (%s): released when it answers",
                            resource, host, exc)
                self._leftover_locks.setdefault((cluster, host), set()).add(
                    (resource, owner))
        await asyncio.gather(*(one(*t) for t in taken))

    async def _release_leftovers(self, key: tuple[str, str]) -> None:
        """A host answers again: release the locks we could not release while it was
        away."""
        left = self._leftover_locks.pop(key, set())
        store = self._lock_store(*key)
        for resource, owner in sorted(left) if store is not None else ():
            try:
                await store.release([resource], owner)
            except Exception as exc:
                log.warning("%s: releasing leftover locks failed: %s", key, exc)

    async def _heartbeat(self, taken: list) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            for cluster, host, resource, owner in taken:
                store = self._lock_store(cluster, host)
                try:
                    if store is not None:
                        await store.touch([resource], owner)
                except Exception as exc:
                    log.warning("renewing %s failed: %s", resource, exc)

    async def _submit_locked(self, spec: TaskSpec, body, hosts: list[str]):
        """journal.submit, holding the spec's locks on the hosts too (I/O loop)."""
        taken = await self._take_cluster_locks(spec, hosts)

        async def locked(ctx):
            beat = asyncio.get_running_loop().create_task(self._heartbeat(taken))
            try:
                await body(ctx)
            finally:
                beat.cancel()
                await self._release_cluster_locks(taken)
        try:
            return await self.journal.submit(spec, locked)
        except BaseException:
            await self._release_cluster_locks(taken)
            raise

    @contextlib.asynccontextmanager
    async def _locked_on_hosts(self, ctx, spec: TaskSpec, hosts: list[str]):
        """Inside a task body: the spec's locks on the hosts, owned by this very task
        (so a task that supersedes it here may take them over), renewed while inside.
        A conflict fails the task, naming the holder."""
        owner = f"{owner_id()}#{ctx.id}"
        takeover = frozenset(f"{self.inv.task_owner(t)}@{socket.gethostname()}#{t}"
                             for t in ctx.took_over)
        try:
            taken = await self._take_cluster_locks(spec, hosts, owner, takeover)
        except Busy as exc:
            raise TaskFailed(str(exc)) from None
        beat = asyncio.get_running_loop().create_task(self._heartbeat(taken))
        try:
            yield
        finally:
            beat.cancel()
            await self._release_cluster_locks(taken)

    # ---- a host's maintenance state, kept on the host -----------------------------------
    async def _write_host_state(self, cluster: str, host: str, value: str) -> None:
        store = self._lock_store(cluster, host)
        if store is None:
            if self._has_no_lock_store(cluster, host):
                return
            raise ConnectionError(f"{host} is not connected")
        await store.write_state("maintenance", value)

    def _apply_host_state(self, key: tuple[str, str], state: str | None) -> None:
        """What the host's own file says of its maintenance (set by any console)."""
        if state is None:
            return
        state = state if state in (ENTERING, IN_MAINTENANCE) else ""
        if state != self._hosts[key].maintenance:
            self._set_host(key, maintenance=state)

    async def _read_host_state(self, link) -> str | None:
        store = getattr(link, "locks", None)
        if store is None:
            return None
        try:
            return await store.read_state("maintenance")
        except Exception as exc:
            log.warning("%s: reading its maintenance state failed: %s", link.key, exc)
            return None
