"""CephRoom, a room of the Engine: reading a cluster's Ceph and running its commands.

Reads go through one SSH exec on a monitor host (reads.py), falling back to the other
hosts in turn; commands that change Ceph run as `ceph …` exactly as the console shows
them. A cluster whose hosts have no /etc/ceph/ceph.conf has no Ceph: it is looked for
again every ABSENT_RECHECK s. Every summary carries its read time; one that could
not be refreshed keeps its last reading (it ages on screen), with why.
"""
from __future__ import annotations

import asyncio
import json
import logging
import shlex
from dataclasses import dataclass, replace

from .. import ssh as sshmod
from ..model import CephChanged, HostStatus
from . import parse, reads
from .model import CephSummary

log = logging.getLogger("mvmtui.ceph")

CEPH_INTERVAL = 5.0         # seconds between summary reads of a cluster with Ceph
ABSENT_RECHECK = 60.0       # a cluster seen without Ceph is looked at again this often
READ_TIMEOUT = 20.0
COMMAND_TIMEOUT = 60.0
ERRNO = {1: "EPERM", 2: "ENOENT", 11: "EAGAIN", 16: "EBUSY", 22: "EINVAL", 39: "ENOTEMPTY",
         110: "ETIMEDOUT", 125: "ECANCELED"}
NO_CEPH = "no-ceph"


@dataclass(frozen=True)
class CephResult:
    """What `ceph …` answered: its exit status is Ceph's errno (16 EBUSY …)."""
    command: str
    rc: int
    out: str
    err: str
    host: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def said(self) -> str:
        """Ceph's answer, as an operator reads it: `EBUSY: unsafe to stop osd(s)…`."""
        text = (self.err or self.out).strip().removeprefix("Error ").strip()
        if self.rc and not text.startswith(tuple(ERRNO.values())):
            text = f"{ERRNO.get(self.rc, f'exit {self.rc}')}: {text}"
        return text or "done"


