"""The `mvmtui` command's first step: no garbage collection while starting up.

Starting the console creates a few hundred thousand objects (Textual's modules and
styles, the engine, the inventory) that live as long as the process. Python's
collector would walk them again and again while they are being made: about 20 ms
of the launch (bench/bench_launch.py). So collection is off while starting; once
the imports are done, `started()` freezes what they made (gc.freeze: never walked
again) and turns collection back on. The console calls it when it is created (the
inventory loaded, no screen built yet), every other command before it runs.
"""
from __future__ import annotations

import gc

_starting = False


def begin() -> None:
    global _starting
    _starting = True
    gc.disable()


def started() -> None:
    """Start-up is over (idempotent; a no-op where begin() was not called)."""
    global _starting
    if _starting:
        _starting = False
        gc.freeze()
        gc.enable()


def main() -> int:
    begin()
    from .cli import main as cli_main   # the heavy imports happen from here on
    return cli_main()
