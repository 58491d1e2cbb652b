"""Launch to first frame: mvmtui's console vs a bare Textual app, in one run.

Each sample is a fresh process (imports of byte-compiled code included, as an
operator would see it), run headless. It reports two times since the interpreter
started: the first paint, and the first complete frame — the footer's keys drawn
too. Textual's Footer (in the bare app) adds its keys a frame or two after the first
paint; mvmtui's footer draws them with the screen. The goal is judged on the
complete frame, what an operator can act on. The console opens on an offline engine
over a small inventory (3 hosts, 9 VMs), so hosts' latency is not counted. It runs
the `mvmtui` command's own code: mvmtui/launch.py, then `cli.main` with the console
verb (argument parsing, engine, console), only headless.

    .venv/bin/python bench/bench_launch.py [RUNS]
"""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 21

PRELUDE = """
import time, os, sys
T0 = float(os.environ["T0"])

def on_complete_frame(app, keys_ready):
    # Prints the time of the first paint, then of the first complete frame: the
    # footer's keys drawn too. Textual's Footer adds them a frame or two after the
    # first paint; wait until they exist, then for the refresh that draws them.
    first = []
    def check():
        if not first:
            first.append(time.time() - T0)
        if keys_ready(app):
            app.call_after_refresh(stamp)
        else:
            app.call_after_refresh(check)
    def stamp():
        print(first[0], time.time() - T0); app.exit()
    app.call_after_refresh(check)
"""
BARE = PRELUDE + """
from textual.app import App
from textual.widgets import Static, Footer
class Bare(App):
    def compose(self):
        yield Static("hello")
        yield Footer()
    def on_mount(self):
        on_complete_frame(self, lambda app: app.screen.query("FooterKey"))
Bare().run(headless=True, size=(120, 36))
"""
CONSOLE = PRELUDE + """
from mvmtui import launch
launch.begin()          # the mvmtui command's first step (mvmtui/launch.py) ...
from mvmtui import app as console, cli
from mvmtui.widgets.footer import KeysBar, shown_keys
def keys_ready(app):    # what the footer drew is what the screen's bindings say
    bar = app.screen.query_one(KeysBar)
    return bar.drawn and bar.drawn == shown_keys(app.screen)
class Probe(console.MvmApp):
    def on_mount(self):  # Textual also runs MvmApp's own on_mount
        on_complete_frame(self, keys_ready)
    def run(self, **kwargs):   # no terminal here: headless, at a fixed size
        return super().run(headless=True, size=(120, 36))
console.MvmApp = Probe  # run_console builds the app by this name
cli._has_terminal = lambda: True   # headless here: the console would refuse a pipe
# ... then the command itself: `mvmtui --inventory FILE console --offline`
cli.main(["--inventory", sys.argv[1], "console", "--offline"])
"""


def make_inventory(path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from mvmtui.engine import Inventory
    from mvmtui.engine.model import Cluster, Host, HostStatus, Vm, VmState
    inv = Inventory(path)
    inv.save_cluster(Cluster(name="lab"))
    vms = []
    for i in range(1, 4):
        inv.save_host(Host(cluster="lab", name=f"kvm-{i:02d}", address=f"10.0.0.{i}",
                           status=HostStatus.UP, cpus=8, memory_mib=32768, seen_at=1.0))
        for j in range(3):
            vms.append(Vm(cluster="lab", host=f"kvm-{i:02d}", uuid=f"u-{i}-{j}",
                          name=f"vm-{i}{j}", state=VmState.RUNNING, vcpus=1,
                          memory_mib=512, seen_at=1.0))
    inv.save_vms(vms)
    inv.close()


def sample(script: Path, *args: str) -> tuple[float, float]:
    env = dict(os.environ, T0=repr(time.time()))
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=60)
    if out.returncode != 0 or not out.stdout.strip():
        raise SystemExit(f"{script.name} failed:\n{out.stdout[-1000:]}{out.stderr[-2000:]}")
    first, complete = out.stdout.strip().splitlines()[-1].split()
    return float(first), float(complete)


def main() -> None:
    # Textual arrives byte-compiled by pip; an editable checkout is compiled here
    # (as scripts/setup.sh does), so neither side pays for compiling its sources.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "mvmtui")],
                   check=True, stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as d:
        inv = Path(d) / "inv.db"
        make_inventory(inv)
        bare_py, console_py = Path(d) / "bare.py", Path(d) / "console.py"
        bare_py.write_text(BARE)      # files, not -c: Textual resolves CSS next to them
        console_py.write_text(CONSOLE)
        bare, console = [], []
        for _ in range(RUNS):  # interleaved, so both see the same machine load
            bare.append(sample(bare_py))
            console.append(sample(console_py, str(inv)))
    med = statistics.median
    bf, bc = med(t[0] for t in bare), med(t[1] for t in bare)
    cf, cc = med(t[0] for t in console), med(t[1] for t in console)
    bmin, cmin = min(t[1] for t in bare), min(t[1] for t in console)
    print(f"launch, {RUNS} fresh processes each, interleaved — {platform.node()}, "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    print(f"  {'':18} {'first paint':>12} {'complete frame':>15} {'(fastest)':>10}")
    print(f"  bare Textual app   {bf * 1000:9.0f} ms {bc * 1000:12.0f} ms {bmin * 1000:7.0f} ms")
    print(f"  mvmtui console     {cf * 1000:9.0f} ms {cc * 1000:12.0f} ms {cmin * 1000:7.0f} ms")
    print(f"  ratio              {cf / bf:11.2f}× {cc / bc:13.2f}× {cmin / bmin:8.2f}×")
    print(f"  goal ≤ 1.2× (complete frame, medians): {'met' if cc / bc <= 1.2 else 'MISSED'}")


if __name__ == "__main__":
    main()
