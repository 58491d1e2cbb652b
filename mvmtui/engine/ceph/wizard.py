"""CephWizard, a room of the Engine: the decommission's steps run one at a time, each
the operator confirmed, each a task in History with its exact commands and Ceph's
answers; and noout for a host's maintenance.

Each step is confirmed by what Ceph then shows, not by the command's exit status: a
step is over once a fresh plan shows it done. Step 5 (the data moving) is over only
after every PG has been active+clean, with nothing degraded or misplaced, for the
cluster's `ceph_settle` seconds without a break, and `ceph osd safe-to-destroy` agrees:
for seconds after an OSD goes out Ceph still shows every PG clean, before they move.
"""
from __future__ import annotations

import json
import shlex
import time

from ..errors import EngineError
from ..model import IN_MAINTENANCE, Task
from ..tasks import TaskContext, TaskFailed, TaskSpec
from . import decommission as dec
from . import parse
from .decommission import DecomPlan
from .model import OkToStop

WAIT_POLL = 2.0             # seconds between readings while data moves
CONFIRM_WITHIN = 60.0       # a step's effect must show in Ceph within this
NOOUT_MARK = "mvmtui/noout/"


class CephWizard:
    """Mixin for Engine (after CephRoom)."""

    # ---- the plan ---------------------------------------------------------------------
    async def decommission_plan(self, cluster: str, host: str) -> DecomPlan:
        """What the wizard shows for a host now, from a fresh reading. EngineError if
        the cluster's Ceph cannot be read."""
        return (await self._on_io(self._decom_plan(cluster, host)))[0]

    def _decom_extra(self, cluster: str, host: str) -> tuple[dict, tuple[int, ...]]:
        last = self.ceph_summary(cluster)
        ids = set(o.id for o in last.osds_on(host)) if last else set()
        ids |= {int(i) for i in dec.read_mark(self.ceph_marks(cluster), host).get("osds", ())
                if str(i).isdigit()}
        extra = {"auth": {"prefix": "auth ls"},
                 "mon_ok_to_rm": {"prefix": "mon ok-to-rm", "id": host}}
        if ids:
            extra["safe"] = {"prefix": "osd safe-to-destroy", "ids": [str(i) for i in sorted(ids)]}
        return extra, tuple(sorted(ids))

    async def _decom_plan(self, cluster: str, host: str) -> tuple[DecomPlan, object]:
        h = self.host(cluster, host)             # NotFound for a host it does not have
        extra, ids = self._decom_extra(cluster, host)
        summary, doc = await self._ceph_read_doc(cluster, extra)
        if summary is not None and not ids and summary.osds_on(host):
            extra, ids = self._decom_extra(cluster, host)     # first look: ids now known
            summary, doc = await self._ceph_read_doc(cluster, extra)
        if summary is None:
            raise EngineError(f"{cluster} has no Ceph that answers (no host with "
                              f"/etc/ceph/ceph.conf is up)")
        if summary.problems and not summary.osds:
            raise EngineError(f"Ceph could not be read: {'; '.join(summary.problems)}")
        got = doc.get("reads", {})

        def answer(name):
            r = got.get(name) or {}
            out = r.get("out")
            return r.get("ret", 1), out if isinstance(out, str) else json.dumps(out), \
                str(r.get("err", ""))
        auth = None
        if got.get("auth", {}).get("ret") == 0 and isinstance(got["auth"].get("out"), dict):
            auth = {str(e.get("entity")) for e in got["auth"]["out"].get("auth_dump", [])
                    if isinstance(e, dict)}
        safe = parse.safe_to_destroy(*answer("safe")) if "safe" in got else None
        rc, _out, err = answer("mon_ok_to_rm")
        running = sum(1 for v in self.vms(cluster, host) if v.state.active)
        p = dec.plan(summary, host, in_maintenance=h.maintenance == IN_MAINTENANCE,
                     service=self.policy(cluster).ceph_service, marks=self.ceph_marks(cluster),
                     auth=auth, safe=safe, mon_ok_to_rm=(rc, err.strip() or _out.strip()),
                     running_vms=running)
        return p, safe

    # ---- one step -----------------------------------------------------------------------
    async def decommission_step(self, cluster: str, host: str, key: str) -> Task:
        """Run the wizard's next step (the operator confirmed `key`, as the plan showed
        it); returns the task running. EngineError if the plan changed or the step is
        blocked, with why (nothing was run)."""
        self._refuse_changes("decommissioning a host")
        return await self._on_io(self._decom_step(cluster, host, key))

    async def _decom_step(self, cluster: str, host: str, key: str) -> Task:
        p, _safe = await self._decom_plan(cluster, host)
        a = p.next
        if p.refusal:
            raise EngineError(f"Decommission of {host} refused: {p.refusal}")
        if a is None:
            raise EngineError(f"{host}: nothing is left to do" if p.finished else
                              f"{host}: no step can run now")
        if a.key != key:
            raise EngineError(f"The plan changed: the next step is now {a.title} "
                              f"({a.key}), not {key}. Look again before you confirm.")
        if a.blocked:
            raise EngineError(f"{a.title}: {a.blocked}")
        spec = TaskSpec(kind="ceph.decommission", title=f"Decommission {host}: {a.title}",
                        cluster=cluster, target_kind="host", target=host, target_name=host,
                        host=host, steps=tuple(a.commands + a.on_host) or (a.title,),
                        locks=(f"ceph:{cluster}/{host}",),
                        params={"key": a.key, "step": a.step,
                                "commands": list(a.commands + a.on_host)})

        async def body(ctx: TaskContext) -> None:
            ctx.log(f"Step {a.step} of 11: {a.title}" + (f" ({a.note})" if a.note else ""))
            await self._decom_mark(cluster, host, p, ctx)
            n = 0
            for cmd in a.commands:
                ctx.step(n)
                n += 1
                await self._decom_exec(ctx, cluster, cmd, None)
            for cmd in a.on_host:
                ctx.step(n)
                n += 1
                await self._decom_exec(ctx, cluster, cmd, host)
            if a.key.startswith("wait:"):
                ctx.step(0)
                await self._decom_wait(ctx, cluster, host, (int(a.key.split(":")[1]),))
            await self._decom_confirm(ctx, cluster, host, a.key)
        return await self.journal.submit(spec, body)

    async def _decom_exec(self, ctx: TaskContext, cluster: str, cmd: str,
                          host: str | None) -> None:
        ctx.log(f"$ {cmd}" + (f"   (on {host})" if host else ""))
        res = await self._ceph_run(cluster, shlex.split(cmd), host=host)
        if not res.ok:
            ctx.log(f"Ceph said: {res.said()}", "error")
            raise TaskFailed(f"`{cmd}` was refused: {res.said()}")
        said = (res.err or res.out).strip()
        if said:
            ctx.log(said[:500])

    async def _decom_mark(self, cluster: str, host: str, p: DecomPlan,
                          ctx: TaskContext, done: str = "") -> None:
        """Keep the decommission's mark in Ceph: its OSDs, monitor, manager and method
        (which Ceph stops showing once they are removed), and steps Ceph cannot show."""
        mark = dec.read_mark(self.ceph_marks(cluster), host)
        if not mark:
            s = self.ceph_summary(cluster)
            mark = {"osds": list(p.osds), "mon": any(a.key == "mon-remove" for a in p.actions),
                    "mgr": any(a.key == "mgr-stop" for a in p.actions), "method": p.method,
                    "by": self.journal.started_by, "since": self.clock(), "done": []}
            if s is not None:
                mark["mgr"] = mark["mgr"] or any(m.name == host for m in s.mgrs)
        elif not done:
            return
        if done and done not in mark.get("done", []):
            mark["done"] = [*mark.get("done", []), done]
        res = await self._ceph_run(cluster, ["ceph", "config-key", "set", dec.MARK + host,
                                             json.dumps(mark)])
        if not res.ok:
            raise TaskFailed(f"the decommission's mark could not be kept in Ceph: "
                             f"{res.said()}")
        self._ceph_marks.setdefault(cluster, {})[dec.MARK + host] = json.dumps(mark)

    async def _decom_wait(self, ctx: TaskContext, cluster: str, host: str,
                          osds: tuple[int, ...]) -> None:
        settle = float(self.policy(cluster).ceph_settle)
        clean_since, began, moving_said = None, time.monotonic(), 0.0
        ctx.log(f"Waiting until every PG is active+clean for {settle:.0f} s without a "
                f"break, and safe-to-destroy agrees")
        with ctx.cancellable():
            while True:
                p, safe = await self._decom_plan(cluster, host)
                s = self.ceph_summary(cluster)
                now = time.monotonic()
                quiet = dec.settled(s) and safe is not None and all(safe.is_safe(i)
                                                                    for i in osds)
                if not quiet:
                    if clean_since is not None:
                        ctx.log("Data is moving again: the settle time starts over")
                    clean_since = None
                elif clean_since is None:
                    clean_since = now
                    ctx.log(f"Nothing moving {now - began:.0f} s after the start; the "
                            f"reading must stay so for {settle:.0f} s")
                if not quiet and now - moving_said >= 30:
                    moving_said = now
                    r = s.recovery
                    ctx.log(f"Data moving: {sum(p.count for p in s.pgs if p.state != 'active+clean')}"
                            f" PGs not clean, {r.degraded_objects or 0} objects degraded, "
                            f"{r.misplaced_objects or 0} misplaced")
                clean_for = now - clean_since if clean_since is not None else 0.0
                pr = dec.progress(s, safe, osds, clean_for, settle)
                ctx.checkpoint(pgs_total=pr.pgs_total, pgs_clean=pr.pgs_clean,
                               degraded=pr.degraded, misplaced=pr.misplaced,
                               bytes_per_sec=pr.bytes_per_sec, eta_seconds=pr.eta_seconds,
                               clean_for=round(clean_for, 1), settle=settle, safe=pr.safe,
                               safe_reason=pr.safe_reason, read_at=s.read_at)
                if pr.pgs_total:
                    moved = (pr.pgs_clean or 0) / pr.pgs_total
                    ctx.progress(0.8 * moved + 0.2 * min(1.0, clean_for / settle if settle else 1))
                if quiet and clean_for >= settle:
                    ctx.log(f"Every PG active+clean for {clean_for:.0f} s, and Ceph says "
                            f"{', '.join(f'osd.{i}' for i in osds)} safe to destroy")
                    break
                await ctx.sleep(WAIT_POLL)

    async def _decom_confirm(self, ctx: TaskContext, cluster: str, host: str, key: str) -> None:
        """The step is over once Ceph shows it so (a fresh plan shows it done)."""
        if key == "mgr-stop" or key.startswith("wait:"):     # Ceph cannot show these
            p, _ = await self._decom_plan(cluster, host)
            await self._decom_mark(cluster, host, p, ctx, done=key)
        deadline = time.monotonic() + CONFIRM_WITHIN
        while True:
            p, _ = await self._decom_plan(cluster, host)
            if any(a.key == key and a.state == "done" for a in p.actions):
                break
            if time.monotonic() > deadline:
                raise TaskFailed(f"Ceph does not show it done {CONFIRM_WITHIN:.0f} s later")
            await ctx.sleep(1.0)
        ctx.log("Ceph shows it done")
        if p.finished:
            await self._ceph_run(cluster, ["ceph", "config-key", "rm", dec.MARK + host])
            self._ceph_marks.get(cluster, {}).pop(dec.MARK + host, None)
            ctx.log(f"{host} is no longer part of Ceph")

    # ---- maintenance: ok-to-stop and noout --------------------------------------------
    async def ceph_maintenance_check(self, cluster: str, host: str
                                     ) -> tuple[tuple[int, ...], OkToStop | None]:
        """The host's OSDs and Ceph's ok-to-stop for them (None: no Ceph, or no OSDs)."""
        return await self._on_io(self._ceph_ok_to_stop(cluster, host))

    async def _ceph_ok_to_stop(self, cluster: str, host: str):
        if self.ceph_present(cluster) is False:
            return (), None
        s = self.ceph_summary(cluster) or await self._ceph_read(cluster)
        if s is None:
            return (), None
        ids = tuple(o.id for o in s.osds_on(host))
        if not ids:
            return (), None
        res = await self._ceph_run(cluster, ["ceph", "osd", "ok-to-stop",
                                             *[str(i) for i in ids], "-f", "json"])
        return ids, parse.ok_to_stop(res.rc, res.out, res.err)

    async def ceph_set_noout(self, cluster: str, host: str, seconds: int | None = None,
                             why: str = "maintenance") -> str:
        """`ceph osd set-group noout HOST`, with who set it and when it expires kept in
        Ceph; returns what was done. EngineError with Ceph's answer if refused."""
        self._refuse_changes("setting noout")
        return await self._on_io(self._noout(cluster, host, True, seconds, why))

    async def ceph_clear_noout(self, cluster: str, host: str) -> str:
        self._refuse_changes("clearing noout")
        return await self._on_io(self._noout(cluster, host, False, None, ""))

    async def _noout(self, cluster: str, host: str, on: bool, seconds: int | None,
                     why: str) -> str:
        if on:
            seconds = seconds or self.policy(cluster).ceph_noout_expiry
            res = await self._ceph_run(cluster, ["ceph", "osd", "set-group", "noout", host])
            if not res.ok:
                raise EngineError(f"noout for {host} was refused: {res.said()}")
            now = self.clock()
            s = self.ceph_summary(cluster)
            mark = {"by": self.journal.started_by, "since": now, "expires": now + seconds,
                    "why": why, "osds": [o.id for o in s.osds_on(host)] if s else []}
            await self._ceph_run(cluster, ["ceph", "config-key", "set", NOOUT_MARK + host,
                                           json.dumps(mark)])
            await self._ceph_read(cluster)
            return (f"noout set on {host}'s OSDs until "
                    f"{time.strftime('%H:%M', time.localtime(now + seconds))} "
                    f"({seconds // 60} min)")
        res = await self._ceph_run(cluster, ["ceph", "osd", "unset-group", "noout", host])
        if not res.ok:
            raise EngineError(f"noout for {host} could not be cleared: {res.said()}")
        await self._ceph_run(cluster, ["ceph", "config-key", "rm", NOOUT_MARK + host])
        await self._ceph_read(cluster)
        return f"noout cleared on {host}'s OSDs"

    def ceph_noout_mark(self, cluster: str, host: str) -> dict:
        """The noout this tool set on a host, as kept in Ceph ({} if none)."""
        raw = self.ceph_marks(cluster).get(NOOUT_MARK + host)
        try:
            data = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
