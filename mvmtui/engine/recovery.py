"""Finishing or undoing what a console's death interrupted (journal v2), and settling
a move that failed while a host did not answer.

At start the journal marks the tasks of a process that died as interrupted. For the
kinds that move VMs, a handler then decides from what the hosts really show, once
both hosts answer:
- the VM is on the target only: the move completed; the task is marked succeeded;
- on the source only: nothing moved (libvirt aborts a job whose driver went away);
  the task is marked rolled back, and a VM left paused by the abort is resumed;
- on both: the copy that does not run is undefined (the move is finished or undone);
- on neither: it is re-defined, stopped, on its source from its saved definition.
An interrupted evacuation is resumed: the host is still out of the pool, and a new
"enter maintenance" task moves what is left.
Each decision is logged in the task, which is marked recovered so it is done once.
"""
from __future__ import annotations

import asyncio
import logging
import time

from .errors import EngineError, HypervisorError
from .model import ENTERING, Task, TaskStatus, Vm, VmState

log = logging.getLogger("mvmtui.recovery")

MOVE_KINDS = ("vm.migrate", "vm.move")
RECOVERABLE = MOVE_KINDS + ("host.maintenance.enter",)
HOSTS_WAIT = 120.0          # seconds to wait for the hosts a recovery needs


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
                asyncio.get_running_loop().create_task(self._recover(t.id))

    def _settle_later(self, tid: int) -> None:
        """A move failed while a host did not answer: once the task is closed and both
        hosts answer, say where the VM ended up (and settle a copy on both/neither)."""
        async def later():
            while not self.inv.task(tid).status.finished:
                await asyncio.sleep(0.2)
            await self._recover(tid)
        asyncio.get_running_loop().create_task(later())

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
        self.inv.update_task(tid, status=status, checkpoint={**t.checkpoint, "recovered": True,
                                                             "unsettled": False},
                             error="" if status is TaskStatus.SUCCEEDED else
                             f"{t.error}; recovery: {message}")
        self.journal.emit_task(tid)

    async def _recover(self, tid: int) -> None:
        t = self.inv.task(tid)
        try:
            if t.kind in MOVE_KINDS:
                await self._recover_move(t)
            elif t.kind == "host.maintenance.enter":
                await self._resume_evacuation(t)
        except Exception as exc:   # one bad recovery must not stop the others
            log.exception("recovering task %s failed", tid)
            self._close_recovery(tid, TaskStatus.INTERRUPTED, f"could not decide: {exc}",
                                 "error")

    async def _recover_move(self, t: Task) -> None:
        params = self.inv.task_params(t.id)
        source, target = params.get("source", t.host), params.get("target")
        if not target:
            return
        if not await self._hosts_up(t.cluster, [source, target]):
            self.inv.add_log(t.id, self.clock(), "warning",
                             f"Recovery waits: {source} or {target} does not answer")
            return
        vm = Vm(cluster=t.cluster, host=source, uuid=t.target, name=t.target_name)
        where = await self._where(vm, [source, target])
        if len(where) < 2:
            return           # a host stopped answering meanwhile: tried at next start
        src, dst = where.get(source), where.get(target)
        if dst is not None and src is None:
            msg = f"{target} shows {vm.name} {dst.value} and {source} no longer lists it: " \
                  f"the move was completed"
            status = TaskStatus.SUCCEEDED
        elif src is not None and dst is None:
            msg = f"{vm.name} is still on {source} ({src.value}): nothing moved"
            if src is VmState.PAUSED and params.get("method") == "live":
                await self._act_on(vm, source, "resume")
                msg += "; it was left paused by the aborted job and is resumed"
            status = TaskStatus.ROLLED_BACK
        elif src is not None and dst is not None:
            if src.active and dst.active:
                self._close_recovery(t.id, TaskStatus.INTERRUPTED,
                                     f"{vm.name} RUNS ON BOTH {source} and {target}: stop "
                                     f"one by hand (Force off) at once", "error")
                return
            keep, drop = (target, source) if dst.active or not src.active else (source, target)
            await self._undefine_on(vm, drop)
            msg = (f"{vm.name} was defined on both hosts; the stopped copy on {drop} is "
                   f"undefined, it stays on {keep}")
            status = TaskStatus.SUCCEEDED if keep == target else TaskStatus.ROLLED_BACK
        else:
            await self._redefine(vm, where)
            msg = (f"neither host listed {vm.name}: it is re-defined, stopped, on {source} "
                   f"from its saved definition")
            status = TaskStatus.ROLLED_BACK
        for name in (source, target):
            link = self._links.get((t.cluster, name))
            if link is not None and link.hv is not None:
                await self._refresh_vm(link, link.hv, vm.uuid)
        self._close_recovery(t.id, status, msg)

    async def _act_on(self, vm: Vm, host: str, action: str) -> None:
        link = self._links.get((vm.cluster, host))
        try:
            await self._lv(link, link.hv.act, vm.uuid, action)
        except (HypervisorError, AttributeError) as exc:
            log.warning("%s of %s on %s failed: %s", action, vm.name, host, exc)

    async def _undefine_on(self, vm: Vm, host: str) -> None:
        link = self._links.get((vm.cluster, host))
        await self._lv(link, link.hv.undefine, vm.uuid)

    async def _resume_evacuation(self, t: Task) -> None:
        host = t.target
        if not await self._hosts_up(t.cluster, [host]):
            return
        h = self._hosts.get((t.cluster, host))
        if h is None or h.maintenance != ENTERING:
            self._close_recovery(t.id, TaskStatus.INTERRUPTED,
                                 f"{host} is no longer entering maintenance: nothing to resume")
            return
        # Children interrupted with it are recovered first (their VMs must be settled).
        for _ in range(600):
            open_kids = [k for k in self.inv.children(t.id)
                         if k.status is TaskStatus.INTERRUPTED
                         and not k.checkpoint.get("recovered")]
            if not open_kids:
                break
            await asyncio.sleep(0.2)
        try:
            new = await self.enter_maintenance(t.cluster, host, host)
        except EngineError as exc:
            self._close_recovery(t.id, TaskStatus.INTERRUPTED,
                                 f"could not resume: {exc}", "error")
            return
        self._close_recovery(t.id, TaskStatus.INTERRUPTED, f"resumed as task {new.id}")
