"""The inventory's writer thread: bulk writes off the I/O loop.

Writing 10,000 VM rows took seconds on the loop that also runs keepalives, events
and every host's reads. VM rows, definitions and samples are therefore queued here
and written in order on a thread of their own; memory (and so every screen) already
holds them. A write that fails is logged and the engine goes on, as before. Readers
that need what was queued (a saved definition, the engine stopping) flush first.
"""
from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from typing import Callable

log = logging.getLogger("mvmtui.engine")

_STOP = object()


class InventoryWriter:
    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="mvmtui-writer", daemon=True)
        self._thread.start()

    def put(self, write: Callable, *args) -> None:
        self._queue.put((write, args))

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is written; False on timeout."""
        done = threading.Event()
        self._queue.put((done.set, ()))
        return done.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        self._queue.put((_STOP, ()))
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("inventory writes still queued after %.0f s", timeout)

    def _run(self) -> None:
        while True:
            write, args = self._queue.get()
            if write is _STOP:
                return
            try:
                write(*args)
            except sqlite3.Error as exc:
                log.warning("inventory write failed (%s): %s",
                            getattr(write, "__name__", write), exc)
            except Exception:   # a bad row must not end every later write
                log.exception("inventory write failed")
