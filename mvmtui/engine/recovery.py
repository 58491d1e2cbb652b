"""Finishing or undoing what a console's death interrupted (journal v2), and settling
a move that failed while a host did not answer.

At start the journal marks the tasks of a process that died as interrupted. For the
kinds that move VMs, a handler then decides from what the hosts really show, once
they answer:
- the VM is on the target only: the move completed; the task is marked succeeded;
- on the source only: nothing moved (libvirt aborts a job whose driver went away);
  the task is marked rolled back, and a VM the aborted job left paused is resumed if
  it ran before the move;
- on both: the copy that does not run is undefined (the move is finished or undone);
- on another host of the cluster: it moved on since; nothing is done;
- on no host, every host answering: it is re-defined, stopped, on its source from
  its saved definition.
An interrupted evacuation is resumed: the host is still out of the pool, and a new
"enter maintenance" task moves what is left.

A recovery is claimed in the journal (so two consoles never both act), runs as a
task of its own holding the VM's lock here and on the hosts (so no new move races
it), and is logged in the task it decides, which is then marked recovered. Only
engines that stay up recover (the console, later the watcher); a short CLI verb does
not start work it would cut off when it exits.
"""
from __future__ import annotations

import asyncio
import logging
import time

from .errors import EngineError, HypervisorError
from .locks import owner_id
from .model import ENTERING, Task, TaskStatus, Vm, VmState
from .tasks import Busy, TaskContext, TaskSpec, owner_alive

log = logging.getLogger("mvmtui.recovery")

MOVE_KINDS = ("vm.migrate", "vm.move")
RECOVERABLE = MOVE_KINDS + ("host.maintenance.enter",)
HOSTS_WAIT = 120.0          # seconds to wait for the hosts a recovery needs
RETRY, RETRIES = 3.0, 200   # a recovery that could not decide tries again (10 min)


