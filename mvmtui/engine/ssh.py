"""SSH to hosts with asyncssh: one connection per host carries everything.

Host keys are always verified against the cluster's known_hosts file. An unknown
key is reported with its fingerprint so the operator can trust it (TOFU); a key
that differs from the recorded one is refused outright. Passwords live only in
memory. Keepalive on the connection is the first heartbeat.
"""
from __future__ import annotations

import asyncio
import getpass
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from .model import HostStatus

KEEPALIVE_INTERVAL = 1.0
KEEPALIVE_COUNT_MAX = 3
CONNECT_TIMEOUT = 5.0


class SshError(Exception):
    """Why a host could not be reached, as a host status and a readable message."""

    def __init__(self, status: HostStatus, message: str, *, key_type: str = "",
                 fingerprint: str = "", public_key: str = ""):
        super().__init__(message)
        self.status = status
        self.message = message
        self.key_type = key_type
        self.fingerprint = fingerprint
        self.public_key = public_key   # OpenSSH line body, for trusting it


@dataclass
class Target:
    address: str
    port: int
    user: str
    key_path: str | None
    known_hosts: str
    password: str | None = None


class _Client(asyncssh.SSHClient):
    """Remembers the key a server offered when known_hosts did not vouch for it."""

    def __init__(self):
        self.offered: asyncssh.SSHKey | None = None

    def validate_host_public_key(self, host, addr, port, key):
        self.offered = key
        return False


def fingerprint(key: asyncssh.SSHKey) -> str:
    return key.get_fingerprint("sha256")


def known_entry(known_hosts: str, address: str, port: int) -> bool:
    """Whether known_hosts already has a key for this address (then a mismatch = changed)."""
    try:
        kh = asyncssh.read_known_hosts(known_hosts)
    except (OSError, ValueError):
        return False
    trusted = kh.match(address, address, port)[0]
    return bool(trusted)


def key_fingerprint(public_key: str) -> str:
    """SHA256 fingerprint of an OpenSSH public key line ("type base64 [comment]")."""
    try:
        return fingerprint(asyncssh.import_public_key(public_key))
    except (asyncssh.KeyImportError, ValueError):
        return ""


