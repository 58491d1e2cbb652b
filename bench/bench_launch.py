"""Launch to first frame: mvmtui's console vs a bare Textual app, in one run.

Each sample is a fresh process (imports of byte-compiled code included, as an
operator would see it), run headless. It exits once the first complete frame is
drawn — the footer's keys included: Textual's Footer (in the bare app) adds them a
frame or two after the first paint; mvmtui's footer draws them with the screen — and
reports the time since the interpreter started. The console opens on an offline
engine over a small inventory (3 hosts, 9 VMs), so hosts' latency is not counted.

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
    # The first complete frame: the footer's keys drawn too. Textual's Footer adds them
    # a frame or two after the first paint; wait until they exist, then for the
    # refresh that draws them.
    def check():
        if keys_ready(app):
            app.call_after_refresh(stamp)
        else:
            app.call_after_refresh(check)
    def stamp():
        print(time.time() - T0); app.exit()
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
from mvmtui.engine import Engine
from mvmtui.app import MvmApp
from mvmtui.widgets.footer import KeysBar, shown_keys
def keys_ready(app):    # what the footer drew is what the screen's bindings say
    bar = app.screen.query_one(KeysBar)
    return bar.drawn and bar.drawn == shown_keys(app.screen)
class Probe(MvmApp):
    def on_mount(self):  # Textual also runs MvmApp's own on_mount
        on_complete_frame(self, keys_ready)
eng = Engine(sys.argv[1], offline=True)
eng.start()
Probe(eng).run(headless=True, size=(120, 36))
eng.stop()
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


def sample(script: Path, *args: str) -> float:
    env = dict(os.environ, T0=repr(time.time()))
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=60)
    if out.returncode != 0 or not out.stdout.strip():
        raise SystemExit(f"{script.name} failed:\n{out.stdout[-1000:]}{out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


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
    b, c = statistics.median(bare), statistics.median(console)
    print(f"launch to first complete frame, {RUNS} fresh processes each, interleaved — "
          f"{platform.node()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    print(f"  {'':18} {'median':>7} {'fastest':>8}")
    print(f"  bare Textual app   {b * 1000:7.0f} {min(bare) * 1000:8.0f} ms")
    print(f"  mvmtui console     {c * 1000:7.0f} {min(console) * 1000:8.0f} ms")
    print(f"  ratio              {c / b:7.2f} {min(console) / min(bare):8.2f} ×   "
          f"(goal ≤ 1.2× on the medians)")


if __name__ == "__main__":
    main()