class CephRoom:
    """Mixin for Engine: each cluster's Ceph summary, kept fresh; `ceph` commands."""

    def _ceph_init(self) -> None:
        self._ceph: dict[str, CephSummary] = {}
        self._ceph_absent: dict[str, float] = {}     # cluster -> when seen without Ceph
        self._ceph_poller: asyncio.Task | None = None
        self._ceph_wanted: dict[str, int] = {}        # clusters someone looks at now
        self._ceph_kick: asyncio.Event | None = None
        self._ceph_marks: dict[str, dict] = {}        # cluster -> mvmtui/ config keys

    # ---- what screens and the CLI read (any thread) ------------------------------
    def ceph_summary(self, cluster: str) -> CephSummary | None:
        """The last reading of the cluster's Ceph; None before the first, or if it has none."""
        return self._ceph.get(cluster)

    def ceph_marks(self, cluster: str) -> dict:
        """mvmtui's own records kept in the cluster's Ceph (config-key mvmtui/…)."""
        return dict(self._ceph_marks.get(cluster, {}))

    def ceph_present(self, cluster: str) -> bool | None:
        """True: it has Ceph; False: its hosts have none; None: not known yet."""
        if cluster in self._ceph:
            return True
        return False if cluster in self._ceph_absent else None

    async def ceph_refresh(self, cluster: str) -> CephSummary | None:
        """Read it now (a CLI verb, or a screen that wants it fresh)."""
        return await self._on_io(self._ceph_read(cluster))

    # ---- reading ---------------------------------------------------------------------
    def _ceph_hosts(self, cluster: str) -> list[str]:
        """Hosts to ask, monitor hosts first (by the last reading), each up with SSH."""
        last = self._ceph.get(cluster)
        mons = {m.name for m in last.mons} if last else set()
        hosts = [h for h in self.hosts(cluster) if h.status is HostStatus.UP
                 and getattr(self._links.get((cluster, h.name)), "ssh", None) is not None]
        return [h.name for h in sorted(hosts, key=lambda h: (h.name not in mons, h.name))]

    async def _ceph_doc(self, cluster: str, names=reads.SUMMARY,
                        extra: dict | None = None) -> dict:
        """The reads document from the first host that answers; {"error": …} if none."""
        reader = getattr(self, "ceph_reader", None)
        if reader is not None:          # tests: a scripted Ceph
            return await reader(cluster, names, extra or {})
        errors, absent = [], []
        hosts = self._ceph_hosts(cluster)
        for name in hosts:
            conn = self._links[(cluster, name)].ssh
            try:
                rc, out, err = await sshmod.run_full(conn, reads.script(names, extra),
                                                     timeout=READ_TIMEOUT)
                if rc == 0 and out.strip().startswith("{"):
                    doc = json.loads(out)
                    if doc.get("absent"):       # this host has no Ceph; another may
                        absent.append(name)
                        continue
                    if not doc.get("error"):
                        return doc
                    errors.append(f"{name}: {doc['error']}")
                    continue
                if "No module named 'rados'" in err or "No module named rados" in err:
                    rc, out, err = await sshmod.run_full(conn, reads.cli_script(names),
                                                         timeout=READ_TIMEOUT * 3)
                    doc = reads.parse_cli(out)
                    doc["host"] = name
                    return doc
                errors.append(f"{name}: {(err or out).strip()[:200] or f'exit {rc}'}")
            except (asyncio.TimeoutError, TimeoutError):
                errors.append(f"{name}: no answer within {READ_TIMEOUT:.0f} s")
            except Exception as exc:      # a host that fails: try the next one
                errors.append(f"{name}: {exc}")
        if absent and len(absent) == len(hosts):
            return {"absent": True, "host": absent[0]}
        return {"error": "; ".join(errors) or "no host of the cluster is up", "host": ""}

    async def _ceph_read(self, cluster: str, extra: dict | None = None
                         ) -> CephSummary | None:
        return (await self._ceph_read_doc(cluster, extra))[0]

    async def _ceph_read_doc(self, cluster: str, extra: dict | None = None
                             ) -> tuple[CephSummary | None, dict]:
        """Read the summary (and `extra` reads); the document too, for what the
        summary does not keep (config-key marks, the extra reads)."""
        doc = await self._ceph_doc(cluster, extra=extra)
        summary = await self._ceph_parse(cluster, doc)
        if isinstance(doc.get("reads", {}).get("marks", {}).get("out"), dict):
            self._ceph_marks[cluster] = doc["reads"]["marks"]["out"]
        return summary, doc

    async def _ceph_parse(self, cluster: str, doc: dict) -> CephSummary | None:
        now = self.clock()
        if doc.get("absent"):
            self._ceph_absent[cluster] = now
            if self._ceph.pop(cluster, None) is not None:
                self._emit(CephChanged(cluster))
            return None
        if doc.get("error") and not doc.get("reads"):
            last = self._ceph.get(cluster)
            if last is None:
                if not self._ceph_hosts(cluster):
                    return None         # nobody to ask yet: not known, not absent
                summary = parse.summary(cluster, doc, now)
            else:                       # keep the last reading; it ages, and says why
                summary = replace(last, problems=(f"not refreshed: {doc['error']}",))
        else:
            summary = parse.summary(cluster, doc, now)
            self._ceph_sample(cluster, summary)     # a fresh reading: into the history
        self._ceph_absent.pop(cluster, None)
        self._ceph[cluster] = summary
        self._emit(CephChanged(cluster))
        return summary

    def ceph_watch(self, cluster: str, on: bool = True) -> None:
        """A screen showing the cluster's Ceph: read it now, and every CEPH_INTERVAL."""
        n = self._ceph_wanted.get(cluster, 0) + (1 if on else -1)
        if n > 0:
            self._ceph_wanted[cluster] = n
        else:
            self._ceph_wanted.pop(cluster, None)
        if on and self._loop is not None and self._ceph_kick is not None:
            self._loop.call_soon_threadsafe(self._ceph_kick.set)

    def _start_ceph_poll(self) -> None:
        if self._ceph_poller is None:
            self._ceph_kick = asyncio.Event()
            self._ceph_poller = asyncio.get_running_loop().create_task(self._ceph_loop())

    def _stop_ceph_poll(self) -> None:
        if self._ceph_poller is not None:
            self._ceph_poller.cancel()
            self._ceph_poller = None

    async def _ceph_loop(self) -> None:
        """Every cluster's Ceph, every CEPH_INTERVAL s; one without Ceph once a minute.
        Only for engines that show or act on it (a console, a watcher: they subscribe);
        a CLI verb reads what it needs itself."""
        while True:
            for c in list(self._clusters) if self._subs else ():
                if self._only is not None and c not in self._only:
                    continue
                seen = self._ceph_absent.get(c)
                if seen is not None and self.clock() - seen < ABSENT_RECHECK:
                    continue
                try:
                    await self._ceph_read(c)
                except Exception as exc:     # keep reading the others
                    log.info("%s: reading Ceph failed: %s", c, exc)
            self._ceph_kick.clear()
            unknown = self._subs and any(self.ceph_present(c) is None for c in self._clusters
                                         if self._only is None or c in self._only)
            try:
                await asyncio.wait_for(self._ceph_kick.wait(),
                                       1.0 if unknown else CEPH_INTERVAL)
            except asyncio.TimeoutError:
                pass

    # ---- commands ---------------------------------------------------------------------
    async def ceph_command(self, cluster: str, args: list[str] | tuple[str, ...],
                           timeout: float = COMMAND_TIMEOUT) -> CephResult:
        """Run `ceph ARGS` on a monitor host (then the others); never raises for Ceph's
        refusal: the result says it. EngineError-free: no host up is a result too."""
        return await self._on_io(self._ceph_run(cluster, ["ceph", *args], timeout))

    async def _ceph_run(self, cluster: str, argv: list[str], timeout: float = COMMAND_TIMEOUT,
                        host: str | None = None) -> CephResult:
        """Run a command (ceph, rbd, or a service command) on `host`, or on the first
        Ceph host that answers."""
        command = shlex.join(argv) if not isinstance(argv, str) else argv
        runner = getattr(self, "ceph_runner", None)
        if runner is not None:           # tests: a scripted Ceph
            rc, out, err = await runner(cluster, host, command)
            return CephResult(command, rc, out, err, host or "scripted")
        last = CephResult(command, 255, "", "no host of the cluster is up", "")
        for name in ([host] if host else self._ceph_hosts(cluster)):
            link = self._links.get((cluster, name))
            if link is None or link.ssh is None:
                last = CephResult(command, 255, "", f"{name} is not reachable", name)
                continue
            try:
                rc, out, err = await sshmod.run_full(link.ssh, command, timeout=timeout)
            except (asyncio.TimeoutError, TimeoutError):
                return CephResult(command, 110, "", f"no answer within {timeout:.0f} s "
                                                    f"on {name}", name)
            except Exception as exc:
                last = CephResult(command, 255, "", f"{name}: {exc}", name)
                continue
            res = CephResult(command, rc, out, err, name)
            # A host whose monitor link failed (not Ceph refusing): try the next one.
            if rc != 0 and "RADOS" in err and "timed out" in err and not host:
                last = res
                continue
            return res
        return last
