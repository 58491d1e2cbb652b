"""The task journal: every change to a cluster is a task, written down before it
starts, with its steps, log lines, progress, outcome and who started it, holding
locks on what it touches.

- A task the console was running when it died is found at the next start and marked
  interrupted (its locks released), so nothing half-done goes unrecorded; for the
  kinds that move VMs, recovery.py then finishes or undoes it from what hosts show.
- A task may be part of another (`parent`: an evacuation's moves) and keeps its
  parameters and checkpoints (what a resume or rollback needs) in the inventory.
- A task runs detached from whoever asked for it (`submit`, then `wait`); it can be
  cancelled while it only waits (`cancel`, from any process on the same inventory:
  the owner polls the request), and a newer task may supersede a waiting one on the
  same target (Force off ends a pending shutdown).
- `JournalFollower` follows what other processes write, so every view of the journal
  sees their tasks too.
"""
from __future__ import annotations

import asyncio
import getpass
import logging
import os
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Awaitable, Callable

from .inventory import Inventory
from .model import Task, TaskChanged, TaskStatus, TaskStep

log = logging.getLogger("mvmtui.tasks")

CANCEL_POLL = 0.2      # seconds between a waiting task's looks at its cancel request
SUPERSEDED = "superseded"


class TaskFailed(Exception):
    """Raised inside a task body to fail it with a readable message."""


class TaskStopped(Exception):
    """Raised inside a task body when someone asked it to stop (cancel or supersede)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason

    @property
    def superseded(self) -> bool:
        return self.reason.startswith(SUPERSEDED)


def can_supersede(task: Task, kinds: tuple[str, ...]) -> bool:
    """Whether a task of one of `kinds` waiting now may be taken over."""
    return task.kind in kinds and task.cancellable and task.status is TaskStatus.RUNNING


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
    supersedes: tuple[str, ...] = ()   # kinds of waiting tasks this one may take over
    parent: int | None = None          # the task this one is part of


class TaskContext:
    """Handed to a task body: mark steps, log, report progress, wait cancellably."""

    def __init__(self, journal: "Journal", tid: int, nsteps: int):
        self._j = journal
        self.id = tid
        self._nsteps = max(1, nsteps)
        self._step: int | None = None
        self._cancellable = False
        self._checkpoint: dict = {}
        self.took_over: list[int] = []      # waiting tasks this one superseded

    @property
    def data(self) -> dict:
        """The checkpoint as this task wrote it so far."""
        return dict(self._checkpoint)

    def checkpoint(self, **data) -> None:
        """Record what a resume or rollback would need to know (and live figures),
        merged into the task's checkpoint."""
        self._checkpoint.update(data)
        self._j.inv.update_task(self.id, checkpoint=self._checkpoint)
        self._j.emit_task(self.id)

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

    @contextmanager
    def cancellable(self):
        """While inside, the task only waits: cancelling or superseding it is safe."""
        self._cancellable = True
        self._j.inv.update_task(self.id, cancellable=1)
        self._j.emit_task(self.id)
        try:
            yield
        finally:
            self._cancellable = False
            self._j.inv.update_task(self.id, cancellable=0)

    def check_stop(self) -> None:
        """Raise TaskStopped if someone asked this task to stop."""
        reason = self._j.inv.cancel_request(self.id)
        if reason:
            raise TaskStopped(reason)

    async def sleep(self, seconds: float) -> None:
        """Wait, looking for a stop request every CANCEL_POLL seconds."""
        end = time.monotonic() + seconds
        while True:
            self.check_stop()
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(CANCEL_POLL, left))

    def _end_steps(self, status: TaskStatus) -> None:
        """Close the current step with `status`; steps that never ran are skipped."""
        j, now = self._j, self._j.clock()
        if self._step is not None:
            j.inv.update_step(self.id, self._step, status=status, finished_at=now)
        full = j.inv.task(self.id)
        for s in full.steps if full else ():
            if s.status is TaskStatus.QUEUED:
                j.inv.update_step(self.id, s.index, status=TaskStatus.SKIPPED)


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


