"""A small persistent tmux control-mode client, for the terminal benchmark.

One tmux server of our own (`tmux -L SOCKET`, no config file), one session of a fixed
size, and ONE control client (`tmux -L SOCKET -C attach -t SESSION`) kept open as a
subprocess with pipes: every command (capture-pane, send-keys, respawn-pane, …) is a
line written to it, and its reply is the `%begin … %end` block read back. No fork per
poll: a capture costs one round trip to the server, about a millisecond.

The client is attached with the `no-output` flag, so tmux does not stream every
pane's output to it as `%output` notifications (a TUI redrawing would flood it).

    with Tmux("mvmbench", "S", 200, 50) as t:
        t.respawn("sh -c 'exec top'")
        print(t.capture())
        t.send_keys("q")
"""
from __future__ import annotations

import os
import select
import shlex
import subprocess
import time


class TmuxError(RuntimeError):
    pass


class Tmux:
    def __init__(self, socket: str, session: str, width: int, height: int,
                 env: dict[str, str] | None = None):
        self.socket, self.session = socket, session
        self.width, self.height = width, height
        self.env = env
        self.proc: subprocess.Popen | None = None
        self._buf = b""

    # ---- the server and the control client -----------------------------------------
    def _tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args],
                              capture_output=True, text=True, env=self.env, check=check)

    def start(self) -> "Tmux":
        """Starts our own server with one session (a shell that waits, so the session
        outlives every app run in it), then attaches the control client."""
        self.kill_server()  # a server left over from a run that was killed
        self._tmux("new-session", "-d", "-s", self.session, "-x", str(self.width),
                   "-y", str(self.height), "sleep 2147483647")
        for opt in (["set", "-g", "remain-on-exit", "on"],
                    ["set", "-g", "window-size", "manual"],
                    ["set", "-g", "default-size", f"{self.width}x{self.height}"],
                    ["set", "-g", "status", "off"],       # the pane gets the whole window
                    ["set", "-g", "default-shell", "/bin/sh"],
                    ["set", "-g", "escape-time", "0"],    # keys go out as typed
                    ["set", "-g", "history-limit", "0"]):
            self._tmux(*opt)
        self._tmux("resize-window", "-t", self.session, "-x", str(self.width),
                   "-y", str(self.height))
        self.proc = subprocess.Popen(
            ["tmux", "-L", self.socket, "-f", "/dev/null", "-C", "attach-session",
             "-f", "no-output", "-t", self.session],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=self.env, bufsize=0)
        # The attach itself answers with an empty %begin/%end block.
        self._read_block(timeout=10)
        return self

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        self.kill_server()

    def kill_server(self) -> None:
        self._tmux("kill-server", check=False)

    def __enter__(self) -> "Tmux":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- the protocol --------------------------------------------------------------
    def _readline(self, deadline: float) -> bytes:
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TmuxError("tmux control client: no answer in time")
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    raise TmuxError("tmux control client exited")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def _read_block(self, timeout: float) -> list[str]:
        """Reads up to the next %end (or %error) block; notifications between blocks
        (%session-changed, %exit, …) are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._readline(deadline)
            if line.startswith(b"%begin"):
                break
            if line.startswith(b"%exit"):
                raise TmuxError("tmux control client: %exit")
        out: list[bytes] = []
        while True:
            line = self._readline(deadline)
            if line.startswith(b"%end") or line.startswith(b"%error"):
                text = [raw.decode("utf-8", "replace") for raw in out]
                if line.startswith(b"%error"):
                    raise TmuxError("tmux: " + "\n".join(text))
                return text
            out.append(line)

    def cmd(self, *args: str, timeout: float = 10) -> list[str]:
        """Runs one tmux command through the control client; returns its output lines."""
        line = " ".join(_quote(a) for a in args) + "\n"
        self.proc.stdin.write(line.encode())
        return self._read_block(timeout)

    # ---- what the benchmark uses ---------------------------------------------------
    @property
    def target(self) -> str:
        return f"{self.session}:0.0"

    def capture(self) -> str:
        """The pane's visible screen as text, one line a row."""
        return "\n".join(self.cmd("capture-pane", "-p", "-t", self.target))

    def send_keys(self, *keys: str, literal: bool = False) -> None:
        args = ["send-keys", "-t", self.target]
        if literal:
            args.append("-l")
        self.cmd(*args, *keys)

    def click(self, col: int, row: int) -> None:
        """A left click at a cell (0-based), as an xterm SGR mouse report typed into
        the pane: for apps that turned mouse reporting on, as Textual apps do."""
        self.send_keys(f"\x1b[<0;{col + 1};{row + 1}M", literal=True)
        self.send_keys(f"\x1b[<0;{col + 1};{row + 1}m", literal=True)

    def respawn(self, command: str, cwd: str | None = None) -> None:
        """Kills whatever runs in the pane and starts `command` (run by sh -c)."""
        args = ["respawn-pane", "-k", "-t", self.target]
        if cwd:
            args += ["-c", cwd]
        self.cmd(*args, command)

    def pane_pid(self) -> int:
        return int(self.cmd("display-message", "-p", "-t", self.target,
                            "#{pane_pid}")[0])

    def pane_dead(self) -> bool:
        return self.cmd("display-message", "-p", "-t", self.target,
                        "#{pane_dead}")[0].strip() == "1"


def _quote(arg: str) -> str:
    """Quotes one argument for tmux's command parser (like sh's single quotes)."""
    if arg and all(c.isalnum() or c in "-_./:=+@," for c in arg):
        return arg
    return shlex.quote(arg)
