"""The console's VMs view with 10,000 VMs: the real screen, engine and inventory.

An offline engine over an inventory of 10,000 VMs on 200 hosts; the console opens
the cluster, then the VMs tab (key 3). Measured: first paint of the tab, a filter
keystroke (typing into the `/` bar), sorting (key o), and RSS at the end. The
process starts the way the `mvmtui` command does (mvmtui/launch.py).

A keystroke is sent the way the terminal driver sends it, then the console gets a
fixed window to handle it and draw (its own timers, not the test pilot, decide when
frames happen). Its cost is the process's CPU time over that window, less the CPU an
idle window takes; its latency is the wall time from the key to the last frame it
caused.

    .venv/bin/python bench/bench_vms_view.py
"""
from __future__ import annotations

import asyncio
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mvmtui import launch  # noqa: E402

launch.begin()   # as the mvmtui command starts; the console re-enables collection

from textual import events  # noqa: E402
from textual.keys import _character_to_key  # noqa: E402

from mvmtui.app import MvmApp  # noqa: E402
from mvmtui.engine import Engine, Inventory  # noqa: E402
from mvmtui.engine.model import Cluster, Disk, Host, HostStatus, Vm, VmState  # noqa: E402
from mvmtui.widgets.listing import Listing  # noqa: E402

N_VMS, N_HOSTS = 10_000, 200
STATES = [VmState.RUNNING] * 6 + [VmState.SHUTOFF] * 3 + [VmState.PAUSED]
SETTLE = 0.08     # seconds a keystroke gets to be handled and drawn (a frame is ≤ 1/60 s away)
ROUNDS = 3        # the typed words, each round 36 keystrokes


def build(path: Path) -> None:
    inv = Inventory(path)
    inv.save_cluster(Cluster(name="big"))
    for h in range(N_HOSTS):
        inv.save_host(Host(cluster="big", name=f"hv-{h:03d}", address=f"10.1.{h // 250}.{h % 250}",
                           status=HostStatus.UP, cpus=64, memory_mib=512 * 1024, seen_at=1.0))
    inv.save_vms(Vm(cluster="big", host=f"hv-{i % N_HOSTS:03d}", uuid=f"uuid-{i:05d}",
                    name=f"{('web', 'db', 'cache', 'batch', 'ci')[i % 5]}-{i:05d}",
                    state=STATES[i % len(STATES)], vcpus=1 + i % 8,
                    memory_mib=512 * (1 + i % 16), seen_at=1.0,
                    disks=(Disk("vda", f"rbd/vm-{i}"),)) for i in range(N_VMS))
    inv.close()


class BenchApp(MvmApp):
    """The console, noting when each frame is handed to the terminal."""

    frames: list[float] = []

    def _display(self, screen, renderable) -> None:
        super()._display(screen, renderable)
        self.frames.append(time.perf_counter())


async def measure(path: Path) -> dict:
    eng = Engine(path, offline=True, clock=lambda: 100.0)
    eng.start()
    app = BenchApp(eng, start_cluster="big")
    app.animation_level = "none"
    out: dict = {}
    async with app.run_test(size=(160, 50)) as pilot:
        async def frame() -> None:
            await pilot._wait_for_screen()
            app.screen._on_timer_update()

        async def key(name: str) -> tuple[float, float, int]:
            """Send one key as the terminal driver does; let the console settle.
            Returns (CPU of the process over the window, wall time from the key to
            the last frame it caused, frames drawn)."""
            n = len(app.frames)
            c0, t0 = time.process_time(), time.perf_counter()
            if name:
                char = name if len(name) == 1 else None
                app._driver.send_message(events.Key(_character_to_key(name)
                                                    if char and not char.isalnum() else name, char))
            await asyncio.sleep(SETTLE)
            cpu = time.process_time() - c0
            drawn = len(app.frames) - n
            return cpu, (app.frames[-1] - t0 if drawn else float("nan")), drawn

        await pilot.pause()
        t0 = time.perf_counter()
        await pilot.press("3")
        await frame()
        out["VMs tab first paint (wall)"] = time.perf_counter() - t0
        table = app.screen.query_one("#vms", Listing).table
        assert table.total_count == N_VMS, table.total_count
        await pilot.press("slash")
        await frame()
        idle = [(await key(""))[0] for _ in range(10)]
        keys = []
        for word in ("web-0", "batch-12", "cache") * ROUNDS:
            keys += list(word) + ["backspace"] * len(word)
        cpu, latency, shown, frames = [], [], [], []
        for k in keys:
            c, w, f = await key(k)
            cpu.append(c)
            latency.append(w)
            frames.append(f)
            shown.append(table.row_count)
        # The keys really filtered (down to a few rows), and backspace undid it all.
        assert min(shown) < 100 and table.filter_text == "" and table.row_count == N_VMS
        base = statistics.median(idle)
        out["filter keystroke CPU median"] = statistics.median(cpu) - base
        out["filter keystroke CPU p95"] = sorted(cpu)[int(len(cpu) * 0.95)] - base
        out["key to last frame (wall) median"] = statistics.median(latency)
        out["_frames"] = statistics.median(frames)
        out["idle CPU per window (subtracted)"] = base
        out["_keys"] = len(keys)
        await pilot.press("enter")
        await frame()
        sorts = [(await key("o"))[0] - base for _ in range(6)]
        out["sort (o) CPU median"] = statistics.median(sorts)
    eng.stop()
    out["_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "big.db"
        t0 = time.perf_counter()
        build(path)
        built = time.perf_counter() - t0
        r = asyncio.run(measure(path))
    print(f"VMs view, {N_VMS:,} VMs on {N_HOSTS} hosts, 160x50 — {platform.node()}, "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"  (inventory of {N_VMS:,} VMs written in {built:.1f} s)")
    for k, v in r.items():
        if not k.startswith("_"):
            print(f"  {k:<28} {v * 1000:8.1f} ms")
    print(f"  {'filter keystrokes':<28} {r['_keys']:8d}")
    print(f"  {'frames per keystroke, median':<28} {r['_frames']:8.0f}")
    print(f"  {'peak RSS':<28} {r['_rss']:8.1f} MiB   (goal ≤ 150 MB)")
    goal = r["filter keystroke CPU median"] * 1000
    print(f"  goal ≤ 16 ms median per filter keystroke: {'met' if goal <= 16 else 'MISSED'} "
          f"({goal:.1f} ms)")


if __name__ == "__main__":
    main()
