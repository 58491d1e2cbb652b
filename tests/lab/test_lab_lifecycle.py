"""The lab itself: up over a crashed run, and down leaves nothing behind."""
from __future__ import annotations

import os
import subprocess

from mvmtui.engine.lab import Lab


def _owned(lab: Lab) -> tuple[list[str], list[str]]:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return ([n.split()[0] for n in netns.splitlines() if n.startswith(f"mv{lab.name}-")],
            [l.split(":")[1].strip() for l in links.splitlines()
             if f" mv{lab.name}" in l])


def test_up_over_a_crashed_run_then_down_leaves_nothing(tmp_path):
    lab = Lab("cidown", hosts=1, subnet=79, root=tmp_path / "labs")
    lab.up(seed=False)
    first_pid = lab.init_pid(lab.host(1))
    assert first_pid and lab.status()[0]["running"]
    # A second `up` without `down` (as after a crash of the tool): it cleans up first.
    again = Lab("cidown", hosts=1, subnet=79, root=tmp_path / "labs")
    again.up(seed=False)
    pid = again.init_pid(again.host(1))
    assert pid and pid != first_pid
    assert not os.path.exists(f"/proc/{first_pid}") or \
        open(f"/proc/{first_pid}/stat").read().split()[2] == "Z"
    assert again.exec("kvm-01", "hostname").stdout.strip() == "kvm-01"
    again.down()
    assert _owned(again) == ([], [])
    assert not os.path.exists(f"/proc/{pid}") or \
        open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert not again.root.exists()
