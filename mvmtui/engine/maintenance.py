"""Maintenance mode: empty a host VM by VM, with a preview first, and bring its VMs
back when it leaves.

- The preview places each VM on its own merits (the planner's evacuate): target and
  method, or what blocks it and the ways out.
- Entering takes the host out of the placement pool at once ("entering"), runs one
  parent task with a child move per VM (at most the cluster's migration concurrency
  at a time), and marks the host "in maintenance" only once it is really empty.
- Leaving returns the host to the pool; bringing back the VMs that left is offered
  with the same kind of preview.
"""
from __future__ import annotations

import asyncio
import logging

from .errors import EngineError, HostDown
from .model import (ENTERING, IN_MAINTENANCE, HostStatus, MaintenancePreview, MoveRequest,
                    MoveRow, Strategy, Task, TaskStatus)
from .tasks import TaskContext, TaskFailed, TaskSpec, TaskStopped

log = logging.getLogger("mvmtui.maintenance")


class Maintenance:
    """Mixin for Engine."""

    # ---- preview ------------------------------------------------------------------------
    def maintenance_preview(self, cluster: str, host: str) -> MaintenancePreview:
        """What entering maintenance would do now, VM by VM."""
        self.host(cluster, host)
        plan = self.planner(cluster).evacuate(host)
        rows = []
        for m in plan.moves:
            vm = self.vm(m.vm)
            storage = self.storage_issue(vm)
            if storage and m.live:
                rows.append(MoveRow(vm.uuid, vm.name, vm.state, blocked=True,
                                    reason=storage,
                                    ways_out=("move it by hand with a storage copy "
                                              "(Manage Placement)", "shut it down")))
            elif storage:
                rows.append(MoveRow(vm.uuid, vm.name, vm.state, method="stays",
                                    reason=f"shut off, and its {storage}: it stays"))
            else:
                rows.append(MoveRow(vm.uuid, vm.name, vm.state, target=m.target,
                                    method="live" if m.live else "offline", reason=m.reason))
        for b in plan.blocked:
            vm = self.vm(b.vm)
            per_host = "; ".join(f"{h}: {why}" for h, why in b.per_host if why)
            pinned = vm.strategy is Strategy.PINNED
            ways = (("shut it down", "change its strategy (Manage Placement)") if pinned else
                    ("shut it down", "make room on another host", "move it by hand"))
            rows.append(MoveRow(vm.uuid, vm.name, vm.state, blocked=True,
                                reason=b.reason + (f" ({per_host})" if per_host else ""),
                                ways_out=ways))
        for uuid, why in plan.stays:
            vm = self.vm(uuid)
            rows.append(MoveRow(vm.uuid, vm.name, vm.state, method="stays", reason=why))
        return MaintenancePreview(cluster, host, tuple(sorted(rows, key=lambda r: r.name)))

    def maintenance_task(self, cluster: str, host: str) -> Task | None:
        """The unfinished task putting this host into maintenance, with its steps."""
        for t in self.tasks(cluster, target=host, unfinished=True, limit=5):
            if t.kind == "host.maintenance.enter":
                return self.inv.task(t.id)
        return None

    def maintenance_progress(self, cluster: str, host: str) -> tuple[int, int] | None:
        """(moves ended, moves in all) of a host entering maintenance now."""
        h = self._hosts.get((cluster, host))
        if h is None or h.maintenance != ENTERING:
            return None
        task = self.maintenance_task(cluster, host)
        if task is None:
            return None
        return int(task.checkpoint.get("ended", 0)), int(task.checkpoint.get("total", 0))

    # ---- entering ---------------------------------------------------------------------
    async def enter_maintenance(self, cluster: str, host: str, confirm: str,
                                expect: MaintenancePreview | None = None,
                                noout: bool = False) -> Task:
        """Empty the host and mark it in maintenance; returns the parent task running.
        `confirm` must be the host's name (the blast radius is a whole host);
        `expect`, the preview the operator confirmed: refused if the plan changed.
        A host with Ceph OSDs: Ceph's ok-to-stop for them is logged, and `noout` sets
        noout on them (ceph osd set-group noout) until it leaves, or expires."""
        self._refuse_changes("entering maintenance")
        h = self.host(cluster, host)
        if confirm != host:
            raise EngineError(f"Type the host's name, {host}, to confirm; nothing was "
                              f"changed.")
        if h.status is not HostStatus.UP:
            raise HostDown(f"{host} is {h.status.value}: its VMs cannot be moved; nothing "
                           f"was changed.")
        if h.maintenance == IN_MAINTENANCE:
            raise EngineError(f"{host} is in maintenance already.")
        preview = self.maintenance_preview(cluster, host)
        if preview.blocked:
            raise EngineError(f"{host} cannot enter maintenance: "
                              + "; ".join(f"{r.name}: {r.reason}" for r in preview.blocked)
                              + ". Nothing was changed.")
        _same_plan(preview, expect)
        moves = preview.moves
        pol = self.policy(cluster)
        spec = TaskSpec(kind="host.maintenance.enter", title=f"Enter maintenance: {host}",
                        cluster=cluster, target_kind="host", target=host, target_name=host,
                        host=host, steps=("Take out of the placement pool",
                                          f"Move {len(moves)} VM{'s' if len(moves) != 1 else ''}",
                                          "Confirm the host is empty"),
                        locks=(f"host:{cluster}/{host}",),
                        params={"moves": [{"vm": r.vm, "name": r.name, "target": r.target,
                                           "method": r.method} for r in moves]})

        async def body(ctx: TaskContext) -> None:
            ctx.step(0)
            await self._ceph_before_maintenance(ctx, cluster, host, noout)
            await self._set_maintenance(cluster, host, ENTERING)
            ctx.log(f"{host} is out of the placement pool")
            ctx.step(1)
            await self._run_moves(ctx, cluster, host, moves, pol.migration_concurrency,
                                  f"{host} stays out of the pool (entering maintenance): "
                                  f"enter again, or leave maintenance")
            ctx.step(2)
            await self._confirm_empty(ctx, cluster, host)
            await self._set_maintenance(cluster, host, IN_MAINTENANCE)
            ctx.log(f"{host} is in maintenance")
        return await self._on_io(self._submit_locked(spec, body, [host]))

    async def _ceph_before_maintenance(self, ctx: TaskContext, cluster: str, host: str,
                                       noout: bool) -> None:
        """Ceph's word on stopping the host's OSDs, and noout if asked for."""
        ids, ok = await self._ceph_ok_to_stop(cluster, host)
        if ok is not None:
            names = ", ".join(f"osd.{i}" for i in ids)
            if ok.ok:
                ctx.log(f"Ceph: {names} may stop (ceph osd ok-to-stop)")
            else:
                ctx.log(f"Ceph: stopping {names} now is not safe: {ok.reason}. Do not power "
                        f"{host} off until Ceph is HEALTH_OK", "warning")
        if noout:
            if not ids:
                ctx.log(f"noout was asked for, but {host} has no Ceph OSD: nothing to set")
            else:
                ctx.log(await self._noout(cluster, host, True, None, "maintenance"))

    async def _run_moves(self, ctx: TaskContext, cluster: str, host: str, moves,
                         concurrency: int, if_failed: str) -> None:
        """One child task per VM, at most `concurrency` at once; all are tried, and the
        parent fails if any did, saying which. A cancel of the parent starts no more
        moves (those running finish)."""
        gate = asyncio.Semaphore(max(1, concurrency))
        done: list[dict] = []
        failed: list[str] = []
        skipped: list[str] = []

        def ended() -> None:
            ctx.checkpoint(moved=list(done), ended=len(done) + len(failed) + len(skipped))
            ctx.progress(1 / 3 + (len(done) + len(failed)) / max(1, len(moves)) / 3)

        async def one(row) -> None:
            async with gate:
                if self.inv.cancel_request(ctx.id):
                    skipped.append(row.name)
                    return ended()
                req = MoveRequest(vm=row.vm, target=row.target,
                                  offline=row.method == "offline")
                source = self._vms[row.vm].host if row.vm in self._vms else host
                try:
                    child = await self.migrate_vm(req, parent=ctx.id)
                    ctx.log(f"{row.name} → {row.target} ({row.method}): task {child.id}")
                    end = await self.journal.wait(child.id)
                except Exception as exc:    # refused, or the journal failed: say which
                    failed.append(f"{row.name}: {exc}")
                    ctx.log(f"{row.name} not moved: {exc}", "error")
                    return ended()
                if end.status is TaskStatus.SUCCEEDED:
                    done.append({"vm": row.vm, "name": row.name, "from": source,
                                 "to": row.target})
                else:
                    failed.append(f"{row.name}: {end.error or end.status.value}")
                ended()
        ctx.checkpoint(moved=[], total=len(moves), ended=0)
        with ctx.cancellable():
            await asyncio.gather(*(one(r) for r in moves))
        if skipped:
            raise TaskStopped(f"{self.inv.cancel_request(ctx.id)}; {len(done)} of "
                              f"{len(moves)} VMs moved, not started: {', '.join(skipped)}"
                              + (f"; failed: {'; '.join(failed)}" if failed else "")
                              + f". {if_failed}.")
        if failed:
            raise TaskFailed(f"{len(done)} of {len(moves)} VMs moved; not moved: "
                             + "; ".join(failed) + f". {if_failed}.")

    async def _confirm_empty(self, ctx: TaskContext, cluster: str, host: str) -> None:
        """What the host itself lists now: nothing running, nothing that should have
        gone."""
        link = self._links.get((cluster, host))
        if link is None or link.hv is None:
            raise TaskFailed(f"{host} stopped answering: whether it is empty is unknown")
        if not await self._reread(link, "maintenance check"):
            raise TaskFailed(f"{host} did not answer: whether it is empty is unknown; it "
                             f"stays entering maintenance")
        running = [v.name for v in self._vms_on((cluster, host)) if v.state.active]
        if running:
            raise TaskFailed(f"{host} still runs {', '.join(sorted(running))}; it stays "
                             f"entering maintenance")
        left = [v.name for v in self._vms_on((cluster, host))]
        ctx.log(f"{host} runs no VM" + (f"; stopped and staying: {', '.join(sorted(left))}"
                                        if left else ""))

    async def _set_maintenance(self, cluster: str, host: str, state: str) -> None:
        """On the host first (every console then sees it), then here."""
        try:
            await self._write_host_state(cluster, host, state)
        except Exception as exc:
            raise TaskFailed(f"{host} did not record its maintenance state: {exc}") from exc
        self._set_host((cluster, host), maintenance=state)
        self._event(cluster, host, host, "host.maintenance",
                    {ENTERING: "entering maintenance", IN_MAINTENANCE: "in maintenance",
                     "": "back in the placement pool"}[state])

    # ---- leaving --------------------------------------------------------------------------
    def return_preview(self, cluster: str, host: str) -> MaintenancePreview:
        """The VMs that left the host in its last maintenance and can come back now
        (counting the host as back in the pool)."""
        planner = self.planner(cluster, returning=host)
        rows = []
        for item in self._last_evacuation(cluster, host):
            vm = self._vms.get(item["vm"])
            if vm is None or vm.host == host:
                continue
            if vm.host != item["to"]:
                rows.append(MoveRow(vm.uuid, vm.name, vm.state, method="stays",
                                    reason=f"moved on since, to {vm.host}: it stays"))
                continue
            why = dict(planner.candidates(planner.vms[vm.uuid])).get(host, "")
            if not why and vm.strategy is Strategy.PINNED:
                why = f"pinned to {vm.home or vm.host} since"
            if not why and vm.stale:
                why = f"{vm.host} is not answering"
            if not why and vm.state.active and self.storage_issue(vm):
                why = self.storage_issue(vm)
            if why:
                rows.append(MoveRow(vm.uuid, vm.name, vm.state, blocked=True, reason=why))
                continue
            rows.append(MoveRow(vm.uuid, vm.name, vm.state, target=host,
                                method="live" if vm.state.active else "offline",
                                reason=f"it left {host} for maintenance"))
        return MaintenancePreview(cluster, host, tuple(sorted(rows, key=lambda r: r.name)))

    def _last_evacuation(self, cluster: str, host: str) -> list[dict]:
        """The VMs moved off the host by every enter-maintenance task since it last
        left maintenance (a failed entry and its retry, a resumed one), newest last."""
        moved: list[dict] = []
        for t in self.inv.tasks(cluster=cluster, target=host, limit=100):
            if t.kind == "host.maintenance.leave" and t.status is TaskStatus.SUCCEEDED:
                break
            if t.kind == "host.maintenance.enter":
                full = self.inv.task(t.id)
                moved = list(full.checkpoint.get("moved", [])) + moved if full else moved
        seen: dict[str, dict] = {}
        for item in moved:
            seen[item["vm"]] = item          # a VM moved twice: its last move counts
        return list(seen.values())

    async def leave_maintenance(self, cluster: str, host: str,
                                bring_back: bool = False) -> Task:
        """Return the host to the pool; with bring_back, move back the VMs that left it
        (those the preview shows as able to). Returns the task running."""
        self._refuse_changes("leaving maintenance")
        h = self.host(cluster, host)
        if not h.maintenance:
            raise EngineError(f"{host} is not in maintenance.")
        if h.status is not HostStatus.UP:   # its own state file must say it too
            raise HostDown(f"{host} is {h.status.value}: it cannot be told it left "
                           f"maintenance; nothing was changed.")
        back = self.return_preview(cluster, host).moves if bring_back else ()
        steps = ("Return to the placement pool",) + (
            (f"Bring back {len(back)} VM{'s' if len(back) != 1 else ''}",) if back else ())
        spec = TaskSpec(kind="host.maintenance.leave", title=f"Leave maintenance: {host}",
                        cluster=cluster, target_kind="host", target=host, target_name=host,
                        host=host, steps=steps, locks=(f"host:{cluster}/{host}",),
                        params={"bring_back": [r.vm for r in back]})
        pol = self.policy(cluster)

        async def body(ctx: TaskContext) -> None:
            ctx.step(0)
            await self._set_maintenance(cluster, host, "")
            ctx.log(f"{host} is back in the placement pool")
            s = self.ceph_summary(cluster)
            if self.ceph_noout_mark(cluster, host) or (s is not None and any(
                    f.name == "noout" and f.scope == f"host {host}" for f in s.flags)):
                try:
                    ctx.log(await self._noout(cluster, host, False, None, ""))
                except EngineError as exc:
                    ctx.log(f"{exc}: clear it by hand (ceph osd unset-group noout {host})",
                            "warning")
            if back:
                ctx.step(1)
                await self._run_moves(ctx, cluster, host, back, pol.migration_concurrency,
                                      f"{host} is back in the pool; move the others by "
                                      f"hand (Manage Placement)")
        return await self._on_io(self._submit_locked(spec, body, [host]))


def _same_plan(now: MaintenancePreview, confirmed: MaintenancePreview | None) -> None:
    """The moves about to run are the ones the operator confirmed."""
    if confirmed is None:
        return
    def plan(p):
        return sorted((r.vm, r.target, r.method) for r in p.moves)
    if plan(now) != plan(confirmed):
        raise EngineError(f"The plan for {now.host} changed since you looked (VMs or room "
                          f"moved meanwhile); look at the preview again. Nothing was "
                          f"changed.")