def who(actor: str) -> str:
    """"console · root@admin-1": what started a task, as History shows it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{actor} · {user}@{socket.gethostname()}"


class Journal:
    def __init__(self, inv: Inventory, clock: Callable[[], float],
                 emit: Callable[[object], None], actor: str = "console"):
        self.inv = inv
        self.clock = clock
        self._emit = emit
        self.started_by = who(actor)
        self._running: dict[int, asyncio.Future] = {}   # this process's tasks

    def emit_task(self, tid: int) -> None:
        t = self.inv.task(tid)
        if t is not None:
            self._emit(TaskChanged(t))

    def recover(self) -> list[int]:
        """Tasks left running by a console that died: mark them interrupted.
        Tasks of another console that is still running are left alone."""
        return [t.id for t in self.inv.tasks(statuses=(TaskStatus.QUEUED, TaskStatus.RUNNING),
                                             limit=10_000)
                if self._recover_if_dead(t.id)]

    def _recover_if_dead(self, tid: int) -> bool:
        """If the process that ran this unfinished task is gone (a console or CLI that
        crashed or was killed), close it as interrupted and free its locks."""
        if owner_alive(self.inv.task_owner(tid)):
            return False
        full = self.inv.task(tid)
        if full is None or full.status.finished:
            return False
        now = self.clock()
        self.inv.add_log(tid, now, "warning",
                         "The process that ran this task stopped while it ran. Its outcome "
                         "is unknown: check the state of the target before retrying.")
        for s in full.steps:
            if s.status is TaskStatus.RUNNING:
                self.inv.update_step(tid, s.index, status=TaskStatus.INTERRUPTED,
                                     finished_at=now)
            elif s.status is TaskStatus.QUEUED:
                self.inv.update_step(tid, s.index, status=TaskStatus.SKIPPED)
        self.inv.update_task(tid, status=TaskStatus.INTERRUPTED, finished_at=now,
                             cancellable=0,
                             error="interrupted: the process that ran it stopped")
        self.inv.release_locks(tid)
        self.emit_task(tid)
        return True

    # ---- starting -------------------------------------------------------------
    def _holders(self, held: list[tuple[str, int]]) -> str:
        names = []
        for resource, tid in held:
            t = self.inv.task(tid)
            if t is None:
                names.append(f"{resource} (task {tid})")
            else:
                by = f", {t.started_by}" if t.started_by else ""
                names.append(f"{t.title} (task {tid}{by})")
        return "; ".join(dict.fromkeys(names))

    def _take_over(self, spec: TaskSpec, tid: int, held: list[tuple[str, int]],
                   ctx: "TaskContext") -> bool:
        """Supersede the waiting tasks that hold our locks, if this kind may."""
        holders = {task_id for _, task_id in held}
        tasks = [self.inv.task(h) for h in holders]
        if not all(t is not None and can_supersede(t, spec.supersedes) for t in tasks):
            return False
        now = self.clock()
        for t in tasks:
            mine = [r for r, h in held if h == t.id]
            reason = f"{SUPERSEDED} by task {tid} ({spec.title})"
            if not self.inv.hand_over_locks(t.id, tid, mine, reason, now):
                return False
            self.inv.add_log(tid, now, "info", f"Took over from {t.title} (task {t.id}), "
                                               f"which was waiting")
            ctx.took_over.append(t.id)
            self.emit_task(t.id)
        return not self.inv.take_locks(tid, [r for r in spec.locks
                                             if r not in {x for x, _ in held}], now)

    def _start(self, spec: TaskSpec) -> tuple[int, TaskContext]:
        """Record the task and take its locks; raises Busy (the refusal is recorded)."""
        now = self.clock()
        tid = self.inv.create_task(Task(
            id=0, kind=spec.kind, title=spec.title, cluster=spec.cluster,
            target_kind=spec.target_kind, target=spec.target, target_name=spec.target_name,
            host=spec.host, status=TaskStatus.QUEUED, created_at=now,
            started_by=self.started_by, parent=spec.parent,
            steps=tuple(TaskStep(i, name) for i, name in enumerate(spec.steps))),
            spec.params, owner=this_process())
        ctx = TaskContext(self, tid, len(spec.steps))
        try:
            held = self.inv.take_locks(tid, spec.locks, now)
            # A holder whose process died (a killed CLI) is closed, then we try again.
            if held and any([self._recover_if_dead(h) for h in {h for _, h in held}]):
                held = self.inv.take_locks(tid, spec.locks, now)
            if held and not self._take_over(spec, tid, held, ctx):
                holders = self._holders(held)
                msg = (f"refused: {spec.target_name} is busy with {holders}; wait for it "
                       f"to finish, or cancel it (History, or `mvmtui task cancel ID`)")
                self.inv.add_log(tid, now, "error", msg)
                ctx._end_steps(TaskStatus.SKIPPED)
                self.inv.update_task(tid, status=TaskStatus.FAILED, finished_at=now, error=msg)
                self.inv.release_locks(tid)
                self.emit_task(tid)
                raise Busy(msg)
        except Busy:
            raise
        except Exception as exc:  # the journal itself failed: close the record, say why
            self.inv.update_task(tid, status=TaskStatus.FAILED, finished_at=now,
                                 error=f"could not take locks: {exc}")
            self.inv.release_locks(tid)
            self.emit_task(tid)
            raise
        self.inv.update_task(tid, status=TaskStatus.RUNNING, started_at=now)
        self.inv.add_log(tid, now, "info", f"{spec.title}: started by {self.started_by}")
        self.emit_task(tid)
        return tid, ctx

    async def _body(self, spec: TaskSpec, tid: int, ctx: TaskContext,
                    body: Callable[[TaskContext], Awaitable[None]]) -> Task:
        """Run the body and close the task. Never raises for the body's failure."""
        try:
            await body(ctx)
        except asyncio.CancelledError:
            # Stopped mid-way (Ctrl-C, console closing): say so, never leave it "running".
            ctx._end_steps(TaskStatus.INTERRUPTED)
            self.inv.add_log(tid, self.clock(), "warning",
                             "Cancelled while running: check the state of the target.")
            self.inv.update_task(tid, status=TaskStatus.INTERRUPTED, finished_at=self.clock(),
                                 cancellable=0, error="interrupted: cancelled while it ran")
            self.inv.release_locks(tid)
            self.emit_task(tid)
            raise
        except TaskStopped as stop:
            status = TaskStatus.SUPERSEDED if stop.superseded else TaskStatus.CANCELLED
            ctx._end_steps(status)
            self.inv.add_log(tid, self.clock(), "warning", f"Stopped: {stop.reason}")
            self.inv.update_task(tid, status=status, finished_at=self.clock(),
                                 cancellable=0, error=stop.reason)
        except Exception as exc:  # the task records any failure; the console lives on
            msg = str(exc) or exc.__class__.__name__
            ctx._end_steps(TaskStatus.FAILED)
            self.inv.add_log(tid, self.clock(), "error", msg)
            self.inv.update_task(tid, status=TaskStatus.FAILED, finished_at=self.clock(),
                                 cancellable=0, error=msg)
        else:
            stop = self.inv.cancel_request(tid)
            if stop.startswith(SUPERSEDED):
                # Taken over by another process in the moment the wait ended: its Force
                # off made the state come true, not this task.
                ctx._end_steps(TaskStatus.SUPERSEDED)
                self.inv.add_log(tid, self.clock(), "warning", f"Stopped: {stop}")
                self.inv.update_task(tid, status=TaskStatus.SUPERSEDED,
                                     finished_at=self.clock(), cancellable=0, error=stop)
            else:
                if stop:   # a cancel that came as it ended: what it waited for happened
                    self.inv.add_log(tid, self.clock(), "info",
                                     f"{stop}, but it had already happened")
                ctx._end_steps(TaskStatus.SUCCEEDED)
                self.inv.add_log(tid, self.clock(), "info", f"{spec.title}: done")
                self.inv.update_task(tid, status=TaskStatus.SUCCEEDED, progress=1.0,
                                     cancellable=0, finished_at=self.clock())
        self.inv.release_locks(tid)
        self.emit_task(tid)
        return self.inv.task(tid)

    # ---- running ----------------------------------------------------------------
    async def run(self, spec: TaskSpec,
                  body: Callable[[TaskContext], Awaitable[None]]) -> Task:
        """Record, lock, run, and close a task; returns it finished. Raises Busy."""
        tid, ctx = self._start(spec)
        return await self._body(spec, tid, ctx, body)

    async def submit(self, spec: TaskSpec,
                     body: Callable[[TaskContext], Awaitable[None]]) -> Task:
        """Record and lock a task, start its body detached; returns it running.
        Raises Busy. `wait(id)` gives the finished task."""
        tid, ctx = self._start(spec)
        fut = asyncio.ensure_future(self._body(spec, tid, ctx, body))
        self._running[tid] = fut
        fut.add_done_callback(lambda _f: self._running.pop(tid, None))
        return self.inv.task(tid)

    async def wait(self, tid: int, poll: float = 0.25) -> Task:
        """The finished task: ours are awaited, another process's are polled."""
        fut = self._running.get(tid)
        if fut is not None:
            try:
                return await asyncio.shield(fut)
            except asyncio.CancelledError:
                if not fut.cancelled():
                    raise
        while True:
            t = self.inv.task(tid)
            if t is None or t.status.finished:
                return t
            await asyncio.sleep(poll)

    def cancel(self, tid: int, reason: str) -> Task:
        """Ask a running task to stop. Raises ValueError with a readable reason when
        it cannot be (finished, or doing something that must not be cut short)."""
        t = self.inv.task(tid)
        if t is None:
            raise LookupError(f"No task {tid}.")
        if t.status.finished:
            raise ValueError(f"Task {tid} ({t.title}) has already {t.status.value}.")
        if self._recover_if_dead(tid):
            raise ValueError(f"Task {tid} ({t.title}) was no longer running: the process "
                             f"that ran it had stopped. It is now marked interrupted.")
        if not t.cancellable:
            step = next((s.name for s in t.steps if s.status is TaskStatus.RUNNING), "")
            raise ValueError(f"Task {tid} ({t.title}) cannot be cancelled now"
                             + (f": it is at “{step}”" if step else "")
                             + "; it can be cancelled while it waits.")
        self.inv.update_task(tid, cancel_requested=reason)
        self.inv.add_log(tid, self.clock(), "warning", f"Cancel asked: {reason}")
        self.emit_task(tid)
        return self.inv.task(tid)

    async def cancel_all(self, timeout: float = 3.0) -> None:
        """Stop this process's running tasks (engine stopping): they end interrupted."""
        futs = list(self._running.values())
        for f in futs:
            f.cancel()
        if futs:
            await asyncio.wait(futs, timeout=timeout)


