"""The task journal: every change to a cluster is a task, written down before it
starts, with its steps, log lines, progress and outcome, holding locks on what it
touches. A task the console was running when it died is found at the next start
and marked interrupted (its locks released), so nothing half-done goes unrecorded.
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Awaitable, Callable

from .inventory import Inventory
from .model import Task, TaskChanged, TaskStatus, TaskStep


class TaskFailed(Exception):
    """Raised inside a task body to fail it with a readable message."""


class Busy(Exception):
    """What the task would touch is locked by another task."""


@dataclass
class TaskSpec:
    kind: str
    title: str
    cluster: str
    target_kind: str
    target: str
    target_name: str
    host: str
    steps: tuple[str, ...]
    locks: tuple[str, ...]
    params: dict


class TaskContext:
    """Handed to a task body: mark steps, log, report progress."""

    def __init__(self, journal: "Journal", tid: int, nsteps: int):
        self._j = journal
        self.id = tid
        self._nsteps = max(1, nsteps)
        self._step: int | None = None

    def step(self, index: int) -> None:
        j, now = self._j, self._j.clock()
        if self._step is not None:
            j.inv.update_step(self.id, self._step, status=TaskStatus.SUCCEEDED, finished_at=now)
        self._step = index
        j.inv.update_step(self.id, index, status=TaskStatus.RUNNING, started_at=now)
        j.inv.update_task(self.id, progress=index / self._nsteps)
        j.emit_task(self.id)

    def log(self, message: str, level: str = "info") -> None:
        self._j.inv.add_log(self.id, self._j.clock(), level, message)
        self._j.emit_task(self.id)

    def progress(self, fraction: float) -> None:
        self._j.inv.update_task(self.id, progress=max(0.0, min(1.0, fraction)))
        self._j.emit_task(self.id)

    def _finish_step(self, status: TaskStatus) -> None:
        if self._step is not None:
            self._j.inv.update_step(self.id, self._step, status=status,
                                    finished_at=self._j.clock())


def _start_time(pid: int) -> str | None:
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]   # field 22: start time since boot


def this_process() -> str:
    """Who owns a task: pid plus start time, so a reused pid is not mistaken for us."""
    return f"{os.getpid()}:{_start_time(os.getpid())}"


def owner_alive(owner: str) -> bool:
    pid, _, started = owner.partition(":")
    return pid.isdigit() and _start_time(int(pid)) == started


class Journal:
    def __init__(self, inv: Inventory, clock: Callable[[], float],
                 emit: Callable[[object], None]):
        self.inv = inv
        self.clock = clock
        self._emit = emit

    def emit_task(self, tid: int) -> None:
        t = self.inv.task(tid)
        if t is not None:
            self._emit(TaskChanged(t))

    def recover(self) -> list[int]:
        """Tasks left running by a console that died: mark them interrupted.
        Tasks of another console that is still running are left alone."""
        ids = []
        for t in self.inv.tasks(statuses=(TaskStatus.QUEUED, TaskStatus.RUNNING), limit=10_000):
            if owner_alive(self.inv.task_owner(t.id)):
                continue
            now = self.clock()
            self.inv.add_log(t.id, now, "warning",
                             "The console stopped while this task ran. Its outcome is "
                             "unknown: check the state of the target before retrying.")
            full = self.inv.task(t.id)
            for s in full.steps if full else ():
                if s.status is TaskStatus.RUNNING:
                    self.inv.update_step(t.id, s.index, status=TaskStatus.INTERRUPTED,
                                         finished_at=now)
            self.inv.update_task(t.id, status=TaskStatus.INTERRUPTED, finished_at=now,
                                 error="interrupted: the console stopped while it ran")
            self.inv.release_locks(t.id)
            ids.append(t.id)
        return ids

    async def run(self, spec: TaskSpec,
                  body: Callable[[TaskContext], Awaitable[None]]) -> Task:
        """Record, lock, run, and close a task. Never raises for the body's failure:
        the returned Task carries status and error. Raises Busy if locked."""
        now = self.clock()
        tid = self.inv.create_task(Task(
            id=0, kind=spec.kind, title=spec.title, cluster=spec.cluster,
            target_kind=spec.target_kind, target=spec.target, target_name=spec.target_name,
            host=spec.host, status=TaskStatus.QUEUED, created_at=now,
            steps=tuple(TaskStep(i, name) for i, name in enumerate(spec.steps))),
            spec.params, owner=this_process())
        try:
            held = self.inv.take_locks(tid, spec.locks, now)
        except Exception as exc:  # the journal itself failed: close the record, say why
            self.inv.update_task(tid, status=TaskStatus.FAILED, finished_at=now,
                                 error=f"could not take locks: {exc}")
            self.emit_task(tid)
            raise
        if held:
            msg = f"busy: {', '.join(held)} is locked by another task; wait for it to finish"
            self.inv.add_log(tid, now, "error", msg)
            self.inv.update_task(tid, status=TaskStatus.FAILED, finished_at=now, error=msg)
            self.emit_task(tid)
            raise Busy(msg)
        ctx = TaskContext(self, tid, len(spec.steps))
        self.inv.update_task(tid, status=TaskStatus.RUNNING, started_at=now)
        self.inv.add_log(tid, now, "info", f"{spec.title}: started")
        self.emit_task(tid)
        try:
            await body(ctx)
        except asyncio.CancelledError:
            # Stopped mid-way (Ctrl-C, console closing): say so, never leave it "running".
            ctx._finish_step(TaskStatus.INTERRUPTED)
            self.inv.add_log(tid, self.clock(), "warning",
                             "Cancelled while running: check the state of the target.")
            self.inv.update_task(tid, status=TaskStatus.INTERRUPTED, finished_at=self.clock(),
                                 error="interrupted: cancelled while it ran")
            self.emit_task(tid)
            raise
        except Exception as exc:  # the task records any failure; the console lives on
            msg = str(exc) or exc.__class__.__name__
            ctx._finish_step(TaskStatus.FAILED)
            self.inv.add_log(tid, self.clock(), "error", msg)
            self.inv.update_task(tid, status=TaskStatus.FAILED, finished_at=self.clock(),
                                 error=msg)
        else:
            ctx._finish_step(TaskStatus.SUCCEEDED)
            self.inv.add_log(tid, self.clock(), "info", f"{spec.title}: done")
            self.inv.update_task(tid, status=TaskStatus.SUCCEEDED, progress=1.0,
                                 finished_at=self.clock())
        finally:
            self.inv.release_locks(tid)
        self.emit_task(tid)
        return self.inv.task(tid)
