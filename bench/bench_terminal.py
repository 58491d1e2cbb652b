"""What an operator sees, in a real terminal: mvmtui beside VirtUI Manager 3.3.3.

    .venv/bin/python bench/bench_terminal.py [--vms 1000,10000] [--runs 5]
        [--apps mvmtui,virtui,bare,floor] [--size 200x50] [--timeout 120]

Every app runs in one tmux server of the bench's own (`tmux -L mvmbench`, no config
file), in one pane of a fixed size (200x50 unless --size), with TERM=xterm-256color
set in the pane command's environment for every app. The screen is read through ONE
persistent control client (`tmux -L mvmbench -C attach -t S`, bench/tmuxctl.py):
a capture is one line written to it and its `%begin … %end` reply read back, about
1 ms; the bench polls every 2 ms (--poll-ms). Keys go through the same client. (Polling
every 2 ms costs about 10 % of a core in the bench and 8 % in the tmux server; no
polling runs while idle CPU is measured.)

Time zero is the exec of the app: the pane command is
`date +%s.%N > STAMP; exec env TERM=… APP …`, so the pane's pid is the app's pid and
the stamp is taken just before the exec. Every moment is the first capture whose text
proves it (below). The node files (bench/testnode.py: vm-00000…, two in three
running, 1 vCPU, 512 MiB, one disk, one NIC) are the same for every app. The apps
are interleaved in every round (mvmtui, VirtUI, bare, floor, then again), `--runs`
rounds for each N. Results: a markdown table per N (median, min–max over the runs),
with date, machine, load and versions, ready for bench/RESULTS.md.

The apps and what proves each moment:
- **mvmtui**: `.venv/bin/mvmtui --inventory DB console --cluster bench`,
  MVMTUI_CONFIG=/nonexistent. DB made with the project's own API (one cluster
  "bench", one host hv-01 at test:///NODE), a fresh copy for each cold start.
  First frame: the footer line is drawn ("? Help" … "Commands"). Then `3` (VMs
  tab). First page with live state: vm-00000's row says "running", and no table
  line says "(stale)". A cold start that shows any row "(stale)" is counted (a fresh
  inventory has no last-known rows, so every such row is a live VM labelled stale).
  **Warm start**: a second launch on the DB the cold start loaded and quit (ctrl+q):
  launch → vm-00000's last known row, and whether it was marked "(stale)" then;
  launch → live. Filter: `/`, then the filter text one key at a time; each key is
  timed from send to the caption saying `match “TEXT”` with every visible row
  containing TEXT. Page down: `pagedown` → another first row.
- **virtui**: VirtUI Manager 3.3.3 in a venv of the bench's own,
  ~/.cache/mvmtui-bench/virtui, made if missing with
  `pip install 'virtui-manager==3.3.3' 'PyGObject<3.51'`. Building PyGObject and
  pycairo needs Debian's `libgirepository1.0-dev` and `libcairo2-dev` (plus
  pkg-config and a C compiler, already here): `apt-get install libgirepository1.0-dev
  libcairo2-dev`. (gir1.2-libosinfo-1.0 is not installed: VirtUI prints one
  "Libosinfo not found" line and goes on without OS discovery.)
  It has no URI argument (its only flag is --cmd); it connects at launch to the
  servers of its config file marked `autoconnect: true`. The bench runs it with
  HOME=~/.cache/mvmtui-bench/virtui-home, whose .config/virtui-manager/config.yaml
  names one server `test:///NODE` with autoconnect, and whose key.pem/cert.pem are
  made once beforehand: without them VirtUI generates a 4096-bit RSA key with
  openssl at every first launch, seconds that an operator pays once only.
  First frame: its Textual footer drawn ("q Quit" … "palette"). First page with
  live state: the vm-00000 card with "Running" under its name (its cards show live
  state only; there is no cache across launches). Filter: not live; `f` opens its
  filter dialog, the text is typed, and Enter → results is timed (every card shown
  contains the text, the first is the first match). Page down: its next-page key,
  `right` → another first card.
- **bare**: a bare Textual app (Static + Footer), same python and Textual as
  mvmtui; first frame: its footer keys drawn.
- **floor**: a python process (same python) doing libvirt-python open +
  listAllDomains + info() of every domain, and nothing else; launch → done, and its
  RSS then: what the libvirt client itself holds (the test driver is in-process).

Measures: launch → first frame; launch → first page with live state; filter per
keystroke; page down; idle CPU (once settled: at least 5 s after the first page, then
until a 2 s window uses under 10 % of a core, at most 60 s, the same for every app;
then utime+stime of the app's process and its children from /proc over 10 s, as % of
one core); RSS (VmRSS) then;
UI stall while rows arrive: a separate cold launch in which, from first frame until
the first page, a ctrl+p (Textual's command palette, in both apps) is sent every
~100 ms and timed until "Search for commands" shows, then escape until it is gone;
the worst of those is the stall (in mvmtui the `3` that opens the VMs tab is the
first probe, timed until the tab is shown: a ctrl+p right behind it would swallow
it). The same probe, five times once the page is up and 2 s have passed, gives what
a probe costs by itself: a stall is only as small as that. Each wait has a timeout (--timeout, 120 s): it
prints what it waited for and the last screen, that sample is dropped, and the
run goes on. The tmux server is always killed at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import testnode  # noqa: E402
from rich.cells import cell_len  # noqa: E402  (Textual's own dependency, in .venv)
from tmuxctl import Tmux, TmuxError  # noqa: E402

VENV_PY = ROOT / ".venv" / "bin" / "python"
MVMTUI = ROOT / ".venv" / "bin" / "mvmtui"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mvmtui-bench"
VIRTUI_VENV = CACHE / "virtui"
VIRTUI_BIN = VIRTUI_VENV / "bin" / "virtui-manager"
VIRTUI_HOME = CACHE / "virtui-home"
VIRTUI_VERSION = "3.3.3"
SOCKET, SESSION, TERM = "mvmbench", "S", "xterm-256color"
ALL_APPS = ("mvmtui", "virtui", "bare", "floor")
PALETTE_TEXT = "Search for commands"
VM_NAME = re.compile(r"vm-\d{5}")
CARD_NAME = re.compile(r"│[^│]*?(vm-\d{5})[^│]*│")   # a VirtUI card's name, not a toast

BARE = '''
from textual.app import App
from textual.binding import Binding
from textual.widgets import Footer, Static

class Bare(App):
    BINDINGS = [Binding("q", "quit", "Quit")]
    def compose(self):
        yield Static("bare Textual app")
        yield Footer()

Bare().run()
'''

FLOOR = '''
import json, sys, time
import libvirt
conn = libvirt.open(sys.argv[1])
doms = conn.listAllDomains()
infos = [d.info() for d in doms]
done = time.time()
rss = 0
with open("/proc/self/status") as f:
    for line in f:
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
running = sum(i[0] == libvirt.VIR_DOMAIN_RUNNING for i in infos)
tmp = sys.argv[2] + ".tmp"
with open(tmp, "w") as f:
    json.dump({"done": done, "rss_kib": rss, "domains": len(doms), "running": running}, f)
import os; os.replace(tmp, sys.argv[2])
'''


class WaitTimeout(Exception):
    def __init__(self, what: str, screen: str, seconds: float):
        super().__init__(f"timed out after {seconds:.0f} s waiting for {what}")
        self.screen = screen


# ---- reading the screen --------------------------------------------------------------
def last_line(screen: str) -> str:
    lines = [ln for ln in screen.split("\n") if ln.strip()]
    return lines[-1] if lines else ""


def mvm_first_frame(screen: str) -> bool:
    foot = last_line(screen)
    return "? Help" in foot and "Commands" in foot


def textual_first_frame(screen: str) -> bool:   # VirtUI and the bare app
    foot = last_line(screen)
    return "Quit" in foot and "palette" in foot


def mvm_on_tab(screen: str, label: str = "3 VMs") -> bool:
    """Whether the tab `label` is the active one: the tabs' underline is bright from
    just after its "╸" to its "╺", and that span starts under the label."""
    lines = screen.split("\n")
    for i, ln in enumerate(lines[:-1]):
        c = ln.find(label)
        if c > 0:
            under = lines[i + 1]
            return len(under) > c and under[c - 1] == "╸"
    return False


def mvm_table(screen: str) -> list[str]:
    """The VMs table's lines: after its header ("Name … State"), up to the caption."""
    lines = screen.split("\n")
    for i, ln in enumerate(lines):
        if ln.startswith("Name") and "State" in ln:
            rows = []
            for row in lines[i + 1:]:
                if not VM_NAME.match(row):
                    break
                rows.append(row)
            return rows
    return []