class JournalFollower:
    """Follows the journal that other processes write (the CLI, a second console):
    a thread looks at SQLite's data_version twice a second and, when another
    connection committed, re-reads new tasks and the unfinished ones it knows,
    emitting TaskChanged for each that changed. Cheap: one pragma per look."""

    def __init__(self, inv: Inventory, emit: Callable[[object], None],
                 interval: float = 0.5):
        self.inv = inv
        self._emit = emit
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        latest = inv.tasks(limit=1)
        self._max_id = latest[0].id if latest else 0
        self._open: dict[int, Task] = {
            t.id: t for t in inv.tasks(statuses=(TaskStatus.QUEUED, TaskStatus.RUNNING),
                                       limit=10_000, details=True)}
        self._version = inv.data_version()   # only commits from now on count

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mvmtui-journal",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:   # a locked or closed file: look again next time
                log.debug("journal follow failed", exc_info=True)

    def poll(self) -> list[Task]:
        version = self.inv.data_version()
        if version == self._version:
            return []
        self._version = version
        changed = []
        for t in self.inv.tasks_since(self._max_id, self._open):
            self._max_id = max(self._max_id, t.id)
            if self._open.get(t.id) != t:
                changed.append(t)
            if t.status.finished:
                self._open.pop(t.id, None)
            else:
                self._open[t.id] = t
        for t in changed:
            self._emit(TaskChanged(t))
        return changed
