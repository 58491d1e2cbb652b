"""The inventory: what the console knows of every cluster, in one SQLite file.

sqlite-utils over one connection guarded by a lock (the engine writes from its
I/O thread, readers may come from any thread). WAL so readers never block the
writer. The schema version lives in `PRAGMA user_version`; migrations run in
order. A file that is not ours, is corrupt, or comes from a newer mvmtui is
refused with a clear error and left exactly as it was.
"""
from __future__ import annotations

import enum
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Callable, Iterable

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils

from .model import (Cluster, Datastore, Disk, Host, HostStatus, Network, Nic, make,
                    Strategy, Task, TaskLog, TaskStatus, TaskStep, Vm, VmState)


def _host_row(h: Host) -> dict:
    row = {k: getattr(h, k) for k in h.__dataclass_fields__}
    row["status"] = h.status.value
    return row


class InventoryError(Exception):
    """The inventory file cannot be used; the message says why and what to do."""


def _v1(db: "sqlite_utils.Database") -> None:
    db["clusters"].create({"name": str, "layout": str, "ssh_user": str, "ssh_key": str,
                           "known_hosts": str, "description": str}, pk="name")
    db["hosts"].create({"cluster": str, "name": str, "address": str, "port": int,
                        "status": str, "problem": str, "fingerprint": str,
                        "hostname": str, "cpu_model": str, "cpus": int, "memory_mib": int,
                        "os_release": str, "libvirt_version": str, "qemu_version": str,
                        "cpu_pct": float, "mem_used_mib": int, "seen_at": float},
                       pk=("cluster", "name"), foreign_keys=[("cluster", "clusters", "name")])
    db["vms"].create({"uuid": str, "cluster": str, "host": str, "name": str, "state": str,
                      "vcpus": int, "memory_mib": int, "max_memory_mib": int,
                      "autostart": int, "persistent": int, "cpu_pct": float,
                      "mem_used_mib": int, "seen_at": float}, pk="uuid")
    db["vms"].create_index(["cluster", "host"])
    db["disks"].create({"vm_uuid": str, "target": str, "source": str, "kind": str,
                        "bus": str, "device": str, "capacity_bytes": int,
                        "allocation_bytes": int, "readonly": int}, pk=("vm_uuid", "target"))
    db["nics"].create({"vm_uuid": str, "mac": str, "kind": str, "source": str,
                       "model": str, "target": str}, pk=("vm_uuid", "mac"))
    db["networks"].create({"cluster": str, "host": str, "name": str, "active": int,
                           "bridge": str, "autostart": int}, pk=("cluster", "host", "name"))
    db["datastores"].create({"cluster": str, "host": str, "name": str, "kind": str,
                             "path": str, "active": int, "capacity_bytes": int,
                             "allocation_bytes": int, "available_bytes": int},
                            pk=("cluster", "host", "name"))
    db["tasks"].create({"id": int, "kind": str, "title": str, "cluster": str,
                        "target_kind": str, "target": str, "target_name": str, "host": str,
                        "status": str, "progress": float, "created_at": float,
                        "started_at": float, "finished_at": float, "error": str,
                        "params": str}, pk="id")
    db["tasks"].create_index(["cluster", "created_at"])
    db["tasks"].create_index(["target"])
    db["task_steps"].create({"task_id": int, "idx": int, "name": str, "status": str,
                             "started_at": float, "finished_at": float},
                            pk=("task_id", "idx"))
    db["task_logs"].create({"id": int, "task_id": int, "at": float, "level": str,
                            "message": str}, pk="id")
    db["task_logs"].create_index(["task_id"])
    db["locks"].create({"resource": str, "task_id": int, "taken_at": float}, pk="resource")
    db["events"].create({"id": int, "at": float, "cluster": str, "host": str,
                         "target": str, "kind": str, "message": str}, pk="id")
    db["events"].create_index(["cluster", "at"])
    db["metric_samples"].create({"id": int, "at": float, "cluster": str, "host": str,
                                 "vm_uuid": str, "metric": str, "value": float}, pk="id")
    db["metric_samples"].create_index(["cluster", "host", "metric", "at"])


def _v2(db: "sqlite_utils.Database") -> None:
    # Which console process runs a task, so another process never "recovers" it.
    db["tasks"].add_column("owner", str)
    # Pruning old samples by time must not scan the whole table.
    db["metric_samples"].create_index(["at"])


