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


def settled() -> None:
    """What a load made (10,000 VMs, their rows) lives on: freeze it too. Left to the
    collector, each full collection walked all of it again, a 260 ms stall of the
    screen at 10,000 VMs, and ~3 % of a core at idle. Young cycles are collected
    first; what is frozen and later dies in a cycle stays (a screen or two)."""
    gc.collect(1)
    gc.freeze()


def main() -> int:
    begin()
    from .cli import main as cli_main   # the heavy imports happen from here on
    return cli_main()
