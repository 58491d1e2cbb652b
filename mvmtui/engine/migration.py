"""Moving one VM to another host: live migration of a running VM, an offline move of
a stopped one; where it may go (Manage Placement) and why not.

Transport: the console drives both hosts' libvirt connections (libvirt's managed,
client-driven migration; QEMU streams memory straight from host to host). Chosen
because it needs no host-to-host trust: the admin box already reaches every host,
while peer-to-peer would need each libvirtd to log into the others. If the console
dies mid-way, libvirt aborts the job and the VM keeps running on its source, which
is what the next console's recovery then finds and records (recovery.py).

Every move is a task ("vm.migrate", "vm.move") holding the VM's lock, and its
success is what the destination then shows, not libvirt accepting the call.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time

from .errors import EngineError, HostDown, HypervisorError
from .model import (HostFit, HostStatus, MigrationProgress, MoveRequest, Strategy, Task,
                    Vm, VmState)
from .store import _with_usage
from .tasks import TaskContext, TaskFailed, TaskSpec, TaskStopped

log = logging.getLogger("mvmtui.migration")

PROGRESS_POLL = 0.5          # seconds between looks at a running migration's job stats


class Migration:
    """Mixin for Engine: placement options, live and offline moves."""

    # ---- where a VM may go ------------------------------------------------------------
    def _disk_not_shared(self, vm: Vm, d) -> bool:
        """A writable disk on a pool only the VM's host sees (network disks such as
        RBD are shared; cdroms and read-only images stay behind)."""
        if d.device != "disk" or not d.source or d.kind == "network" or d.readonly:
            return False
        pol = self.policy(vm.cluster)
        shared = [p.path.rstrip("/") + "/" for p in self.datastores(vm.cluster, vm.host)
                  if p.name in pol.shared_datastores and p.path]
        return not any(d.source.startswith(p) for p in shared)

    def storage_issue(self, vm: Vm) -> str:
        """"" if every disk of the VM is on storage every host sees, else which is not."""
        for d in vm.disks:
            if self._disk_not_shared(vm, d):
                return f"disk {d.target} ({d.source}) is on storage only {vm.host} sees"
        return ""

    def placement_options(self, uuid: str, copy_storage: bool = False) -> list[HostFit]:
        """Every other host of the VM's cluster as a target now: fits, or why not; the
        planner's choice marked best."""
        vm = self.vm(uuid)
        planner = self.planner(vm.cluster)
        spec = planner.vms[uuid]
        storage = "" if copy_storage else self.storage_issue(vm)
        plan = planner.place(uuid)
        best = plan.moves[0].target if plan.moves else ""
        reason = plan.moves[0].reason if plan.moves else ""
        out = []
        for host, why in planner.candidates(spec):
            if not why and storage:
                why = f"{storage}: copy the storage to move it"
            out.append(HostFit(host=host, why_not=why, best=host == best and not why,
                               reason=reason if host == best else ""))
        return out

    def check_move(self, req: MoveRequest) -> tuple[Vm, str]:
        """The VM and "live" or "offline" if the move may go ahead; EngineError says
        why not (nothing changed)."""
        vm = self.vm(req.vm)
        self.host(vm.cluster, req.target)
        if req.target == vm.host:
            raise EngineError(f"{vm.name} is on {vm.host} already.")
        if vm.stale:
            raise HostDown(f"{vm.host} is not answering: where {vm.name} runs now is "
                           f"unknown; nothing was changed.")
        if vm.strategy is Strategy.PINNED:
            raise EngineError(f"{vm.name} is pinned to {vm.home or vm.host}; set its "
                              f"strategy to Auto or Failover first (Manage Placement, or "
                              f"`mvmtui vm placement {vm.name} --strategy auto`).")
        fits = {f.host: f for f in self.placement_options(vm.uuid, req.copy_storage)}
        fit = fits.get(req.target)
        if fit is not None and not fit.fits:
            raise EngineError(f"{vm.name} cannot go to {req.target}: {fit.why_not}.")
        if vm.state.active and not (req.offline or req.wait_shutdown):
            if vm.state is not VmState.RUNNING and vm.state is not VmState.PAUSED:
                raise EngineError(f"{vm.name} is {vm.state.value}; only a running or paused "
                                  f"VM migrates live.")
            return vm, "live"
        if vm.state.active and req.offline and not req.wait_shutdown:
            raise EngineError(f"{vm.name} is running: an offline move needs it shut down "
                              f"first (--wait-shutdown shuts it down and waits).")
        if req.copy_storage and self.storage_issue(vm):
            raise EngineError(f"an offline move cannot copy storage yet; {self.storage_issue(vm)}."
                              f" Start it and migrate it live with a storage copy.")
        return vm, "offline"

    def migration_progress(self, task: Task) -> MigrationProgress | None:
        """A migration task's last progress figures (libvirt's job stats)."""
        return progress_of(task)

    # ---- doing it -----------------------------------------------------------------------
    async def migrate_vm(self, req: MoveRequest, parent: int | None = None) -> Task:
        """Start a move as a task; returns it running. Its outcome: wait_task(id)."""
        self._refuse_changes("moving a VM")
        vm, method = self.check_move(req)
        spec = self._move_spec(vm, req, method, parent)

        async def body(ctx: TaskContext) -> None:
            if method == "live":
                await self._live_move(ctx, vm, req)
            else:
                await self._offline_move(ctx, vm, req)
        return await self._on_io(self._submit_locked(spec, body, [vm.host, req.target]))

    def _move_spec(self, vm: Vm, req: MoveRequest, method: str, parent: int | None) -> TaskSpec:
        if method == "live":
            steps = ("Check both hosts", "Migrate live", f"Confirm on {req.target}")
            title = f"Migrate {vm.name} to {req.target}"
        else:
            steps = (("Shut down", ) if req.wait_shutdown and vm.state.active else ()) + (
                "Check both hosts", f"Define on {req.target}", f"Undefine on {vm.host}") + (
                (f"Start on {req.target}",) if req.start_after else ())
            title = f"Move {vm.name} to {req.target} (offline)"
        return TaskSpec(kind="vm.migrate" if method == "live" else "vm.move", title=title,
                        cluster=vm.cluster, target_kind="vm", target=vm.uuid,
                        target_name=vm.name, host=vm.host, steps=steps,
                        locks=(f"vm:{vm.uuid}",), parent=parent,
                        params={"source": vm.host, "target": req.target, "method": method,
                                "wait_shutdown": req.wait_shutdown,
                                "start_after": req.start_after,
                                "copy_storage": req.copy_storage})

    async def _target_in_pool(self, vm: Vm, target: str, link) -> None:
        """The target's own word on maintenance: another console may have just put it
        there (its lock is on the host, not on this VM)."""
        state = await self._read_host_state(link)
        self._apply_host_state((vm.cluster, target), state)
        if self._hosts[(vm.cluster, target)].maintenance:
            raise TaskFailed(f"{target} is in maintenance (set on the host, perhaps by "
                             f"another console); {vm.name} stays on {vm.host}")

    def _both_links(self, vm: Vm, target: str):
        src = self._live_link(vm)
        key = (vm.cluster, target)
        link, host = self._links.get(key), self._hosts.get(key)
        if link is None or link.hv is None or host is None or host.status is not HostStatus.UP:
            raise TaskFailed(f"{target} is {host.status.value if host else 'unknown'}; "
                             f"{vm.name} stays on {vm.host}")
        if host.maintenance:
            raise TaskFailed(f"{target} is in maintenance; {vm.name} stays on {vm.host}")
        return src, (link, link.hv)

    async def _where(self, vm: Vm, hosts: list[str]) -> dict[str, VmState | None]:
        """What each host says of the VM now (asked at once): its state there, or None
        if not defined there; a host that cannot say is left out. What they say is
        what the console then shows."""
        async def ask(name: str):
            link = self._links.get((vm.cluster, name))
            if link is None or link.hv is None:
                return name, link, None, False
            try:
                return name, link, await self._lv(link, link.hv.vm, vm.uuid), True
            except HypervisorError:
                return name, link, None, False
        out = {}
        for name, link, found, answered in await asyncio.gather(*(ask(h) for h in hosts)):
            if not answered:
                continue
            out[name] = None if found is None else found.state
            known = self._vms.get(vm.uuid)
            if found is not None:
                self._put_vm(_with_usage(found, known))
            elif known is not None and known.host == name:
                self._drop_vm(vm.uuid)     # only the host that had it can say it is gone
        return out

    async def _live_move(self, ctx: TaskContext, vm: Vm, req: MoveRequest) -> None:
        ctx.step(0)
        (src_link, src), (dst_link, dst) = self._both_links(vm, req.target)
        await self._target_in_pool(vm, req.target, dst_link)
        state = await self._lv(src_link, src.state, vm.uuid)
        if not state.active:
            raise TaskFailed(f"{vm.name} is {state.value} on {vm.host} now, not running; "
                             f"move it offline instead")
        pol = self.policy(vm.cluster)
        unsafe = not self.storage_issue(vm)        # on storage the cluster declares shared
        ctx.checkpoint(source=vm.host, target=req.target, phase="checked",
                       state_before=state.value)
        ctx.log(f"{vm.name} runs on {vm.host}; {req.target} is up and has room"
                + ("; its disks are copied" if req.copy_storage else
                   "; its disks are on shared storage"))
        copy: list[str] = []
        if req.copy_storage:
            # Only the disks the target cannot see are copied (a disk on shared storage
            # is the same file there); each gets an empty volume of its size and format.
            local = [d for d in vm.disks if self._disk_not_shared(vm, d)]
            formats = await self._lv(src_link, src.disk_formats, vm.uuid)
            disks = [(d.source, d.capacity_bytes or 0, formats.get(d.target, "raw"))
                     for d in local]
            if any(size <= 0 for _p, size, _f in disks):
                raise TaskFailed(f"the size of a disk of {vm.name} is not known; refresh "
                                 f"and try again")
            made = await self._lv(dst_link, dst.prepare_disks, disks)
            copy = [d.target for d in local]
            if made:
                ctx.log(f"Created empty disks on {req.target}: {', '.join(made)}")
        ctx.step(1)
        ctx.checkpoint(phase="migrating")
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self._movers(), lambda: src.migrate(
            vm.uuid, dst, bandwidth_mib=pol.migration_bandwidth_mib, auto_converge=True,
            unsafe=unsafe, copy_storage=bool(copy), disks=copy))
        self._moving.add(vm.uuid)
        for hv in (src, dst):   # their connections stay open until the job ends
            self._jobs[id(hv)] = self._jobs.get(id(hv), 0) + 1

        def ended(_f) -> None:
            self._moving.discard(vm.uuid)
            for hv in (src, dst):
                self._jobs[id(hv)] -= 1
                later = None if self._jobs[id(hv)] else self._close_after_job.pop(id(hv), None)
                if later is not None:       # its link let go of it meanwhile (links._close)
                    try:
                        loop.run_in_executor(later[0], later[1].close)
                    except RuntimeError:        # its host was removed: its thread is gone
                        pass
        job.add_done_callback(ended)
        downtime = pol.migration_max_downtime_ms
        ctx.log("Live migration started (auto-converge"
                + (f", {pol.migration_bandwidth_mib} MiB/s limit" if pol.migration_bandwidth_mib
                   else "") + (f", at most {downtime} ms downtime" if downtime else "") + ")")
        started = time.monotonic()
        try:
            stopped = await self._follow_job(ctx, job, vm, src_link, src, downtime,
                                             dst_link, dst)
        except asyncio.CancelledError:
            # The engine stops (console closing): abort the job rather than leave it
            # to libvirt's cleanup, which can leave the guest paused on its source.
            try:
                await asyncio.wait_for(self._lv(src_link, src.abort_job, vm.uuid), 3)
            except Exception:
                pass
            raise
        try:
            job.result()
        except HypervisorError as exc:
            asked = (vm.host, req.target)
            where = await self._where(vm, list(asked))
            redefined = ""
            if not any(where.values()) and len(where) == 2:
                redefined = await self._redefine_if_lost(vm)
                where = await self._where(vm, list(asked))
            words = self._where_words(vm, where, asked) + redefined
            if len(where) < 2:    # decided once both answer (recovery.py), and logged
                ctx.checkpoint(unsettled=True)
                self._settle_later(ctx.id)
            if stopped is not None:
                raise TaskStopped(f"{stopped.reason}; {words}") from None
            raise TaskFailed(f"the migration failed: {exc}. {words}") from None
        took = time.monotonic() - started
        ctx.step(2)
        last = ctx.data.get("progress") or {}
        if last.get("total"):
            last = {**last, "processed": last["total"], "remaining": 0}
        ctx.checkpoint(phase="confirming", seconds=round(took, 2), progress=last)
        await self._confirm_on(ctx, vm, req.target, want_active=True)
        ctx.log(f"Migrated in {took:.1f} s")

    async def _follow_job(self, ctx: TaskContext, job, vm: Vm, src_link, src,
                          downtime: int, dst_link, dst) -> TaskStopped | None:
        """Until the job ends: its progress into the task, a cancel into abortJob, and
        a destination that is lost meanwhile too (its stream would otherwise stall in
        TCP retries for many minutes). Returns the stop request that aborted it."""
        stopped: TaskStopped | None = None
        downtime_set = not downtime
        dest_lost = False
        with ctx.cancellable():
            while not job.done():
                if not dest_lost and dst_link.hv is not dst:
                    dest_lost = True
                    ctx.log(f"{dst_link.key[1]} stopped answering: aborting the migration",
                            "warning")
                    try:
                        await self._lv(src_link, src.abort_job, vm.uuid)
                    except HypervisorError as exc:
                        ctx.log(f"libvirt did not abort: {exc}", "warning")
                try:
                    ctx.check_stop()
                except TaskStopped as stop:
                    if stopped is None:
                        stopped = stop
                        ctx.log("Cancel asked: aborting the migration job")
                        try:
                            await self._lv(src_link, src.abort_job, vm.uuid)
                        except HypervisorError as exc:
                            ctx.log(f"libvirt did not abort: {exc}", "warning")
                prog = None
                try:
                    prog = await self._lv(src_link, src.migration_progress, vm.uuid)
                except HypervisorError:
                    pass
                if prog is not None:
                    if not downtime_set:
                        downtime_set = True
                        try:
                            await self._lv(src_link, src.set_max_downtime, vm.uuid,
                                           downtime)
                        except HypervisorError as exc:
                            log.info("max downtime not set: %s", exc)
                    ctx.checkpoint(progress=_progress_dict(prog))
                    if prog.fraction is not None:
                        ctx.progress(1 / 3 + prog.fraction / 3)
                await asyncio.wait([job], timeout=PROGRESS_POLL)
        return stopped

    def _where_words(self, vm: Vm, where: dict[str, VmState | None],
                     asked: tuple[str, ...] = ()) -> str:
        """Where the VM is, as the hosts that answered say; a host that did not answer
        may still run it, so nothing is concluded about it."""
        on = [f"{h} ({s.value})" for h, s in where.items() if s is not None]
        silent = [h for h in asked if h not in where]
        words = (f"{vm.name} is on {' and '.join(on)}." if on else
                 f"{vm.name} is on neither host that answered.")
        if silent:
            words += (f" {' and '.join(silent)} did not answer: whether it runs there is "
                      f"unknown until it does.")
        return words

    async def _confirm_on(self, ctx: TaskContext, vm: Vm, target: str,
                          want_active: bool) -> None:
        """Success is what the hosts show: the VM on the target (running if it should
        be), and gone from the source. Still running on the source is said loudly and
        fails the move; a stopped copy left there is undefined."""
        asked = (vm.host, target)
        where = await self._where(vm, list(asked))
        if len(where) < 2:       # decided once both answer (recovery.py), and logged
            ctx.checkpoint(unsettled=True)
            self._settle_later(ctx.id)
            raise TaskFailed(f"the move ended, but {self._where_words(vm, where, asked)}")
        there, left = where.get(target), where.get(vm.host)
        if there is None or (want_active and not there.active):
            raise TaskFailed(f"{target} does not show {vm.name} "
                             + ("running" if want_active else "defined")
                             + f" after the move. {self._where_words(vm, where, asked)}")
        if left is not None and left.active:
            msg = (f"{vm.name} RUNS ON BOTH {vm.host} and {target} after the move: stop "
                   f"one by hand (Force off) at once")
            self._event(vm.cluster, vm.host, vm.uuid, "vm.split", msg)
            raise TaskFailed(msg)
        if left is not None:
            link = self._links.get((vm.cluster, vm.host))
            try:
                await self._lv(link, link.hv.undefine, vm.uuid)
            except (HypervisorError, AttributeError) as exc:
                raise TaskFailed(f"{vm.host} still lists {vm.name} ({left.value}) and did "
                                 f"not undefine it: {exc}") from None
            await self._where(vm, [vm.host])
            ctx.log(f"{vm.host} still listed {vm.name} ({left.value}): undefined there")
        ctx.log(f"{target} shows {vm.name} {there.value}; {vm.host} no longer lists it")
        if vm.autostart:     # libvirt keeps the flag beside the definition: set it again
            dst = self._links.get((vm.cluster, target))
            try:
                await self._lv(dst, dst.hv.set_autostart, vm.uuid, True)
                await self._refresh_vm(dst, dst.hv, vm.uuid)
            except (HypervisorError, AttributeError) as exc:
                ctx.log(f"autostart was not set on {target}: {exc}", "warning")
        ctx.checkpoint(phase="done")

    async def _offline_move(self, ctx: TaskContext, vm: Vm, req: MoveRequest) -> None:
        i = 0
        if req.wait_shutdown and vm.state.active:
            ctx.step(i)
            i += 1
            # The target first: a VM is never shut down for a move that cannot happen.
            (src_link, src), (dst_link, _dst) = self._both_links(vm, req.target)
            await self._target_in_pool(vm, req.target, dst_link)
            ctx.checkpoint(state_before=vm.state.value)
            try:
                await self._lv(src_link, src.act, vm.uuid, "shutdown")
            except HypervisorError as exc:
                raise TaskFailed(f"libvirt refused the shutdown: {exc}") from exc
            ctx.log(f"Asked {vm.name} to power off (ACPI); waiting up to "
                    f"{self.shutdown_timeout:.0f} s")
            await self._wait_state(src_link, src, vm.uuid, VmState.SHUTOFF,
                                   self.shutdown_timeout, ctx)
        ctx.step(i)
        (src_link, src), (dst_link, dst) = self._both_links(vm, req.target)
        await self._target_in_pool(vm, req.target, dst_link)
        state = await self._lv(src_link, src.state, vm.uuid)
        if state.active:
            raise TaskFailed(f"{vm.name} is {state.value} on {vm.host}; an offline move "
                             f"needs it shut off")
        xml = await self._lv(src_link, src.definition, vm.uuid)
        ctx.checkpoint(source=vm.host, target=req.target, phase="checked")
        ctx.step(i + 1)
        try:
            await self._lv(dst_link, dst.define, xml)
        except HypervisorError as exc:
            raise TaskFailed(f"{req.target} refused the definition: {exc}. "
                             f"{vm.name} stays on {vm.host}.") from exc
        ctx.checkpoint(phase="defined on target")
        ctx.log(f"Defined on {req.target}")
        ctx.step(i + 2)
        try:
            await self._lv(src_link, src.undefine, vm.uuid)
        except HypervisorError as exc:
            # Two stopped copies: the console shows the source's (rule 7) until one goes.
            raise TaskFailed(f"{vm.host} did not undefine {vm.name}: {exc}. It is now "
                             f"defined on both hosts, stopped; undefine one by hand.") from exc
        ctx.checkpoint(phase="undefined on source")
        ctx.log(f"Undefined on {vm.host}")
        await self._confirm_on(ctx, vm, req.target, want_active=False)
        if req.start_after:
            ctx.step(i + 3)
            try:
                await self._lv(dst_link, dst.act, vm.uuid, "start")
            except HypervisorError as exc:
                raise TaskFailed(f"moved to {req.target}, but it did not start there: "
                                 f"{exc}") from exc
            await self._wait_state(dst_link, dst, vm.uuid, VmState.RUNNING, 30.0, ctx)
            await self._refresh_vm(dst_link, dst, vm.uuid)

    async def _redefine(self, vm: Vm) -> bool:
        """Define the VM again, stopped, on `vm.host` from its saved definition; False
        (and nothing changed) if there is none or the host refuses it."""
        saved = self.saved_definition(vm.uuid)
        link = self._links.get((vm.cluster, vm.host))
        if saved is None or link is None or link.hv is None:
            return False
        try:
            await self._lv(link, link.hv.define, saved[1])
        except HypervisorError as exc:
            log.warning("re-defining %s on %s failed: %s", vm.name, vm.host, exc)
            return False
        self._event(vm.cluster, vm.host, vm.uuid, "vm.redefined",
                    f"{vm.name}: re-defined on {vm.host} from its saved definition")
        await self._where(vm, [vm.host])
        return True

    async def _redefine_if_lost(self, vm: Vm) -> str:
        """Neither host of a failed move lists the VM: if every other host answers and
        none lists it either, re-define it on its source. Says what was done."""
        others = [h.name for h in self.hosts(vm.cluster) if h.name not in (vm.host,)]
        where = await self._where(vm, others)
        if len(where) < len(others):
            return " A host did not answer: nothing is re-defined until every host does."
        on = [h for h, st in where.items() if st is not None]
        if on:
            return f" It is on {', '.join(on)}."
        if await self._redefine(vm):
            return f" It is re-defined, stopped, on {vm.host} from its saved definition."
        return " It could not be re-defined (no saved definition, or the host refused it)."

    def _movers(self) -> concurrent.futures.ThreadPoolExecutor:
        """Threads that carry migration jobs: a job blocks its thread for its whole
        length, so it must never sit on a host's only libvirt worker."""
        pool = getattr(self, "_mover_pool", None)
        if pool is None:
            pool = self._mover_pool = concurrent.futures.ThreadPoolExecutor(
                16, thread_name_prefix="libvirt-migrate")
        return pool


def _progress_dict(p: MigrationProgress) -> dict:
    return {"processed": p.processed, "remaining": p.remaining, "total": p.total,
            "bytes_per_s": p.bytes_per_s, "elapsed_s": p.elapsed_s,
            "downtime_ms": p.downtime_ms, "phase": p.phase}


def progress_of(task: Task) -> MigrationProgress | None:
    """A migration task's last progress figures (from its checkpoint)."""
    d = task.checkpoint.get("progress")
    if not d:
        return None
    return MigrationProgress(**{k: v for k, v in d.items()
                                if k in MigrationProgress.__dataclass_fields__})