class Recovery:
    """Mixin for Engine."""

    def _start_recovery(self) -> None:
        """Called on the I/O loop once the links are connecting."""
        pending = [t for t in self.inv.tasks(statuses=(TaskStatus.INTERRUPTED,
                                                       TaskStatus.FAILED), limit=200)
                   if t.kind in RECOVERABLE and not t.checkpoint.get("recovered")
                   and (t.status is TaskStatus.INTERRUPTED or t.checkpoint.get("unsettled"))]
        for t in sorted(pending, key=lambda t: t.id):
            if self._only is None or t.cluster in self._only:
                self._track(self._recover(t.id))

    def _track(self, coro) -> None:
        """Recoveries run detached; stop() cancels them before the tasks they start."""
        fut = asyncio.get_running_loop().create_task(coro)
        self._recoveries.add(fut)
        fut.add_done_callback(self._recoveries.discard)

    def _settle_later(self, tid: int) -> None:
        """A move failed while a host did not answer: once the task is closed and the
        hosts answer, say where the VM ended up (and settle a copy on both/neither)."""
        async def later():
            await self.journal.wait(tid)
            await self._recover(tid)
        self._track(later())

    async def _hosts_up(self, cluster: str, names: list[str]) -> bool:
        end = time.monotonic() + HOSTS_WAIT
        while time.monotonic() < end:
            if all(self._live(cluster, n) for n in names):
                return True
            await asyncio.sleep(0.2)
        return False

    def _close_recovery(self, tid: int, status: TaskStatus, message: str,
                        level: str = "info") -> None:
        t = self.inv.task(tid)
        self.inv.add_log(tid, self.clock(), level, f"Recovery: {message}")
        self.inv.update_task(tid, status=status, checkpoint={
            **t.checkpoint, "recovered": True, "unsettled": False, "recovering": ""},
            error="" if status is TaskStatus.SUCCEEDED else f"{t.error}; recovery: {message}")
        self.journal.emit_task(tid)

    async def _recover(self, tid: int) -> None:
        """Decide the task; while its hosts are away or its VM busy, try again every
        RETRY seconds for as long as this engine runs (a host just lost may not be
        seen lost yet), then leave it to the next start."""
        for attempt in range(RETRIES):
            if attempt:
                await asyncio.sleep(RETRY)
            if not self.inv.claim_recovery(tid, owner_id()):
                return                   # another console has it, or it is done
            t = self.inv.task(tid)
            try:
                if t.kind in MOVE_KINDS:
                    done = await self._recover_move(t)
                else:
                    done = await self._resume_evacuation(t)
            except Exception as exc:   # one bad recovery must not stop the others
                log.exception("recovering task %s failed", tid)
                self._close_recovery(tid, TaskStatus.INTERRUPTED,
                                     f"could not decide: {exc}", "error")
                return
            if done:
                return
            self.inv.release_recovery(tid)

    def _note(self, tid: int, message: str) -> None:
        """A log line, once: a recovery that retries says why it waits only once."""
        t = self.inv.task(tid)
        if not t.logs or t.logs[-1].message != message:
            self.inv.add_log(tid, self.clock(), "info", message)
            self.journal.emit_task(tid)

    async def _release_dead_locks(self, t: Task, hosts: list[str], resources: list[str]):
        """The dead process's lock files on the hosts: it will never renew them, and a
        restarted console would be refused by its own past for 30 s."""
        owner = self.inv.task_owner(t.id)
        if not owner or owner_alive(owner):
            return
        dead = f"{owner}@{owner_id().rsplit('@', 1)[1]}"
        for host in hosts:
            store = self._lock_store(t.cluster, host)
            if store is not None:
                try:
                    await store.release(resources, dead)
                except Exception as exc:
                    log.info("releasing %s's locks on %s failed: %s", dead, host, exc)

    async def _recover_move(self, t: Task) -> bool:
        params = self.inv.task_params(t.id)
        source, target = params.get("source", t.host), params.get("target")
        if not target:
            return True
        if not await self._hosts_up(t.cluster, [source, target]):
            self._note(t.id, f"Recovery waits: {source} or {target} does not answer")
            return False
        vm = Vm(cluster=t.cluster, host=source, uuid=t.target, name=t.target_name)
        await self._release_dead_locks(t, [source, target], [f"vm:{vm.uuid}"])
        spec = TaskSpec(kind="vm.recover", title=f"Recover: {t.title} (task {t.id})",
                        cluster=t.cluster, target_kind="vm", target=vm.uuid,
                        target_name=vm.name, host=source,
                        steps=("Ask every host", "Settle"), locks=(f"vm:{vm.uuid}",),
                        params={"task": t.id})
        outcome: list[bool] = []

        async def body(ctx: TaskContext) -> None:
            ctx.step(0)
            outcome.append(await self._decide_move(ctx, t, vm, params, source, target))
        try:
            task = await self._submit_locked(spec, body, [source, target])
        except (Busy, EngineError) as exc:
            self._note(t.id, f"Recovery waits: {vm.name} is busy ({exc})")
            return False
        await self.journal.wait(task.id)
        return bool(outcome and outcome[0])

    async def _decide_move(self, ctx: TaskContext, t: Task, vm: Vm, params: dict,
                           source: str, target: str) -> bool:
        where = await self._where(vm, [source, target])
        if len(where) < 2:
            return False           # a host stopped answering meanwhile: tried later
        src, dst = where.get(source), where.get(target)
        ctx.step(1)
        before = t.checkpoint.get("state_before", "running")
        if dst is not None and src is None:
            msg = f"{target} shows {vm.name} {dst.value} and {source} no longer lists it: " \
                  f"the move was completed"
            if params.get("start_after") and not dst.active:
                msg += f"; it was not started on {target} (the move stopped before that)"
            status = TaskStatus.SUCCEEDED
        elif src is not None and dst is None:
            msg = f"{vm.name} is still on {source} ({src.value}): nothing moved"
            if src is VmState.PAUSED and params.get("method") == "live" \
                    and before == VmState.RUNNING.value:
                await self._act_on(vm, source, "resume")
                msg += "; it was left paused by the aborted job and is resumed"
            status = TaskStatus.ROLLED_BACK
        elif src is not None and dst is not None:
            if src.active and dst.active:
                msg = (f"{vm.name} RUNS ON BOTH {source} and {target}: stop one by hand "
                       f"(Force off) at once")
                self._event(vm.cluster, source, vm.uuid, "vm.split", msg)
                self._close_recovery(t.id, TaskStatus.INTERRUPTED, msg, "error")
                return True
            keep, drop = (target, source) if dst.active or not src.active else (source, target)
            await self._undefine_on(vm, drop)
            msg = (f"{vm.name} was defined on both hosts; the stopped copy on {drop} is "
                   f"undefined, it stays on {keep}")
            status = TaskStatus.SUCCEEDED if keep == target else TaskStatus.ROLLED_BACK
        else:
            others = [h.name for h in self.hosts(vm.cluster) if h.name not in (source, target)]
            elsewhere = await self._where(vm, others)
            if len(elsewhere) < len(others):
                return False       # a host that did not answer may have it: wait
            on = [h for h, s in elsewhere.items() if s is not None]
            if on:
                msg = f"{vm.name} moved on since: it is on {', '.join(on)}; nothing done"
                status = TaskStatus.ROLLED_BACK if t.status is TaskStatus.FAILED \
                    else TaskStatus.INTERRUPTED
            elif await self._redefine(vm):
                msg = (f"no host listed {vm.name}: it is re-defined, stopped, on {source} "
                       f"from its saved definition")
                status = TaskStatus.ROLLED_BACK
            else:
                msg = (f"no host lists {vm.name}, and it could not be re-defined (no saved "
                       f"definition, or {source} refused it): it is lost")
                self._close_recovery(t.id, TaskStatus.FAILED, msg, "error")
                return True
        self._close_recovery(t.id, status, msg)
        ctx.log(msg)
        return True

    async def _act_on(self, vm: Vm, host: str, action: str) -> None:
        link = self._links.get((vm.cluster, host))
        try:
            await self._lv(link, link.hv.act, vm.uuid, action)
        except (HypervisorError, AttributeError) as exc:
            log.warning("%s of %s on %s failed: %s", action, vm.name, host, exc)

    async def _undefine_on(self, vm: Vm, host: str) -> None:
        link = self._links.get((vm.cluster, host))
        await self._lv(link, link.hv.undefine, vm.uuid)
        await self._where(vm, [host])

    async def _resume_evacuation(self, t: Task) -> bool:
        host = t.target
        if not await self._hosts_up(t.cluster, [host]):
            return False
        await self._release_dead_locks(t, [host], [f"host:{t.cluster}/{host}"])
        h = self._hosts.get((t.cluster, host))
        if h is None or h.maintenance != ENTERING:
            self._close_recovery(t.id, TaskStatus.INTERRUPTED,
                                 f"{host} is no longer entering maintenance: nothing to resume")
            return True
        # Its moves interrupted with it are recovered first (their VMs must be settled).
        kids = [k for k in self.inv.children(t.id)
                if k.status is TaskStatus.INTERRUPTED and not k.checkpoint.get("recovered")]
        for k in kids:
            await self._recover(k.id)
        # A move whose recovery another claimed (this engine's own start, another
        # console) is settled by it: wait until that recovery has ended and let go of
        # the VM's lock, or the resumed evacuation is refused as busy.
        end = time.monotonic() + HOSTS_WAIT
        while time.monotonic() < end and any(
                not self.inv.task(k.id).checkpoint.get("recovered")
                or self.pending_task(k.target) is not None for k in kids):
            await asyncio.sleep(0.5)
        try:
            new = await self.enter_maintenance(t.cluster, host, host)
        except (EngineError, Busy) as exc:
            self._close_recovery(t.id, TaskStatus.INTERRUPTED,
                                 f"could not resume: {exc}", "error")
            return True
        self._close_recovery(t.id, TaskStatus.INTERRUPTED, f"resumed as task {new.id}")
        return True