def mvm_row_state(row: str) -> str:
    m = re.match(r"vm-\d{5}\s+(.+?)(?:\s{2,}|$)", row)
    return m.group(1) if m else ""


def mvm_vm0(screen: str) -> str | None:
    """vm-00000's state as the table shows it, or None when its row is not shown."""
    for row in mvm_table(screen):
        if row.startswith("vm-00000"):
            return mvm_row_state(row)
    return None


def mvm_live(screen: str) -> bool:
    table = mvm_table(screen)
    return (mvm_vm0(screen) == "running"
            and not any("(stale)" in row for row in table))


def virtui_live(screen: str) -> bool:
    """The vm-00000 card, with "Running" on the line under its name."""
    lines = screen.split("\n")
    for i, ln in enumerate(lines[:-1]):
        c = ln.find("vm-00000")
        if c >= 0 and CARD_NAME.search(ln) and "Running" in lines[i + 1][max(0, c - 20):c + 20]:
            return True
    return False


def card_names(screen: str) -> list[str]:
    return CARD_NAME.findall(screen)


def first_name(screen: str, table_only: bool) -> str | None:
    if table_only:
        rows = mvm_table(screen)
        return rows[0][:8] if rows else None
    names = card_names(screen)
    return names[0] if names else None


# ---- processes -------------------------------------------------------------------------
def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pid: int) -> list[int]:
    kids, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])   # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def idle_cpu_pct(pid: int, seconds: float) -> float:
    """utime+stime of the process and its children over `seconds`, % of one core."""
    hz = os.sysconf("SC_CLK_TCK")
    before, t0 = cpu_ticks(tree(pid)), time.monotonic()
    time.sleep(seconds)
    after, t1 = cpu_ticks(tree(pid)), time.monotonic()
    return 100.0 * (after - before) / hz / (t1 - t0)