def _v3(db: "sqlite_utils.Database") -> None:
    # Pruning old events by time must not scan the whole table either; nor must
    # finding the tasks still running, which every engine start does (recover).
    db["events"].create_index(["at"])
    db["tasks"].create_index(["status"])


def _v4(db: "sqlite_utils.Database") -> None:
    # Who started a task (console, CLI, watcher; user@machine); whether stopping it now
    # is safe; a cancel asked by another process, which the owner polls.
    db["tasks"].add_column("started_by", str)
    db["tasks"].add_column("cancellable", int)
    db["tasks"].add_column("cancel_requested", str)
    # When a VM's whole definition was last read (seen_at: its state confirmed).
    db["vms"].add_column("config_at", float)


def _v5(db: "sqlite_utils.Database") -> None:
    # A VM's placement strategy and home host (the domain's metadata holds them too).
    db["vms"].add_column("strategy", str)
    db["vms"].add_column("home", str)


def _v6(db: "sqlite_utils.Database") -> None:
    # Per-cluster policy (overcommit, reserve, migration limits, shared datastores).
    db["cluster_policy"].create({"cluster": str, "policy": str}, pk="cluster")


def _v7(db: "sqlite_utils.Database") -> None:
    # Journal v2: a task's parent (an evacuation's moves) and its checkpoint data.
    db["tasks"].add_column("parent", int)
    db["tasks"].add_column("checkpoint", str)
    db["tasks"].create_index(["parent"])
    # Hosts in (or entering) maintenance: out of the placement pool.
    db["hosts"].add_column("maintenance", str)
    # Each VM's XML as last read, to re-define it elsewhere (failover, a lost move).
    db["vm_definitions"].create({"uuid": str, "cluster": str, "host": str, "xml": str,
                                 "digest": str, "saved_at": float}, pk="uuid")


def _v8(db: "sqlite_utils.Database") -> None:
    # A VM's CPU mode: host-passthrough / host-model tie it to hosts with its CPU.
    db["vms"].add_column("cpu_mode", str)


def _v9(db: "sqlite_utils.Database") -> None:
    # Host loss: a VM's restart priority, and the lost host it was restarted from.
    db["vms"].add_column("priority", str)
    db["vms"].add_column("failed_from", str)


def _v10(db: "sqlite_utils.Database") -> None:
    # Monitoring: a series per host and VM, its points in three tiers (history.py);
    # the old one-row-per-figure samples, which nothing read, go.
    db.execute("CREATE TABLE metric_series (id INTEGER PRIMARY KEY, cluster TEXT NOT NULL, "
               "kind TEXT NOT NULL, key TEXT NOT NULL, name TEXT, UNIQUE (cluster, kind, key))")
    db.execute("CREATE TABLE metric_points (tier INTEGER NOT NULL, series INTEGER NOT NULL, "
               "at INTEGER NOT NULL, cpu10 INTEGER, mem INTEGER, load100 INTEGER, "
               "rd INTEGER, wr INTEGER, rx INTEGER, tx INTEGER, n INTEGER NOT NULL, "
               "PRIMARY KEY (tier, series, at)) WITHOUT ROWID")
    db.execute("DROP TABLE IF EXISTS metric_samples")
    # Who made a change an event records (a task and who started it, or outside).
    db["events"].add_column("source", str)
    db["events"].create_index(["cluster", "target", "at"])


EVENT_TWIN = 3.0      # seconds within which the same event from another process is one

# Index i migrates schema version i to i+1. Append, never edit.
MIGRATIONS: list[Callable[["sqlite_utils.Database"], None]] = [_v1, _v2, _v3, _v4, _v5, _v6,
                                                               _v7, _v8, _v9, _v10]
SCHEMA_VERSION = len(MIGRATIONS)


def default_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "mvmtui" / "inventory.db"


