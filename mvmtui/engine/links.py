"""Host links: reaching each host, keeping the link, losing it and trying again.

Owns the per-host connection (`_Link`): SSH and the libvirt tunnel, the host's own
libvirt thread (`_lv`), the connect/retry loop and the states it sets, and host keys
(trust on first use). What a live link reads into the VM store is in sync.py.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from .adapter import Hypervisor, HostUnreachable
from .errors import EngineError, HypervisorError, ReadOnly
from .model import ENTERING, IN_MAINTENANCE, Host, HostKeyQuestion, HostStatus

log = logging.getLogger("mvmtui.engine")

LIBVIRT_SOCKET = "/run/libvirt/libvirt-sock"
LIBVIRT_TIMEOUT = 60.0       # seconds a libvirt call may take before the link is dropped
SSH_PROBE = 3.0              # seconds SSH has to answer once libvirt's connection closed


@dataclass
class _Link:
    """The live connection state of one host (I/O loop only)."""

    key: tuple[str, str]
    executor: concurrent.futures.ThreadPoolExecutor
    runner: asyncio.Task | None = None
    ssh: Any = None
    hv: Hypervisor | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    offered_key: str = ""          # public key offered when unknown (for TOFU)
    offered_fp: str = ""
    offered_type: str = ""
    lv_lost: asyncio.Event | None = None   # set when libvirt is lost or stops answering
    locks: Any = None              # the host's lock files (locks.SshLocks / MemoryLocks)
    closer: asyncio.Task | None = None   # waits for the SSH connection to close
    details: asyncio.Task | None = None  # reads the definitions the fast listing left out
    proc: tuple | None = None      # (loop time, metrics.HostCounters) of the last /proc read
    lost_at: str = ""              # "HH:MM:SS" contact was lost; "" while it was not


class HostLinks:
    """Mixin of Engine: host connections (I/O loop). State is the Engine's."""

    async def _connect_all(self) -> None:
        for key in list(self._hosts):
            if self._only is not None and key[0] not in self._only:
                continue
            if key not in self._links:
                ex = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix=f"libvirt-{key[1]}")
                link = _Link(key, ex)
                self._links[key] = link
                link.runner = asyncio.get_running_loop().create_task(self._host_loop(link))

    async def _disconnect_all(self) -> None:
        await self._disconnect(list(self._links))

    async def _disconnect(self, keys: list[tuple[str, str]]) -> None:
        links = [self._links.pop(k) for k in keys if k in self._links]
        for link in links:
            if link.runner:
                link.runner.cancel()
        for link in links:
            # Python 3.11's wait_for can swallow a cancel that lands as its call
            # finishes (a host stopped mid-connect): cancel again until it ends.
            while link.runner and not link.runner.done():
                await asyncio.wait([link.runner], timeout=0.1)
                link.runner.cancel()
            if link.runner and not link.runner.cancelled():
                link.runner.exception()      # retrieved: never "never retrieved"
            await self._close(link)   # libvirt objects end on their own thread
            link.executor.shutdown(wait=False)

    async def _lv(self, link: _Link, fn: Callable, *args):
        """Run a libvirt call on the host's own libvirt thread. A libvirtd that takes
        the call but never answers must not hang the host, its tasks and callers: after
        LIBVIRT_TIMEOUT the link is dropped (closing the tunnel unblocks the thread)."""
        call = asyncio.get_running_loop().run_in_executor(link.executor, fn, *args)
        try:
            return await asyncio.wait_for(call, LIBVIRT_TIMEOUT)
        except asyncio.TimeoutError:
            if link.lv_lost is not None:
                link.lv_lost.set()
            raise HypervisorError(f"libvirt on {link.key[1]} did not answer within "
                                  f"{LIBVIRT_TIMEOUT:.0f} s") from None

    async def _host_loop(self, link: _Link) -> None:
        """Connect, refresh, watch; on loss mark the host and try again, forever."""
        # asyncssh costs ~150 ms to import: here it loads on the I/O thread, after the
        # console's first frame, and never in offline mode.
        from . import ssh as sshmod
        key = link.key
        first = True
        delay = self.reconnect_interval
        while True:
            host = self._hosts[key]
            if first:
                self._set_host(key, status=HostStatus.CONNECTING, problem="")
            first = False
            ssh_lost = asyncio.Event()
            lv_lost = asyncio.Event()
            try:
                await self._open(link, host, ssh_lost, lv_lost)
            except sshmod.SshError as exc:
                asked = link.offered_fp
                link.offered_key, link.offered_fp = exc.public_key, exc.fingerprint
                link.offered_type = exc.key_type
                unknown = exc.status is HostStatus.HOST_KEY_UNKNOWN
                # A changed key is not the host's key: keep showing the recorded one.
                problem = _still_lost(link, exc.message) \
                    if exc.status is HostStatus.UNREACHABLE else exc.message
                self._set_host(key, status=exc.status, problem=problem,
                               fingerprint=exc.fingerprint if unknown else host.fingerprint)
                if unknown and exc.fingerprint != asked:   # ask once per key offered
                    self._emit(HostKeyQuestion(self._hosts[key], exc.key_type, exc.fingerprint))
                # Wrong keys don't fix themselves: wait for the operator (or retry slowly).
                slow = exc.status in (HostStatus.AUTH_FAILED, HostStatus.HOST_KEY_UNKNOWN,
                                      HostStatus.HOST_KEY_CHANGED)
                await self._pause(link, 60.0 if slow else delay)
                delay = min(delay * 1.5, 10.0)
                continue
            except (_LibvirtDown, HostUnreachable) as exc:
                await self._close(link)
                if isinstance(exc, _LibvirtDown):
                    self._set_host(key, problem=str(exc), status=HostStatus.LIBVIRT_DOWN)
                else:
                    self._set_host(key, problem=_still_lost(link, str(exc)),
                                   status=HostStatus.UNREACHABLE)
                await self._pause(link, delay)
                delay = min(delay * 1.5, 10.0)
                continue
            except Exception as exc:  # anything else: say so and keep trying, never stick
                log.exception("%s/%s: connecting failed", *key)
                await self._close(link)
                self._set_host(key, status=HostStatus.UNREACHABLE,
                               problem=f"connecting failed: {exc or exc.__class__.__name__}")
                await self._pause(link, delay)
                delay = min(delay * 1.5, 10.0)
                continue
            delay = self.reconnect_interval
            link.lost_at = ""
            loop = asyncio.get_running_loop()
            watchers = [loop.create_task(self._stats_loop(link)),
                        loop.create_task(self._reconcile_loop(link))]
            try:
                await _first(ssh_lost.wait(), lv_lost.wait())
            except BaseException:
                for w in watchers:
                    w.cancel()
                await self._close(link)
                raise
            for w in watchers:
                w.cancel()
            # Said at once, before the link is closed (closing waits for libvirt calls
            # to the dead host to give up): the watcher counts from here.
            at = time.strftime("%H:%M:%S", time.localtime(self.clock()))
            if ssh_lost.is_set():
                link.lost_at = at
                self._set_host(key, status=HostStatus.UNREACHABLE,
                               problem=f"lost contact at {at}: the SSH keepalive failed "
                                       f"or the connection dropped")
            elif not await self._ssh_answers(link, ssh_lost):
                # A host that dies often drops libvirt's connection before SSH's
                # keepalive notices: "libvirt down" would say SSH still works.
                link.lost_at = at
                self._set_host(key, status=HostStatus.UNREACHABLE,
                               problem=f"lost contact at {at}: libvirt's connection "
                                       f"closed and SSH no longer answers")
            else:
                self._set_host(key, status=HostStatus.LIBVIRT_DOWN,
                               problem=f"libvirt connection closed at {at}")
            await self._close(link)
            await self._pause(link, delay)

    async def _ssh_answers(self, link: _Link, ssh_lost: asyncio.Event) -> bool:
        """Whether the host's SSH still runs a command (within SSH_PROBE s). A link
        without SSH (test drivers, scripted hosts) has nothing else to ask: True."""
        if link.ssh is None:
            return True
        from . import ssh as sshmod
        try:
            await asyncio.wait_for(sshmod.run(link.ssh, "true", timeout=SSH_PROBE),
                                   SSH_PROBE + 1)
        except Exception:       # timed out, dropped, refused: it does not answer
            return False
        return not ssh_lost.is_set()

    async def _pause(self, link: _Link, seconds: float) -> None:
        """Wait before the next try; a retry asked meanwhile (even during the last
        attempt) ends the wait at once."""
        try:
            await asyncio.wait_for(link.wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass
        link.wake.clear()

    async def _open(self, link: _Link, host: Host, ssh_lost: asyncio.Event,
                    lv_lost: asyncio.Event) -> None:
        key = link.key
        loop = asyncio.get_running_loop()
        cluster = self._clusters[host.cluster]
        from . import ssh as sshmod
        if self._connect is not None:
            try:
                hv = await self._lv(link, self._connect, host)
            except HypervisorError as exc:
                raise _LibvirtDown(f"libvirtd does not answer: {exc}") from exc
            files = getattr(hv, "lock_files", None)
            if files is not None:
                from .locks import MemoryLocks
                link.locks = MemoryLocks(files, self.clock)
            return await self._begin(link, hv, lv_lost)
        if host.address.startswith("test:"):
            uri = host.address  # libvirt's test driver, for benchmarks without SSH
        else:
            known = cluster.known_hosts or os.path.expanduser("~/.ssh/known_hosts")
            conn = await sshmod.open_connection(sshmod.Target(
                host.address, host.port, cluster.ssh_user, cluster.ssh_key, known,
                self._passwords.get(cluster.name)))
            link.ssh = conn
            from .locks import SshLocks
            link.locks = SshLocks(conn)
            server_key = conn.get_server_host_key()
            if server_key is not None:
                self._set_host(key, fingerprint=sshmod.fingerprint(server_key))
            link.closer = loop.create_task(_when_closed(conn, ssh_lost))
            sock = os.path.join(self._runtime, f"{key[0]}-{key[1]}.sock")
            if os.path.exists(sock):
                os.unlink(sock)
            await sshmod.forward_local_path(conn, sock, LIBVIRT_SOCKET)
            uri = f"qemu+unix:///system?socket={sock}"
        from .hypervisor import LibvirtHypervisor  # libvirt loads on the I/O thread, when needed
        await self._begin(link, LibvirtHypervisor(uri, key[0], key[1], self.clock), lv_lost)

    async def _begin(self, link: _Link, hv: Hypervisor, lv_lost: asyncio.Event) -> None:
        """Open the hypervisor, follow its events, read what the host has; then the
        host is up."""
        key = link.key
        loop = asyncio.get_running_loop()
        link.lv_lost = lv_lost

        def on_event(uuid: str, kind: str, detail: int) -> None:   # libvirt event thread
            loop.call_soon_threadsafe(self._domain_event, link, hv, uuid, kind, detail)

        def on_close(why: int) -> None:                             # libvirt event thread
            loop.call_soon_threadsafe(lv_lost.set)

        try:
            await self._lv(link, hv.open, on_event, on_close)
        except HypervisorError as exc:
            raise _LibvirtDown(f"SSH works but libvirtd does not answer: {exc}") from exc
        link.hv = hv
        try:
            facts = await self._lv(link, hv.facts)
            if link.ssh is not None:
                facts.update(await self._ssh_facts(link.ssh))
            _cpu, mem_used = await self._lv(link, hv.host_usage)  # primes CPU counters
            contents = await self._read_contents(link, hv, fast=True)
        except HypervisorError as exc:
            raise _LibvirtDown(f"libvirt failed during refresh: {exc}") from exc
        # Maintenance is what the host says (another console may have set it).
        state = await self._read_host_state(link)
        await self._release_leftovers(key)
        if state is not None:
            facts["maintenance"] = state if state in (ENTERING, IN_MAINTENANCE) else ""
        # Stored as live (the host is marked up with no await in between): a VM
        # just read is never shown "(stale)" while its host turns up.
        self._apply_contents(key, *contents, live=True)
        self._set_host(key, status=HostStatus.UP, problem="", seen_at=self.clock(),
                       mem_used_mib=mem_used, **{k: v for k, v in facts.items() if k in Host.__dataclass_fields__})
        self._read_details_later(link, hv, contents[2])

    async def _ssh_facts(self, conn) -> dict:
        """What libvirt does not say: the OS release and the CPU's marketing name."""
        from . import ssh as sshmod
        try:
            out = await sshmod.run(conn, "cat /etc/os-release; echo ---; "
                                         "grep -m1 'model name' /proc/cpuinfo", timeout=10)
        except (RuntimeError, asyncio.TimeoutError, OSError) as exc:
            log.warning("facts over SSH failed: %s", exc)
            return {}
        release, _, cpu = out.partition("---")
        facts = {}
        for line in release.splitlines():
            if line.startswith("PRETTY_NAME="):
                facts["os_release"] = line.split("=", 1)[1].strip().strip('"')
        if ":" in cpu:
            facts["cpu_model"] = cpu.split(":", 1)[1].strip()
        return facts

    async def _close(self, link: _Link) -> None:
        hv, link.hv = link.hv, None
        if hv is not None:
            # A migration job still inside libvirt on this connection (as source or
            # destination) must end before the connection goes: it ends soon once the
            # host is gone or the job is aborted.
            for _ in range(100):
                if not self._jobs.get(id(hv)):
                    break
                await asyncio.sleep(0.1)
            if self._jobs.get(id(hv)):
                # Still inside migrate3: closing the connection under it crashed the
                # process (a segfault in libvirt, seen on a loaded machine). The job's
                # end closes it (migration.py), however long libvirt takes.
                self._close_after_job[id(hv)] = (link.executor, hv)
                log.warning("%s: a migration job still uses the connection; it is "
                            "closed when the job ends", link.key)
            else:
                try:
                    await asyncio.wait_for(self._lv(link, hv.close), 5)
                except (asyncio.TimeoutError, Exception):
                    log.warning("%s: libvirt close did not finish", link.key)
        conn, link.ssh = link.ssh, None
        link.locks = None
        if link.closer is not None:
            link.closer.cancel()
            link.closer = None
        if conn is not None:
            from . import ssh as sshmod
            sshmod.abort(conn)

    async def wait_ready(self, timeout: float = 15.0, cluster: str | None = None,
                         complete: bool = False) -> None:
        """Until every host has left 'connecting' (first contact done, either way), and
        who watches each cluster was read once (a console never shows a guess);
        `complete`: and every live host's VM definitions are read too."""
        async def wait():
            while any(h.status is HostStatus.CONNECTING or (complete and self._details_left(h))
                      for h in self.hosts(cluster)) or self._ha_unread(cluster):
                await asyncio.sleep(0.05)
        try:
            await self._on_io(asyncio.wait_for(wait(), timeout))
        except asyncio.TimeoutError:
            pass

    async def retry_host(self, cluster: str, name: str) -> None:
        """Try to reach a host now instead of at its next retry."""
        def wake():
            link = self._links.get((cluster, name))
            if link:
                link.offered_fp = ""   # the operator asked: an unknown key is asked again
                link.wake.set()
        self._loop.call_soon_threadsafe(wake)

    async def trust_host_key(self, cluster: str, name: str, fingerprint: str) -> None:
        """The operator confirmed this fingerprint: record the key and connect."""
        if self.readonly:
            raise ReadOnly("trusting a host key")
        h = self.host(cluster, name)
        link = self._links.get((cluster, name))
        if h.status is HostStatus.HOST_KEY_CHANGED:
            raise EngineError(f"The host key of {name} CHANGED; mvmtui never trusts a "
                              f"changed key. {h.problem}")
        if link is None or h.status is not HostStatus.HOST_KEY_UNKNOWN:
            raise EngineError(f"{name} has no host key waiting to be trusted.")
        from . import ssh as sshmod
        key_text = link.offered_key          # one read: the key written is the key checked
        offered = sshmod.key_fingerprint(key_text) if key_text else ""
        if not offered:
            raise EngineError(f"{name} is being contacted again; confirm its key when "
                              f"asked.")
        if offered != fingerprint:
            raise EngineError(f"{name} now offers {offered}, not {fingerprint}; "
                              f"not trusted. Check the host again.")
        known = self._clusters[cluster].known_hosts or os.path.expanduser("~/.ssh/known_hosts")
        sshmod.trust_key(known, h.address, h.port, key_text)
        link.offered_key = ""
        await self.retry_host(cluster, name)

    def pending_host_keys(self) -> list[HostKeyQuestion]:
        """Unknown host keys still waiting for the operator (for a UI that starts late)."""
        out = []
        for key, link in list(self._links.items()):
            h = self._hosts.get(key)
            if h and h.status is HostStatus.HOST_KEY_UNKNOWN and link.offered_key:
                out.append(HostKeyQuestion(h, link.offered_type, link.offered_fp))
        return out

    def set_password(self, cluster: str, password: str) -> None:
        """SSH password for a cluster: kept in memory for this session only."""
        self._passwords[cluster] = password


class _LibvirtDown(Exception):
    pass


async def _when_closed(conn, event: asyncio.Event) -> None:
    from . import ssh as sshmod
    try:
        await sshmod.wait_closed(conn)
    finally:
        event.set()


async def _first(*aws: Awaitable) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


def _still_lost(link: _Link, why: str) -> str:
    """A failed try to reach a host that was lost keeps when it was lost, first:
    "lost contact at 05:33:10; last try: No answer from … within 5 s"."""
    return f"lost contact at {link.lost_at}; last try: {why}" if link.lost_at else why