def settle(pid: int, least: float = 5.0, most: float = 60.0, quiet_pct: float = 10.0) -> float:
    """Wait until the app has settled after its first page: at least `least` s, then
    until a 2 s window uses under `quiet_pct` % of a core (work still arriving, such
    as definitions read after the first page, is not idle), at most `most` s.
    Returns the seconds waited; the same rule for every app."""
    t0 = time.monotonic()
    time.sleep(least)
    while time.monotonic() - t0 < most and idle_cpu_pct(pid, 2) >= quiet_pct:
        pass
    return time.monotonic() - t0


def rss_mib(pid: int) -> float:
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


# ---- the bench ---------------------------------------------------------------------------
class Bench:
    def __init__(self, tmux: Tmux, tmp: Path, args):
        self.t, self.tmp, self.args = tmux, tmp, args
        self.poll = args.poll_ms / 1000
        self.timeout = args.timeout
        self.stamp_file = tmp / "stamp"
        self.last_screen = ""
        self.bare_py = tmp / "bare.py"
        self.bare_py.write_text(BARE)  # a file, not -c: Textual resolves CSS beside it
        self.floor_py = tmp / "floor.py"
        self.floor_py.write_text(FLOOR)

    # -- the pane
    def launch(self, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
        self.stamp_file.unlink(missing_ok=True)
        assigns = " ".join(shlex.quote(f"{k}={v}") for k, v in {"TERM": TERM, **env}.items())
        cmd = (f"date +%s.%N > {shlex.quote(str(self.stamp_file))}; "
               f"exec env {assigns} {' '.join(shlex.quote(a) for a in argv)}")
        self.t.respawn(cmd, cwd=str(cwd or self.tmp))

    def stamp(self) -> float:
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                text = self.stamp_file.read_text().strip()
                if text:
                    return float(text)
            except (OSError, ValueError):
                pass
            time.sleep(0.001)
        raise WaitTimeout("the launch stamp", self.last_screen, 5)

    def wait(self, pred, what: str, timeout: float | None = None) -> tuple[float, str]:
        """Polls the screen until pred(screen, t) is true; returns (t, screen), t the
        wall time of the capture that proved it."""
        timeout = timeout or self.timeout
        deadline = time.monotonic() + timeout
        next_alive = time.monotonic() + 0.5
        while True:
            screen = self.t.capture()
            now = time.time()
            self.last_screen = screen
            if pred(screen, now):
                return now, screen
            mono = time.monotonic()
            if mono > deadline:
                raise WaitTimeout(what, screen, timeout)
            if mono > next_alive:
                next_alive = mono + 0.5
                if self.t.pane_dead():
                    raise WaitTimeout(what + " (the app exited)", self.t.capture(), timeout)
            time.sleep(self.poll)

    def quit(self, keys: list[str], timeout: float = 15) -> bool:
        """Asks the app to quit; True if it exited by itself. Kills it otherwise."""
        for k in keys:
            self.t.send_keys(k)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.t.pane_dead():
                return True
            time.sleep(0.02)
        self.kill()
        return False

    def kill(self) -> None:
        self.t.respawn("exec sleep 2147483647")

    def timed_key(self, key: str, pred, what: str, literal: bool = False) -> float:
        """Sends one key; seconds until pred(screen) holds."""
        t0 = time.time()
        self.t.send_keys(key, literal=literal)
        t1, _ = self.wait(lambda s, t: pred(s), what)
        return t1 - t0

    def page_downs(self, key: str, table_only: bool,
                   times: int = 3) -> tuple[list[float], list[str]]:
        """`key` `times` times, each timed until another first row shows; returns the
        times and the first rows seen (before, then after each)."""
        out, rows = [], [first_name(self.t.capture(), table_only)]
        for _ in range(times):
            before = rows[-1]
            out.append(self.timed_key(
                key, lambda s: first_name(s, table_only) not in (None, before),
                f"`{key}` to show another first row than {before}"))
            time.sleep(0.3)
            rows.append(first_name(self.t.capture(), table_only))
        return out, rows

    def probes(self, live) -> tuple[list[float], float]:
        """Until live(screen): every ~100 ms, ctrl+p then escape, each timed until the
        screen answers. Returns the latencies and the time live was seen."""
        lat = []
        deadline = time.monotonic() + self.timeout
        while True:
            screen = self.t.capture()
            if live(screen):
                return lat, time.time()
            if time.monotonic() > deadline:
                raise WaitTimeout("the first page (probing)", screen, self.timeout)
            t0 = time.time()
            opened = self.timed_key("C-p", lambda s: PALETTE_TEXT in s, "the command palette")
            closed = self.timed_key("Escape", lambda s: PALETTE_TEXT not in s,
                                    "the command palette to close")
            lat.append(max(opened, closed))
            time.sleep(max(0.0, t0 + 0.1 - time.time()))

    def idle_probes(self, times: int = 5) -> list[float]:
        """The same probe once the first page is up and 2 s have passed: what a probe
        costs when nothing arrives."""
        time.sleep(2)
        lat = []
        for _ in range(times):
            opened = self.timed_key("C-p", lambda s: PALETTE_TEXT in s, "the command palette")
            closed = self.timed_key("Escape", lambda s: PALETTE_TEXT not in s,
                                    "the command palette to close")
            lat.append(max(opened, closed))
            time.sleep(0.2)
        return lat

    # -- mvmtui
    def mvm_argv(self, db: Path) -> list[str]:
        return [str(MVMTUI), "--inventory", str(db), "console", "--cluster", "bench"]

    MVM_ENV = {"MVMTUI_CONFIG": "/nonexistent"}

    def mvm_launch(self, db: Path) -> tuple[float, float]:
        """Launch mvmtui on `db` and wait for its first frame: (time zero, first frame)."""
        self.launch(self.mvm_argv(db), self.MVM_ENV)
        t_ff, _ = self.wait(lambda s, t: mvm_first_frame(s), "mvmtui's footer")
        t0 = self.stamp()
        return t0, t_ff - t0

    def mvmtui_cold(self, db: Path, n: int) -> dict:
        t0, first_frame = self.mvm_launch(db)
        r: dict = {"first_frame": first_frame}
        self.t.send_keys("3")
        seen: dict = {}

        def live(s, t):
            table = mvm_table(s)
            if table and "rows" not in seen:
                seen["rows"] = t
            if any("(stale)" in row for row in table):
                seen.setdefault("stale_from", t)
                seen["stale_to"] = t
            return mvm_live(s)
        t_live, _ = self.wait(live, "mvmtui's VMs table: vm-00000 running, nothing (stale)")
        r["first_page"] = t_live - t0
        r["stale_shown"] = (seen["stale_to"] - seen["stale_from"]) if "stale_from" in seen else 0.0
        r["stale_from"] = seen["stale_from"] - t0 if "stale_from" in seen else None
        pid = self.t.pane_pid()
        r["settled_after"] = settle(pid)
        r["idle_cpu"] = idle_cpu_pct(pid, 10)
        r["rss"] = rss_mib(pid)
        r["filter"] = self.mvm_filter(n)
        self.t.send_keys("Escape")
        time.sleep(0.5)
        r["pagedown"], r["pagedown_rows"] = self.page_downs("PageDown", table_only=True)
        r["quit_clean"] = self.quit(["C-q"])
        return r

    def mvm_filter(self, n: int) -> list[tuple[str, float]]:
        text = filter_text(n)
        self.t.send_keys("/")
        self.wait(lambda s, t: "Clear filter" in last_line(s), "mvmtui's filter to open")
        time.sleep(0.3)
        out = []
        for i in range(1, len(text) + 1):
            prefix = text[:i]

            def done(s, prefix=prefix):
                rows = mvm_table(s)
                return (f"match “{prefix}”" in s and bool(rows)
                        and all(prefix in row[:8] for row in rows))
            out.append((text[i - 1], self.timed_key(
                text[i - 1], done, f"the table filtered by “{prefix}”", literal=True)))
        return out

    def mvmtui_warm(self, db: Path) -> dict:
        t0, first_frame = self.mvm_launch(db)
        r: dict = {"first_frame": first_frame}
        self.t.send_keys("3")
        seen: dict = {}

        def live(s, t):
            state = mvm_vm0(s)
            if state is not None and "rows" not in seen:
                seen["rows"], seen["state"] = t, state
            return mvm_live(s)
        t_live, _ = self.wait(live, "mvmtui's VMs table (warm): vm-00000 running, live")
        r["rows"] = seen["rows"] - t0
        r["rows_marked_stale"] = "(stale)" in seen["state"]
        r["rows_state"] = seen["state"]
        r["first_page"] = t_live - t0
        r["quit_clean"] = self.quit(["C-q"])
        return r

    def mvmtui_probe(self, db: Path) -> dict:
        t0, first_frame = self.mvm_launch(db)
        # The tab key is the first probe: a ctrl+p sent right after it would open the
        # palette before the tab switched, and the switch is then lost.
        tab = self.timed_key("3", mvm_on_tab, "mvmtui's VMs tab")
        lat, t_live = self.probes(mvm_live)
        lat.insert(0, tab)
        r = {"first_frame": first_frame, "probes": lat, "first_page": t_live - t0,
             "stall": max(lat), "idle_probe": self.idle_probes()}
        r["quit_clean"] = self.quit(["C-q"])
        return r

    # -- VirtUI
    def virtui_launch(self, uri: str) -> None:
        cfg = VIRTUI_HOME / ".config" / "virtui-manager"
        (cfg / "config.yaml").write_text(
            f"servers:\n- name: bench\n  uri: {uri}\n  autoconnect: true\n")
        log = VIRTUI_HOME / ".cache" / "virtui-manager" / "vm_manager.log"
        if log.exists():
            log.unlink()
        # cwd: its main() looks for ./locale; its home holds none.
        self.launch([str(VIRTUI_BIN)], {"HOME": str(VIRTUI_HOME)}, cwd=VIRTUI_HOME)

    def virtui_cold(self, uri: str, n: int) -> dict:
        r: dict = {}
        self.virtui_launch(uri)
        t_ff, _ = self.wait(lambda s, t: textual_first_frame(s), "VirtUI's footer")
        t0 = self.stamp()
        r["first_frame"] = t_ff - t0
        t_live, _ = self.wait(lambda s, t: virtui_live(s), "VirtUI's vm-00000 card, Running")
        r["first_page"] = t_live - t0
        pid = self.t.pane_pid()
        r["settled_after"] = settle(pid)
        r["idle_cpu"] = idle_cpu_pct(pid, 10)
        r["rss"] = rss_mib(pid)
        r["pagedown"], r["pagedown_rows"] = self.page_downs("Right", table_only=False)
        r["filter"] = self.virtui_filter(n)
        r["quit_clean"] = self.quit(["q"])
        return r

    def virtui_filter(self, n: int) -> float:
        text = filter_text(n)
        want = expected(n, text)
        self.t.send_keys("f")
        self.wait(lambda s, t: "Enter VM name" in s, "VirtUI's filter dialog")
        time.sleep(0.3)
        # Its input is not focused when the dialog opens (Tab reaches it only now and
        # then): a click on it, as an operator would, checked and tried again.
        for attempt in range(5):
            screen = self.t.capture()
            for row, line in enumerate(screen.split("\n")):
                c = line.find("Enter VM name")
                if c >= 0:
                    self.t.click(cell_len(line[:c]) + 1, row)
                    break
            time.sleep(0.3)
            if attempt:
                self.t.send_keys("C-u")   # the input's delete-to-start, if it has focus
            self.t.send_keys(text, literal=True)
            try:
                self.wait(lambda s, t: text in s, "VirtUI's filter input to show the text",
                          timeout=2 if attempt < 4 else None)
                break
            except WaitTimeout:
                print("    (VirtUI's filter input did not take the text; again)", flush=True)
                if attempt == 4:
                    raise
        time.sleep(0.3)

        def done(s):
            names = card_names(s)
            return bool(names) and names[0] == want[0] and all(x in want for x in names)
        return self.timed_key("Enter", done, f"VirtUI's cards filtered by “{text}”")

    def virtui_probe(self, uri: str) -> dict:
        self.virtui_launch(uri)
        t_ff, _ = self.wait(lambda s, t: textual_first_frame(s), "VirtUI's footer")
        t0 = self.stamp()
        lat, t_live = self.probes(virtui_live)
        r = {"first_frame": first_frame, "probes": lat, "first_page": t_live - t0,
             "stall": max(lat) if lat else None, "idle_probe": self.idle_probes()}
        r["quit_clean"] = self.quit(["q"])
        return r

    # -- the bare app and the floor
    def bare(self) -> dict:
        self.launch([str(VENV_PY), str(self.bare_py)], {})
        t_ff, _ = self.wait(lambda s, t: textual_first_frame(s), "the bare app's footer")
        r = {"first_frame": t_ff - self.stamp()}
        pid = self.t.pane_pid()
        time.sleep(5)
        r["idle_cpu"] = idle_cpu_pct(pid, 10)
        r["rss"] = rss_mib(pid)
        r["quit_clean"] = self.quit(["q"])
        return r

    def floor(self, uri: str, n: int) -> dict:
        out = self.tmp / "floor.json"
        out.unlink(missing_ok=True)
        self.launch([str(VENV_PY), str(self.floor_py), uri, str(out)], {})
        end = time.monotonic() + self.timeout
        while not out.exists():
            if time.monotonic() > end:
                raise WaitTimeout("the floor's result", self.t.capture(), self.timeout)
            if self.t.pane_dead():
                time.sleep(0.05)
                if not out.exists():
                    raise WaitTimeout("the floor's result (it exited)", self.t.capture(), 0)
            time.sleep(self.poll)
        res = json.loads(out.read_text())
        assert res["domains"] == n, res
        return {"first_page": res["done"] - self.stamp(), "rss": res["rss_kib"] / 1024}


def filter_text(n: int) -> str:
    """A name prefix that about ten VMs match: vm-0012 at 1,000, vm-0125 at 10,000."""
    return f"vm-{n // 8:05d}"[:-1]


def expected(n: int, text: str) -> list[str]:
    return [f"vm-{i:05d}" for i in range(n) if text in f"vm-{i:05d}"]


# ---- setup ---------------------------------------------------------------------------------
def ensure_virtui() -> None:
    """VirtUI Manager in a venv of the bench's own, and a home for it to run in."""
    ok = VIRTUI_BIN.exists() and subprocess.run(
        [str(VIRTUI_VENV / "bin" / "python"), "-c",
         "import importlib.metadata as m, sys; "
         f"sys.exit(m.version('virtui-manager') != '{VIRTUI_VERSION}')"],
        capture_output=True).returncode == 0
    if not ok:
        print(f"installing VirtUI Manager {VIRTUI_VERSION} into {VIRTUI_VENV} …", flush=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", "--clear", str(VIRTUI_VENV)], check=True)
        pip = subprocess.run([str(VIRTUI_VENV / "bin" / "pip"), "install", "-q",
                              f"virtui-manager=={VIRTUI_VERSION}", "PyGObject<3.51"],
                             capture_output=True, text=True)
        if pip.returncode != 0:
            print(pip.stdout[-2000:], pip.stderr[-3000:], file=sys.stderr)
            raise SystemExit(
                "pip could not install VirtUI. PyGObject and pycairo build from source "
                "here and need Debian's headers: apt-get install libgirepository1.0-dev "
                "libcairo2-dev pkg-config gcc — then run the bench again "
                "(or leave VirtUI out: --apps mvmtui,bare,floor).")
    cfg = VIRTUI_HOME / ".config" / "virtui-manager"
    cfg.mkdir(parents=True, exist_ok=True)
    if not ((cfg / "key.pem").exists() and (cfg / "cert.pem").exists()):
        # VirtUI makes these (4096-bit RSA) at a first launch; once, as for an operator.
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-keyout",
                        str(cfg / "key.pem"), "-out", str(cfg / "cert.pem"), "-sha256",
                        "-days", "3650", "-nodes", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName = DNS:localhost"], check=True, capture_output=True)


def make_inventory(path: Path, node: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from mvmtui.engine import Inventory
    from mvmtui.engine.model import Cluster, Host
    inv = Inventory(path)
    inv.save_cluster(Cluster(name="bench"))
    inv.save_host(Host(cluster="bench", name="hv-01", address=f"test://{node}"))
    inv.close()


def fresh_copy(template: Path, dest: Path) -> Path:
    for p in dest.parent.glob(dest.name + "*"):   # the db and any -wal/-shm beside it
        p.unlink()
    shutil.copyfile(template, dest)
    return dest


def versions() -> dict[str, str]:
    def out(argv: list[str]) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"
    v = {"python": platform.python_version(), "tmux": out(["tmux", "-V"])}
    v["textual"] = out([str(VENV_PY), "-c", "import textual; print(textual.__version__)"])
    v["libvirt"] = out([str(VENV_PY), "-c",
                        "import libvirt, importlib.metadata as m; x = libvirt.getVersion(); "
                        "print(f'{x // 1000000}.{x // 1000 % 1000}.{x % 1000}', "
                        "'· libvirt-python', m.version('libvirt-python'))"])
    rev = out(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = out(["git", "-C", str(ROOT), "status", "--porcelain", "--", "mvmtui"])
    v["mvmtui"] = rev + (" + uncommitted changes in mvmtui/" if dirty else "")
    if VIRTUI_BIN.exists():
        v["virtui"] = out([str(VIRTUI_VENV / "bin" / "python"), "-c",
                           "import importlib.metadata as m; print(' · '.join(f'{p} ' + "
                           "m.version(p) for p in ('virtui-manager', 'textual', "
                           "'libvirt-python', 'PyGObject')))"])
    return v


def machine() -> str:
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"`{platform.node()}`: {os.cpu_count()} cores ({model}), {mem:.0f} GiB"


# ---- the report -----------------------------------------------------------------------------
def med_range(xs: list[float], fmt) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "n/a"
    if len(xs) == 1:
        return fmt(xs[0])
    return f"{fmt(statistics.median(xs))} ({fmt(min(xs))}–{fmt(max(xs))})"


def ms(x: float) -> str:
    return f"{x * 1000:,.0f} ms"


def secs(x: float) -> str:
    return f"{x:.2f} s" if x < 10 else f"{x:.1f} s"


def dur(x: float) -> str:
    return ms(x) if x < 1 else secs(x)


def pct(x: float) -> str:
    return f"{x:.1f} %" if x >= 1 else f"{x:.2f} %"


def mib(x: float) -> str:
    return f"{x:.0f} MiB"


def ratio(a: list, b: list) -> str:
    a, b = [x for x in a if x is not None], [x for x in b if x is not None]
    if not a or not b or statistics.median(b) == 0:
        return "—"
    return f"{statistics.median(a) / statistics.median(b):.2f}×"


def report(n: int, res: dict, info: dict, runs: int) -> str:
    mc, mw, mp = res.get("mvmtui", []), res.get("mvmtui_warm", []), res.get("mvmtui_probe", [])
    vc, vp = res.get("virtui", []), res.get("virtui_probe", [])
    bare, floor = res.get("bare", []), res.get("floor", [])
    g = lambda rows, k: [r[k] for r in rows if r.get(k) is not None]  # noqa: E731
    L = [f"### {n:,} VMs on one test-driver host — `bench/bench_terminal.py`", "",
         f"{info['date']}, machine {info['machine']}, load average {info['load']} at the "
         f"start. tmux {info['size']}, TERM={TERM}, {runs} round{'s' * (runs > 1)}, apps "
         f"interleaved in each. "
         f"Versions: {info['versions_line']}.", "",
         "| | mvmtui | VirtUI 3.3.3 | floor / bare | ratios |",
         "|---|---|---|---|---|"]
    ff_m, ff_v, ff_b = g(mc, "first_frame"), g(vc, "first_frame"), g(bare, "first_frame")
    L.append(f"| launch → first frame | {med_range(ff_m, ms)} | {med_range(ff_v, ms)} | "
             f"bare Textual app {med_range(ff_b, ms)} | mvmtui/bare {ratio(ff_m, ff_b)}, "
             f"mvmtui/VirtUI {ratio(ff_m, ff_v)} |")
    fp_m, fp_v, fp_f = g(mc, "first_page"), g(vc, "first_page"), g(floor, "first_page")
    L.append(f"| launch → first page of VMs with live state | {med_range(fp_m, dur)} | "
             f"{med_range(fp_v, dur)} | libvirt floor {med_range(fp_f, dur)} | "
             f"mvmtui/floor {ratio(fp_m, fp_f)}, mvmtui/VirtUI {ratio(fp_m, fp_v)} |")
    if mw:
        marked = sum(r["rows_marked_stale"] for r in mw)
        L.append(f"| warm start: launch → last known rows | {med_range(g(mw, 'rows'), dur)}"
                 f" (marked stale in {marked} of {len(mw)}) | — | — | |")
        L.append(f"| warm start: launch → live state | {med_range(g(mw, 'first_page'), dur)}"
                 f" | — | — | |")
    keys = [lat for r in mc for _, lat in r.get("filter", [])]
    vf = g(vc, "filter")
    fm = (f"{ms(statistics.median(keys))} median, slowest {ms(max(keys))} "
          f"({len(keys)} keys)" if keys else "n/a")
    L.append(f"| filter, per keystroke (key → screen) | {fm} | not live: Enter → "
             f"{med_range(vf, ms)} | — | |")
    pd_m = [statistics.median(r["pagedown"]) for r in mc if r.get("pagedown")]
    pd_v = [statistics.median(r["pagedown"]) for r in vc if r.get("pagedown")]
    L.append(f"| page down (send → another first row) | {med_range(pd_m, ms)} | "
             f"{med_range(pd_v, ms)} | — | mvmtui/VirtUI {ratio(pd_m, pd_v)} |")
    ic_m, ic_v, ic_b = g(mc, "idle_cpu"), g(vc, "idle_cpu"), g(bare, "idle_cpu")
    L.append(f"| idle CPU, 10 s once settled (≥ 5 s after the first page, then a 2 s window under 10 %) | {med_range(ic_m, pct)} | "
             f"{med_range(ic_v, pct)} | bare app {med_range(ic_b, pct)} | "
             f"mvmtui/VirtUI {ratio(ic_m, ic_v)} |")
    rs_m, rs_v, rs_f, rs_b = g(mc, "rss"), g(vc, "rss"), g(floor, "rss"), g(bare, "rss")
    extra = (f", mvmtui − floor {statistics.median(rs_m) - statistics.median(rs_f):.0f} MiB"
             if rs_m and rs_f else "")
    L.append(f"| RSS after settling (test driver in-process) | {med_range(rs_m, mib)} | "
             f"{med_range(rs_v, mib)} | libvirt client (floor) {med_range(rs_f, mib)}, "
             f"bare app {med_range(rs_b, mib)} | mvmtui/VirtUI {ratio(rs_m, rs_v)}{extra} |")
    st_m, st_v = g(mp, "stall"), g(vp, "stall")
    pr_m, pr_v = sum(len(r["probes"]) for r in mp), sum(len(r["probes"]) for r in vp)
    L.append(f"| UI stall while rows arrive (worst ctrl+p probe of a launch) | "
             f"{med_range(st_m, dur)} ({pr_m} probes) | {med_range(st_v, dur)} "
             f"({pr_v} probes) | — | mvmtui/VirtUI {ratio(st_m, st_v)} |")
    ip_m = [x for r in mp for x in r.get("idle_probe", [])]
    ip_v = [x for r in vp for x in r.get("idle_probe", [])]
    L.append(f"| the same probe once settled, 5 a launch (its own cost) | "
             f"{med_range(ip_m, dur)} | {med_range(ip_v, dur)} | — | |")
    L.append("")
    # Per key of the filter, and the odd things seen.
    if mc and any(r.get("filter") for r in mc):
        per_key: dict[int, list[float]] = {}
        chars = []
        for r in mc:
            for i, (ch, lat) in enumerate(r.get("filter", [])):
                per_key.setdefault(i, []).append(lat)
                if len(chars) <= i:
                    chars.append(ch)
        L.append(f"mvmtui's filter, typing “{filter_text(n)}” (key → table filtered, "
                 f"median and slowest over {len(mc)} runs): " + ", ".join(
                     f"`{chars[i]}` {ms(statistics.median(v))}/{ms(max(v))}"
                     for i, v in sorted(per_key.items())) + ".")
    stale = [r for r in mc if r.get("stale_shown") or r.get("stale_from") is not None]
    if mc:
        L.append(f"Cold starts that showed live rows as \"(stale)\": {len(stale)} of "
                 f"{len(mc)}" + (" (for " + ", ".join(dur(r["stale_shown"]) for r in stale)
                                 + ")" if stale else "") + ".")
    seq = [f"{name} " + " → ".join(str(x) for x in rows[0]["pagedown_rows"])
           for name, rows in (("mvmtui", mc), ("VirtUI", vc))
           if rows and rows[0].get("pagedown_rows")]
    if seq:
        L.append("Page down, the first row before and after each press (first run): "
                 + "; ".join(seq) + ".")
    unclean = sum(not r.get("quit_clean", True)
                  for key, rows in res.items() if not key.startswith("_") for r in rows)
    if unclean:
        L.append(f"{unclean} launches did not exit on their quit key within 15 s and "
                 f"were killed.")
    fails = res.get("_failures", [])
    if fails:
        L.append(f"Samples lost to timeouts: {', '.join(fails)}.")
    L.append("")
    L.append("Per run (launch → first page, s): " + "; ".join(
        f"{name} " + ", ".join(f"{x:.2f}" for x in g(rows, 'first_page'))
        for name, rows in (("mvmtui", mc), ("warm", mw), ("VirtUI", vc), ("floor", floor))
        if rows) + ".")
    return "\n".join(L)


# ---- main --------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vms", default="1000,10000", help="N VMs, comma-separated")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--apps", default=",".join(ALL_APPS),
                    help="of mvmtui,virtui,bare,floor")
    ap.add_argument("--size", default="200x50")
    ap.add_argument("--timeout", type=float, default=120, help="per wait, seconds")
    ap.add_argument("--poll-ms", type=float, default=2.0, help="pause between captures")
    ap.add_argument("--json", help="also write every sample to this file")
    args = ap.parse_args()
    apps = [a.strip() for a in args.apps.split(",") if a.strip()]
    bad = set(apps) - set(ALL_APPS)
    if bad:
        ap.error(f"unknown apps: {', '.join(sorted(bad))}")
    width, height = (int(x) for x in args.size.lower().split("x"))
    sizes = [int(x) for x in args.vms.split(",")]

    load = "{:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())
    if "virtui" in apps:
        ensure_virtui()
    # mvmtui from byte-compiled code, as pip leaves Textual (and scripts/setup.sh does).
    subprocess.run([str(VENV_PY), "-m", "compileall", "-q", str(ROOT / "mvmtui")],
                   stdout=subprocess.DEVNULL)
    v = versions()
    info = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
            "load": load, "size": f"{width}×{height}",
            "versions_line": f"Python {v['python']}, Textual {v['textual']}, "
                             f"libvirt {v['libvirt']}, {v['tmux']}, mvmtui {v['mvmtui']}"
                             + (f"; VirtUI venv: {v['virtui']}" if "virtui" in v else "")}
    print(f"bench_terminal: N={sizes}, {args.runs} round(s) of {', '.join(apps)}; "
          f"load average {load}", flush=True)

    reports, samples = [], {}
    with tempfile.TemporaryDirectory(prefix="mvmbench-") as d:
        tmp = Path(d)
        env = dict(os.environ)
        env.pop("TMUX", None)   # our own server, even when run from inside tmux
        tmux = Tmux(SOCKET, SESSION, width, height, env=env)
        try:
            tmux.start()
            bench = Bench(tmux, tmp, args)
            for n in sizes:
                node = tmp / f"node-{n}.xml"
                uri = testnode.write(n, node)
                template = tmp / f"inv-{n}.template.db"
                make_inventory(template, node.resolve())
                res: dict = {"_failures": []}

                def sample(key: str, fn, *a):
                    t0 = time.monotonic()
                    try:
                        r = fn(*a)
                    except Exception as exc:  # noqa: BLE001 - one sample lost, not the run
                        screen = getattr(exc, "screen", bench.last_screen)
                        print(f"\n!! {key}, N={n}: {type(exc).__name__}: {exc}. "
                              f"Last screen:\n{screen}\n", file=sys.stderr, flush=True)
                        if not isinstance(exc, (WaitTimeout, TmuxError)):
                            traceback.print_exc()
                        res["_failures"].append(key)
                        bench.kill()
                        time.sleep(1)
                        return None
                    res.setdefault(key, []).append(r)
                    short = {k: (round(x, 3) if isinstance(x, float) else x)
                             for k, x in r.items() if not isinstance(x, list)}
                    print(f"  {key:13} {time.monotonic() - t0:5.1f} s  {short}", flush=True)
                    time.sleep(1)   # the next launch starts on a quiet machine
                    return r

                for rnd in range(1, args.runs + 1):
                    print(f"N={n:,} round {rnd}/{args.runs}", flush=True)
                    if "mvmtui" in apps:
                        db = fresh_copy(template, tmp / "inv.db")
                        if sample("mvmtui", bench.mvmtui_cold, db, n) is not None:
                            sample("mvmtui_warm", bench.mvmtui_warm, db)
                        sample("mvmtui_probe", bench.mvmtui_probe,
                               fresh_copy(template, tmp / "inv.db"))
                    if "virtui" in apps:
                        sample("virtui", bench.virtui_cold, uri, n)
                        sample("virtui_probe", bench.virtui_probe, uri)
                    if "bare" in apps:
                        sample("bare", bench.bare)
                    if "floor" in apps:
                        sample("floor", bench.floor, uri, n)
                samples[n] = res
                reports.append(report(n, res, info, args.runs))
        finally:
            tmux.close()
    if args.json:
        Path(args.json).write_text(json.dumps({"info": info, "samples": samples}, indent=1))
    print("\n\n".join(reports))


if __name__ == "__main__":
    main()