def host_pattern(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def trust_key(known_hosts: str, address: str, port: int, public_key: str) -> None:
    """Append a host key to known_hosts (after the operator confirmed it)."""
    path = Path(known_hosts)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(f"{host_pattern(address, port)} {public_key.strip()}\n")


def _config_sets_user(address: str) -> bool:
    """Whether ~/.ssh/config names a User for this host (then it replaces root)."""
    path = Path.home() / ".ssh" / "config"
    if not path.exists():
        return False
    try:
        from asyncssh.config import SSHClientConfig
        # () for user and port: "not given", so the file's values are read
        cfg = SSHClientConfig.load(None, [path], True, False, False, getpass.getuser(),
                                   (), address, ())
        return bool(cfg.get("User"))
    except Exception:   # an unreadable config: asyncssh itself will say so
        return False


async def connect(t: Target) -> asyncssh.SSHClientConnection:
    Path(t.known_hosts).parent.mkdir(parents=True, exist_ok=True)
    Path(t.known_hosts).touch(exist_ok=True)
    where = f"{t.user}@{t.address}:{t.port}"
    keys = None
    if t.key_path:
        try:  # a bad key file is our problem, not the host's: say so plainly
            keys = [asyncssh.read_private_key(t.key_path)]
        except (OSError, asyncssh.KeyImportError) as exc:
            raise SshError(HostStatus.AUTH_FAILED,
                           f"Cannot use the SSH key {t.key_path} for {where}: "
                           f"{getattr(exc, 'strerror', None) or exc}. Fix the cluster's key "
                           f"(mvmtui cluster add … --key PATH --replace).") from exc
    client: _Client | None = None

    def factory():
        nonlocal client
        client = _Client()
        return client

    # ~/.ssh/config is honoured (asyncssh reads it): HostName, ProxyJump, IdentityFile,
    # and User / Port where the cluster keeps the defaults (root, 22); what the
    # cluster sets explicitly wins. Host keys are always checked against the
    # cluster's known_hosts.
    opts = dict(known_hosts=t.known_hosts,
                keepalive_interval=KEEPALIVE_INTERVAL,
                keepalive_count_max=KEEPALIVE_COUNT_MAX,
                connect_timeout=CONNECT_TIMEOUT, login_timeout=CONNECT_TIMEOUT,
                client_factory=factory)
    if t.port != 22:
        opts["port"] = t.port
    if t.user != "root" or not _config_sets_user(t.address):
        opts["username"] = t.user
    if keys:
        opts["client_keys"] = keys
    if t.password:
        opts["password"] = t.password
    if not os.environ.get("SSH_AUTH_SOCK"):
        opts["agent_path"] = None
    try:
        return await asyncssh.connect(t.address, **opts)
    except asyncssh.HostKeyNotVerifiable as exc:
        key = client.offered if client else None
        fp = fingerprint(key) if key else ""
        body = key.export_public_key("openssh").decode().strip() if key else ""
        ktype = key.get_algorithm() if key else ""
        if known_entry(t.known_hosts, t.address, t.port):
            raise SshError(
                HostStatus.HOST_KEY_CHANGED,
                f"The host key of {t.address} has CHANGED (it now offers {ktype} {fp}). "
                f"This may be a man-in-the-middle attack; mvmtui will not connect. "
                f"If the host was reinstalled, remove its line from {t.known_hosts} "
                f"and trust the new key.", key_type=ktype, fingerprint=fp,
                public_key=body) from exc
        raise SshError(
            HostStatus.HOST_KEY_UNKNOWN,
            f"The host key of {t.address} is not known ({ktype} {fp}). "
            f"Check the fingerprint on the host (ssh-keygen -lf "
            f"/etc/ssh/ssh_host_*_key.pub) and trust it if it matches.",
            key_type=ktype, fingerprint=fp, public_key=body) from exc
    except asyncssh.PermissionDenied as exc:
        raise SshError(HostStatus.AUTH_FAILED,
                       f"SSH refused our credentials for {where}: {exc.reason}. "
                       f"Check the cluster's SSH key or user.") from exc
    except asyncssh.DisconnectError as exc:
        raise SshError(HostStatus.UNREACHABLE,
                       f"SSH to {where} was closed by the host: {exc.reason}") from exc
    except (asyncio.TimeoutError, TimeoutError) as exc:
        raise SshError(HostStatus.UNREACHABLE,
                       f"No answer from {where} within {CONNECT_TIMEOUT:.0f} s") from exc
    except OSError as exc:
        # asyncio's text is "Connect call failed ('10.0.0.1', 22)": say the errno's words
        why = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
        raise SshError(HostStatus.UNREACHABLE, f"Cannot reach {where}: {why}") from exc
    except (asyncssh.Error, ValueError, KeyError) as exc:
        raise SshError(HostStatus.UNREACHABLE, f"SSH to {where} failed: {exc}") from exc


# ---- the SSH loop (DESIGN rule 10) ------------------------------------------------------
# Every SSH connection, its keepalives and the libvirt tunnel run on a loop of their
# own, in a thread that does nothing else: the engine's loop may wait on a SQLite write
# (another process holding the inventory) for seconds, and keepalives delayed that long
# would make a healthy host look lost, which soon means a fence and a failover.
_ssh_loop: asyncio.AbstractEventLoop | None = None
_ssh_loop_lock = threading.Lock()


def ssh_loop() -> asyncio.AbstractEventLoop:
    global _ssh_loop
    with _ssh_loop_lock:
        if _ssh_loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="mvmtui-ssh", daemon=True).start()
            _ssh_loop = loop
        return _ssh_loop


async def on_ssh(awaitable):
    """Await something on the SSH loop from the engine's loop (a cancel here cancels
    it there). asyncssh returns awaitables that are not all coroutines: wrapped."""
    async def there():
        return await awaitable
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(there(), ssh_loop()))


def abort(conn: asyncssh.SSHClientConnection) -> None:
    """Close a connection from any thread."""
    ssh_loop().call_soon_threadsafe(conn.abort)


async def open_connection(t: Target) -> asyncssh.SSHClientConnection:
    """connect() on the SSH loop."""
    return await on_ssh(connect(t))


async def forward_local_path(conn, local: str, remote: str) -> None:
    """A local unix socket that the SSH loop forwards to a remote one."""
    await on_ssh(conn.forward_local_path(local, remote))


async def wait_closed(conn) -> None:
    await on_ssh(conn.wait_closed())


async def run(conn: asyncssh.SSHClientConnection, command: str,
              timeout: float = 30.0) -> str:
    """Run a command on the host (on the SSH loop); its stdout, or RuntimeError with
    stderr."""
    return await on_ssh(_run(conn, command, timeout))


async def _run(conn: asyncssh.SSHClientConnection, command: str, timeout: float) -> str:
    result = await asyncio.wait_for(conn.run(command, check=False), timeout)
    if result.exit_status != 0:
        raise RuntimeError(f"`{command}` exited {result.exit_status}: "
                           f"{(result.stderr or '').strip()[:300]}")
    return str(result.stdout)


async def run_full(conn: asyncssh.SSHClientConnection, command: str,
                   timeout: float = 30.0) -> tuple[int, str, str]:
    """Run a command on the host (on the SSH loop): (exit status, stdout, stderr),
    whatever the status. TimeoutError if it did not end in time."""
    async def go():
        r = await asyncio.wait_for(conn.run(command, check=False), timeout)
        return (r.exit_status if r.exit_status is not None else 255,
                str(r.stdout or ""), str(r.stderr or ""))
    return await on_ssh(go())
