"""Follow a task started from a dialog (a move, maintenance) to its end, on the app:
leaving the screen that started it does not lose its outcome, and quitting while it
runs asks first (the app counts its "vm-action" workers)."""
from __future__ import annotations

from typing import Callable

from textual.app import App
from textual.worker import Worker

from ..engine.errors import EngineError, InventoryError
from ..engine.model import Task, TaskStatus


def follow_task(app: App, task: Task, done: Callable[[Task], str] | None = None) -> Worker:
    """Say that the task runs, then how it ended: `done(task)` words a success
    ("web-01 runs on kvm-02"); a failure says the engine's reason."""
    what = task.title

    async def follow() -> None:
        engine = app.engine  # type: ignore[attr-defined]
        app.notify(f"{what}: task {task.id} running…")
        try:
            end = await engine.wait_task(task.id)
        except (EngineError, InventoryError) as exc:
            app.notify(f"{what}: {exc} (task {task.id})", severity="error", timeout=15)
            return
        except Exception as exc:  # never a traceback on screen
            from ..app import unexpected
            app.notify(f"{what}: {unexpected(exc)} (task {task.id})", severity="error",
                       timeout=15)
            return
        if end.status is TaskStatus.SUCCEEDED:
            words = ""
            if done is not None:
                try:
                    words = done(end)
                except EngineError:
                    words = ""
            app.notify(f"{what}: done" + (f" — {words}" if words else ""))
        elif end.status in (TaskStatus.CANCELLED, TaskStatus.SUPERSEDED):
            app.notify(f"{what}: {end.error or end.status.value} (task {end.id})",
                       severity="warning", timeout=15)
        else:
            app.notify(f"{what} failed: {end.error or end.status.value} (task {end.id})",
                       severity="error", timeout=15)

    return app.run_worker(follow(), name=what, group="vm-action", description=what,
                          exit_on_error=False)