def _check_existing(path: Path) -> int:
    """Read-only look at an existing file: its schema version, or InventoryError."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise InventoryError(
            f"The inventory {path} cannot be read ({exc}). It was left untouched. "
            f"Move it aside (or restore a backup) and start again; "
            f"or point MVMTUI_INVENTORY at another file.") from exc
    if version > SCHEMA_VERSION:
        raise InventoryError(
            f"The inventory {path} was written by a newer mvmtui (schema {version}; "
            f"this one knows up to {SCHEMA_VERSION}). It was left untouched. "
            f"Upgrade mvmtui, or use another inventory file.")
    if version == 0 and tables:
        raise InventoryError(
            f"{path} is a SQLite file but not an mvmtui inventory "
            f"(tables: {', '.join(sorted(tables)[:5])}). It was left untouched.")
    return version


def _column_value(v):
    """A Vm field as the vms table keeps it (enums by value, booleans as 0/1)."""
    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, bool):
        return int(v)
    return v


class Inventory:
    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else default_path()
        if self.path.exists() and self.path.stat().st_size > 0:
            version = _check_existing(self.path)
        else:
            version = 0
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = None
        self._tx_thread: int | None = None
        self._events_pruned = 0.0
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self.conn = conn
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            with self._lock:
                for i in range(version, SCHEMA_VERSION):
                    with conn:
                        conn.execute("BEGIN")
                        MIGRATIONS[i](self.db)
                        conn.execute(f"PRAGMA user_version={i + 1}")
        except sqlite3.Error as exc:
            raise InventoryError(f"The inventory {self.path} cannot be opened ({exc}). "
                                 f"Check the path and its permissions, or point "
                                 f"MVMTUI_INVENTORY at another file.") from exc

    @property
    def db(self) -> "sqlite_utils.Database":
        """sqlite-utils for writes, loaded on first use: reading the inventory at
        start-up needs only sqlite3, and sqlite-utils costs ~40 ms to import."""
        if self._db is None:
            import sqlite_utils
            self._db = sqlite_utils.Database(self.conn)
        return self._db

    def close(self) -> None:
        with self._lock:
            for r in self._readers:
                r.close()
            self._readers.clear()
            self.conn.close()

    @property
    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def _rows(self, sql: str, params: Iterable = ()) -> list[dict]:
        if self._tx_thread == threading.get_ident():
            conn = self.conn           # inside our own transaction: see its writes
        else:
            conn = self._reader()      # WAL: readers never wait for the writer
        cur = conn.execute(sql, tuple(params))
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]

    def _tx_conn(self) -> sqlite3.Connection:
        """The connection _rows would read with."""
        return self.conn if self._tx_thread == threading.get_ident() else self._reader()

    def _reader(self) -> sqlite3.Connection:
        """One read-only connection per thread, so the console's loop never blocks on
        the engine's writes (nor on the lock that guards them)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # Used only by its thread; check_same_thread off so close() can end it.
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True,
                                   check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=5000")
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn

    def transaction(self):
        """`with inv.transaction():` groups writes; nests by holding the lock."""
        inv = self

        class _Tx:
            def __enter__(self):
                inv._lock.acquire()
                self.outer = inv.conn.in_transaction
                if not self.outer:
                    # IMMEDIATE: take the write lock now, so another process's commit
                    # waits out busy_timeout instead of failing a read-then-write.
                    inv.conn.execute("BEGIN IMMEDIATE")
                    inv._tx_thread = threading.get_ident()

            def __exit__(self, exc_type, exc, tb):
                try:
                    if not self.outer:
                        inv._tx_thread = None
                        inv.conn.execute("ROLLBACK" if exc_type else "COMMIT")
                finally:
                    inv._lock.release()
        return _Tx()

    # ---- clusters and hosts -------------------------------------------------
    def save_cluster(self, c: Cluster) -> None:
        with self._lock:
            self.db["clusters"].upsert(
                {"name": c.name, "layout": c.layout, "ssh_user": c.ssh_user,
                 "ssh_key": c.ssh_key, "known_hosts": c.known_hosts,
                 "description": c.description}, pk="name")

    def clusters(self) -> list[Cluster]:
        return [Cluster(**r) for r in self._rows("SELECT * FROM clusters ORDER BY name")]

    def cluster_policy(self, name: str) -> dict:
        rows = self._rows("SELECT policy FROM cluster_policy WHERE cluster=?", [name])
        return json.loads(rows[0]["policy"]) if rows else {}

    def save_cluster_policy(self, name: str, policy: dict) -> None:
        with self._lock:
            self.db["cluster_policy"].upsert({"cluster": name, "policy": json.dumps(policy)},
                                             pk="cluster")

    def delete_cluster(self, name: str) -> int:
        """Forget a cluster: its hosts, last known VMs, events, samples and its task
        history. Returns how many tasks went."""
        with self.transaction():
            uuids = [r["uuid"] for r in self._rows("SELECT uuid FROM vms WHERE cluster=?", [name])]
            for i in range(0, len(uuids), self.CHUNK):
                self._delete_vm_rows(uuids[i:i + self.CHUNK])
            for t in ("hosts", "networks", "datastores", "events", "cluster_policy"):
                self.conn.execute(f"DELETE FROM {t} WHERE cluster=?", [name])
            self.conn.execute("DELETE FROM metric_points WHERE series IN "
                              "(SELECT id FROM metric_series WHERE cluster=?)", [name])
            self.conn.execute("DELETE FROM metric_series WHERE cluster=?", [name])
            # Its history goes with it: a new cluster of the same name starts clean.
            ids = "SELECT id FROM tasks WHERE cluster=?"
            for t in ("task_steps", "task_logs"):
                self.conn.execute(f"DELETE FROM {t} WHERE task_id IN ({ids})", [name])
            self.conn.execute(f"DELETE FROM locks WHERE task_id IN ({ids})", [name])
            gone = self.conn.execute("DELETE FROM tasks WHERE cluster=?", [name]).rowcount
            self.conn.execute("DELETE FROM clusters WHERE name=?", [name])
        return gone

    def delete_hosts(self, cluster: str, names: list[str]) -> None:
        """Forget hosts (and what was last known on them)."""
        with self.transaction():
            for name in names:
                uuids = [r["uuid"] for r in self._rows(
                    "SELECT uuid FROM vms WHERE cluster=? AND host=?", [cluster, name])]
                for i in range(0, len(uuids), self.CHUNK):
                    self._delete_vm_rows(uuids[i:i + self.CHUNK])
                for t in ("networks", "datastores"):
                    self.conn.execute(f"DELETE FROM {t} WHERE cluster=? AND host=?",
                                      [cluster, name])
                self.conn.execute("DELETE FROM hosts WHERE cluster=? AND name=?",
                                  [cluster, name])

    def update_host(self, h: Host) -> None:
        """Record a host's new state, only if it is still registered: a host that
        another process removed meanwhile is not brought back."""
        row = _host_row(h)
        cols = [k for k in row if k not in ("cluster", "name")]
        with self._lock:
            self.conn.execute(
                f"UPDATE hosts SET {', '.join(f'{c}=?' for c in cols)} "
                f"WHERE cluster=? AND name=?", [row[c] for c in cols] + [h.cluster, h.name])

    def save_host(self, h: Host) -> None:
        with self._lock:
            self.db["hosts"].upsert(_host_row(h), pk=("cluster", "name"))

    def hosts(self, cluster: str | None = None) -> list[Host]:
        sql, p = "SELECT * FROM hosts", []
        if cluster:
            sql, p = sql + " WHERE cluster=?", [cluster]
        out = []
        for r in self._rows(sql + " ORDER BY cluster, name", p):
            r["status"] = HostStatus(r["status"] or "stale")
            out.append(Host(**{k: v for k, v in r.items() if v is not None or k in
                               ("cpu_pct", "mem_used_mib", "seen_at")}))
        return out

    # ---- VMs ---------------------------------------------------------------
    # Bulk writes in plain SQL: sqlite-utils' per-row insert checks the table's
    # existence and columns on each call (seconds at 10,000 VMs). Chunks of CHUNK VMs,
    # one transaction each, so the journal's writes never wait long for the lock.
    CHUNK = 500
    _VM_COLS = tuple(k for k in Vm.__dataclass_fields__
                     if k not in ("disks", "nics", "stale", "definition"))
    _DISK_COLS = tuple(Disk.__dataclass_fields__)
    _NIC_COLS = tuple(Nic.__dataclass_fields__)

    def _delete_vm_rows(self, uuids: list[str]) -> None:
        assert not isinstance(uuids, str)
        marks = ",".join("?" * len(uuids))
        for t, col in (("vms", "uuid"), ("disks", "vm_uuid"), ("nics", "vm_uuid")):
            self.conn.execute(f"DELETE FROM {t} WHERE {col} IN ({marks})", uuids)

    def save_vms(self, vms: Iterable[Vm]) -> None:
        vms = list(vms)
        cols = self._VM_COLS
        vm_sql = f"INSERT INTO vms ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})"
        disk_sql = (f"INSERT OR REPLACE INTO disks (vm_uuid,{','.join(self._DISK_COLS)}) "
                    f"VALUES ({','.join('?' * (len(self._DISK_COLS) + 1))})")
        nic_sql = (f"INSERT OR REPLACE INTO nics (vm_uuid,{','.join(self._NIC_COLS)}) "
                   f"VALUES ({','.join('?' * (len(self._NIC_COLS) + 1))})")
        for i in range(0, len(vms), self.CHUNK):
            chunk = vms[i:i + self.CHUNK]
            rows, disks, nics = [], [], []
            for vm in chunk:
                row = [getattr(vm, k) for k in cols]
                rows.append([_column_value(v) for v in row])
                disks += [(vm.uuid, *(getattr(d, k) for k in self._DISK_COLS))
                          for d in vm.disks]
                nics += [(vm.uuid, *(getattr(n, k) for k in self._NIC_COLS))
                         for n in vm.nics]
            with self.transaction():
                self._delete_vm_rows([vm.uuid for vm in chunk])
                self.conn.executemany(vm_sql, rows)
                self.conn.executemany(disk_sql, disks)
                self.conn.executemany(nic_sql, nics)

    def save_definitions(self, rows: Iterable[tuple[Vm, str, float]]) -> None:
        """(VM, digest of its XML, when read) for each VM whose XML changed."""
        rows = [(vm.uuid, vm.cluster, vm.host, vm.definition, digest, at)
                for vm, digest, at in rows]
        for i in range(0, len(rows), self.CHUNK):
            with self.transaction():
                self.conn.executemany(
                    "INSERT OR REPLACE INTO vm_definitions (uuid, cluster, host, xml, "
                    "digest, saved_at) VALUES (?,?,?,?,?,?)", rows[i:i + self.CHUNK])

    def definition(self, uuid: str) -> tuple[str, str, float] | None:
        """(host it was read on, XML, when) of a VM's saved definition."""
        rows = self._rows("SELECT host, xml, saved_at FROM vm_definitions WHERE uuid=?",
                          [uuid])
        return (rows[0]["host"], rows[0]["xml"], rows[0]["saved_at"]) if rows else None

    def definition_digests(self) -> dict[str, str]:
        return {r["uuid"]: r["digest"] for r in
                self._rows("SELECT uuid, digest FROM vm_definitions")}

    def delete_vms(self, uuids: Iterable[str]) -> None:
        uuids = list(uuids)
        for i in range(0, len(uuids), self.CHUNK):
            with self.transaction():
                self._delete_vm_rows(uuids[i:i + self.CHUNK])

    def vms(self, cluster: str | None = None, host: str | None = None,
            stale: bool = False) -> list[Vm]:
        """Last known VMs (`stale`: flagged so). Built without dataclass __init__ (a
        warm start reads 10,000 of them before the console's first frame)."""
        where, p = [], []
        if cluster:
            where.append("cluster=?"); p.append(cluster)
        if host:
            where.append("host=?"); p.append(host)
        w = (" WHERE " + " AND ".join(where)) if where else ""
        vm_w = w.replace("cluster=", "v.cluster=").replace("host=", "v.host=")
        conn = self._tx_conn()
        cols = self._VM_COLS
        disks: dict[str, list[Disk]] = {}
        nics: dict[str, list[Nic]] = {}
        for table, cls, into in (("disks", Disk, disks), ("nics", Nic, nics)):
            names = self._DISK_COLS if cls is Disk else self._NIC_COLS
            order = "target" if cls is Disk else "mac"
            # Plain scans, ordered here: an ORDER BY walks the index and the table
            # at random, twice as slow.
            sql = (f"SELECT d.vm_uuid, {', '.join('d.' + n for n in names)} FROM {table} d"
                   + (f" JOIN vms v ON v.uuid = d.vm_uuid{vm_w}" if w else ""))
            rows = conn.execute(sql, p).fetchall()
            rows.sort(key=lambda r: (r[0], r[1 + names.index(order)]))
            for r in rows:
                item = dict(zip(names, r[1:]))
                if cls is Disk:
                    item["readonly"] = bool(item["readonly"])
                into.setdefault(r[0], []).append(make(cls, item))
        states = {s.value: s for s in VmState}
        strategies = {s.value: s for s in Strategy}
        out = []
        rows = conn.execute(f"SELECT {', '.join(cols)} FROM vms{w}", p).fetchall()
        at_cluster, at_name = cols.index("cluster"), cols.index("name")
        rows.sort(key=lambda r: (r[at_cluster], r[at_name]))
        for r in rows:
            d = dict(zip(cols, r))
            d["state"] = states[d["state"]]
            d["strategy"] = strategies[d["strategy"] or "auto"]
            d["home"] = d["home"] or ""
            d["cpu_mode"] = d["cpu_mode"] or ""
            d["priority"] = d["priority"] or "medium"
            d["failed_from"] = d["failed_from"] or ""
            d["autostart"] = bool(d["autostart"])
            d["persistent"] = bool(d["persistent"])
            d["disks"] = tuple(disks.get(d["uuid"], ()))
            d["nics"] = tuple(nics.get(d["uuid"], ()))
            d["stale"] = stale
            d["definition"] = ""
            out.append(make(Vm, d))
        return out

    # ---- networks and datastores ------------------------------------------
    def replace_host_networks(self, cluster: str, host: str, nets: list[Network],
                              stores: list[Datastore]) -> None:
        with self.transaction():
            for t in ("networks", "datastores"):
                self.conn.execute(f"DELETE FROM {t} WHERE cluster=? AND host=?", [cluster, host])
            if nets:
                self.db["networks"].insert_all(
                    [{k: getattr(n, k) for k in Network.__dataclass_fields__} for n in nets])
            if stores:
                self.db["datastores"].insert_all(
                    [{k: getattr(s, k) for k in Datastore.__dataclass_fields__} for s in stores])

    def networks(self, cluster: str) -> list[Network]:
        return [Network(**{**r, "active": bool(r["active"]), "autostart": bool(r["autostart"])})
                for r in self._rows("SELECT * FROM networks WHERE cluster=? ORDER BY host, name", [cluster])]

    def datastores(self, cluster: str) -> list[Datastore]:
        return [Datastore(**{**r, "active": bool(r["active"])})
                for r in self._rows("SELECT * FROM datastores WHERE cluster=? ORDER BY host, name", [cluster])]

    # ---- tasks (the journal) ----------------------------------------------
    def create_task(self, t: Task, params: dict | None = None, owner: str = "") -> int:
        row = {k: getattr(t, k) for k in Task.__dataclass_fields__
               if k not in ("id", "steps", "logs", "params")}
        row["status"] = t.status.value
        row["checkpoint"] = json.dumps(t.checkpoint)
        row["owner"] = owner
        row["params"] = json.dumps(params or {})
        with self.transaction():
            tid = self.db["tasks"].insert(row).last_pk
            for s in t.steps:
                self.db["task_steps"].insert({"task_id": tid, "idx": s.index, "name": s.name,
                                              "status": s.status.value, "started_at": None,
                                              "finished_at": None})
        return int(tid)

    def update_task(self, tid: int, **fields) -> None:
        if "status" in fields:
            fields["status"] = TaskStatus(fields["status"]).value
        if "checkpoint" in fields:
            fields["checkpoint"] = json.dumps(fields["checkpoint"])
        with self._lock:
            self.db["tasks"].update(tid, fields)

    def update_step(self, tid: int, idx: int, **fields) -> None:
        if "status" in fields:
            fields["status"] = TaskStatus(fields["status"]).value
        with self._lock:
            self.db["task_steps"].update((tid, idx), fields)

    def add_log(self, tid: int, at: float, level: str, message: str) -> None:
        with self._lock:
            self.db["task_logs"].insert({"task_id": tid, "at": at, "level": level,
                                         "message": message})

    def task(self, tid: int) -> Task | None:
        rows = self._rows("SELECT * FROM tasks WHERE id=?", [tid])
        if not rows:
            return None
        return self._with_details([rows[0]])[0]

    def _with_details(self, rows: list[dict]) -> list[Task]:
        """Tasks with their steps and logs (two queries for any number of tasks)."""
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        marks = ",".join("?" * len(ids))
        steps: dict[int, list[TaskStep]] = {}
        for r in self._rows(f"SELECT * FROM task_steps WHERE task_id IN ({marks}) "
                            f"ORDER BY task_id, idx", ids):
            steps.setdefault(r["task_id"], []).append(TaskStep(
                index=r["idx"], name=r["name"], status=TaskStatus(r["status"]),
                started_at=r["started_at"], finished_at=r["finished_at"]))
        logs: dict[int, list[TaskLog]] = {}
        for r in self._rows(f"SELECT * FROM task_logs WHERE task_id IN ({marks}) "
                            f"ORDER BY task_id, id", ids):
            logs.setdefault(r["task_id"], []).append(
                TaskLog(at=r["at"], level=r["level"], message=r["message"]))
        return [self._task(r, tuple(steps.get(r["id"], ())), tuple(logs.get(r["id"], ())))
                for r in rows]

    @staticmethod
    def _task(r: dict, steps=(), logs=()) -> Task:
        r = dict(r)
        try:
            r["params"] = json.loads(r.get("params") or "{}")
        except ValueError:
            r["params"] = {}
        r.pop("owner", None)
        r["status"] = TaskStatus(r["status"])
        r["error"] = r["error"] or ""
        r["host"] = r["host"] or ""
        r["started_by"] = r.get("started_by") or ""
        r["cancellable"] = bool(r.get("cancellable"))
        r["cancel_requested"] = r.get("cancel_requested") or ""
        try:
            r["checkpoint"] = json.loads(r.get("checkpoint") or "{}")
        except ValueError:
            r["checkpoint"] = {}
        return Task(steps=steps, logs=logs, **r)

    def task_params(self, tid: int) -> dict:
        rows = self._rows("SELECT params FROM tasks WHERE id=?", [tid])
        try:
            return json.loads(rows[0]["params"] or "{}") if rows else {}
        except ValueError:
            return {}

    def claim_recovery(self, tid: int, owner: str) -> bool:
        """Atomically mark a task as being recovered by `owner` (pid:start@machine):
        False if it is recovered already, or another process that still runs claims
        it. A claim by a process that died is taken over."""
        from .tasks import owner_alive
        import socket
        with self.transaction():
            rows = self._rows("SELECT checkpoint FROM tasks WHERE id=?", [tid])
            if not rows:
                return False
            try:
                cp = json.loads(rows[0]["checkpoint"] or "{}")
            except ValueError:
                cp = {}
            if cp.get("recovered"):
                return False
            held = cp.get("recovering") or ""
            if held and held != owner:
                pid_start, _, machine = held.rpartition("@")
                if machine != socket.gethostname() or owner_alive(pid_start):
                    return False
            cp["recovering"] = owner
            self.conn.execute("UPDATE tasks SET checkpoint=? WHERE id=?",
                              [json.dumps(cp), tid])
        return True

    def release_recovery(self, tid: int) -> None:
        """Give a claim up (the hosts did not answer): the next start tries again."""
        with self.transaction():
            rows = self._rows("SELECT checkpoint FROM tasks WHERE id=?", [tid])
            if rows:
                cp = json.loads(rows[0]["checkpoint"] or "{}")
                cp["recovering"] = ""
                self.conn.execute("UPDATE tasks SET checkpoint=? WHERE id=?",
                                  [json.dumps(cp), tid])

    def children(self, tid: int) -> list[Task]:
        """A parent task's children, oldest first, with their steps and logs."""
        return self._with_details(self._rows(
            "SELECT * FROM tasks WHERE parent=? ORDER BY id", [tid]))

    def cancel_request(self, tid: int) -> str:
        """Why someone asked this task to stop ("" if nobody did): the owner polls it."""
        rows = self._rows("SELECT cancel_requested FROM tasks WHERE id=?", [tid])
        return (rows[0]["cancel_requested"] or "") if rows else ""

    def tasks_since(self, after_id: int, ids: Iterable[int] = ()) -> list[Task]:
        """Tasks newer than after_id, and the listed ones (for following the journal
        that other processes write)."""
        ids = list(ids)
        sql, p = "SELECT * FROM tasks WHERE id > ?", [after_id]
        if ids:
            sql += f" OR id IN ({','.join('?' * len(ids))})"
            p += ids
        return self._with_details(self._rows(sql + " ORDER BY id", p))

    def data_version(self) -> int:
        """Changes whenever another connection (another process) commits."""
        with self._lock:
            return self.conn.execute("PRAGMA data_version").fetchone()[0]

    def task_owner(self, tid: int) -> str:
        rows = self._rows("SELECT owner FROM tasks WHERE id=?", [tid])
        return (rows[0]["owner"] or "") if rows else ""

    def tasks(self, cluster: str | None = None, target: str | None = None,
              host: str | None = None, statuses: Iterable[TaskStatus] | None = None,
              limit: int = 500, details: bool = False) -> list[Task]:
        where, p = [], []
        if cluster:
            where.append("cluster=?"); p.append(cluster)
        if target:
            where.append("target=?"); p.append(target)
        if host:
            where.append("host=?"); p.append(host)
        if statuses:
            st = [s.value for s in statuses]
            where.append(f"status IN ({','.join('?' * len(st))})"); p.extend(st)
        w = (" WHERE " + " AND ".join(where)) if where else ""
        rows = self._rows(f"SELECT * FROM tasks{w} ORDER BY id DESC LIMIT ?", [*p, limit])
        return self._with_details(rows) if details else [self._task(r) for r in rows]

    # ---- locks ------------------------------------------------------------
    def take_locks(self, tid: int, resources: Iterable[str], at: float
                   ) -> list[tuple[str, int]]:
        """Take every lock or none; returns (resource, task id) of those held by others."""
        resources = list(resources)
        with self.transaction():
            held = self._rows(
                f"SELECT resource, task_id FROM locks WHERE resource IN "
                f"({','.join('?' * len(resources))})", resources) if resources else []
            if held:
                return [(r["resource"], r["task_id"]) for r in held]
            for res in resources:
                self.db["locks"].insert({"resource": res, "task_id": tid, "taken_at": at})
        return []

    def hand_over_locks(self, from_tid: int, to_tid: int, resources: Iterable[str],
                        reason: str, at: float) -> bool:
        """Atomically move from_tid's locks on `resources` to to_tid and ask from_tid
        to stop (it is superseded). False if from_tid no longer holds them."""
        resources = list(resources)
        with self.transaction():
            held = self._rows(f"SELECT resource FROM locks WHERE task_id=? AND resource IN "
                              f"({','.join('?' * len(resources))})", [from_tid, *resources])
            if len(held) != len(resources):
                return False
            self.conn.execute(f"UPDATE locks SET task_id=?, taken_at=? WHERE task_id=? AND "
                              f"resource IN ({','.join('?' * len(resources))})",
                              [to_tid, at, from_tid, *resources])
            self.conn.execute("UPDATE tasks SET cancel_requested=? WHERE id=?",
                              [reason, from_tid])
        return True

    def release_locks(self, tid: int) -> None:
        with self._lock:
            self.conn.execute("DELETE FROM locks WHERE task_id=?", [tid])

    def locks(self) -> dict[str, int]:
        return {r["resource"]: r["task_id"] for r in self._rows("SELECT * FROM locks")}

    # ---- events and metrics -------------------------------------------------
    def add_event(self, at: float, cluster: str, host: str, target: str, kind: str,
                  message: str, keep_seconds: float | None = None, source: str = "",
                  outside: str = "") -> None:
        """Record an event; at most once an hour, drop those older than keep_seconds
        (here, not at start-up: every CLI command starts an engine). Without a source,
        the task acting on the target then (running, or ended in the last few seconds:
        its host's event can come after it) is named, or else `outside`."""
        with self.transaction():
            # A console and a CLI (or the watcher) on one inventory both see a libvirt
            # event: the first records it.
            if self._rows("SELECT 1 FROM events WHERE cluster=? AND target=? AND at>=? AND "
                          "at<=? AND kind=? AND message=? LIMIT 1",
                          [cluster, target, at - EVENT_TWIN, at + EVENT_TWIN, kind, message]):
                return
            if not source:
                source = self._acting_task(target, at) or outside
            self.db["events"].insert({"at": at, "cluster": cluster, "host": host,
                                      "target": target, "kind": kind, "message": message,
                                      "source": source})
            if keep_seconds is not None and at - self._events_pruned > 3600:
                self._events_pruned = at    # `at` is indexed (schema v3)
                self.conn.execute("DELETE FROM events WHERE at < ?", [at - keep_seconds])

    def _acting_task(self, target: str, at: float) -> str:
        rows = self._rows("SELECT id, title, started_by FROM tasks WHERE target=? AND "
                          "(status IN ('queued', 'running') OR finished_at >= ?) "
                          "ORDER BY id DESC LIMIT 1", [target, at - 5.0])
        if not rows:
            return ""
        r = rows[0]
        by = f" · {r['started_by']}" if r["started_by"] else ""
        return f"task {r['id']} ({r['title']}){by}"

    def events(self, cluster: str | None = None, limit: int = 200, *, host: str = "",
               target: str = "", since: float = 0.0) -> list[dict]:
        """Events newest first: a cluster's (or every cluster's), a host's, a target's."""
        where, args = ["at >= ?"], [since]
        for col, val in (("cluster", cluster), ("host", host), ("target", target)):
            if val:
                where.append(f"{col} = ?")
                args.append(val)
        return self._rows(f"SELECT * FROM events WHERE {' AND '.join(where)} "
                          f"ORDER BY at DESC, id DESC LIMIT ?", [*args, limit])
